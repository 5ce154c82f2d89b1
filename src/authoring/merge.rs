//! Three-way merge of one agent's manifest, key by key: what `castsync merge-driver` does when
//! git finds that two branches both changed the same encrypted file, which no line-based merge
//! can open.
//!
//! [`merge`] is a pure function of three decrypted manifests (the common ancestor, ours,
//! theirs); [`driver`] decrypts the versions git hands over, calls it, and encrypts the result.
//! The merge must never guess: a key both sides changed differently, a key one side changed
//! and the other deleted, or two different `agent:` bindings are a conflict, never a pick.
//! A conflict names keys, never values. The `castsync:` metadata block is not merged: the
//! result is encrypted again and its recipient record recomputed.

pub mod driver;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::manifest::Manifest;

/// A clean merge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreeWay {
    /// The merged manifest, bound to the agent both sides name, with no metadata block.
    pub manifest: Manifest,
    /// Keys whose result is a change only our side made (added, changed or deleted).
    pub from_ours: Vec<String>,
    /// Keys whose result is a change only their side made.
    pub from_theirs: Vec<String>,
}

/// How one key conflicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConflictKind {
    /// There was no such key in the common ancestor; both sides added it, with different
    /// values.
    BothAdded,
    /// Both sides changed the key, to different values.
    BothChanged,
    /// Our side changed the key; their side deleted it.
    OursChangedTheirsDeleted,
    /// Our side deleted the key; their side changed it.
    OursDeletedTheirsChanged,
}

impl fmt::Display for ConflictKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConflictKind::BothAdded => "added on both sides with different values",
            ConflictKind::BothChanged => "changed on both sides to different values",
            ConflictKind::OursChangedTheirsDeleted => "changed on our side, deleted on theirs",
            ConflictKind::OursDeletedTheirsChanged => "deleted on our side, changed on theirs",
        })
    }
}

/// One conflicting key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyConflict {
    pub key: String,
    pub kind: ConflictKind,
}

/// Why the versions do not merge. Holds names only, never a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflicts {
    /// The `agent:` of our side and of theirs, when they differ.
    pub binding: Option<(String, String)>,
    /// The conflicting keys, sorted.
    pub keys: Vec<KeyConflict>,
    /// Both sides changed the agent's `uses:` block, differently (it merges as a whole).
    pub uses: bool,
    /// Keys whose change on their side alone would have merged cleanly. A conflict leaves our
    /// version as it is, so these changes are not in it either: whoever settles the conflict
    /// has to bring them over too.
    pub unapplied: Vec<String>,
}

impl fmt::Display for Conflicts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some((ours, theirs)) = &self.binding {
            parts.push(format!(
                "the two versions belong to different agents (`agent: {ours}` on our side, `agent: {theirs}` on theirs)"
            ));
        }
        if self.uses {
            parts.push("the `uses:` block changed on both sides, differently".to_owned());
        }
        for conflict in &self.keys {
            parts.push(format!("key {} {}", conflict.key, conflict.kind));
        }
        f.write_str(&parts.join("; "))
    }
}

/// Merges `ours` and `theirs`, two versions of one agent's manifest, key by key against
/// their common ancestor `base` (`None` when there is none: both sides added the file).
///
/// For each key: when both sides hold the same (value or absence), that is the result; when
/// one side left the key as the ancestor had it, the other side's change (add, change or
/// delete) is the result; otherwise the key conflicts. The two sides must name the same
/// agent. The ancestor's own `agent:` and the metadata blocks of all three are ignored.
pub fn merge(
    base: Option<&Manifest>,
    ours: &Manifest,
    theirs: &Manifest,
) -> Result<ThreeWay, Conflicts> {
    let no_keys = BTreeMap::new();
    let ancestor = base.map_or(&no_keys, |b| &b.secrets);
    let keys: BTreeSet<&String> = ancestor
        .keys()
        .chain(ours.secrets.keys())
        .chain(theirs.secrets.keys())
        .collect();

    let mut secrets = BTreeMap::new();
    let mut from_ours = Vec::new();
    let mut from_theirs = Vec::new();
    let mut conflicts = Vec::new();
    for key in keys {
        let (o, a, b) = (
            ancestor.get(key),
            ours.secrets.get(key),
            theirs.secrets.get(key),
        );
        let result = if a == b {
            a
        } else if a == o {
            from_theirs.push(key.clone());
            b
        } else if b == o {
            from_ours.push(key.clone());
            a
        } else {
            // Here a != b, a != o and b != o: at most one side lacks the key.
            let kind = match (o, a, b) {
                (_, None, _) => ConflictKind::OursDeletedTheirsChanged,
                (_, _, None) => ConflictKind::OursChangedTheirsDeleted,
                (None, _, _) => ConflictKind::BothAdded,
                (Some(_), _, _) => ConflictKind::BothChanged,
            };
            conflicts.push(KeyConflict {
                key: key.clone(),
                kind,
            });
            continue;
        };
        if let Some(value) = result {
            secrets.insert(key.clone(), value.clone());
        }
    }

    // `uses:` (an agent's shared groups) merges as one unit, like a key: a change on one
    // side is taken, different changes on both sides conflict.
    let base_uses = base.map(|b| &b.uses);
    let uses = if ours.uses == theirs.uses || Some(&ours.uses) == base_uses {
        Some(theirs.uses.clone())
    } else if Some(&theirs.uses) == base_uses || (base.is_none() && theirs.uses.is_empty()) {
        Some(ours.uses.clone())
    } else if base.is_none() && ours.uses.is_empty() {
        Some(theirs.uses.clone())
    } else {
        None
    };

    let binding = (ours.agent != theirs.agent
        || ours.kind != theirs.kind
        || ours.environment != theirs.environment)
        .then(|| (ours.agent.clone(), theirs.agent.clone()));
    if binding.is_some() || !conflicts.is_empty() || uses.is_none() {
        return Err(Conflicts {
            binding,
            keys: conflicts,
            uses: uses.is_none(),
            unapplied: from_theirs,
        });
    }
    Ok(ThreeWay {
        manifest: Manifest {
            agent: ours.agent.clone(),
            kind: ours.kind,
            environment: ours.environment.clone(),
            uses: uses.unwrap_or_default(),
            secrets,
            meta: None,
        },
        from_ours,
        from_theirs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Metadata;
    use crate::secret::SecretValue;

    fn m(agent: &str, secrets: &[(&str, &str)]) -> Manifest {
        let mut m = Manifest::new(agent);
        m.secrets = secrets
            .iter()
            .map(|(k, v)| ((*k).to_owned(), SecretValue::new(*v)))
            .collect();
        m
    }

    fn names(keys: &[&str]) -> Vec<String> {
        keys.iter().map(|k| (*k).to_owned()).collect()
    }

    fn conflict(key: &str, kind: ConflictKind) -> KeyConflict {
        KeyConflict {
            key: key.to_owned(),
            kind,
        }
    }

    #[test]
    fn changes_to_different_keys_are_both_taken() {
        let base = m("bot", &[("A", "a0"), ("B", "b0"), ("C", "c0")]);
        let ours = m("bot", &[("A", "a1"), ("B", "b0"), ("C", "c0")]);
        let theirs = m("bot", &[("A", "a0"), ("B", "b2"), ("C", "c0")]);
        let merged = merge(Some(&base), &ours, &theirs).unwrap();
        assert_eq!(
            merged.manifest,
            m("bot", &[("A", "a1"), ("B", "b2"), ("C", "c0")])
        );
        assert_eq!(merged.from_ours, names(&["A"]));
        assert_eq!(merged.from_theirs, names(&["B"]));
    }

    #[test]
    fn additions_and_deletions_on_one_side_are_taken() {
        let base = m("bot", &[("A", "a0"), ("B", "b0")]);
        let ours = m("bot", &[("A", "a0"), ("B", "b0"), ("NEW", "n1")]);
        let theirs = m("bot", &[("B", "b0")]);
        let merged = merge(Some(&base), &ours, &theirs).unwrap();
        assert_eq!(merged.manifest, m("bot", &[("B", "b0"), ("NEW", "n1")]));
        assert_eq!(merged.from_ours, names(&["NEW"]));
        assert_eq!(merged.from_theirs, names(&["A"]));
    }

    #[test]
    fn the_same_change_on_both_sides_is_taken_once_and_credited_to_neither() {
        let base = m("bot", &[("A", "a0"), ("GONE", "g0")]);
        let both = m("bot", &[("A", "a1"), ("ADDED", "x")]);
        let merged = merge(Some(&base), &both, &both.clone()).unwrap();
        assert_eq!(merged.manifest, both);
        assert!(merged.from_ours.is_empty() && merged.from_theirs.is_empty());
    }

    #[test]
    fn different_changes_to_one_key_conflict_and_nothing_is_picked() {
        let base = m("bot", &[("A", "a0"), ("B", "b0"), ("C", "c0")]);
        let ours = m("bot", &[("A", "a1"), ("B", "b0"), ("C", "c1")]);
        let theirs = m("bot", &[("A", "a2"), ("B", "b2"), ("C", "c0")]);
        let conflicts = merge(Some(&base), &ours, &theirs).unwrap_err();
        assert_eq!(conflicts.binding, None);
        assert_eq!(
            conflicts.keys,
            vec![conflict("A", ConflictKind::BothChanged)]
        );
        assert_eq!(conflicts.unapplied, names(&["B"]));
    }

    #[test]
    fn a_change_against_a_deletion_conflicts_either_way_round() {
        let base = m("bot", &[("A", "a0"), ("B", "b0")]);
        let ours = m("bot", &[("A", "a1")]);
        let theirs = m("bot", &[("B", "b2")]);
        let conflicts = merge(Some(&base), &ours, &theirs).unwrap_err();
        assert_eq!(
            conflicts.keys,
            vec![
                conflict("A", ConflictKind::OursChangedTheirsDeleted),
                conflict("B", ConflictKind::OursDeletedTheirsChanged),
            ]
        );
    }

    #[test]
    fn without_an_ancestor_keys_on_one_side_are_added_and_different_values_conflict() {
        let ours = m("bot", &[("A", "same"), ("B", "b1"), ("ONLY_OURS", "o")]);
        let theirs = m("bot", &[("A", "same"), ("B", "b2"), ("ONLY_THEIRS", "t")]);
        let conflicts = merge(None, &ours, &theirs).unwrap_err();
        assert_eq!(conflicts.keys, vec![conflict("B", ConflictKind::BothAdded)]);
        assert_eq!(conflicts.unapplied, names(&["ONLY_THEIRS"]));

        let theirs = m("bot", &[("A", "same"), ("ONLY_THEIRS", "t")]);
        let ours = m("bot", &[("A", "same"), ("ONLY_OURS", "o")]);
        let merged = merge(None, &ours, &theirs).unwrap();
        assert_eq!(
            merged.manifest,
            m(
                "bot",
                &[("A", "same"), ("ONLY_OURS", "o"), ("ONLY_THEIRS", "t")]
            )
        );
    }

    #[test]
    fn different_agent_bindings_conflict_even_when_the_keys_merge() {
        let base = m("bot", &[("A", "a0")]);
        let ours = m("bot", &[("A", "a0")]);
        let theirs = m("billing", &[("A", "a0")]);
        let conflicts = merge(Some(&base), &ours, &theirs).unwrap_err();
        assert_eq!(
            conflicts.binding,
            Some(("bot".to_owned(), "billing".to_owned()))
        );
        assert!(conflicts.keys.is_empty());
        assert!(
            conflicts.to_string().contains("`agent: billing` on theirs"),
            "{conflicts}"
        );
    }

    #[test]
    fn the_ancestors_binding_and_every_metadata_block_are_ignored() {
        let mut base = m("old-name", &[("A", "a0")]);
        base.meta = Some(Metadata {
            recipients: vec!["age1old".to_owned()],
        });
        let mut ours = m("bot", &[("A", "a1")]);
        ours.meta = Some(Metadata {
            recipients: vec!["age1ours".to_owned()],
        });
        let theirs = m("bot", &[("A", "a0"), ("B", "b")]);
        let merged = merge(Some(&base), &ours, &theirs).unwrap();
        assert_eq!(merged.manifest, m("bot", &[("A", "a1"), ("B", "b")]));
        assert_eq!(merged.manifest.meta, None);
    }

    #[test]
    fn a_conflict_report_names_keys_and_never_values() {
        let base = m("bot", &[("TOKEN", "canary-base-value")]);
        let ours = m("bot", &[("TOKEN", "canary-ours-value")]);
        let theirs = m("bot", &[("TOKEN", "canary-theirs-value")]);
        let conflicts = merge(Some(&base), &ours, &theirs).unwrap_err();
        let shown = format!("{conflicts} {conflicts:?}");
        assert!(shown.contains("key TOKEN changed on both sides"), "{shown}");
        assert!(!shown.contains("canary"), "{shown}");
    }
}
