//! The record of the identity search (docs/security.md, "Identities"): each place looked at, in order, and what
//! was found there. Errors list it so a person sees every location tried (as sops does);
//! `doctor` shows it. It names places and counts, never key material.

use std::fmt;
use std::path::PathBuf;

/// One place in the search chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `-i FILE`.
    Flag(PathBuf),
    /// `CASTSYNC_AGE_KEY`.
    EnvKey,
    /// `CASTSYNC_AGE_KEY_FILE` (None when the variable is unset).
    EnvKeyFile(Option<PathBuf>),
    /// `CASTSYNC_AGE_KEY_CMD`.
    EnvKeyCmd,
    /// The default file (None when no home directory is known).
    Default(Option<PathBuf>),
}

impl Source {
    pub(super) fn origin(&self) -> &'static str {
        match self {
            Source::Flag(_) => "-i",
            Source::EnvKey => "CASTSYNC_AGE_KEY",
            Source::EnvKeyFile(_) => "CASTSYNC_AGE_KEY_FILE",
            Source::EnvKeyCmd => "CASTSYNC_AGE_KEY_CMD",
            Source::Default(_) => "the default location",
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Flag(p) => write!(f, "-i {}", p.display()),
            Source::EnvKey => f.write_str("CASTSYNC_AGE_KEY"),
            Source::EnvKeyFile(Some(p)) => write!(f, "CASTSYNC_AGE_KEY_FILE={}", p.display()),
            Source::EnvKeyFile(None) => f.write_str("CASTSYNC_AGE_KEY_FILE"),
            Source::EnvKeyCmd => f.write_str("CASTSYNC_AGE_KEY_CMD"),
            Source::Default(Some(p)) => write!(f, "{}", p.display()),
            Source::Default(None) => f.write_str("~/.config/castsync/keys.txt"),
        }
    }
}

/// What happened at one place in the search chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The variable is unset (or, for the default file, no home directory is known).
    NotSet,
    /// The variable is set to an empty string, which counts as unset.
    Empty,
    /// No file there.
    NotFound,
    /// The file exists but could not be read (the reason, never the content).
    Unreadable(String),
    /// This many identities were loaded.
    Loaded(usize),
}

/// One line of the search record: a source and its outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub source: Source,
    pub outcome: Outcome,
}

impl fmt::Display for Attempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.source)?;
        match (&self.outcome, &self.source) {
            (Outcome::NotSet, Source::Default(None)) => {
                f.write_str("no home directory (HOME unset)")
            }
            (Outcome::NotSet, _) => f.write_str("not set"),
            (Outcome::Empty, _) => f.write_str("set but empty (ignored)"),
            (Outcome::NotFound, _) => f.write_str("not found"),
            (Outcome::Unreadable(why), _) => write!(f, "unreadable ({why})"),
            (Outcome::Loaded(1), _) => f.write_str("loaded 1 identity"),
            (Outcome::Loaded(n), _) => write!(f, "loaded {n} identities"),
        }
    }
}

/// The identity sources that were looked at, one per line, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tried(pub Vec<Attempt>);

impl fmt::Display for Tried {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("  identities looked for, in order:")?;
        for attempt in &self.0 {
            write!(f, "\n    - {attempt}")?;
        }
        Ok(())
    }
}
