//! Environments: one repository, several platforms (staging and production, say), each with
//! its own values layered over what they share (docs/environments.md).
//!
//! A repository without `environments:` in `castsync.yaml` has one *implicit* environment,
//! which has no name: its files, state, history and output are exactly those of a castsync
//! without environments. Everything here is written so that the implicit environment's name
//! can never appear in a path or in output — it has none.
//!
//! This module only names things (files, state paths, labels); what an environment's
//! settings are is `config::environments`, and what its values are is `load`.

use std::fmt;
use std::path::{Path, PathBuf};

/// The manifest file's name without its extension (`secrets.yaml.age`, the file every
/// environment shares; `source` owns that name, and this module, which `source` uses, cannot
/// ask it).
const STEM: &str = "secrets";
/// The manifest files' extension.
const EXTENSION: &str = ".yaml.age";

/// Longest environment name, in bytes.
pub const MAX_NAME_LEN: usize = 32;

/// Which environment something belongs to: a declared one, or the implicit one of a
/// repository without `environments:`.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Environment(Option<String>);

impl Environment {
    /// The one environment of a repository without `environments:`.
    pub const IMPLICIT: Environment = Environment(None);

    /// A declared environment (its name follows [`name_problem`]'s rules).
    pub fn named(name: impl Into<String>) -> Environment {
        Environment(Some(name.into()))
    }

    /// The name, `None` for the implicit environment.
    pub fn name(&self) -> Option<&str> {
        self.0.as_deref()
    }

    pub fn is_implicit(&self) -> bool {
        self.0.is_none()
    }

    /// The overlay file's name inside an agent's (or a shared group's) folder:
    /// `secrets.NAME.yaml.age`; the implicit environment has none.
    pub fn overlay_file(&self) -> Option<String> {
        self.name().map(overlay_file_name)
    }

    /// The state file of this environment, given the state file a run would use without
    /// environments: the same path for the implicit environment, else with `.NAME` before
    /// the extension (`.castsync/state.json` → `.castsync/state.staging.json`). The history
    /// file follows the state (`history::path_for_state`), so it is per environment too.
    pub fn state_path(&self, state: &Path) -> PathBuf {
        let Some(name) = self.name() else {
            return state.to_path_buf();
        };
        let file = state
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        let named = match file.rsplit_once('.') {
            Some((stem, ext)) if !stem.is_empty() => format!("{stem}.{name}.{ext}"),
            _ => format!("{file}.{name}"),
        };
        state.with_file_name(named)
    }

    /// " in environment NAME", or nothing for the implicit environment: for messages that
    /// must read exactly as before when a repository has no environments.
    pub fn suffix(&self) -> String {
        self.name()
            .map(|n| format!(" in environment {n}"))
            .unwrap_or_default()
    }
}

impl fmt::Display for Environment {
    /// The name; the implicit environment shows as nothing.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name().unwrap_or(""))
    }
}

/// `secrets.NAME.yaml.age`.
pub fn overlay_file_name(name: &str) -> String {
    format!("{STEM}.{name}{EXTENSION}")
}

/// The environment whose overlay `path` is, from its file name: `secrets.ENV.yaml.age` →
/// ENV; `None` for any other name (the file every environment shares among them).
pub fn of_file(path: &Path) -> Option<String> {
    let file = path.file_name()?.to_str()?;
    let env = file
        .strip_prefix(STEM)?
        .strip_prefix('.')?
        .strip_suffix(EXTENSION)?;
    name_problem(env).is_none().then(|| env.to_owned())
}

/// Why `name` cannot name an environment: it becomes part of file names
/// (`secrets.NAME.yaml.age`, `state.NAME.json`), so it is lowercase letters, digits, `-` and
/// `_`, starting with a letter, at most [`MAX_NAME_LEN`] bytes.
pub fn name_problem(name: &str) -> Option<String> {
    let bytes = name.as_bytes();
    let ok = !bytes.is_empty()
        && bytes.len() <= MAX_NAME_LEN
        && bytes[0].is_ascii_lowercase()
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_'));
    (!ok).then(|| {
        format!(
            "{:?} is not a valid environment name: use 1-{MAX_NAME_LEN} characters from a-z, 0-9, '-' and '_', starting with a letter (it becomes part of file names such as {})",
            crate::escape::terminal(name),
            overlay_file_name("staging")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_implicit_environment_leaves_every_path_as_it_was() {
        let env = Environment::IMPLICIT;
        let state = Path::new(".castsync/state.json");
        assert_eq!(env.state_path(state), state);
        assert_eq!(env.overlay_file(), None);
        assert_eq!(env.suffix(), "");
        assert_eq!(env.to_string(), "");
    }

    #[test]
    fn a_named_environment_has_its_own_state_file_and_overlay() {
        let env = Environment::named("staging");
        assert_eq!(
            env.state_path(Path::new(".castsync/state.json")),
            Path::new(".castsync/state.staging.json")
        );
        assert_eq!(
            env.state_path(Path::new("/data/castsync")),
            Path::new("/data/castsync.staging")
        );
        assert_eq!(
            env.overlay_file().as_deref(),
            Some("secrets.staging.yaml.age")
        );
        assert_eq!(env.suffix(), " in environment staging");
    }

    #[test]
    fn overlays_are_named_after_the_shared_manifest() {
        assert_eq!(format!("{STEM}{EXTENSION}"), crate::source::MANIFEST_FILE);
        let overlay = overlay_file_name("staging");
        assert_eq!(of_file(Path::new(&overlay)).as_deref(), Some("staging"));
        assert_eq!(of_file(Path::new(crate::source::MANIFEST_FILE)), None);
    }

    #[test]
    fn environment_names_are_file_name_safe() {
        for ok in ["staging", "production", "eu-west_1", "a"] {
            assert_eq!(name_problem(ok), None, "{ok}");
        }
        for bad in [
            "",
            "Staging",
            "1st",
            "a.b",
            "a/b",
            "a b",
            &"a".repeat(33),
            "-x",
        ] {
            assert!(name_problem(bad).is_some(), "{bad}");
        }
    }
}
