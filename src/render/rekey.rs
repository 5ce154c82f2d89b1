//! `castsync rekey --check`'s report for machines (JSON, schemas/rekey-check.schema.json) and
//! pull requests (Markdown). It names files and recipients, never a value.

use serde_json::json;

use super::md_escape;
use crate::authoring::Drift;
use crate::config::Names;
use crate::manifest::Kind;

/// The `rekey --check -o json` format version (schemas/rekey-check.schema.json); bump on
/// incompatible changes.
pub const REKEY_CHECK_FORMAT_VERSION: u32 = 1;

/// One file encrypted to other recipients than the config assigns (or to unrecorded ones).
pub fn drift_json(
    kind: Kind,
    name: &str,
    file: &str,
    drift: &Drift,
    names: &Names,
) -> serde_json::Value {
    let (status, added, removed) = match drift {
        Drift::Current => ("current", &[][..], &[][..]),
        Drift::Unrecorded => ("unrecorded", &[][..], &[][..]),
        Drift::Differs { added, removed } => ("stale", &added[..], &removed[..]),
    };
    let mut entry = json!({
        "agent": name,
        "file": file,
        "status": status,
        "added_recipients": added,
        "removed_recipients": removed,
        "description": drift.describe(names),
    });
    if kind == Kind::Group {
        entry["agent"] = serde_json::Value::Null;
        entry["group"] = json!(name);
    }
    entry
}

/// The `-o markdown` report: a table of the files that need `castsync rekey`.
pub fn markdown(checked: usize, entries: &[serde_json::Value]) -> String {
    let text = |v: &serde_json::Value, k: &str| v[k].as_str().unwrap_or_default().to_owned();
    let mut out = format!(
        "### castsync rekey --check: {} of {checked} manifest(s) need `castsync rekey`\n",
        entries.len()
    );
    if !entries.is_empty() {
        out.push_str("\n| agent or group | status | detail |\n|---|---|---|\n");
        for e in entries {
            let detail = if e["status"] == "unreadable" {
                text(e, "error")
            } else {
                text(e, "description")
            };
            out.push_str(&format!(
                "| {} | {} | {} |\n",
                md_escape(&match e["group"].as_str() {
                    Some(group) => format!("shared/{group}"),
                    None => text(e, "agent"),
                }),
                text(e, "status"),
                md_escape(&detail)
            ));
        }
    }
    out
}

/// A file that could not be read: its error and hint.
pub fn unreadable_json(
    kind: Kind,
    name: &str,
    error: &str,
    hint: Option<String>,
) -> serde_json::Value {
    let mut entry = json!({
        "agent": name,
        "status": "unreadable",
        "error": error,
        "hint": hint,
    });
    if kind == Kind::Group {
        entry["group"] = json!(name);
        entry["agent"] = serde_json::Value::Null;
    }
    entry
}

/// The `-o json` document.
pub fn json(
    checked: usize,
    stale: usize,
    unreadable: usize,
    entries: &[serde_json::Value],
) -> serde_json::Value {
    json!({
        "format_version": REKEY_CHECK_FORMAT_VERSION,
        "ok": stale == 0 && unreadable == 0,
        "checked": checked,
        "stale": stale,
        "unreadable": unreadable,
        "files": entries,
    })
}
