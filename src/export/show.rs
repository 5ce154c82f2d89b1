//! A manifest as `castsync show` prints it: YAML, JSON or dotenv, its values hidden or
//! revealed. An agent's `uses:` is shown as written (the keys it takes are in the groups'
//! manifests).
//!
//! Hidden, every format has the same shape, with `<hidden>` in place of each value, so
//! scripts can list keys without ever handling a secret. Revealed, the values are written so
//! that they read back exactly: YAML double-quoted, JSON strings, dotenv single-quoted (or
//! double-quoted with escapes when needed), which `castsync import --from-dotenv` reads back
//! unchanged. The buffer is zeroized on drop and never reallocated.

use zeroize::Zeroizing;

use crate::manifest::Manifest;
use crate::secret::SecretValue;

/// The formats of `castsync show`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShowFormat {
    /// The manifest as YAML (what `castsync edit` shows).
    Yaml,
    /// `KEY='value'` lines that `castsync import --from-dotenv` reads back.
    Dotenv,
    /// `{"agent": …, "secrets": {…}}` (schemas/manifest.schema.json).
    Json,
}

/// What stands for a value that is not revealed.
const HIDDEN: &str = "<hidden>";

/// `manifest` in `format`, its values replaced by `<hidden>` unless `reveal`.
pub fn manifest(manifest: &Manifest, format: ShowFormat, reveal: bool) -> Zeroizing<Vec<u8>> {
    let shown = if reveal {
        manifest.clone()
    } else {
        masked(manifest)
    };
    if format == ShowFormat::Yaml {
        let mut yaml = shown.to_editable_yaml();
        return Zeroizing::new(std::mem::take(&mut *yaml).into_bytes());
    }
    // Reserved up front for the worst case (a JSON `\u00XX` escape is 6 bytes per byte), so
    // the buffer never reallocates and leaves an unzeroized copy of a value behind.
    let capacity = 64
        + 6 * manifest.agent.len()
        + shown
            .secrets
            .iter()
            .map(|(k, v)| 16 + 6 * (k.len() + v.len()))
            .sum::<usize>();
    let mut out = Zeroizing::new(Vec::with_capacity(capacity));
    match format {
        ShowFormat::Yaml => unreachable!("handled above"),
        ShowFormat::Json => {
            out.extend_from_slice(b"{\n  \"agent\": ");
            json_string(&mut out, &shown.agent);
            out.extend_from_slice(b",\n  \"secrets\": {");
            for (i, (key, value)) in shown.secrets.iter().enumerate() {
                out.extend_from_slice(if i == 0 { b"\n    " } else { b",\n    " });
                json_string(&mut out, key);
                out.extend_from_slice(b": ");
                json_string(&mut out, value.expose());
            }
            out.extend_from_slice(if shown.secrets.is_empty() {
                b"}\n}\n"
            } else {
                b"\n  }\n}\n"
            });
        }
        ShowFormat::Dotenv => {
            for (key, value) in &shown.secrets {
                out.extend_from_slice(key.as_bytes());
                out.push(b'=');
                push_dotenv_value(&mut out, value.expose());
                out.push(b'\n');
            }
        }
    }
    out
}

/// `text` as a JSON string, escaped straight into `out` (serde_json makes no copy of its own).
fn json_string(out: &mut Vec<u8>, text: &str) {
    // Writing a string into a Vec cannot fail.
    let _ = serde_json::to_writer(out, text);
}

/// The manifest with every value replaced by [`HIDDEN`].
fn masked(manifest: &Manifest) -> Manifest {
    Manifest {
        agent: manifest.agent.clone(),
        kind: manifest.kind,
        environment: manifest.environment.clone(),
        uses: manifest.uses.clone(),
        secrets: manifest
            .secrets
            .keys()
            .map(|k| (k.clone(), SecretValue::new(HIDDEN)))
            .collect(),
        meta: None,
    }
}

/// A dotenv value that every common reader takes literally: single quotes when the value
/// allows (no expansion anywhere), else double quotes with `\\`, `\"`, `\n`, `\r`, `\t`
/// escaped (castsync's reader, dotenvy and docker compose undo exactly these).
fn push_dotenv_value(out: &mut Vec<u8>, value: &str) {
    if !value.contains(['\'', '\n', '\r']) {
        out.push(b'\'');
        out.extend_from_slice(value.as_bytes());
        out.push(b'\'');
        return;
    }
    out.push(b'"');
    for &b in value.as_bytes() {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'"' => out.extend_from_slice(b"\\\""),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b => out.push(b),
        }
    }
    out.push(b'"');
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
        let text = super::manifest(&manifest(&tricky), ShowFormat::Dotenv, true);
        let text = std::str::from_utf8(&text).unwrap();
        let read = crate::schema::parse_dotenv(text, Path::new("x.env")).unwrap();
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
        let text = super::manifest(&manifest(&values), ShowFormat::Json, true);
        let doc: serde_json::Value = serde_json::from_slice(&text).unwrap();
        assert_eq!(doc["agent"], "support-bot");
        assert_eq!(doc["secrets"]["A"], values[0].1);
        assert_eq!(doc["secrets"]["B"], "");
        let empty = super::manifest(&manifest(&[]), ShowFormat::Json, true);
        let doc: serde_json::Value = serde_json::from_slice(&empty).unwrap();
        assert_eq!(doc["secrets"], serde_json::json!({}));
    }

    #[test]
    fn hidden_output_has_the_same_keys_in_every_format_and_no_value() {
        let m = manifest(&[("A_KEY", "canary-show-1"), ("B_KEY", "canary-show-2")]);
        for format in [ShowFormat::Yaml, ShowFormat::Json, ShowFormat::Dotenv] {
            let text = super::manifest(&m, format, false);
            let text = std::str::from_utf8(&text).unwrap();
            assert!(!text.contains("canary"), "{format:?}: {text}");
            assert!(text.contains("A_KEY") && text.contains("B_KEY"));
            assert_eq!(text.matches(HIDDEN).count(), 2, "{text}");
        }
    }
}
