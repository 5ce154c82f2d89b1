//! Bounded reads of the files castsync is handed: every reader of a repository file, an
//! identity, the state, the allowed signers or a webhook secret goes through here.
//!
//! A file in a pull request is hostile: a committed symbolic link to `/dev/zero` would be read
//! forever, one to a FIFO would block forever, and a link to `~/.ssh/id_ed25519` would feed a
//! private key to the parsers. So a file is read only when it is a *regular* file: FIFOs,
//! sockets and devices are refused by name before they are opened (opening a FIFO blocks, and
//! opening some devices has effects), and the open itself is non-blocking as a second guard.
//! Its size is checked before reading and the read stops at the limit anyway (a file that
//! grows meanwhile is refused, never truncated silently). Repository files must also resolve,
//! after every symbolic link, to a path inside the repository.
//!
//! This module must never read without a limit, and never follow a link out of the
//! repository for a repository file.

use std::fmt;
use std::fs::{File, Metadata};
use std::io::{Read as _, Seek as _};
use std::os::unix::fs::{FileTypeExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use thiserror::Error;
use zeroize::Zeroizing;

/// The largest file castsync reads from a repository (a manifest's ciphertext, an
/// `.env.example`, `castsync.yaml`): an armored manifest at its 1 MiB plaintext limit is about
/// 1.4 MiB.
pub const MAX_REPO_FILE: u64 = 2 * 1024 * 1024;
/// The largest identity, API key or webhook secret file.
pub const MAX_KEY_FILE: u64 = 1024 * 1024;
/// The largest `allowed_signers` file.
pub const MAX_SIGNERS_FILE: u64 = 1024 * 1024;
/// The largest state file: about 200 bytes per key, so room for some 300,000 keys.
pub const MAX_STATE_FILE: u64 = 64 * 1024 * 1024;

/// What a path is when it is not a regular file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Directory,
    Fifo,
    Socket,
    CharDevice,
    BlockDevice,
    Other,
}

impl Kind {
    fn of(meta: &Metadata) -> Option<Kind> {
        let t = meta.file_type();
        Some(if t.is_file() {
            return None;
        } else if t.is_dir() {
            Kind::Directory
        } else if t.is_fifo() {
            Kind::Fifo
        } else if t.is_socket() {
            Kind::Socket
        } else if t.is_char_device() {
            Kind::CharDevice
        } else if t.is_block_device() {
            Kind::BlockDevice
        } else {
            Kind::Other
        })
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Directory => "a directory",
            Kind::Fifo => "a FIFO (named pipe)",
            Kind::Socket => "a socket",
            Kind::CharDevice => "a character device",
            Kind::BlockDevice => "a block device",
            Kind::Other => "not a regular file",
        })
    }
}

/// Why a file was not read. `path` is the path as the caller names it (repository-relative
/// for repository files).
#[derive(Debug, Error)]
pub enum ReadError {
    /// Nothing at that path.
    #[error("{} does not exist", path.display())]
    NotFound { path: PathBuf },
    /// A FIFO, socket, device or directory (possibly behind a symbolic link).
    #[error("{} is {kind}, not a regular file: castsync reads only regular files", path.display())]
    NotRegular { path: PathBuf, kind: Kind },
    /// A symbolic link (here or in a parent directory) that resolves outside the repository.
    #[error(
        "{} is a symbolic link that leads outside the repository (to {target:?}): castsync reads only files inside it",
        path.display()
    )]
    Outside { path: PathBuf, target: PathBuf },
    /// Larger than the limit for its kind of file.
    #[error("{} is larger than {limit} bytes, the limit for this file", path.display())]
    TooLarge { path: PathBuf, limit: u64 },
    /// Any other I/O failure.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl ReadError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, ReadError::NotFound { .. })
    }

    fn io(path: &Path, source: std::io::Error) -> ReadError {
        if source.kind() == std::io::ErrorKind::NotFound {
            ReadError::NotFound {
                path: path.to_owned(),
            }
        } else {
            ReadError::Io {
                path: path.to_owned(),
                source,
            }
        }
    }
}

/// Reads `rel` (relative to `root`) when it is a regular file of at most `limit` bytes whose
/// real path, after every symbolic link, is inside `root`.
pub fn read_in_repo(root: &Path, rel: &Path, limit: u64) -> Result<Vec<u8>, ReadError> {
    let full = root.join(rel);
    // A dangling link is an error that says so, not an absent file.
    if let Err(e) = full.symlink_metadata() {
        return Err(ReadError::io(rel, e));
    }
    if no_link_below(root, rel) {
        // Nothing under `root` on the way is a link: the file is inside `root` whatever
        // `root` itself resolves to, and resolving every component of the absolute path
        // (one readlink each, for every file of a large repository) can be skipped.
        let mut buf = Vec::new();
        read_regular(&full, rel, limit, &mut buf)?;
        return Ok(buf);
    }
    let real = full.canonicalize().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => ReadError::Io {
            path: rel.to_owned(),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "a symbolic link whose target does not exist",
            ),
        },
        _ => ReadError::io(rel, e),
    })?;
    let real_root = root.canonicalize().map_err(|e| ReadError::io(root, e))?;
    if !real.starts_with(&real_root) {
        return Err(ReadError::Outside {
            path: rel.to_owned(),
            target: real,
        });
    }
    let mut buf = Vec::new();
    read_regular(&real, rel, limit, &mut buf)?;
    Ok(buf)
}

/// Whether `rel` is a plain relative path (no `..`, no root) none of whose components,
/// below `root`, is a symbolic link (each is checked with lstat; one that cannot be read
/// counts as a link, so the caller takes the path that resolves every link).
fn no_link_below(root: &Path, rel: &Path) -> bool {
    use std::path::Component;
    let mut at = root.to_path_buf();
    for component in rel.components() {
        match component {
            Component::Normal(name) => at.push(name),
            Component::CurDir => continue,
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => return false,
        }
        match at.symlink_metadata() {
            Ok(meta) if !meta.file_type().is_symlink() => {}
            _ => return false,
        }
    }
    true
}

/// Reads a file outside any repository (the state, allowed signers, a file git hands to the
/// diff driver): a regular file (links followed) of at most `limit` bytes.
pub fn read_file(path: &Path, limit: u64) -> Result<Vec<u8>, ReadError> {
    let mut buf = Vec::new();
    read_regular(path, path, limit, &mut buf)?;
    Ok(buf)
}

/// [`read_file`] as a stream, for a file too large to want whole in memory (the state): the
/// same checks before it is opened; the stream ends `limit` bytes in, so a file that grew
/// past the limit since reads as cut short (and fails to parse) rather than without end.
pub fn open_file(path: &Path, limit: u64) -> Result<std::io::Take<File>, ReadError> {
    let meta = std::fs::metadata(path).map_err(|e| ReadError::io(path, e))?;
    check(&meta, path, limit)?;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| ReadError::io(path, e))?;
    let meta = file.metadata().map_err(|e| ReadError::io(path, e))?;
    check(&meta, path, limit)?;
    Ok(file.take(limit))
}

/// [`read_file`] for secrets (identities, API keys, webhook secrets): the buffer is reserved
/// once, so it never reallocates and leaves a copy behind, and is zeroized on drop.
pub fn read_secret_file(path: &Path, limit: u64) -> Result<Zeroizing<Vec<u8>>, ReadError> {
    let mut buf = Zeroizing::new(Vec::new());
    read_regular(path, path, limit, &mut buf)?;
    Ok(buf)
}

/// The last `bound` bytes of a regular file of any size (an append-only log such as the
/// apply history), and whether older bytes were left unread.
pub fn read_tail(path: &Path, bound: u64) -> Result<(Vec<u8>, bool), ReadError> {
    let meta = std::fs::metadata(path).map_err(|e| ReadError::io(path, e))?;
    check(&meta, path, u64::MAX)?;
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| ReadError::io(path, e))?;
    let meta = file.metadata().map_err(|e| ReadError::io(path, e))?;
    check(&meta, path, u64::MAX)?;
    let start = meta.len().saturating_sub(bound);
    file.seek(std::io::SeekFrom::Start(start))
        .map_err(|e| ReadError::io(path, e))?;
    let mut buf = Vec::new();
    file.take(bound)
        .read_to_end(&mut buf)
        .map_err(|e| ReadError::io(path, e))?;
    Ok((buf, start > 0))
}

/// The bytes of a file as text (UTF-8), a byte order mark at the start removed.
pub fn text(bytes: Vec<u8>) -> Result<String, std::string::FromUtf8Error> {
    let mut text = String::from_utf8(bytes)?;
    if text.starts_with('\u{feff}') {
        text.drain(..'\u{feff}'.len_utf8());
    }
    Ok(text)
}

fn read_regular(path: &Path, shown: &Path, limit: u64, buf: &mut Vec<u8>) -> Result<(), ReadError> {
    // Judged before opening: opening a FIFO waits for a writer, and opening a device may act.
    let meta = std::fs::metadata(path).map_err(|e| ReadError::io(shown, e))?;
    check(&meta, shown, limit)?;
    // O_NONBLOCK: should the path have become a FIFO since, the open still returns at once.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| ReadError::io(shown, e))?;
    let meta = file.metadata().map_err(|e| ReadError::io(shown, e))?;
    check(&meta, shown, limit)?;
    read_capped(file, meta.len(), shown, limit, buf)
}

fn check(meta: &Metadata, shown: &Path, limit: u64) -> Result<(), ReadError> {
    if let Some(kind) = Kind::of(meta) {
        return Err(ReadError::NotRegular {
            path: shown.to_owned(),
            kind,
        });
    }
    if meta.len() > limit {
        return Err(ReadError::TooLarge {
            path: shown.to_owned(),
            limit,
        });
    }
    Ok(())
}

fn read_capped(
    file: File,
    size: u64,
    shown: &Path,
    limit: u64,
    buf: &mut Vec<u8>,
) -> Result<(), ReadError> {
    // `size <= limit` here; one byte more tells a file that grew past the limit.
    buf.reserve_exact(usize::try_from(size).unwrap_or(0).saturating_add(1));
    file.take(limit.saturating_add(1))
        .read_to_end(buf)
        .map_err(|e| ReadError::io(shown, e))?;
    if buf.len() as u64 > limit {
        return Err(ReadError::TooLarge {
            path: shown.to_owned(),
            limit,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn repo() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("repo/agents")).unwrap();
        dir
    }

    #[test]
    fn a_regular_file_inside_the_repository_is_read() {
        let dir = repo();
        let root = dir.path().join("repo");
        std::fs::write(root.join("agents/a.txt"), "hello").unwrap();
        symlink("a.txt", root.join("agents/link.txt")).unwrap();
        assert_eq!(
            read_in_repo(&root, Path::new("agents/a.txt"), 10).unwrap(),
            b"hello"
        );
        assert_eq!(
            read_in_repo(&root, Path::new("agents/link.txt"), 10).unwrap(),
            b"hello"
        );
        assert!(
            read_in_repo(&root, Path::new("agents/none"), 10)
                .unwrap_err()
                .is_not_found()
        );
    }

    #[test]
    fn links_out_of_the_repository_devices_and_fifos_are_refused_by_name() {
        let dir = repo();
        let root = dir.path().join("repo");
        std::fs::write(dir.path().join("outside.txt"), "secret").unwrap();
        symlink("../../outside.txt", root.join("agents/out")).unwrap();
        symlink("/dev/zero", root.join("agents/zero")).unwrap();
        symlink(dir.path(), root.join("agents/updir")).unwrap();
        let fifo = root.join("agents/fifo");
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap()
                .success()
        );

        let e = read_in_repo(&root, Path::new("agents/out"), 100).unwrap_err();
        assert!(matches!(e, ReadError::Outside { .. }), "{e}");
        assert!(
            e.to_string()
                .contains("agents/out is a symbolic link that leads outside"),
            "{e}"
        );
        let e = read_in_repo(&root, Path::new("agents/updir/outside.txt"), 100).unwrap_err();
        assert!(matches!(e, ReadError::Outside { .. }), "{e}");
        // No link on the way, but `..` climbs out.
        let e = read_in_repo(&root, Path::new("agents/../../outside.txt"), 100).unwrap_err();
        assert!(matches!(e, ReadError::Outside { .. }), "{e}");
        // /dev/zero is outside too; read directly, it is a device.
        let e = read_in_repo(&root, Path::new("agents/zero"), 100).unwrap_err();
        assert!(matches!(e, ReadError::Outside { .. }), "{e}");
        let e = read_file(Path::new("/dev/zero"), 100).unwrap_err();
        assert!(e.to_string().contains("is a character device"), "{e}");
        // Would block forever if it were opened for a plain read.
        let e = read_in_repo(&root, Path::new("agents/fifo"), 100).unwrap_err();
        assert!(e.to_string().contains("agents/fifo is a FIFO"), "{e}");
        let e = read_in_repo(&root, Path::new("agents"), 100).unwrap_err();
        assert!(e.to_string().contains("is a directory"), "{e}");
        let dangling = root.join("agents/dangling");
        symlink("nowhere", &dangling).unwrap();
        let e = read_in_repo(&root, Path::new("agents/dangling"), 100).unwrap_err();
        assert!(
            !e.is_not_found() && e.to_string().contains("target does not exist"),
            "{e}"
        );
    }

    #[test]
    fn a_repository_reached_through_a_link_reads_its_files_and_still_refuses_links_out() {
        let dir = repo();
        let root = dir.path().join("repo");
        std::fs::write(root.join("agents/a.txt"), "hello").unwrap();
        std::fs::write(dir.path().join("outside.txt"), "secret").unwrap();
        symlink("../../outside.txt", root.join("agents/out")).unwrap();
        let linked = dir.path().join("linked-repo");
        symlink(&root, &linked).unwrap();
        assert_eq!(
            read_in_repo(&linked, Path::new("agents/a.txt"), 10).unwrap(),
            b"hello"
        );
        let e = read_in_repo(&linked, Path::new("agents/out"), 100).unwrap_err();
        assert!(matches!(e, ReadError::Outside { .. }), "{e}");
    }

    #[test]
    fn a_file_over_the_limit_is_refused_before_it_is_read() {
        let dir = repo();
        let path = dir.path().join("big");
        std::fs::write(&path, vec![b'x'; 11]).unwrap();
        let e = read_file(&path, 10).unwrap_err();
        assert!(matches!(e, ReadError::TooLarge { limit: 10, .. }), "{e}");
        assert_eq!(read_file(&path, 11).unwrap().len(), 11);
        assert_eq!(read_secret_file(&path, 11).unwrap().len(), 11);
    }

    #[test]
    fn text_drops_a_leading_byte_order_mark() {
        assert_eq!(text("\u{feff}a: 1".as_bytes().to_vec()).unwrap(), "a: 1");
        assert!(text(vec![0xff]).is_err());
    }
}
