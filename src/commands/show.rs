//! `castsync show AGENT [--reveal] [--format yaml|dotenv|json]`.
//!
//! Without `--reveal` every format has the same shape, with `<hidden>` in place of each
//! value, so scripts can list keys without ever handling a secret. With `--reveal` the values
//! go to stdout only, written so that they read back exactly: YAML double-quoted, JSON
//! strings, dotenv single-quoted (or double-quoted with escapes when needed), which
//! `castsync import --from-dotenv` reads back unchanged.

use zeroize::Zeroizing;

use super::agent_files::AgentFiles;
use super::{Exit, Repo};
use crate::cli::{GlobalArgs, ShowArgs, ShowFormat};
use crate::manifest::Manifest;
use crate::secret::SecretValue;

/// What stands for a value that is not revealed.
const HIDDEN: &str = "<hidden>";

pub(super) fn run(global: &GlobalArgs, args: &ShowArgs) -> anyhow::Result<Exit> {
    let repo = Repo::open(global)?;
    let files = AgentFiles::new(&repo, &args.agent)?;
    let identities = repo.identities()?;
    let manifest = files.require(&identities)?;
    let text = render(&manifest, args.format, args.reveal);
    print!("{}", text.as_str());
    Ok(Exit::Success)
}

fn render(manifest: &Manifest, format: ShowFormat, reveal: bool) -> Zeroizing<String> {
    let shown = if reveal {
        manifest.clone()
    } else {
        masked(manifest)
    };
    if format == ShowFormat::Yaml {
        return shown.to_editable_yaml();
    }
    // Reserved up front for the worst case (a JSON `\u00XX` escape is 6 bytes per byte), so
    // the buffer never reallocates and leaves an unzeroized copy of a value behind.
    let capacity = 64
        + 2 * manifest.agent.len()
        + shown
            .secrets
            .iter()
            .map(|(k, v)| 16 + 2 * k.len() + 6 * v.len())
            .sum::<usize>();
    let mut out = Zeroizing::new(String::with_capacity(capacity));
    match format {
        ShowFormat::Yaml => unreachable!("handled above"),
        ShowFormat::Json => {
            out.push_str("{\n  \"agent\": ");
            push_json_string(&mut out, &shown.agent);
            out.push_str(",\n  \"secrets\": {");
            for (i, (key, value)) in shown.secrets.iter().enumerate() {
                out.push_str(if i == 0 { "\n    " } else { ",\n    " });
                push_json_string(&mut out, key);
                out.push_str(": ");
                push_json_string(&mut out, value.expose());
            }
            out.push_str(if shown.secrets.is_empty() {
                "}\n}\n"
            } else {
                "\n  }\n}\n"
            });
        }
        ShowFormat::Dotenv => {
            for (key, value) in &shown.secrets {
                out.push_str(key);
                out.push('=');
                push_dotenv_value(&mut out, value.expose());
                out.push('\n');
            }
        }
    }
    out
}

/// The manifest with every value replaced by [`HIDDEN`].
fn masked(manifest: &Manifest) -> Manifest {
    Manifest {
        agent: manifest.agent.clone(),
        secrets: manifest
            .secrets
            .keys()
            .map(|k| (k.clone(), SecretValue::new(HIDDEN)))
            .collect(),
        meta: None,
    }
}

/// A JSON string literal.
fn push_json_string(out: &mut String, s: &str) {
    use std::fmt::Write as _;
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                // Writing into a String cannot fail.
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A dotenv value that every common reader takes literally: single quotes when the value
/// allows (no expansion anywhere), else double quotes with `\\`, `\"`, `\n`, `\r`, `\t`
/// escaped (castsync's reader, dotenvy and docker compose undo exactly these).
fn push_dotenv_value(out: &mut String, value: &str) {
    if !value.contains(['\'', '\n', '\r']) {
        out.push('\'');
        out.push_str(value);
        out.push('\'');
        return;
    }
    out.push('"');
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn manifest(values: &[(&str, &str)]) -> Manifest {
        let mut m = Manifest::new("support-bot");
        for (k, v) in values {
            m.secrets.insert((*k).to_owned(), SecretValue::new(*v));
        }
        m
    }

    #[test]
    fn revealed_dotenv_reads_back_as_the_same_values() {
        let tricky = [
            ("PLAIN", "sk-abc"),
            ("SPACES", "  padded  "),
            ("QUOTES", "it's \"quoted\""),
            ("LINES", "line1\nline2\r\n"),
            ("BACKSLASH", "C:\\path\\n"),
            ("DOLLAR", "$HOME and ${X}"),
            ("HASH", "a #not-a-comment"),
            ("EMPTY", ""),
        ];
        let text = render(&manifest(&tricky), ShowFormat::Dotenv, true);
        let read = crate::schema::parse_dotenv(&text, Path::new("x.env")).unwrap();
        assert_eq!(read.len(), tricky.len());
        for (key, value, _) in read {
            let want = tricky.iter().find(|(k, _)| *k == key).unwrap().1;
            assert_eq!(value.expose(), want, "{key}");
        }
    }

    #[test]
    fn revealed_json_is_valid_json_with_the_exact_values() {
        let values = [
            ("A", "quote \" backslash \\ newline \n bell \u{7} é"),
            ("B", ""),
        ];
        let text = render(&manifest(&values), ShowFormat::Json, true);
        let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(doc["agent"], "support-bot");
        assert_eq!(doc["secrets"]["A"], values[0].1);
        assert_eq!(doc["secrets"]["B"], "");
        let empty = render(&manifest(&[]), ShowFormat::Json, true);
        let doc: serde_json::Value = serde_json::from_str(&empty).unwrap();
        assert_eq!(doc["secrets"], serde_json::json!({}));
    }

    #[test]
    fn hidden_output_has_the_same_keys_in_every_format_and_no_value() {
        let m = manifest(&[("A_KEY", "canary-show-1"), ("B_KEY", "canary-show-2")]);
        for format in [ShowFormat::Yaml, ShowFormat::Json, ShowFormat::Dotenv] {
            let text = render(&m, format, false);
            assert!(!text.contains("canary"), "{format:?}: {}", text.as_str());
            assert!(text.contains("A_KEY") && text.contains("B_KEY"));
            assert_eq!(text.matches(HIDDEN).count(), 2, "{}", text.as_str());
        }
    }
}
