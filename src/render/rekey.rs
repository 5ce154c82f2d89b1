//! What `castsync rekey` says of the files it looked at: a line per file re-encrypted (or
//! stale, with `--check`) and a closing summary for people; the `--check` report for machines
//! (JSON, schemas/rekey-check.schema.json) and pull requests (Markdown). It names files and
//! recipients, never a value.

use serde_json::json;

use super::md_escape;
use crate::authoring::Drift;
use crate::config::Names;
use crate::manifest::Kind;

/// The `rekey --check -o json` format version (schemas/rekey-check.schema.json); bump on
/// incompatible changes.
pub const REKEY_CHECK_FORMAT_VERSION: u32 = 1;

/// One file encrypted to other recipients than the config assigns (or to unrecorded ones).
fn drift_json(
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
fn markdown(checked: usize, entries: &[serde_json::Value]) -> String {
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
fn unreadable_json(kind: Kind, name: &str, error: &str, hint: Option<String>) -> serde_json::Value {
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
fn json(
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

/// What the files came out as, counted as they come, with their report entries.
#[derive(Default)]
pub struct Tally {
    /// `--check`: nothing is re-encrypted.
    pub check: bool,
    pub checked: usize,
    pub stale: usize,
    pub failed: usize,
    pub rekeyed: usize,
    entries: Vec<serde_json::Value>,
}

impl Tally {
    pub fn new(check: bool) -> Tally {
        Tally {
            check,
            ..Tally::default()
        }
    }

    /// Counts a file that read as `drift`; its line for people (`FILE: stale: …`), unless it
    /// is current.
    pub fn drift(
        &mut self,
        kind: Kind,
        name: &str,
        file: &str,
        drift: &Drift,
        names: &Names,
    ) -> Option<String> {
        self.checked += 1;
        if *drift == Drift::Current {
            return None;
        }
        self.stale += 1;
        if !self.check {
            self.rekeyed += 1;
        }
        self.entries
            .push(drift_json(kind, name, file, drift, names));
        let verb = if self.check { "stale" } else { "re-encrypted" };
        Some(format!("{file}: {verb}: {}\n", drift.describe(names)))
    }

    /// Counts a file that could not be read (`error` and its hint, printed elsewhere).
    pub fn unreadable(&mut self, kind: Kind, name: &str, error: &str, hint: Option<String>) {
        self.checked += 1;
        self.failed += 1;
        self.entries.push(unreadable_json(kind, name, error, hint));
    }

    /// Whether the command fails: a file could not be read, or `--check` found stale ones.
    pub fn failed(&self) -> bool {
        self.failed > 0 || (self.check && self.stale > 0)
    }

    /// The `-o json` document.
    pub fn json(&self) -> serde_json::Value {
        json(self.checked, self.stale, self.failed, &self.entries)
    }

    /// The `-o markdown` report.
    pub fn markdown(&self) -> String {
        markdown(self.checked, &self.entries)
    }

    /// The closing lines (stderr): what was checked or re-encrypted.
    pub fn summary(&self) -> String {
        let (checked, stale, failed) = (self.checked, self.stale, self.failed);
        let failures = if failed == 0 {
            String::new()
        } else {
            format!("; {failed} could not be read (see above)")
        };
        if !self.check {
            return format!(
                "re-encrypted {} of {checked} manifest(s), {} already current{failures}\n",
                self.rekeyed,
                checked - self.rekeyed - failed,
            );
        }
        let mut out = format!(
            "checked {checked} manifest(s): {stale} encrypted to other recipients than castsync.yaml assigns{failures}\n"
        );
        if stale > 0 {
            out.push_str(&crate::hint::line(
                "  ",
                "run `castsync rekey` to re-encrypt them",
            ));
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tally_counts_each_file_once_and_says_what_became_of_them() {
        let names = Names::default();
        let stale = Drift::Differs {
            added: vec!["age1new".to_owned()],
            removed: Vec::new(),
        };
        let mut tally = Tally::new(false);
        assert_eq!(
            tally.drift(Kind::Agent, "a", "agents/a/x", &Drift::Current, &names),
            None
        );
        let line = tally.drift(Kind::Group, "g", "shared/g/x", &stale, &names);
        assert!(line.is_some_and(|l| l.starts_with("shared/g/x: re-encrypted: for ")));
        tally.unreadable(Kind::Agent, "b", "cannot decrypt", None);
        assert_eq!(
            (tally.checked, tally.stale, tally.rekeyed, tally.failed),
            (3, 1, 1, 1)
        );
        assert!(tally.failed());
        assert_eq!(
            tally.summary(),
            "re-encrypted 1 of 3 manifest(s), 1 already current; 1 could not be read (see above)\n"
        );
        let doc = tally.json();
        assert_eq!(doc["files"].as_array().map(Vec::len), Some(2));
        assert_eq!(doc["files"][0]["group"], "g");
    }

    #[test]
    fn a_check_that_finds_stale_files_fails_and_says_how_to_fix_them() {
        let names = Names::default();
        let mut tally = Tally::new(true);
        let line = tally.drift(Kind::Agent, "a", "agents/a/x", &Drift::Unrecorded, &names);
        assert!(line.is_some_and(|l| l.starts_with("agents/a/x: stale: ")));
        assert_eq!(tally.rekeyed, 0);
        assert!(tally.failed());
        assert!(
            tally.summary().contains("run `castsync rekey`"),
            "{}",
            tally.summary()
        );
    }
}
