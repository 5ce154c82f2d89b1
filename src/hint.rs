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
//! An error reaches the printer as `anyhow::Error` or `&dyn Error`, so [`find`] walks the
//! source chain and asks each link through the list in [`own_hint`]: a new error type with
//! hints implements [`Hinted`] and is added there (a test checks that every implementation
//! is listed).

use std::borrow::Cow;
use std::error::Error;
use std::fmt;

/// An error that may know what a person can do about it.
pub trait Hinted {
    /// The fix, as one sentence without a trailing period: `pass --data-dir DIR`. `None`
    /// when castsync has nothing better to say than the message.
    fn hint(&self) -> Option<Cow<'_, str>>;
}

/// The hint of an error or of the first link of its source chain that has one.
pub fn find(error: &(dyn Error + 'static)) -> Option<String> {
    let mut link = Some(error);
    while let Some(e) = link {
        if let Some(hint) = own_hint(e) {
            return Some(hint.into_owned());
        }
        link = e.source();
    }
    None
}

/// The hint of an `anyhow` error's chain.
pub fn find_any(error: &anyhow::Error) -> Option<String> {
    error.chain().find_map(own_hint).map(Cow::into_owned)
}

/// Every type in the crate that implements [`Hinted`]: the one place a `dyn Error` is asked
/// for its hint.
fn own_hint<'a>(e: &'a (dyn Error + 'static)) -> Option<Cow<'a, str>> {
    // A boxed error is a link of its own type (`Box<T>`, whose `source` skips `T`'s own).
    macro_rules! ask {
        ($($ty:ty),* $(,)?) => {
            $(
                if let Some(e) = e.downcast_ref::<$ty>() {
                    return e.hint();
                }
                if let Some(e) = e.downcast_ref::<Box<$ty>>() {
                    return e.hint();
                }
            )*
        };
    }
    ask!(
        WithHint,
        crate::authoring::AuthoringError,
        crate::authoring::merge::driver::MergeError,
        crate::crypto::CryptoError,
        crate::daemon::DaemonError,
        crate::daemon::SecretFileError,
        crate::emulator::EmulatorError,
        crate::git_setup::GitSetupError,
        crate::platform::OpenError,
        crate::platform::PlatformError,
        crate::platform::store::StoreError,
        crate::reconcile::PinError,
        crate::saved_plan::NotSaved,
        crate::saved_plan::run::SavedPlanError,
        crate::reconcile::ReconcileError,
        crate::source::DiscoverError,
        crate::source::load::LoadError,
        crate::source::mirror::GitError,
        crate::source::signatures::SignersError,
        crate::state::StateError,
    );
    None
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
    pub fn of(error: &(dyn Error + 'static)) -> Explained {
        Explained {
            message: error.to_string(),
            hint: find(error),
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

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] WithHint);

    #[test]
    fn the_first_hint_in_the_source_chain_is_found() {
        let e = Outer(WithHint::new("inner", "do this"));
        assert_eq!(find(&e).as_deref(), Some("do this"));
        let any = anyhow::Error::new(WithHint::new("m", "fix it")).context("while doing x");
        assert_eq!(find_any(&any).as_deref(), Some("fix it"));
        assert_eq!(find(&std::io::Error::other("x")), None);
    }

    #[test]
    fn a_hint_line_is_escaped_and_indented() {
        assert_eq!(line("  ", "run `x`\u{1b}[31m"), "  hint: run `x`\\x1b[31m");
    }

    /// Every type of the crate that implements the trait is one [`own_hint`] asks: a type
    /// missing from that list would have its hints silently dropped by every printer.
    #[test]
    fn every_hinted_type_is_listed_where_printers_ask_for_hints() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let listing = std::fs::read_to_string(root.join("hint.rs")).unwrap();
        let asked = &listing[listing.find("    ask!(").unwrap()..];
        let asked = &asked[..asked.find(");").unwrap()];
        let mut missing = Vec::new();
        let mut stack = vec![root];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                    continue;
                }
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                for (at, _) in text.match_indices("Hinted for ") {
                    let name: String = text[at + "Hinted for ".len()..]
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    let listed = asked
                        .lines()
                        .map(str::trim)
                        .any(|l| l == format!("{name},") || l.ends_with(&format!("::{name},")));
                    if !name.is_empty() && !listed {
                        missing.push(format!("{name} ({})", path.display()));
                    }
                }
            }
        }
        assert!(missing.is_empty(), "add these to own_hint: {missing:?}");
    }
}
