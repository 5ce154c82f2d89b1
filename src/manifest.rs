//! The decrypted manifest (docs/config.md): its model, its rules, and its YAML form.
//!
//! A manifest binds itself to its directory (`agent:` for an agent's, `group:` for a shared
//! group's), declares string values under `secrets:`, may take keys from shared groups
//! (`uses:`, agents only), and may carry a `castsync:` block recording the recipients it was
//! encrypted to.
//! Parsing refuses anything whose meaning could differ between YAML readers, and every error
//! names the file, the line, the column and the key and shows the fix — but never a secret
//! value, nor anything a value could hide in: a key name that is not a valid name (a flow
//! mapping typo such as `{K: x, TOKEN value}` makes the value part of a key) is described by
//! its position only.

mod layer;
mod reader;
mod scalar;
#[cfg(test)]
mod tests;
mod uses;
mod write;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::PathBuf;

use thiserror::Error;
use zeroize::Zeroizing;

use crate::finding::Finding;
use crate::names;
use crate::secret::SecretValue;
use reader::{Failure, RawDoc, RawScalar};

pub use scalar::ValueProblem;
pub use uses::{Kind, UsedKeys, Uses};

/// Largest value, in bytes.
pub const MAX_VALUE_BYTES: usize = 64 * 1024;
/// Largest manifest plaintext, in bytes.
pub const MAX_MANIFEST_BYTES: usize = 1024 * 1024;
/// The top-level fields a manifest may have (`agent` and `uses` in an agent's, `group` in a
/// shared group's).
pub const TOP_LEVEL_FIELDS: &[&str] = &[
    "agent",
    "group",
    "environment",
    "uses",
    "secrets",
    "castsync",
];
/// The fields of the `castsync:` metadata block.
pub const METADATA_FIELDS: &[&str] = &["recipients"];

/// An agent's (or a shared group's) secrets, decrypted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// The agent slug, or for a shared group's manifest the group name: the name of the
    /// directory the file lives in.
    pub agent: String,
    /// An agent's manifest or a shared group's.
    pub kind: Kind,
    /// For an environment's overlay (`secrets.ENV.yaml.age`), that environment: its
    /// `environment:` binds it to its file as `agent:` binds it to its folder.
    pub environment: Option<String>,
    /// The keys this agent takes from shared groups (always empty for a group).
    pub uses: Uses,
    /// Key → value; sorted, so output is deterministic.
    pub secrets: BTreeMap<String, SecretValue>,
    /// The hidden `castsync:` block (absent in a file edited by hand).
    pub meta: Option<Metadata>,
}

/// What castsync records about the file inside the plaintext: `castsync: { recipients: […] }`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metadata {
    /// The recipients the file was last encrypted to (for `rekey --check`).
    pub recipients: Vec<String>,
}

/// What `parse` needs to know besides the text.
#[derive(Debug, Clone)]
pub struct ManifestContext {
    /// The manifest's path, for messages (an `.age` path is shown as "(decrypted)").
    pub path: PathBuf,
    /// The directory name the manifest lives in: its `agent:` (or `group:`) must say the same.
    pub expected_agent: String,
    /// Whether the file is in an agent's folder or a shared group's.
    pub kind: Kind,
    /// Keys the platform injects itself (config `unmanaged_keys`), refused in manifests.
    pub unmanaged_keys: Vec<String>,
}

impl ManifestContext {
    /// The environment whose overlay the file is, read from its name (`secrets.ENV.yaml.age`:
    /// its `environment:` must say ENV), or `None` for the file every environment shares. The
    /// name is what a copy of the ciphertext cannot change, so it is what the text binds to.
    pub fn environment(&self) -> Option<String> {
        crate::environment::of_file(&self.path)
    }
}

/// A manifest that passed every rule, and the warnings it raised.
#[derive(Debug)]
pub struct Parsed {
    pub manifest: Manifest,
    pub warnings: Vec<Finding>,
}

/// Where a problem is: the manifest's path and, when known, the line and column (1-based).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct At {
    pub path: PathBuf,
    pub line: Option<usize>,
    pub column: Option<usize>,
}

impl fmt::Display for At {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if self.path.extension().is_some_and(|e| e == "age") {
            f.write_str(" (decrypted)")?;
        }
        if let Some(line) = self.line {
            write!(f, ", line {line}")?;
            if let Some(column) = self.column {
                write!(f, ", column {column}")?;
            }
        }
        Ok(())
    }
}

/// Why a manifest was refused. No variant holds a secret value.
#[derive(Debug, Error)]
pub enum ManifestError {
    /// The plaintext exceeds [`MAX_MANIFEST_BYTES`].
    #[error(
        "{at}: the manifest is {size} bytes, over the 1 MiB limit ({MAX_MANIFEST_BYTES} bytes); keep large files out of secrets"
    )]
    TooLarge { at: At, size: usize },
    /// The text is not valid YAML.
    #[error("{at}: invalid YAML: {problem}")]
    Syntax { at: At, problem: String },
    /// Nested deeper than [`crate::yaml_depth::MAX_DEPTH`] levels (refused before parsing).
    #[error(
        "{at}: the YAML is nested more than {} levels deep; a manifest needs 2 (the mapping and `secrets:`)",
        crate::yaml_depth::MAX_DEPTH
    )]
    TooDeep { at: At },
    /// The document is not a mapping.
    #[error("{at}: the manifest must be a YAML mapping with `agent:` and `secrets:` fields")]
    NotAMapping { at: At },
    /// A top-level field other than `agent`, `group`, `uses`, `secrets`, `castsync`.
    #[error(
        "{at}: unknown top-level field {}{}: an agent's manifest has only agent, uses, secrets and castsync (a shared group's: group, secrets and castsync)",
        field.as_ref().map_or_else(|| "(not shown: not a valid name)".to_owned(), |f| format!("{f:?}")),
        suggestion.map(|s| format!(" (did you mean {s:?}?)")).unwrap_or_default()
    )]
    UnknownField {
        at: At,
        /// The field's name when it is a valid key name (else it may be a value: not shown).
        field: Option<String>,
        suggestion: Option<&'static str>,
    },
    /// The same top-level field twice.
    #[error("{at}: duplicate top-level field {field}{}; keep one", first(*first_line))]
    DuplicateField {
        at: At,
        field: String,
        first_line: Option<usize>,
    },
    /// The same key twice under `secrets:`.
    #[error("{at}: duplicate key {key} under secrets{}; keep one of them", first(*first_line))]
    DuplicateKey {
        at: At,
        key: String,
        first_line: Option<usize>,
    },
    /// No `agent:` field.
    #[error("{at}: the manifest has no `agent:` field; add `agent: {expected}` as its first line")]
    MissingAgent { at: At, expected: String },
    /// `agent:` is empty or not a plain string.
    #[error("{at}: `agent:` must be the agent's slug as a string; write `agent: {expected}`")]
    InvalidAgent { at: At, expected: String },
    /// `agent:` names another agent than the directory the file is in.
    #[error(
        "{at}: the manifest says agent {} but it is in the folder of agent {expected:?}: the file may have been copied or moved from another agent's folder. Move it back to that agent's folder, or, if it really belongs here, run `castsync edit {expected}` and set `agent: {expected}`",
        found.as_ref().map_or_else(|| "(not a valid slug)".to_owned(), |f| format!("{f:?}"))
    )]
    AgentMismatch {
        at: At,
        /// The `agent:` text when it is a valid slug (else not shown).
        found: Option<String>,
        expected: String,
    },
    /// An agent's manifest in a shared group's folder, or the other way round.
    #[error(
        "{at}: this is {} manifest ({}) but it is in the folder of {} {expected:?}: move it to the right folder, or rewrite its binding with `castsync edit {}{expected}`",
        match found { Kind::Agent => "an agent's", Kind::Group => "a shared group's" },
        match found { Kind::Agent => "`agent:`", Kind::Group => "`group:`" },
        expected_kind.noun(),
        if *expected_kind == Kind::Group { "--shared " } else { "" },
    )]
    KindMismatch {
        at: At,
        found: Kind,
        expected_kind: Kind,
        expected: String,
    },
    /// A shared group's manifest without `group:`.
    #[error(
        "{at}: the shared group's manifest has no `group:` field; add `group: {expected}` as its first line"
    )]
    MissingGroup { at: At, expected: String },
    /// `group:` names another group than the directory the file is in, or is not a name.
    #[error(
        "{at}: the manifest says group {} but it is in the folder of shared group {expected:?}: the file may have been copied or moved from another group's folder. Move it back, or, if it really belongs here, run `castsync edit --shared {expected}` and set `group: {expected}`",
        found.as_ref().map_or_else(|| "(not a valid name)".to_owned(), |f| format!("{f:?}"))
    )]
    GroupMismatch {
        at: At,
        /// The `group:` text when it is a valid name (else not shown).
        found: Option<String>,
        expected: String,
    },
    /// A shared group's manifest with a `uses:` block.
    #[error(
        "{at}: a shared group cannot take keys from other groups: remove `uses:` (an agent lists every group it uses itself)"
    )]
    UsesInGroup { at: At },
    /// The `uses:` block breaks its rules.
    #[error("{at}: {problem}")]
    Uses { at: At, problem: String },
    /// `secrets:` is neither a mapping nor empty.
    #[error("{at}: `secrets:` must be a mapping of KEY: value lines")]
    SecretsNotMapping { at: At },
    /// A mapping key that is a list or a mapping.
    #[error("{at}: a key must be a plain name, not a list or a mapping")]
    ComplexKey { at: At },
    /// A key that is not an environment variable name. Its text is not kept: a key such as
    /// `TOKEN sk-…` (a missing colon) holds a value.
    #[error(
        "{at}: the key there is not a valid environment variable name ({why}), so it is not shown: use letters, digits and _, not starting with a digit, at most {} bytes",
        names::MAX_KEY_LEN
    )]
    InvalidKey { at: At, why: KeyFault },
    /// A value whose type or form is not a plain string.
    #[error("{at}: key {key}: {}", problem.describe(key))]
    Value {
        at: At,
        key: String,
        problem: ValueProblem,
    },
    /// A value over [`MAX_VALUE_BYTES`].
    #[error(
        "{at}: key {key}: the value is {size} bytes, over the 64 KiB limit ({MAX_VALUE_BYTES} bytes)"
    )]
    ValueTooLarge { at: At, key: String, size: usize },
    /// A key the platform manages itself (config `unmanaged_keys`).
    #[error(
        "{at}: key {key}: Castari injects this key itself and castsync never manages it; remove it from the manifest"
    )]
    UnmanagedKey { at: At, key: String },
    /// The `castsync:` metadata block is malformed.
    #[error("{at}: {problem}")]
    Metadata { at: At, problem: String },
    /// An overlay without `environment:`.
    #[error(
        "{at}: an environment's overlay must name its environment; add `environment: {expected}` under `{}:`",
        kind.field()
    )]
    MissingEnvironment {
        at: At,
        kind: Kind,
        expected: String,
    },
    /// `environment:` names another environment than the file's, or the file every
    /// environment shares has one.
    #[error("{at}: {}", layer::mismatch(mismatch))]
    EnvironmentMismatch {
        at: At,
        mismatch: Box<layer::Mismatch>,
    },
    /// An overlay with a `uses:` block.
    #[error(
        "{at}: an environment's overlay cannot take keys from shared groups: `uses:` belongs in secrets.yaml.age (a shared group's own overlays hold its per-environment values)"
    )]
    UsesInOverlay { at: At },
}

/// No fix beyond what the message says (it names the file, line and key); implemented so
/// findings and reports can be built from it like from any error that has one.
impl crate::hint::Hinted for ManifestError {
    fn hint(&self) -> Option<std::borrow::Cow<'_, str>> {
        None
    }
}

/// What is wrong with a key name, in words that cannot leak its text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyFault {
    Empty,
    TooLong,
    StartsWithDigit,
    /// A space or tab: usually a missing `: ` between a key and its value.
    Whitespace,
    OtherCharacters,
}

impl KeyFault {
    fn of(key: &str) -> KeyFault {
        if key.is_empty() {
            KeyFault::Empty
        } else if key.len() > names::MAX_KEY_LEN {
            KeyFault::TooLong
        } else if key.contains([' ', '\t']) {
            KeyFault::Whitespace
        } else if key.starts_with(|c: char| c.is_ascii_digit()) {
            KeyFault::StartsWithDigit
        } else {
            KeyFault::OtherCharacters
        }
    }
}

impl fmt::Display for KeyFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyFault::Empty => "it is empty",
            KeyFault::TooLong => "it is too long",
            KeyFault::StartsWithDigit => "it starts with a digit",
            KeyFault::Whitespace => {
                "it contains a space: is a `:` missing between the key and its value?"
            }
            KeyFault::OtherCharacters => "it contains characters other than letters, digits and _",
        })
    }
}

/// A name shown in a message only when it is a valid key name (anything else may be a value).
fn shown_name(name: &str) -> Option<String> {
    names::validate_key(name).is_ok().then(|| name.to_owned())
}

fn first(line: Option<usize>) -> String {
    line.map(|l| format!(" (first at line {l})"))
        .unwrap_or_default()
}

impl Manifest {
    /// An empty manifest for `agent`.
    pub fn new(agent: impl Into<String>) -> Self {
        Self {
            agent: agent.into(),
            kind: Kind::Agent,
            environment: None,
            uses: Uses::new(),
            secrets: BTreeMap::new(),
            meta: None,
        }
    }

    /// An empty manifest for shared group `group`.
    pub fn new_group(group: impl Into<String>) -> Self {
        Self {
            kind: Kind::Group,
            ..Self::new(group)
        }
    }

    /// The full plaintext to encrypt: `agent`, sorted `secrets`, then the `castsync:` block.
    /// Every value is double-quoted, so it reads back as exactly the same string.
    pub fn to_yaml(&self) -> Zeroizing<String> {
        write::render(self, true)
    }

    /// The text for `edit` and `show`: like [`Manifest::to_yaml`] without the metadata block
    /// (the caller restores it after the edit).
    pub fn to_editable_yaml(&self) -> Zeroizing<String> {
        write::render(self, false)
    }
}

/// Parses and checks a decrypted manifest (or an edited text without the `castsync:` block).
/// A UTF-8 byte order mark at the start (some Windows editors write one) is ignored.
///
/// The phases run in the order their errors matter to a person: the guards (size, depth),
/// the YAML syntax, the top-level fields, the binding to the directory (kind, then name),
/// what the reader could not take, then the `uses:`, `secrets:` and `castsync:` blocks.
pub fn parse(text: &str, ctx: &ManifestContext) -> Result<Parsed, ManifestError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    guard(text, ctx)?;
    let (mut doc, failure) = reader::read(text);
    let site = Site {
        text,
        lines: LineIndex::new(text),
        ctx,
    };
    // A syntax error first: what was read before it cannot be trusted to be complete.
    if let Some((Failure::Yaml(err), pos)) = &failure {
        return Err(syntax_error(site.at(*pos), err));
    }
    check_top_fields(&site, &doc)?;
    check_binding(&site, &doc)?;
    let (env_at, uses_at) = (
        site.top_pos(&doc, "environment"),
        site.top_pos(&doc, "uses"),
    );
    let environment = layer::check(&doc, ctx, site.at(env_at), site.at(uses_at))?;
    if let Some((failure, pos)) = failure {
        return Err(site.failure(&doc, failure, pos));
    }
    let mut agent = take_binding(&site, &mut doc)?;
    let uses = take_uses(&site, &mut doc)?;
    let (secrets, warnings) = take_secrets(&site, &mut doc)?;
    let meta = take_meta(&site, &mut doc)?;
    Ok(Parsed {
        manifest: Manifest {
            agent: std::mem::take(&mut *agent.text),
            kind: ctx.kind,
            environment,
            uses,
            secrets,
            meta,
        },
        warnings,
    })
}

/// The text being parsed, for placing errors in it.
struct Site<'a> {
    text: &'a str,
    lines: LineIndex,
    ctx: &'a ManifestContext,
}

impl Site<'_> {
    fn at(&self, pos: Pos) -> At {
        At {
            path: self.ctx.path.clone(),
            line: pos.line,
            column: pos.column,
        }
    }

    fn pos_of(&self, s: &RawScalar) -> Pos {
        s.offset
            .map_or(Pos::default(), |o| self.lines.pos(self.text, o))
    }

    /// Where a top-level field's key is (nowhere when it is absent).
    fn top_pos(&self, doc: &RawDoc, field: &str) -> Pos {
        doc.top
            .iter()
            .find(|k| k.text.as_str() == field)
            .map_or(Pos::default(), |k| self.pos_of(k))
    }

    /// The error for what the reader could not take, placed at `pos` or at its field.
    fn failure(&self, doc: &RawDoc, failure: Failure, pos: Pos) -> ManifestError {
        let ctx = self.ctx;
        let or = |p: Pos| if p.line.is_some() { p } else { pos };
        match failure {
            Failure::Yaml(err) => syntax_error(self.at(pos), &err),
            Failure::NotAMapping => ManifestError::NotAMapping { at: self.at(pos) },
            Failure::ComplexKey => ManifestError::ComplexKey { at: self.at(pos) },
            Failure::AgentNotScalar => ManifestError::InvalidAgent {
                at: self.at(or(self.top_pos(doc, "agent"))),
                expected: ctx.expected_agent.clone(),
            },
            Failure::SecretsNotMapping => ManifestError::SecretsNotMapping {
                at: self.at(or(self.top_pos(doc, "secrets"))),
            },
            Failure::NotScalar { key, problem } => {
                let key_pos = key.as_ref().map_or(Pos::default(), |k| self.pos_of(k));
                match key.as_ref().map(|k| k.text.as_str()) {
                    Some(name) if names::validate_key(name).is_err() => ManifestError::InvalidKey {
                        at: self.at(or(key_pos)),
                        why: KeyFault::of(name),
                    },
                    name => ManifestError::Value {
                        at: self.at(or(key_pos)),
                        key: name.unwrap_or_default().to_owned(),
                        problem,
                    },
                }
            }
            Failure::Meta(problem) => ManifestError::Metadata {
                at: self.at(or(self.top_pos(doc, "castsync"))),
                problem: problem.to_owned(),
            },
            Failure::EnvironmentNotScalar => {
                layer::not_a_name(ctx, self.at(or(self.top_pos(doc, "environment"))))
            }
            Failure::GroupNotScalar => ManifestError::GroupMismatch {
                at: self.at(or(self.top_pos(doc, "group"))),
                found: None,
                expected: ctx.expected_agent.clone(),
            },
            Failure::Uses(problem) => ManifestError::Uses {
                at: self.at(if pos.line.is_some() {
                    pos
                } else {
                    self.top_pos(doc, "uses")
                }),
                problem: problem.to_owned(),
            },
        }
    }
}

/// Refuses a text before any parser sees it: too large, or nested too deep (libyaml's time
/// grows faster than linearly with depth).
fn guard(text: &str, ctx: &ManifestContext) -> Result<(), ManifestError> {
    let at = |line, column| At {
        path: ctx.path.clone(),
        line,
        column,
    };
    if text.len() > MAX_MANIFEST_BYTES {
        return Err(ManifestError::TooLarge {
            at: at(None, None),
            size: text.len(),
        });
    }
    crate::yaml_depth::check(text).map_err(|e| match e {
        crate::yaml_depth::DepthError::TooDeep { line, column } => ManifestError::TooDeep {
            at: at(Some(line), Some(column)),
        },
        crate::yaml_depth::DepthError::Syntax {
            line,
            column,
            problem,
        } => ManifestError::Syntax {
            at: at(Some(line), Some(column)),
            problem: redact_quoted(&problem),
        },
    })
}

/// Every top-level field once, and each one known.
fn check_top_fields(site: &Site<'_>, doc: &RawDoc) -> Result<(), ManifestError> {
    let mut seen: HashMap<&str, Pos> = HashMap::new();
    for key in &doc.top {
        let name = key.text.as_str();
        if let Some(first) = seen.insert(name, site.pos_of(key)) {
            return Err(ManifestError::DuplicateField {
                at: site.at(site.pos_of(key)),
                field: name.to_owned(),
                first_line: first.line,
            });
        }
        if !TOP_LEVEL_FIELDS.contains(&name) {
            return Err(ManifestError::UnknownField {
                at: site.at(site.pos_of(key)),
                field: shown_name(name),
                suggestion: crate::suggest::nearest(name, TOP_LEVEL_FIELDS),
            });
        }
    }
    Ok(())
}

/// The binding to the directory comes before anything about the values: first the kind of
/// manifest (an agent's in a group's folder, or the other way round), then the name.
fn check_binding(site: &Site<'_>, doc: &RawDoc) -> Result<(), ManifestError> {
    let ctx = site.ctx;
    let (binding, other) = match ctx.kind {
        Kind::Agent => (&doc.agent, &doc.group),
        Kind::Group => (&doc.group, &doc.agent),
    };
    let other_kind = match ctx.kind {
        Kind::Agent => Kind::Group,
        Kind::Group => Kind::Agent,
    };
    if other.is_some() && binding.is_none() {
        return Err(ManifestError::KindMismatch {
            at: site.at(site.top_pos(doc, other_kind.field())),
            found: other_kind,
            expected_kind: ctx.kind,
            expected: ctx.expected_agent.clone(),
        });
    }
    if other.is_some() {
        return Err(ManifestError::UnknownField {
            at: site.at(site.top_pos(doc, other_kind.field())),
            field: Some(other_kind.field().to_owned()),
            suggestion: None,
        });
    }
    if let Some(name) = binding {
        let shown = site.at(site.top_pos(doc, ctx.kind.field()));
        match ctx.kind {
            Kind::Agent => check_agent(name.text.as_str(), ctx, shown)?,
            Kind::Group => check_group(name.text.as_str(), ctx, shown)?,
        }
    }
    if ctx.kind == Kind::Group && doc.uses.is_some() {
        return Err(ManifestError::UsesInGroup {
            at: site.at(site.top_pos(doc, "uses")),
        });
    }
    Ok(())
}

/// The `agent:` (or `group:`) name, which must be there.
fn take_binding(site: &Site<'_>, doc: &mut RawDoc) -> Result<RawScalar, ManifestError> {
    let ctx = site.ctx;
    let binding = match ctx.kind {
        Kind::Agent => doc.agent.take(),
        Kind::Group => doc.group.take(),
    };
    binding.ok_or_else(|| {
        let at = site.at(Pos::default());
        let expected = ctx.expected_agent.clone();
        match ctx.kind {
            Kind::Agent => ManifestError::MissingAgent { at, expected },
            Kind::Group => ManifestError::MissingGroup { at, expected },
        }
    })
}

/// The `uses:` block, checked.
fn take_uses(site: &Site<'_>, doc: &mut RawDoc) -> Result<Uses, ManifestError> {
    let Some(raw) = doc.uses.take() else {
        return Ok(Uses::new());
    };
    uses::check(raw, |s| site.pos_of(s)).map_err(|p| ManifestError::Uses {
        at: site.at(if p.pos.line.is_some() {
            p.pos
        } else {
            site.top_pos(doc, "uses")
        }),
        problem: p.problem,
    })
}

/// The `secrets:` block: every key valid, once, managed, with a usable value; a lowercase
/// name is a warning.
fn take_secrets(
    site: &Site<'_>,
    doc: &mut RawDoc,
) -> Result<(BTreeMap<String, SecretValue>, Vec<Finding>), ManifestError> {
    let ctx = site.ctx;
    let mut secrets = BTreeMap::new();
    let mut warnings = Vec::new();
    let mut key_lines: HashMap<String, Option<usize>> = HashMap::new();
    for (key, mut value) in std::mem::take(&mut doc.secrets) {
        let pos = site.pos_of(&key);
        let name = key.text.as_str();
        if names::validate_key(name).is_err() {
            return Err(ManifestError::InvalidKey {
                at: site.at(pos),
                why: KeyFault::of(name),
            });
        }
        if let Some(first_line) = key_lines.insert(name.to_owned(), pos.line) {
            return Err(ManifestError::DuplicateKey {
                at: site.at(pos),
                key: name.to_owned(),
                first_line,
            });
        }
        check_secret(site, name, pos, &value)?;
        if names::key_is_lowercase(name) {
            warnings.push(
                Finding::warning(
                    ctx.path.clone(),
                    format!(
                        "key name has lowercase letters; Castari's convention is UPPERCASE_WITH_UNDERSCORES ({})",
                        name.to_ascii_uppercase()
                    ),
                )
                .at_line(pos.line)
                .for_agent(ctx.expected_agent.clone())
                .for_key(name),
            );
        }
        secrets.insert(
            name.to_owned(),
            SecretValue::new(std::mem::take(&mut *value.text)),
        );
    }
    Ok((secrets, warnings))
}

/// One secret under a valid, new key name: not an unmanaged key, a value within the rules.
fn check_secret(
    site: &Site<'_>,
    name: &str,
    pos: Pos,
    value: &RawScalar,
) -> Result<(), ManifestError> {
    let at = || site.at(pos);
    if site.ctx.unmanaged_keys.iter().any(|k| k == name) {
        return Err(ManifestError::UnmanagedKey {
            at: at(),
            key: name.to_owned(),
        });
    }
    if let Err(problem) = check_value(site.text, value) {
        return Err(ManifestError::Value {
            at: at(),
            key: name.to_owned(),
            problem,
        });
    }
    if value.text.len() > MAX_VALUE_BYTES {
        return Err(ManifestError::ValueTooLarge {
            at: at(),
            key: name.to_owned(),
            size: value.text.len(),
        });
    }
    Ok(())
}

/// The `castsync:` metadata block: known fields, each once.
fn take_meta(site: &Site<'_>, doc: &mut RawDoc) -> Result<Option<Metadata>, ManifestError> {
    let Some(raw) = doc.meta.take() else {
        return Ok(None);
    };
    let mut fields = HashMap::new();
    for key in &raw.keys {
        let name = key.text.as_str();
        if !METADATA_FIELDS.contains(&name) {
            let hint = crate::suggest::nearest(name, METADATA_FIELDS)
                .map(|s| format!(" (did you mean {s:?}?)"))
                .unwrap_or_default();
            let shown =
                shown_name(name).map_or_else(|| "(not shown)".to_owned(), |n| format!("{n:?}"));
            return Err(ManifestError::Metadata {
                at: site.at(site.pos_of(key)),
                problem: format!("unknown field {shown} in the castsync: block{hint}"),
            });
        }
        if fields.insert(name, ()).is_some() {
            return Err(ManifestError::Metadata {
                at: site.at(site.top_pos(doc, "castsync")),
                problem: format!("duplicate field {name} in the castsync: block"),
            });
        }
    }
    Ok(Some(Metadata {
        recipients: raw.recipients,
    }))
}

/// A name found where another was expected, when it is a valid slug; anything else may be a
/// value pasted in the wrong place, and is not repeated.
fn shown_slug(found: &str) -> Option<String> {
    names::validate_slug(found)
        .is_ok()
        .then(|| found.to_owned())
}

fn check_group(found: &str, ctx: &ManifestContext, at: At) -> Result<(), ManifestError> {
    if found != ctx.expected_agent {
        return Err(ManifestError::GroupMismatch {
            at,
            found: shown_slug(found),
            expected: ctx.expected_agent.clone(),
        });
    }
    Ok(())
}

fn check_agent(found: &str, ctx: &ManifestContext, at: At) -> Result<(), ManifestError> {
    if found.trim().is_empty() {
        return Err(ManifestError::InvalidAgent {
            at,
            expected: ctx.expected_agent.clone(),
        });
    }
    if found != ctx.expected_agent {
        return Err(ManifestError::AgentMismatch {
            at,
            found: shown_slug(found),
            expected: ctx.expected_agent.clone(),
        });
    }
    Ok(())
}

/// The typing rules for one value, by how it was written.
fn check_value(text: &str, value: &RawScalar) -> Result<(), ValueProblem> {
    // Not borrowed from the input: a block scalar (| or >), a quoted scalar with escapes or
    // line folding, or a plain scalar over several lines. All are strings to every reader.
    let Some(offset) = value.offset else {
        return Ok(());
    };
    let bytes = text.as_bytes();
    let quote = offset.checked_sub(1).and_then(|i| bytes.get(i)).copied();
    let quoted = matches!(quote, Some(b'"' | b'\''))
        && bytes.get(offset + value.text.len()).copied() == quote;
    let start = if quoted { offset - 1 } else { offset };
    if has_tag(&text[..start]) {
        return Err(ValueProblem::Tagged);
    }
    if quoted {
        Ok(())
    } else {
        scalar::check_plain(&value.text)
    }
}

/// Whether the node properties just before a scalar (`!tag`, `&anchor`, in either order)
/// include a tag.
fn has_tag(before: &str) -> bool {
    let mut rest = before.trim_end();
    for _ in 0..2 {
        let token = rest.rsplit(char::is_whitespace).next().unwrap_or_default();
        if token.starts_with('!') {
            return true;
        }
        if !token.starts_with('&') {
            return false;
        }
        rest = rest[..rest.len() - token.len()].trim_end();
    }
    false
}

fn syntax_error(at: At, err: &serde_yaml::Error) -> ManifestError {
    ManifestError::Syntax {
        at,
        problem: redact_quoted(&err.to_string()),
    }
}

/// serde_norway's messages for broken YAML come from libyaml and hold no input text; this is
/// a second guard in case a message ever quotes input.
fn redact_quoted(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut open: Option<char> = None;
    for c in message.chars() {
        match (open, c) {
            (None, '"' | '`') => {
                open = Some(c);
                out.push_str("<redacted>");
            }
            (Some(q), c) if c == q => open = None,
            (Some(_), _) => {}
            (None, c) => out.push(c),
        }
    }
    out
}

/// A 1-based line and column (in characters), when known.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Pos {
    line: Option<usize>,
    column: Option<usize>,
}

impl Pos {
    fn at(line: usize, column: usize) -> Pos {
        Pos {
            line: Some(line),
            column: Some(column),
        }
    }
}

/// Byte offset → 1-based line and column.
struct LineIndex(Vec<usize>);

impl LineIndex {
    fn new(text: &str) -> Self {
        let starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Self(starts)
    }

    fn pos(&self, text: &str, offset: usize) -> Pos {
        let line = self.0.partition_point(|&start| start <= offset);
        let start = self.0[line - 1];
        let column = text
            .get(start..offset)
            .map_or(1, |before| before.chars().count() + 1);
        Pos::at(line, column)
    }
}
