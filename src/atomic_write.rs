//! The one way castsync writes a file it must never leave half-written: a temporary file in
//! the same directory, written and fsynced, renamed over the target, then the directory
//! fsynced so the rename itself survives a crash. A reader sees the old file or the new one,
//! never a mix; on any error the temporary file is removed.
//!
//! Used for manifests, the state file, the embedded store, identities and the files `init`
//! creates. It must never follow a half-done write with a success, and never widen the
//! permissions of a private file.

use std::path::Path;

/// Whether the write may replace an existing file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replace {
    /// Fail with `AlreadyExists` if the target exists, even if it appeared meanwhile.
    Never,
    /// Replace the target if it exists.
    Existing,
}

/// The permissions of the written file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// 0600: secrets, the state file (its HMAC key), identities.
    Private,
    /// A replaced file keeps its permissions; a new one gets 0666 less the umask, like any
    /// file.
    Default,
    /// 0777 less the umask, whatever the file had: a program (a git hook).
    Executable,
}

/// Writes `bytes` to `path` atomically and durably (see the module doc).
pub fn write(path: &Path, bytes: &[u8], replace: Replace, mode: Mode) -> std::io::Result<()> {
    write_with(path, replace, mode, |file| file.write_all(bytes))
}

/// As [`write`], with the content streamed by `fill` into the temporary file (for a large
/// file that need not be held in memory whole).
pub fn write_with(
    path: &Path,
    replace: Replace,
    mode: Mode,
    fill: impl FnOnce(&mut dyn std::io::Write) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map_or_else(|| "file".into(), |n| n.to_string_lossy());
    let prefix = format!(".{name}.");
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(".tmp");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let created = match mode {
            Mode::Private => 0o600,
            Mode::Default => 0o666,
            Mode::Executable => 0o777,
        };
        builder.permissions(std::fs::Permissions::from_mode(created));
    }
    let mut tmp = builder.tempfile_in(dir)?;
    if mode == Mode::Default
        && let Ok(existing) = std::fs::metadata(path)
    {
        tmp.as_file().set_permissions(existing.permissions())?;
    }
    fill(tmp.as_file_mut())?;
    tmp.as_file().sync_all()?;
    // On error the temporary file is removed by its guard.
    match replace {
        Replace::Never => tmp.persist_noclobber(path).map_err(|e| e.error)?,
        Replace::Existing => tmp.persist(path).map_err(|e| e.error)?,
    };
    sync_dir(dir)
}

/// Creates `dir` and its missing parents, new ones with mode 0700 (for the state, identities
/// and caches); an existing directory is left as it is.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Makes a rename in `dir` durable. A filesystem that cannot sync a directory at all says
/// so with `InvalidInput`/`Unsupported`: nothing more can be done there, so that is not an
/// error; any other failure is.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    match std::fs::File::open(dir).and_then(|d| d.sync_all()) {
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::InvalidInput | std::io::ErrorKind::Unsupported
            ) =>
        {
            Ok(())
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode_of(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_write_replaces_the_file_whole_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.json");
        write(&path, b"one", Replace::Existing, Mode::Private).unwrap();
        write(&path, b"two", Replace::Existing, Mode::Private).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert_eq!(mode_of(&path), 0o600);
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }

    #[test]
    fn never_replace_refuses_an_existing_file_and_keeps_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.txt");
        std::fs::write(&path, "old").unwrap();
        let err = write(&path, b"new", Replace::Never, Mode::Private).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_replaced_file_keeps_its_permissions_by_default() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets.yaml.age");
        std::fs::write(&path, "old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        write(&path, b"new", Replace::Existing, Mode::Default).unwrap();
        assert_eq!(mode_of(&path), 0o640);
    }

    #[test]
    fn a_missing_directory_is_an_error_not_a_silent_success() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("absent/f");
        assert!(write(&path, b"x", Replace::Existing, Mode::Private).is_err());
    }
}
