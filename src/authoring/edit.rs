//! What `castsync edit` does with the text the editor saved: judge it by the rules every
//! manifest follows (a shared group's change also from the side of the agents that use it),
//! and write it unless it changes no key or value. `editor` runs the editor itself.

use std::collections::BTreeSet;

use super::{AgentFiles, AuthoringError, Replace, dependents};
use crate::crypto::Identities;
use crate::manifest::{Kind, Manifest};

/// What the edited text came to.
#[derive(Debug)]
pub enum Judged {
    /// A valid manifest, and the notes for the author (warnings, keys still missing).
    Accepted {
        manifest: Manifest,
        notes: Vec<String>,
    },
    /// Why it cannot be saved, one line each (`error: …`), to show before the editor reopens.
    Rejected(Vec<String>),
}

/// Judges the edited text (`None`: it is not UTF-8) of the manifest that held `original`
/// (`None`: it did not parse).
pub fn judge(
    files: &AgentFiles<'_>,
    original: Option<&Manifest>,
    edited: Option<&str>,
    identities: &Identities,
) -> Result<Judged, AuthoringError> {
    let Some(text) = edited else {
        return Ok(Judged::Rejected(vec![format!(
            "error: {}: the edited text is not UTF-8",
            files.shown()
        )]));
    };
    let verdict = files.judge(text, identities);
    let manifest = match (verdict.blocking.is_empty(), verdict.manifest.clone()) {
        (true, Some(manifest)) => manifest,
        _ => {
            let problems = verdict.blocking.iter().map(ToString::to_string).collect();
            return Ok(Judged::Rejected(problems));
        }
    };
    let mut notes = verdict.notes(files);
    // A shared group's change is judged by the agents that use it too.
    if files.kind == Kind::Group && original != Some(&manifest) {
        match dependents::check(files, &manifest, identities) {
            Ok(more) => notes.extend(more),
            Err(AuthoringError::Refused { problems, .. }) => {
                let problems = problems.iter().map(|p| format!("error: {p}")).collect();
                return Ok(Judged::Rejected(problems));
            }
            Err(e) => return Err(e),
        }
    }
    Ok(Judged::Accepted { manifest, notes })
}

/// What saving an accepted edit did.
#[derive(Debug, PartialEq, Eq)]
pub enum Saved {
    /// No key or value changed: the file was not rewritten.
    Unchanged,
    /// The file was rewritten: what changed (key names only), and a recipient warning.
    Written {
        changes: String,
        note: Option<String>,
    },
}

/// Writes an accepted edit over `original`, unless it changes no key or value.
pub fn save(
    files: &AgentFiles<'_>,
    original: Option<&Manifest>,
    mut manifest: Manifest,
    identities: &Identities,
) -> Result<Saved, AuthoringError> {
    let same = original.is_some_and(|o| {
        o.agent == manifest.agent && o.uses == manifest.uses && o.secrets == manifest.secrets
    });
    if same {
        return Ok(Saved::Unchanged);
    }
    let note = files.save(&mut manifest, identities, Replace::Existing)?;
    Ok(Saved::Written {
        changes: changes(original, &manifest),
        note,
    })
}

/// "added A; changed B; removed C" — key names only.
fn changes(before: Option<&Manifest>, after: &Manifest) -> String {
    let Some(before) = before else {
        return format!("{} key(s)", after.secrets.len());
    };
    let old: BTreeSet<&String> = before.secrets.keys().collect();
    let new: BTreeSet<&String> = after.secrets.keys().collect();
    let join = |keys: Vec<&String>| {
        keys.iter()
            .map(|k| k.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let added: Vec<&String> = new.difference(&old).copied().collect();
    let removed: Vec<&String> = old.difference(&new).copied().collect();
    let changed: Vec<&String> = new
        .intersection(&old)
        .copied()
        .filter(|k| before.secrets.get(*k) != after.secrets.get(*k))
        .collect();
    let mut parts = Vec::new();
    if before.uses != after.uses {
        parts.push("changed uses".to_owned());
    }
    for (label, keys) in [("added", added), ("changed", changed), ("removed", removed)] {
        if !keys.is_empty() {
            parts.push(format!("{label} {}", join(keys)));
        }
    }
    if parts.is_empty() {
        "keys and values unchanged".to_owned()
    } else {
        parts.join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::SecretValue;

    #[test]
    fn the_change_summary_names_keys_and_never_values() {
        let mut before = Manifest::new("a");
        before.secrets.insert("KEEP".into(), SecretValue::new("v1"));
        before
            .secrets
            .insert("ROTATE".into(), SecretValue::new("canary-old"));
        before.secrets.insert("DROP".into(), SecretValue::new("v3"));
        let mut after = before.clone();
        after.secrets.remove("DROP");
        after
            .secrets
            .insert("ROTATE".into(), SecretValue::new("canary-new"));
        after.secrets.insert("NEW".into(), SecretValue::new("v4"));
        let summary = changes(Some(&before), &after);
        assert_eq!(summary, "added NEW; changed ROTATE; removed DROP");
        assert!(!summary.contains("canary"));
    }
}
