//! Hints as data: what a person can do about an error, kept apart from what went wrong.
//!
//! An error type that knows the fix implements [`Hinted`]. Its `Display` says what happened
//! (naming the file, agent and key); its hint says what to type next. The printers render the
//! hint once, in one style: `commands::print_error` (a command's error), `validate`'s
//! findings, the plan's and apply's per-agent lines, doctor's `fix:` lines, the daemon's logs
//! and `/readyz` — as a `hint: …` line of its own under the message, and in JSON as a `hint`
//! field beside `message`.
//!
//! A message must never carry its own `hint:` line: the printers could not tell it apart,
//! JSON consumers would get it glued to the message, and it would be printed twice.
//!
//! The library asks an error for its hint where it knows the error's type (a finding made
//! from a `CryptoError`, the daemon's report of an `OpenError`). A command's error reaches
//! the printer as `anyhow::Error`, so `commands::report` walks its source chain and asks each
//! link by type: a new error type with hints implements [`Hinted`] and is listed there (a
//! test checks that every implementation is). This module depends on nothing but `escape`, so
//! every module may implement the trait without an import cycle.

use std::borrow::Cow;
use std::error::Error;
use std::fmt;

/// An error that may know what a person can do about it.
pub trait Hinted {
    /// The fix, as one sentence without a trailing period: `pass --data-dir DIR`. `None`
    /// when castsync has nothing better to say than the message.
    fn hint(&self) -> Option<Cow<'_, str>>;
}

/// An error made at the edge (a command) with its message and its hint.
#[derive(Debug)]
pub struct WithHint {
    message: String,
    hint: String,
}

impl WithHint {
    pub fn new(message: impl Into<String>, hint: impl Into<String>) -> WithHint {
        WithHint {
            message: message.into(),
            hint: hint.into(),
        }
    }
}

impl fmt::Display for WithHint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl Error for WithHint {}

impl Hinted for WithHint {
    fn hint(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Borrowed(&self.hint))
    }
}

/// An error rendered for a report that outlives it (the daemon's status and logs): its
/// message and its hint, still apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explained {
    pub message: String,
    pub hint: Option<String>,
}

impl Explained {
    pub fn of<E: Error + Hinted + ?Sized>(error: &E) -> Explained {
        Explained {
            message: error.to_string(),
            hint: error.hint().map(Cow::into_owned),
        }
    }
}

impl From<String> for Explained {
    fn from(message: String) -> Explained {
        Explained {
            message,
            hint: None,
        }
    }
}

impl From<&str> for Explained {
    fn from(message: &str) -> Explained {
        message.to_owned().into()
    }
}

impl fmt::Display for Explained {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// A hint for a terminal, in the one style every printer uses: `hint: …`, behind `indent`.
/// Control characters are escaped (a hint may name a directory a pull request chose).
pub fn line(indent: &str, hint: &str) -> String {
    format!("{indent}hint: {}", crate::escape::terminal(hint))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hint_line_is_escaped_and_indented() {
        assert_eq!(line("  ", "run `x`\u{1b}[31m"), "  hint: run `x`\\x1b[31m");
    }

    #[test]
    fn an_explained_error_keeps_message_and_hint_apart() {
        let e = Explained::of(&WithHint::new("it broke", "do this"));
        assert_eq!(
            (e.message.as_str(), e.hint.as_deref()),
            ("it broke", Some("do this"))
        );
        assert_eq!(Explained::from("plain").hint, None);
    }
}
