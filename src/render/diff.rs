//! `castsync diff`: what changed between two sides of a repository (two revisions, or a
//! revision and the worktree), file by file, as redacted views (`redacted`): key names and
//! keyed fingerprints, never a value. A shared group's change is shown with the agents it
//! reaches (those whose `uses:` takes a changed key), so the group is seen as the cause of
//! their updates. Rendered as a unified diff, JSON (schemas/diff.schema.json) or Markdown.

use std::collections::BTreeMap;
use std::path::Path;

use super::md_escape;
use super::redacted::{self, Fingerprinter, decrypted_view};
use crate::crypto::Identities;
use crate::source::{
    Checkout, MANIFEST_FILE, SCHEMA_FILE, SourceError, group_manifest_path, group_names,
};

/// The `diff -o json` format version (schemas/diff.schema.json); bump on incompatible changes.
pub const DIFF_FORMAT_VERSION: u32 = 1;

/// One file that differs between the two sides, as redacted views (never a value).
pub struct FileDiff {
    /// The agent (empty for a shared group's file).
    agent: String,
    /// The shared group, for a group's manifest.
    group: Option<String>,
    /// For a group: the agents (on the newer side) that take a changed key, with those keys.
    affects: Vec<(String, Vec<String>)>,
    /// The file's path on each side (each side's config names its agents directory).
    old_path: String,
    new_path: String,
    old: Option<String>,
    new: Option<String>,
    /// Whether it is the encrypted manifest (else the agent's `.env.example`).
    manifest: bool,
}

impl FileDiff {
    pub fn status(&self) -> &'static str {
        match (&self.old, &self.new) {
            (None, _) => "added",
            (_, None) => "removed",
            _ => "modified",
        }
    }

    /// The path to name the file by: the newer side's, unless it was removed.
    pub fn path(&self) -> &str {
        if self.new.is_some() {
            &self.new_path
        } else {
            &self.old_path
        }
    }

    pub fn unified(&self, old_rev: &str, new_label: &str) -> String {
        let header_a = match self.old {
            Some(_) => format!("a/{} ({old_rev})", self.old_path),
            None => "/dev/null".to_owned(),
        };
        let header_b = match self.new {
            Some(_) => format!("b/{} ({new_label})", self.new_path),
            None => "/dev/null".to_owned(),
        };
        let (a, b) = (
            self.old.as_deref().unwrap_or_default(),
            self.new.as_deref().unwrap_or_default(),
        );
        similar::TextDiff::from_lines(a, b)
            .unified_diff()
            .context_radius(3)
            .header(&header_a, &header_b)
            .to_string()
    }

    /// Keys added, removed and changed, from the redacted views' `KEY FINGERPRINT` lines.
    pub fn keys(&self) -> serde_json::Value {
        if !self.manifest {
            return serde_json::Value::Null;
        }
        let entries = |view: &Option<String>| -> BTreeMap<String, String> {
            view.as_deref()
                .unwrap_or_default()
                .lines()
                .filter(|l| {
                    !l.starts_with("agent:")
                        && !l.starts_with("group:")
                        && !l.starts_with("uses: ")
                        && !l.starts_with('#')
                })
                .filter_map(|l| l.split_once(' '))
                .map(|(k, fp)| (k.to_owned(), fp.to_owned()))
                .collect()
        };
        let (old, new) = (entries(&self.old), entries(&self.new));
        let added: Vec<&String> = new.keys().filter(|k| !old.contains_key(*k)).collect();
        let removed: Vec<&String> = old.keys().filter(|k| !new.contains_key(*k)).collect();
        let changed: Vec<&String> = new
            .iter()
            .filter(|(k, fp)| old.get(*k).is_some_and(|o| o != *fp))
            .map(|(k, _)| k)
            .collect();
        serde_json::json!({ "added": added, "removed": removed, "changed": changed })
    }

    /// For a group: every key added, removed or changed.
    fn touched_keys(&self) -> Vec<String> {
        let keys = self.keys();
        ["added", "removed", "changed"]
            .iter()
            .flat_map(|k| keys[k].as_array().cloned().unwrap_or_default())
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect()
    }

    /// The line naming the agents a group's change reaches (text and Markdown).
    fn affects_line(&self) -> Option<String> {
        let group = self.group.as_ref()?;
        let folder = self
            .path()
            .trim_end_matches(MANIFEST_FILE)
            .trim_end_matches('/');
        Some(if self.affects.is_empty() {
            format!("no agent takes the changed keys of shared group {group} ({folder})")
        } else {
            // At most twenty agents on the line (all of them are in the JSON).
            let mut names = self
                .affects
                .iter()
                .take(20)
                .map(|(agent, keys)| format!("{agent} ({})", keys.join(", ")))
                .collect::<Vec<_>>()
                .join(", ");
            if self.affects.len() > 20 {
                names.push_str(&format!(" and {} more", self.affects.len() - 20));
            }
            format!(
                "shared group {group} ({folder}) is the cause of changes to {} agent(s): {names}",
                self.affects.len(),
            )
        })
    }
}

/// How to read both sides: the identities that decrypt them and the fingerprints they show.
pub struct Reader<'a> {
    pub identities: &'a Identities,
    pub fp: &'a Fingerprinter,
}

impl Reader<'_> {
    /// The redacted view of `path` on `side` (`None`: absent). A manifest that cannot be
    /// decrypted becomes a one-line notice; `.env.example` holds placeholders, never values,
    /// and is shown as it is.
    fn view(
        &self,
        side: &Checkout,
        path: &Path,
        manifest: bool,
    ) -> Result<Option<String>, SourceError> {
        let Some(bytes) = side.tree().read(path)? else {
            return Ok(None);
        };
        Ok(Some(if manifest {
            decrypted_view(self.identities, self.fp, &bytes, path)
                .unwrap_or_else(|notice| format!("# castsync: {notice}\n"))
        } else {
            String::from_utf8_lossy(&bytes).into_owned()
        }))
    }
}

/// Every file that differs between `old` and `new`: each agent's manifest and
/// `.env.example`, then each shared group's manifest with the agents its change reaches. Each
/// side is read with its own config: the agents directory may have moved between them.
pub fn between(
    old: &Checkout,
    new: &Checkout,
    reader: &Reader<'_>,
) -> Result<Vec<FileDiff>, SourceError> {
    let (mut diffs, uses) = agent_diffs(old, new, reader)?;
    diffs.extend(group_diffs(old, new, reader, &uses)?);
    Ok(diffs)
}

/// Which shared groups (and keys) each agent takes, on the newer side.
type Uses = BTreeMap<String, Vec<redacted::UsedGroup>>;

fn agent_diffs(
    old: &Checkout,
    new: &Checkout,
    reader: &Reader<'_>,
) -> Result<(Vec<FileDiff>, Uses), SourceError> {
    let mut agents = old.agents.clone();
    agents.extend(new.agents.iter().cloned());
    agents.sort();
    agents.dedup();
    let mut diffs = Vec::new();
    let mut uses = Uses::new();
    for agent in &agents {
        for file in [MANIFEST_FILE, SCHEMA_FILE] {
            let path_of = |side: &Checkout| side.config.agents_dir.join(agent).join(file);
            let (path_a, path_b) = (path_of(old), path_of(new));
            let manifest = file == MANIFEST_FILE;
            let a = reader.view(old, &path_a, manifest)?;
            let b = reader.view(new, &path_b, manifest)?;
            if manifest && let Some(view) = &b {
                uses.insert(agent.clone(), redacted::uses_of(view));
            }
            if a == b {
                continue;
            }
            diffs.push(FileDiff {
                agent: agent.clone(),
                group: None,
                affects: Vec::new(),
                old_path: path_a.display().to_string(),
                new_path: path_b.display().to_string(),
                old: a,
                new: b,
                manifest,
            });
        }
    }
    Ok((diffs, uses))
}

fn group_diffs(
    old: &Checkout,
    new: &Checkout,
    reader: &Reader<'_>,
    uses: &Uses,
) -> Result<Vec<FileDiff>, SourceError> {
    let mut groups = group_names(old.tree(), &old.config)?;
    groups.extend(group_names(new.tree(), &new.config)?);
    groups.sort();
    groups.dedup();
    let mut diffs = Vec::new();
    for group in &groups {
        let path_of = |side: &Checkout| group_manifest_path(&side.config, group);
        let (path_a, path_b) = (path_of(old), path_of(new));
        let (a, b) = (
            reader.view(old, &path_a, true)?,
            reader.view(new, &path_b, true)?,
        );
        if a == b {
            continue;
        }
        let mut d = FileDiff {
            agent: String::new(),
            group: Some(group.clone()),
            affects: Vec::new(),
            old_path: path_a.display().to_string(),
            new_path: path_b.display().to_string(),
            old: a,
            new: b,
            manifest: true,
        };
        let touched = d.touched_keys();
        for (agent, used) in uses {
            for (_, keys) in used.iter().filter(|(g, _)| g == group) {
                let hit: Vec<String> = touched
                    .iter()
                    .filter(|k| keys.as_ref().is_none_or(|ks| ks.contains(k)))
                    .cloned()
                    .collect();
                if !hit.is_empty() {
                    d.affects.push((agent.clone(), hit));
                }
            }
        }
        diffs.push(d);
    }
    Ok(diffs)
}

/// The unified diffs, each group's followed by the line naming the agents it reaches.
pub fn text(diffs: &[FileDiff], old_rev: &str, new_label: &str) -> String {
    let mut out = String::new();
    for d in diffs {
        out.push_str(&d.unified(old_rev, new_label));
        if let Some(line) = d.affects_line() {
            out.push_str(&format!("# castsync: {line}\n"));
        }
    }
    out
}

/// The `-o json` document.
pub fn json(diffs: &[FileDiff], old_rev: &str, new_label: &str) -> serde_json::Value {
    let files: Vec<serde_json::Value> = diffs
        .iter()
        .map(|d| {
            let mut file = serde_json::json!({
                "agent": (d.group.is_none()).then_some(&d.agent),
                "path": d.path(),
                "status": d.status(),
                "keys": d.keys(),
                "diff": d.unified(old_rev, new_label),
            });
            if let Some(group) = &d.group {
                file["group"] = serde_json::json!(group);
                file["affects"] = d
                    .affects
                    .iter()
                    .map(|(agent, keys)| serde_json::json!({ "agent": agent, "keys": keys }))
                    .collect();
            }
            file
        })
        .collect();
    serde_json::json!({
        "format_version": DIFF_FORMAT_VERSION,
        "from": old_rev,
        "to": new_label,
        "has_changes": !diffs.is_empty(),
        "files": files,
    })
}

/// A section per file with its diff fenced, for a pull request.
pub fn markdown(diffs: &[FileDiff], old_rev: &str, new_label: &str) -> String {
    let mut out = String::new();
    if diffs.is_empty() {
        out.push_str(&format!(
            "No differences between {} and {}.\n",
            md_escape(old_rev),
            md_escape(new_label)
        ));
    }
    for d in diffs {
        // A fence longer than any backtick run in the text, so nothing closes it early.
        let text = d.unified(old_rev, new_label);
        let fence = "`".repeat(longest_backtick_run(&text).max(2) + 1);
        out.push_str(&format!(
            "#### {} ({})\n\n{fence}diff\n{}{fence}\n\n",
            md_escape(d.path()),
            d.status(),
            text
        ));
        if let Some(line) = d.affects_line() {
            out.push_str(&format!("{}\n\n", md_escape(&line)));
        }
    }
    out
}

fn longest_backtick_run(text: &str) -> usize {
    text.split(|c| c != '`').map(str::len).max().unwrap_or(0)
}
