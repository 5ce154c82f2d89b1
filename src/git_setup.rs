//! How castsync plugs into git: the `.gitattributes` lines that route manifests to castsync's
//! diff driver (`castsync textconv`) and merge driver (`castsync merge-driver`), and the
//! `git config` entries that define those drivers. `.gitattributes` is committed, but git
//! config is per clone and never travels with a clone, so every clone needs the entries once:
//! `init` writes the lines and prints the commands, `git-setup` applies both to a clone.
//!
//! `git-setup --hooks` also writes a `pre-commit` hook that runs `castsync guard --staged`.
//!
//! git itself is asked (`git config`, `git check-attr`), so whatever git reads is what is
//! checked. This module must never write outside the repository's own git config
//! (`--local`), never replace a driver configured differently unless told to, and never
//! leave `.gitattributes` half-written.

use std::path::{Path, PathBuf};
use std::process::Command;

use thiserror::Error;

use crate::atomic_write::{self, Mode, Replace};

/// Routes manifests to the diff driver.
pub const DIFF_ATTRIBUTE: &str = "*.yaml.age diff=castsync";
/// Routes manifests to the merge driver.
pub const MERGE_ATTRIBUTE: &str = "*.yaml.age merge=castsync";

/// `.gitattributes` as `init` writes it.
pub const GITATTRIBUTES: &str = "\
# Encrypted manifests: key-level diffs and key-by-key merges through castsync. Each clone needs
# the drivers in its git config once: run `castsync git-setup`.
*.yaml.age diff=castsync
*.yaml.age merge=castsync
";

/// One git config entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    pub key: &'static str,
    pub value: &'static str,
}

/// The diff driver: git runs it on each version of a manifest and diffs its output.
pub const TEXTCONV: Setting = Setting {
    key: "diff.castsync.textconv",
    value: "castsync textconv",
};
/// The merge driver's description, shown by git in some messages.
pub const MERGE_NAME: Setting = Setting {
    key: "merge.castsync.name",
    value: "castsync: merge encrypted manifests key by key",
};
/// The merge driver. The placeholders are git's (gitattributes(5), "Defining a custom merge
/// driver"): %O ancestor, %A ours (and the result), %B theirs, %P the path in the repository.
pub const MERGE_DRIVER: Setting = Setting {
    key: "merge.castsync.driver",
    value: "castsync merge-driver %O %A %B %P",
};

/// What `git-setup` sets, in order.
pub const SETTINGS: [Setting; 3] = [TEXTCONV, MERGE_NAME, MERGE_DRIVER];

/// The two commands `init` prints: the diff driver and the merge driver.
pub fn config_commands() -> [String; 2] {
    [TEXTCONV, MERGE_DRIVER].map(|s| format!("git config {} \"{}\"", s.key, s.value))
}

/// `.gitattributes` files larger than this are refused unread.
const MAX_ATTRIBUTES_BYTES: u64 = 1024 * 1024;

/// Why `git-setup` stopped.
#[derive(Debug, Error)]
pub enum GitSetupError {
    /// The `git` program cannot be run.
    #[error("cannot run git")]
    NoGit(#[source] std::io::Error),
    /// The repository is not in a git work tree.
    #[error("{} is not in a git work tree", root.display())]
    NotAClone { root: PathBuf },
    /// A git command failed.
    #[error("`git {command}` failed: {stderr}")]
    Git { command: String, stderr: String },
    /// `.gitattributes` cannot be read (or is over 1 MiB).
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// `.gitattributes` cannot be written.
    #[error("cannot write {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl crate::hint::Hinted for GitSetupError {
    fn hint(&self) -> Option<std::borrow::Cow<'_, str>> {
        match self {
            GitSetupError::NoGit(_) => {
                Some("install git; castsync git-setup configures a git clone".into())
            }
            GitSetupError::NotAClone { .. } => Some(
                "run castsync git-setup in a clone of the secrets repository (or after `git init`)"
                    .into(),
            ),
            GitSetupError::Git { .. }
            | GitSetupError::Read { .. }
            | GitSetupError::Write { .. } => None,
        }
    }
}

/// What happened to one git config entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// It was not set; now it is.
    Set,
    /// It already had this value.
    Unchanged,
    /// It had another value, replaced (`--force`).
    Replaced { previous: String },
    /// It has another value, kept (no `--force`).
    Kept { current: String },
}

/// What `git-setup` did.
#[derive(Debug)]
pub struct Report {
    pub settings: Vec<(Setting, Change)>,
    /// The `.gitattributes` file lines were added to (or would be).
    pub attributes_file: PathBuf,
    /// The lines added to it.
    pub added: Vec<&'static str>,
    /// `(path, attribute, value)` for manifests that git still does not route to castsync
    /// after the lines were added (another attributes file overrides them).
    pub unrouted: Vec<(String, String, String)>,
}

/// Sets the drivers in the git config of the clone holding `root` (the secrets repository)
/// and adds the `.gitattributes` lines git lacks to route `manifests` (paths relative to
/// `root`) to them. Idempotent: a second run changes nothing.
pub fn setup(root: &Path, manifests: &[PathBuf], force: bool) -> Result<Report, GitSetupError> {
    let git = Git { root };
    match git.run(&["rev-parse", "--is-inside-work-tree"])? {
        Ok(out) if out.trim() == "true" => {}
        _ => {
            return Err(GitSetupError::NotAClone {
                root: root.to_owned(),
            });
        }
    }

    let mut settings = Vec::with_capacity(SETTINGS.len());
    for setting in SETTINGS {
        let current = git.run(&["config", "--local", "--get-all", setting.key])?;
        let change = match current {
            Ok(value) if value.strip_suffix('\n').unwrap_or(&value) == setting.value => {
                Change::Unchanged
            }
            Ok(value) if !force => Change::Kept {
                current: value.trim_end().to_owned(),
            },
            Ok(value) => Change::Replaced {
                previous: value.trim_end().to_owned(),
            },
            Err(_) => Change::Set,
        };
        if !matches!(change, Change::Unchanged | Change::Kept { .. }) {
            git.check(&[
                "config",
                "--local",
                "--replace-all",
                setting.key,
                setting.value,
            ])?;
        }
        settings.push((setting, change));
    }

    let attributes_file = root.join(".gitattributes");
    let missing = git.unrouted(manifests)?;
    let mut text = read_attributes(&attributes_file)?;
    let mut added = Vec::new();
    for (attribute, line) in [("diff", DIFF_ATTRIBUTE), ("merge", MERGE_ATTRIBUTE)] {
        // A line already there is overridden elsewhere: adding it again would not help.
        let present = String::from_utf8_lossy(&text)
            .lines()
            .any(|l| l.trim() == line);
        if !present && missing.iter().any(|(_, a, _)| a == attribute) {
            added.push(line);
        }
    }
    if !added.is_empty() {
        append_lines(&attributes_file, &mut text, &added)?;
    }
    let unrouted = if added.is_empty() {
        missing
    } else {
        git.unrouted(manifests)?
    };
    Ok(Report {
        settings,
        attributes_file,
        added,
        unrouted,
    })
}

/// The first lines of the pre-commit hook `git-setup --hooks` writes: how a later run knows
/// the hook is castsync's.
const HOOK_MARK: &str =
    "# castsync guard: stops a commit that adds a value declared in the encrypted manifests.";

/// The pre-commit hook for a secrets repository at `prefix` inside the git work tree (`""`
/// at its top, else `dir/`, as `git rev-parse --show-prefix` prints it). git runs hooks at
/// the top of the work tree.
pub fn hook_script(prefix: &str) -> String {
    let repo = prefix.trim_end_matches('/');
    let at = if repo.is_empty() {
        String::new()
    } else {
        // Single-quoted for sh: a quote inside becomes '\''.
        format!(" -C '{}'", repo.replace('\'', r"'\''"))
    };
    format!(
        "#!/bin/sh\n{HOOK_MARK}\n# Written by `castsync git-setup --hooks`; skip it once with `git commit --no-verify`.\nexec castsync{at} guard --staged\n"
    )
}

/// What happened to the pre-commit hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookChange {
    /// There was none; castsync's is written.
    Written,
    /// castsync's was already there.
    Unchanged,
    /// Another hook was there: kept, castsync's not written (no `--force`).
    Kept,
    /// Another hook was there: saved beside it (`.before-castsync`), castsync's written.
    Replaced,
}

/// Where the hook is and what was done to it.
#[derive(Debug)]
pub struct HookReport {
    pub path: PathBuf,
    pub change: HookChange,
}

/// Writes the pre-commit hook into the clone holding `root` (where git looks for hooks:
/// `core.hooksPath` is honoured). A different hook is kept unless `force`.
pub fn install_hook(root: &Path, force: bool) -> Result<HookReport, GitSetupError> {
    let git = Git { root };
    let hook = git.check(&["rev-parse", "--git-path", "hooks/pre-commit"])?;
    let path = root.join(hook.trim_end_matches('\n'));
    let prefix = git.check(&["rev-parse", "--show-prefix"])?;
    let script = hook_script(prefix.trim_end_matches('\n'));
    let io = |source| GitSetupError::Write {
        path: path.clone(),
        source,
    };
    let current = match crate::fsread::read_file(&path, MAX_ATTRIBUTES_BYTES) {
        Ok(bytes) => Some(bytes),
        Err(e) if e.is_not_found() => None,
        Err(e) => return Err(io(std::io::Error::other(e.to_string()))),
    };
    let change = match current {
        Some(bytes) if bytes == script.as_bytes() => {
            return Ok(HookReport {
                path,
                change: HookChange::Unchanged,
            });
        }
        // An older hook of ours (another prefix, older wording) is ours to replace.
        Some(bytes) if !force && !String::from_utf8_lossy(&bytes).contains(HOOK_MARK) => {
            return Ok(HookReport {
                path,
                change: HookChange::Kept,
            });
        }
        Some(bytes) => {
            let mut backup = path.clone().into_os_string();
            backup.push(".before-castsync");
            atomic_write::write(
                Path::new(&backup),
                &bytes,
                Replace::Existing,
                Mode::Executable,
            )
            .map_err(io)?;
            HookChange::Replaced
        }
        None => HookChange::Written,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    atomic_write::write(
        &path,
        script.as_bytes(),
        Replace::Existing,
        Mode::Executable,
    )
    .map_err(io)?;
    Ok(HookReport { path, change })
}

/// Whether a `castsync` program is on `PATH`, where git looks for the drivers' commands.
pub fn castsync_on_path() -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join("castsync").is_file()))
}

/// The attributes file's bytes (empty when it does not exist), bounded.
fn read_attributes(path: &Path) -> Result<Vec<u8>, GitSetupError> {
    let read_error = |source| GitSetupError::Read {
        path: path.to_owned(),
        source,
    };
    // A regular file only, size-checked before it is read (`fsread`).
    match crate::fsread::read_file(path, MAX_ATTRIBUTES_BYTES) {
        Ok(bytes) => Ok(bytes),
        Err(e) if e.is_not_found() => Ok(Vec::new()),
        Err(crate::fsread::ReadError::Io { source, .. }) => Err(read_error(source)),
        Err(refused) => Err(read_error(std::io::Error::other(refused.to_string()))),
    }
}

/// Appends `lines` to `text`, the attributes file's bytes, and writes it atomically.
fn append_lines(path: &Path, text: &mut Vec<u8>, lines: &[&str]) -> Result<(), GitSetupError> {
    if !text.is_empty() && !text.ends_with(b"\n") {
        text.push(b'\n');
    }
    text.extend_from_slice(b"# castsync: key-level diffs and key-by-key merges of manifests\n");
    for line in lines {
        text.extend_from_slice(line.as_bytes());
        text.push(b'\n');
    }
    atomic_write::write(path, text, Replace::Existing, Mode::Default).map_err(|source| {
        GitSetupError::Write {
            path: path.to_owned(),
            source,
        }
    })
}

/// git, run in the secrets repository.
struct Git<'a> {
    root: &'a Path,
}

impl Git<'_> {
    /// Runs git: `Ok(Ok(stdout))` on success, `Ok(Err(stderr))` when git exits non-zero.
    fn run(&self, args: &[&str]) -> Result<Result<String, String>, GitSetupError> {
        let out = Command::new("git")
            .arg("-C")
            .arg(self.root)
            .args(args)
            .output()
            .map_err(GitSetupError::NoGit)?;
        let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
        Ok(if out.status.success() {
            Ok(text(&out.stdout))
        } else {
            Err(text(&out.stderr))
        })
    }

    /// Runs git, which must succeed.
    fn check(&self, args: &[&str]) -> Result<String, GitSetupError> {
        self.run(args)?.map_err(|stderr| GitSetupError::Git {
            command: args.join(" "),
            // git's own message, bounded and with control characters escaped.
            stderr: stderr
                .trim()
                .chars()
                .take(500)
                .flat_map(char::escape_debug)
                .collect(),
        })
    }

    /// `(path, attribute, value)` for each of `paths` whose `diff` or `merge` attribute is
    /// not `castsync`, as `git check-attr` sees them.
    fn unrouted(&self, paths: &[PathBuf]) -> Result<Vec<(String, String, String)>, GitSetupError> {
        let mut args = vec!["check-attr", "-z", "diff", "merge", "--"];
        let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        args.extend(names.iter().map(String::as_str));
        let out = self.check(&args)?;
        // -z: path NUL attribute NUL value NUL, for each path and attribute.
        let fields: Vec<&str> = out.split('\0').collect();
        Ok(fields
            .chunks_exact(3)
            .filter(|f| f[2] != "castsync")
            .map(|f| (f[0].to_owned(), f[1].to_owned(), f[2].to_owned()))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_attributes_init_writes_route_manifests_to_both_drivers() {
        let lines: Vec<&str> = GITATTRIBUTES.lines().collect();
        assert!(lines.contains(&DIFF_ATTRIBUTE));
        assert!(lines.contains(&MERGE_ATTRIBUTE));
    }

    #[test]
    fn init_prints_the_diff_and_merge_driver_commands() {
        assert_eq!(
            config_commands(),
            [
                "git config diff.castsync.textconv \"castsync textconv\"",
                "git config merge.castsync.driver \"castsync merge-driver %O %A %B %P\"",
            ]
        );
    }
}
