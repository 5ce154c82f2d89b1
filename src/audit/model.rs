//! What `castsync audit` reports (`-o json` is this, serialized; schemas/audit.schema.json).
//! It names keys, commits, dates and public recipients, never a value nor a fingerprint.

use serde::Serialize;

/// The `audit -o json` format version; bump on incompatible changes.
pub const FORMAT_VERSION: u32 = 1;

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Audit {
    pub format_version: u32,
    /// The commit audited (HEAD).
    pub revision: CommitRef,
    /// When the report was made (RFC 3339, UTC): ages and due dates count from it.
    pub generated_at: String,
    pub summary: Summary,
    /// Each agent and shared group at the audited commit, sorted (agents first).
    pub sources: Vec<SourceReport>,
    /// Former readers and the values they could read that were not changed since, sorted by
    /// name.
    pub exposures: Vec<Exposure>,
    /// What the reader should know about how far the report can be trusted.
    pub notes: Vec<String>,
}

/// The counts a CI job decides on.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Summary {
    pub agents: usize,
    pub groups: usize,
    pub keys: usize,
    pub overdue: usize,
    pub due_soon: usize,
    /// Keys no rotation period applies to.
    pub without_policy: usize,
    /// Values readable by someone who no longer has access, counted once per value.
    pub exposed_values: usize,
    pub former_readers: usize,
    /// Manifests that could not be decrypted or read at the audited commit.
    pub unreadable: usize,
}

impl Summary {
    /// What `--exit-code` turns into 2.
    pub fn needs_action(&self) -> bool {
        self.overdue > 0 || self.exposed_values > 0
    }
}

/// A commit: its full id and its committer date.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CommitRef {
    pub commit: String,
    /// RFC 3339, UTC.
    pub date: String,
    #[serde(skip)]
    pub time: i64,
}

impl CommitRef {
    pub fn new(commit: impl Into<String>, time: i64) -> CommitRef {
        CommitRef {
            commit: commit.into(),
            date: rfc3339(time),
            time,
        }
    }

    /// The first 12 digits, as people quote commits.
    pub fn short(&self) -> &str {
        &self.commit[..self.commit.len().min(12)]
    }

    /// `YYYY-MM-DD`.
    pub fn day(&self) -> &str {
        &self.date[..self.date.len().min(10)]
    }
}

/// A Unix time as RFC 3339 in UTC (the epoch for a time out of range).
pub fn rfc3339(time: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(time)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Someone who can (or could) decrypt: their name from `castsync.yaml` (now or in an
/// earlier commit) when they have one, how reports show them, and their public key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Reader {
    pub label: String,
    pub name: Option<String>,
    pub key: String,
}

/// An agent's manifest or a shared group's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    Agent,
    Group,
}

impl SourceKind {
    /// The manifest kind this source is parsed as.
    pub fn manifest_kind(self) -> crate::manifest::Kind {
        match self {
            SourceKind::Agent => crate::manifest::Kind::Agent,
            SourceKind::Group => crate::manifest::Kind::Group,
        }
    }

    pub fn noun(self) -> &'static str {
        match self {
            SourceKind::Agent => "agent",
            SourceKind::Group => "shared group",
        }
    }
}

/// One manifest at the audited commit.
#[derive(Debug, Clone, Serialize)]
pub struct SourceReport {
    pub kind: SourceKind,
    pub name: String,
    /// The environment whose overlay (`secrets.ENV.yaml.age`) this is; absent for the
    /// manifest every environment shares.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    pub file: String,
    /// Who can decrypt it now: the recipients it records (`castsync:` block), else those
    /// `castsync.yaml` assigned it at that commit (`readers_recorded` false).
    pub readers: Vec<Reader>,
    pub readers_recorded: bool,
    /// Why it could not be audited (it does not decrypt, or is not a manifest).
    pub error: Option<String>,
    pub keys: Vec<KeyReport>,
}

/// Where a key stands against its rotation period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Overdue,
    DueSoon,
    Ok,
    NoPolicy,
}

/// One key of a manifest.
#[derive(Debug, Clone, Serialize)]
pub struct KeyReport {
    pub key: String,
    /// The commit where its value last changed.
    pub last_changed: CommitRef,
    /// False when an older version of the manifest could not be decrypted (or a shallow
    /// clone ends there): the value may be older still.
    pub exact: bool,
    pub age_days: i64,
    /// The rotation period that applies (`90d`), and where it was set.
    pub rotate_after: Option<String>,
    pub policy_from: Option<String>,
    pub status: Status,
    /// When the period runs out (RFC 3339), with a period.
    pub due: Option<String>,
}

/// Someone who could read values that have not changed since they lost access.
#[derive(Debug, Clone, Serialize)]
pub struct Exposure {
    pub reader: Reader,
    /// The latest commit where one of these manifests stopped being encrypted to them.
    pub lost_access: CommitRef,
    pub values: Vec<ExposedValue>,
}

/// A value a former reader could read.
#[derive(Debug, Clone, Serialize)]
pub struct ExposedValue {
    pub kind: SourceKind,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    pub key: String,
    /// The commit where the manifest stopped being encrypted to them.
    pub lost_access: CommitRef,
    /// The commit where the value last changed (before they lost access).
    pub last_changed: CommitRef,
}
