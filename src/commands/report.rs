//! How an error reaches a person: [`print_error`] prints a command's error, its causes and
//! its hint, once, in the one style of `crate::hint`.
//!
//! This is the only place that asks a type-erased error for its hint, by trying each type of
//! the crate that has hints ([`hint_in`]). It lives at the binary's edge on purpose: it names
//! every error type of the library, so no library module may depend on it.

use std::borrow::Cow;
use std::error::Error;
use std::io::Write as _;

use crate::hint::{Hinted, WithHint};

/// Writes a command's output on stdout. A reader that went away (`castsync history | head
/// -1`) has what it wanted: the rest is dropped quietly and the command finishes with its own
/// exit status (a reconcile still applies what it was told to). Any other failure (a full
/// disk behind `> file`) is an error.
pub fn print_out(text: impl std::fmt::Display) -> anyhow::Result<()> {
    write_out(text.to_string().as_bytes())
}

/// [`print_out`] for bytes (a man page, a manifest's plaintext).
pub fn write_out(bytes: &[u8]) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(err) if err.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(anyhow::Error::new(err).context("cannot write to stdout"))
        }
        _ => Ok(()),
    }
}

/// Prints an error on stderr in rage's style: the error, its causes one per line, then the
/// first hint found in the chain on a line of its own.
pub fn print_error(err: &anyhow::Error) {
    crate::say_partial!("{}", error_text(err));
}

/// The version of the error document (`schemas/error.schema.json`).
pub const ERROR_FORMAT_VERSION: u32 = 1;

/// Prints an error on stdout as the JSON document of `schemas/error.schema.json`: the
/// message, its causes and its hint, exact (JSON needs no terminal escaping).
pub fn print_json_error(err: &anyhow::Error) {
    let doc = error_json(err);
    // Nothing better to do when stdout is gone; the error still goes to stderr.
    let text = serde_json::to_string_pretty(&doc).unwrap_or_default();
    let _ = writeln!(std::io::stdout().lock(), "{text}");
}

/// The JSON document [`print_json_error`] prints.
pub fn error_json(err: &anyhow::Error) -> serde_json::Value {
    serde_json::json!({
        "format_version": ERROR_FORMAT_VERSION,
        "error": {
            "message": err.to_string(),
            "causes": err.chain().skip(1).map(ToString::to_string).collect::<Vec<_>>(),
            "hint": hint_of(err),
        }
    })
}

/// The text [`print_error`] prints. A message or cause may quote outside text (libgit2
/// repeating a revision as typed, a platform's answer): control characters other than line
/// breaks are shown as escapes.
pub fn error_text(err: &anyhow::Error) -> String {
    let shown =
        |e: &dyn std::fmt::Display| crate::escape::terminal_lines(&e.to_string()).into_owned();
    let mut out = format!("error: {}\n", shown(err));
    for cause in err.chain().skip(1) {
        out.push_str(&format!("  caused by: {}\n", shown(cause)));
    }
    if let Some(hint) = hint_of(err) {
        out.push_str(&crate::hint::line("  ", &hint));
        out.push('\n');
    }
    out
}

/// The hint of the first link of an error chain that has one.
pub fn hint_of(err: &anyhow::Error) -> Option<String> {
    err.chain().find_map(hint_in).map(Cow::into_owned)
}

/// The hint of an error or of the first link of its source chain that has one.
pub fn hint_of_error(err: &(dyn Error + 'static)) -> Option<String> {
    let mut link = Some(err);
    while let Some(e) = link {
        if let Some(hint) = hint_in(e) {
            return Some(hint.into_owned());
        }
        link = e.source();
    }
    None
}

/// The hint of one link of a chain: the one place a `dyn Error` is asked for its hint, by
/// trying every type of the crate that implements [`Hinted`].
pub fn hint_in<'a>(e: &'a (dyn Error + 'static)) -> Option<Cow<'a, str>> {
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
        crate::audit::AuditError,
        crate::authoring::AuthoringError,
        crate::authoring::editor::EditorError,
        crate::authoring::merge::driver::MergeError,
        crate::config::ConfigError,
        crate::config::EnvironmentError,
        crate::crypto::CryptoError,
        crate::export::Unwritable,
        crate::export::values::NotExported,
        crate::daemon::DaemonError,
        crate::daemon::SecretFileError,
        crate::emulator::EmulatorError,
        crate::git_setup::GitSetupError,
        crate::guard::GuardError,
        crate::manifest::ManifestError,
        crate::platform::OpenError,
        crate::platform::PlatformError,
        crate::platform::store::StoreError,
        crate::reconcile::PinError,
        crate::reconcile::ReconcileError,
        crate::saved_plan::NotSaved,
        crate::saved_plan::run::SavedPlanError,
        crate::schema::SchemaError,
        crate::source::DiscoverError,
        crate::source::SourceError,
        crate::load::LoadError,
        crate::source::remote::mirror::GitError,
        crate::source::remote::signatures::SignersError,
        crate::state::StateError,
    );
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_prints_its_causes_then_its_hint_once() {
        let err = anyhow::Error::new(WithHint::new("cannot do x", "run `castsync y`"))
            .context("while doing z");
        assert_eq!(
            error_text(&err),
            "error: while doing z\n  caused by: cannot do x\n  hint: run `castsync y`\n"
        );
        let plain = anyhow::anyhow!("no fix known");
        assert_eq!(error_text(&plain), "error: no fix known\n");
    }

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] WithHint);

    #[test]
    fn the_first_hint_in_the_source_chain_is_found() {
        let err = anyhow::Error::new(Outer(WithHint::new("inner", "do this")));
        assert_eq!(hint_of(&err).as_deref(), Some("do this"));
        let boxed: Box<crate::crypto::CryptoError> = Box::new(crate::crypto::CryptoError::NoHome);
        assert!(hint_in(&boxed).is_some());
        assert_eq!(hint_in(&std::io::Error::other("x")), None);
    }

    /// Every type of the crate that implements the trait is one [`hint_in`] asks: a type
    /// missing from that list would have its hints silently dropped by `print_error`.
    #[test]
    fn every_hinted_type_is_listed_where_printers_ask_for_hints() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let listing = std::fs::read_to_string(root.join("commands/report.rs")).unwrap();
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
        assert!(missing.is_empty(), "add these to hint_in: {missing:?}");
    }
}
