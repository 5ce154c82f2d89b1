//! What `castsync guard` reports (`-o json` is this, serialized; schemas/guard.schema.json).
//! It names files, lines, commits, manifests and keys, never a value, a part of a line, nor
//! a hash of either.

use serde::Serialize;

use crate::audit::SourceKind;
use crate::audit::model::CommitRef;

/// The `guard -o json` format version; bump on incompatible changes.
pub const FORMAT_VERSION: u32 = 1;

/// What was searched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// The working tree: tracked files and untracked ones git does not ignore.
    Worktree,
    /// The index: the files a commit would add or change.
    Staged,
    /// Every commit reachable from a ref or HEAD.
    History,
}

impl Mode {
    pub fn describe(self) -> &'static str {
        match self {
            Mode::Worktree => {
                "the working tree (tracked files and untracked ones git does not ignore)"
            }
            Mode::Staged => "the staged changes",
            Mode::History => "every commit reachable from a branch, a tag or HEAD",
        }
    }
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub format_version: u32,
    pub mode: Mode,
    pub summary: Summary,
    /// In the order of the files (history: of the commits, oldest first).
    pub findings: Vec<Finding>,
    /// What the reader should know about how far the search went.
    pub notes: Vec<String>,
}

/// The counts.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Summary {
    /// Files (history: distinct file versions) read.
    pub files: usize,
    /// Commits read (history only; 0 otherwise).
    pub commits: usize,
    /// Distinct values searched for.
    pub values: usize,
    /// Keys whose value was searched for.
    pub keys_searched: usize,
    /// Keys whose value is shorter than 8 bytes: not searched.
    pub keys_too_short: usize,
    /// Keys whose value equals their `.env.example` placeholder: not searched.
    pub keys_placeholder: usize,
    /// Manifests that could not be decrypted or read: their values were not searched.
    pub manifests_unreadable: usize,
    pub findings: usize,
}

/// What a finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// A declared value, written in the file.
    Value,
    /// A dotenv file with values, tracked by git.
    Dotenv,
    /// A manifest in plaintext.
    PlaintextManifest,
}

/// One problem, located.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub kind: Kind,
    /// Relative to the top of the git repository, with `/`.
    pub path: String,
    /// 1-based, for values.
    pub line: Option<usize>,
    /// History only: the commit that added it (the oldest one, for a file that kept it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit: Option<CommitRef>,
    /// For values: the manifests and keys that declare it.
    pub declared_by: Vec<Owner>,
    pub message: String,
    /// What to do about it.
    pub hint: String,
}

/// A manifest's key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Owner {
    pub kind: SourceKind,
    pub name: String,
    pub key: String,
    /// The manifest, relative to the secrets repository.
    pub file: String,
}

impl Owner {
    /// `agent alpha's API_KEY`.
    pub fn describe(&self) -> String {
        format!("{} {}'s {}", self.kind.noun(), self.name, self.key)
    }
}
