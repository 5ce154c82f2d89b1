//! One problem found while checking a manifest against its rules or its schema.
//!
//! `validate` prints one finding per line; reconcile reports them per agent. A finding's
//! message names the file and the key but never a secret value. Its severity and its hint
//! (the fix, when known) are fields of their own, so each printer puts them where its format
//! wants them: `error: …` and a `hint: …` line in text, `severity` and `hint` in JSON.

use std::fmt;
use std::path::PathBuf;

/// How bad a finding is: an error makes `validate` exit 1 and reconcile skip the agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Error,
    Warning,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        })
    }
}

/// A problem with a file: where it is (path, line, agent, key) and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub severity: Severity,
    pub path: PathBuf,
    pub line: Option<usize>,
    pub agent: Option<String>,
    pub key: Option<String>,
    pub message: String,
    /// What to do about it, when castsync knows (see [`crate::hint`]).
    pub hint: Option<String>,
    /// The message already begins with its location (errors from the manifest, schema and
    /// crypto modules name their file themselves), so Display does not repeat the path.
    pub located: bool,
}

impl Finding {
    pub fn error(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self::new(Severity::Error, path, message)
    }

    pub fn warning(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self::new(Severity::Warning, path, message)
    }

    fn new(severity: Severity, path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self {
            severity,
            path: path.into(),
            line: None,
            agent: None,
            key: None,
            message: message.into(),
            hint: None,
            located: false,
        }
    }

    /// An error whose message already names its file (and line), e.g. a `ManifestError`,
    /// with the error's hint.
    pub fn located_error<E>(path: impl Into<PathBuf>, error: &E) -> Self
    where
        E: std::error::Error + crate::hint::Hinted + ?Sized,
    {
        let mut f = Self::new(Severity::Error, path, error.to_string());
        f.hint = error.hint().map(std::borrow::Cow::into_owned);
        f.located = true;
        f
    }

    /// What to do about it.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn at_line(mut self, line: Option<usize>) -> Self {
        self.line = line;
        self
    }

    pub fn for_agent(mut self, agent: impl Into<String>) -> Self {
        self.agent = Some(agent.into());
        self
    }

    pub fn for_key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl Finding {
    /// `agents/x/.env.example:3: key FOO: message`, escaped for a terminal: where and what,
    /// without the severity or the hint.
    pub fn text(&self) -> String {
        // Paths come from directory names a pull request chose: no control characters.
        use crate::escape::{terminal, terminal_lines};
        if self.located {
            return terminal_lines(&self.message).into_owned();
        }
        let mut out = terminal(&self.path.display().to_string()).into_owned();
        if let Some(line) = self.line {
            out.push_str(&format!(":{line}"));
        }
        if let Some(key) = &self.key {
            out.push_str(&format!(": key {}", terminal(key)));
        }
        out.push_str(&format!(": {}", terminal_lines(&self.message)));
        out
    }
}

/// `error: agents/x/.env.example:3: key FOO: message` — the agent is implied by the path.
/// The hint is not part of it: printers put it on a line of its own.
impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.severity, self.text())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_finding_prints_severity_path_line_key_and_message_on_one_line() {
        let f = Finding::error("agents/x/.env.example", "is missing")
            .at_line(Some(3))
            .for_agent("x")
            .for_key("FOO");
        assert_eq!(
            f.to_string(),
            "error: agents/x/.env.example:3: key FOO: is missing"
        );
        assert!(f.is_error());
    }

    #[test]
    fn a_finding_without_line_or_key_leaves_them_out() {
        let f = Finding::warning("agents/x/.env.example", "no schema");
        assert_eq!(f.to_string(), "warning: agents/x/.env.example: no schema");
        assert!(!f.is_error());
    }

    #[test]
    fn severity_and_hint_stay_out_of_the_text() {
        let f = Finding::error("agents/x/secrets.yaml.age", "missing").with_hint("create it");
        assert_eq!(f.text(), "agents/x/secrets.yaml.age: missing");
        assert_eq!(f.to_string(), "error: agents/x/secrets.yaml.age: missing");
        assert_eq!(f.hint.as_deref(), Some("create it"));
    }
}
