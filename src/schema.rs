//! An agent's `.env.example` (docs/config.md): the keys it needs, and the checks of a manifest
//! against them.
//!
//! The example's values are placeholders; they are compared with the manifest's values (to
//! catch a copied example) but never sent anywhere, and no finding repeats a value or a
//! placeholder. The same line parser reads real `.env` files for `import --from-dotenv`,
//! where every value is a secret.

mod dotenv;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::finding::Finding;
use crate::manifest::Manifest;
use crate::secret::SecretValue;

/// The file name of an agent's schema, next to its manifest.
pub const FILE_NAME: &str = ".env.example";

/// The keys an agent's `.env.example` declares, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvSchema {
    pub entries: Vec<SchemaEntry>,
    /// Keys assigned more than once (the last value counts): a warning each.
    pub repeated: Vec<Repeated>,
}

/// A key assigned again in a `.env.example`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repeated {
    pub key: String,
    /// The line that counts (the last).
    pub line: usize,
    pub first_line: usize,
}

impl Repeated {
    /// The warning, for `validate` and the plan.
    pub fn message(&self) -> String {
        format!(
            "key {} is set again here (first at line {}): the last value counts, as in other dotenv readers; keep one",
            self.key, self.first_line
        )
    }
}

/// One declared key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaEntry {
    pub key: String,
    /// The example value (a placeholder, not a secret; may be empty).
    pub placeholder: String,
    /// `# optional` on the line or on the comment line directly above it.
    pub optional: bool,
    /// `# rotate: 30d` on the line or in the comment lines right above it: how long the
    /// value may stay unchanged (`audit`).
    pub rotate: Option<crate::config::Period>,
    /// 1-based line of the key.
    pub line: usize,
}

/// A line that is not valid dotenv syntax. No variant holds the line's text or a value.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum SchemaError {
    /// A line that is neither blank, a comment, nor `KEY=value`.
    #[error("{}:{line}: expected KEY=value, a # comment or a blank line (there is no `=`)", path.display())]
    MissingEquals { path: PathBuf, line: usize },
    /// The part before `=` is not an environment variable name.
    #[error(
        "{}:{line}: invalid key name{}: keys are letters, digits and _, not starting with a digit",
        path.display(),
        key.as_ref().map(|k| format!(" {k:?}")).unwrap_or_else(|| " (not shown)".to_owned())
    )]
    InvalidKey {
        path: PathBuf,
        line: usize,
        /// The key text, only where it cannot be a secret (`.env.example`).
        key: Option<String>,
    },
    /// A quoted value whose closing quote never comes.
    #[error("{}:{line}: the value's opening {quote} quote is never closed", path.display())]
    UnterminatedQuote {
        path: PathBuf,
        line: usize,
        quote: char,
    },
    /// Something other than a comment after a closing quote.
    #[error("{}:{line}: unexpected text after the closing quote (a comment needs a #)", path.display())]
    TrailingText { path: PathBuf, line: usize },
    /// A `# rotate:` comment whose period does not read.
    #[error("{}:{line}: `# rotate:` {problem}", path.display())]
    InvalidRotation {
        path: PathBuf,
        line: usize,
        problem: String,
    },
    /// The same key twice in a real `.env` (in a `.env.example` it is a warning).
    #[error("{}:{line}: duplicate key {key} (first at line {first_line}); keep one", path.display())]
    DuplicateKey {
        path: PathBuf,
        line: usize,
        key: String,
        first_line: usize,
    },
    /// A backtick-quoted value that does not close on its line: node's dotenv would read
    /// the following lines into it, python-dotenv would read them as keys.
    #[error(
        "{}:{line}: the value opens a ` (backtick) quote that this line does not close; for a value that spans lines use double quotes",
        path.display()
    )]
    OpenBacktick { path: PathBuf, line: usize },
}

impl SchemaError {
    /// The 1-based line the error is about.
    pub fn line(&self) -> usize {
        match self {
            SchemaError::MissingEquals { line, .. }
            | SchemaError::InvalidKey { line, .. }
            | SchemaError::UnterminatedQuote { line, .. }
            | SchemaError::TrailingText { line, .. }
            | SchemaError::InvalidRotation { line, .. }
            | SchemaError::DuplicateKey { line, .. }
            | SchemaError::OpenBacktick { line, .. } => *line,
        }
    }
}

/// No fix beyond what the message says (it names the file, line and key); implemented so
/// findings and reports can be built from it like from any error that has one.
impl crate::hint::Hinted for SchemaError {
    fn hint(&self) -> Option<std::borrow::Cow<'_, str>> {
        None
    }
}

impl EnvSchema {
    /// Whether a key has a rotation period (`# rotate:`).
    pub fn has_rotation(&self) -> bool {
        self.entries.iter().any(|e| e.rotate.is_some())
    }

    /// Parses an `.env.example`; `path` is for messages.
    pub fn parse(text: &str, path: &Path) -> Result<EnvSchema, SchemaError> {
        let parsed = dotenv::parse(text, path, dotenv::Kind::Example)?;
        let entries = parsed
            .assignments
            .into_iter()
            .map(|a| SchemaEntry {
                placeholder: a.value.as_str().to_owned(),
                key: a.key,
                optional: a.optional,
                rotate: a.rotate,
                line: a.line,
            })
            .collect();
        Ok(EnvSchema {
            entries,
            repeated: parsed.repeated,
        })
    }

    pub fn get(&self, key: &str) -> Option<&SchemaEntry> {
        self.entries.iter().find(|e| e.key == key)
    }
}

/// Reads a real `.env` file (same syntax) for `import --from-dotenv`: `(key, value, line)` in
/// file order. Errors never show a value, nor an invalid key (which may be a pasted value).
pub fn parse_dotenv(
    text: &str,
    path: &Path,
) -> Result<Vec<(String, SecretValue, usize)>, SchemaError> {
    Ok(dotenv::parse(text, path, dotenv::Kind::Secrets)?
        .assignments
        .into_iter()
        .map(|mut a| {
            (
                a.key,
                SecretValue::new(std::mem::take(&mut *a.value)),
                a.line,
            )
        })
        .collect())
}

/// Whether an example value is a placeholder someone must replace (`your-key-here`, `sk-...`,
/// `changeme`, `xxx`, `<token>`, `TODO`), rather than a real default that a manifest may well
/// keep (`3306`, `local`, `smtp`, `localhost`: most values of real `.env.example` files). Only
/// a manifest value equal to a placeholder is "someone copied the example".
pub fn looks_like_placeholder(value: &str) -> bool {
    let v = value.trim();
    if v.is_empty() {
        return false;
    }
    let lower = v.to_ascii_lowercase();
    let elided = lower.contains("...") || lower.contains('…');
    let bracketed = (v.starts_with('<') && v.ends_with('>'))
        || (v.starts_with("{{") && v.ends_with("}}"))
        || (v.starts_with('[') && v.ends_with(']') && v.chars().any(char::is_whitespace));
    // xxx, XXXX, ****, sk-xxxxxxxx: a run of three or more x's or stars.
    let masked = lower
        .split(|c: char| c != 'x' && c != '*')
        .any(|run| run.len() >= 3);
    let words: Vec<&str> = lower
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    const WORDS: &[&str] = &[
        "your",
        "yours",
        "changeme",
        "change",
        "replace",
        "replaceme",
        "placeholder",
        "todo",
        "fixme",
        "tbd",
        "insert",
        "here",
        "dummy",
        "redacted",
    ];
    const WHOLE: &[&str] = &[
        "secret", "password", "token", "apikey", "api_key", "key", "value",
    ];
    elided
        || bracketed
        || masked
        || words.iter().any(|w| WORDS.contains(w))
        || WHOLE.contains(&lower.as_str())
}

/// Checks a manifest against its agent's schema. Keys in `unmanaged_keys` (which the
/// platform injects) are not required even when the schema lists them. `origins` names the
/// shared group of each key the agent takes from one (`uses:`), so that a problem with such
/// a key points at the group.
pub fn check(
    schema: Option<&EnvSchema>,
    manifest: &Manifest,
    origins: &BTreeMap<String, String>,
    strict: bool,
    unmanaged_keys: &[String],
    schema_path: &Path,
) -> Vec<Finding> {
    let agent = manifest.agent.as_str();
    let Some(schema) = schema else {
        return vec![
            Finding::warning(
                schema_path,
                format!(
                    "agent {agent} has no {FILE_NAME}: its manifest is checked for syntax only; add one listing the agent's keys (KEY=placeholder, `# optional` after optional ones)"
                ),
            )
            .for_agent(agent),
        ];
    };
    // Where a key's value is set: the agent's manifest, or the shared group it comes from.
    let set_with = |key: &str| match origins.get(key) {
        Some(group) => format!("castsync set --shared {group} {key}"),
        None => format!("castsync set {agent} {key}"),
    };
    let from = |key: &str| match origins.get(key) {
        Some(group) => format!(" (taken from shared group {group})"),
        None => String::new(),
    };
    let mut findings = Vec::new();
    let error = |entry: &SchemaEntry, message: String| {
        Finding::error(schema_path, message)
            .at_line(Some(entry.line))
            .for_agent(agent)
            .for_key(&entry.key)
    };
    for entry in &schema.entries {
        if unmanaged_keys.contains(&entry.key) {
            continue;
        }
        let key = entry.key.as_str();
        match manifest.secrets.get(key) {
            None if !entry.optional => findings.push(error(
                entry,
                format!(
                    "required by {FILE_NAME} but missing from the manifest; set it with `castsync set {agent} {key}` (or take it from a shared group with `uses:`), or mark it `# optional`"
                ),
            )),
            None => {}
            Some(value) if value.is_empty() && !entry.optional => findings.push(error(
                entry,
                format!(
                    "the value{} is empty but {FILE_NAME} requires it; set it with `{}`, or mark it `# optional`",
                    from(key),
                    set_with(key)
                ),
            )),
            Some(value)
                if looks_like_placeholder(&entry.placeholder)
                    && value.expose() == entry.placeholder =>
            {
                findings.push(error(
                    entry,
                    format!(
                        "the value{} equals the {FILE_NAME} placeholder: someone copied the example; set the real value with `{}`",
                        from(key),
                        set_with(key)
                    ),
                ));
            }
            Some(_) => {}
        }
    }
    let declared: HashSet<&str> = schema.entries.iter().map(|e| e.key.as_str()).collect();
    for key in manifest
        .secrets
        .keys()
        .filter(|k| !declared.contains(k.as_str()))
    {
        let message = match origins.get(key) {
            Some(group) => format!(
                "the agent takes it from shared group {group} (`uses:`) but {FILE_NAME} does not list it; add `{key}=` to {FILE_NAME}, or list only the keys the agent needs (`uses: {{{group}: [..]}}`)"
            ),
            None => format!(
                "the manifest declares it but {FILE_NAME} does not list it; add `{key}=` to {FILE_NAME}, or remove it with `castsync unset {agent} {key}`"
            ),
        };
        let finding = if strict {
            Finding::error(schema_path, message)
        } else {
            Finding::warning(schema_path, message)
        };
        findings.push(finding.for_agent(agent).for_key(key));
    }
    findings
}
