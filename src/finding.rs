//! One problem found while checking a manifest against its rules or its schema.
//!
//! `validate` prints one finding per line; reconcile reports them per agent. A finding's
//! message names the key and the fix but never a secret value.

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
            located: false,
        }
    }

    /// An error whose message already names its file (and line), e.g. a `ManifestError`.
    pub fn located_error(path: impl Into<PathBuf>, error: &dyn std::error::Error) -> Self {
        let mut f = Self::new(Severity::Error, path, error.to_string());
        f.located = true;
        f
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

/// `error: agents/x/.env.example:3: key FOO: message` — the agent is implied by the path.
impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Paths come from directory names a pull request chose: no control characters.
        use crate::escape::{terminal, terminal_lines};
        if self.located {
            return write!(f, "{}: {}", self.severity, terminal_lines(&self.message));
        }
        let path = self.path.display().to_string();
        write!(f, "{}: {}", self.severity, terminal(&path))?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(key) = &self.key {
            write!(f, ": key {}", terminal(key))?;
        }
        write!(f, ": {}", terminal_lines(&self.message))
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
}
