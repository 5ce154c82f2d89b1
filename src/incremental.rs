//! Which agents a reconcile refreshes when it is asked to refresh only what changed
//! (`reconcile --changed`, the daemon on a new commit): those whose inputs
//! (`source::inputs`) differ from a baseline — what the state recorded after each agent last
//! converged, or another revision's inputs (`--since REF`). An agent the state knows nothing
//! about (new, never applied, or whose last run failed) is always refreshed.
//!
//! It is a pure function of digests, so it can be tested without a tree or a server. It must
//! never leave out an agent it cannot prove unchanged: without a usable baseline every agent
//! is refreshed, and the coverage says why in one line.

use std::collections::{BTreeMap, BTreeSet};

use crate::plan::{Coverage, CoverageMode, Since};
use crate::source::inputs::{AgentInputs, GroupDigests, well_formed};
use crate::state::AppliedFrom;

/// What the current inputs are compared with.
#[derive(Debug, Clone, Copy)]
pub enum Baseline<'a> {
    /// The state's records for the platform; `gap` says why it has none, when it has none.
    /// `groups` holds the shared group files' digests now (`None` when they cannot be
    /// listed: then every agent that used a group is refreshed).
    State {
        records: Option<&'a BTreeMap<String, AppliedFrom>>,
        gap: Option<&'a str>,
        groups: Option<&'a GroupDigests>,
    },
    /// The inputs at another revision (`--since REF`), labelled by its commit id, with the
    /// shared group files' digests now and there (or why they cannot be listed).
    Revision {
        label: &'a str,
        inputs: &'a BTreeMap<String, AgentInputs>,
        groups: Result<&'a GroupDigests, &'a String>,
        groups_then: Result<&'a GroupDigests, &'a String>,
    },
    /// No baseline can be read (e.g. the `--since` revision's config is broken).
    Unreadable { reason: &'a str },
}

/// The agents to refresh, and what the plan should say about the others.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    pub refresh: BTreeSet<String>,
    pub coverage: Coverage,
}

impl Selection {
    /// Every candidate, as a run without `--changed` does it.
    pub fn all(candidates: &[String]) -> Selection {
        Selection {
            refresh: candidates.iter().cloned().collect(),
            coverage: Coverage::default(),
        }
    }

    /// Every candidate, because `reason` leaves no way to tell what changed.
    fn full(candidates: &[String], reason: String) -> Selection {
        Selection {
            refresh: candidates.iter().cloned().collect(),
            coverage: Coverage {
                mode: CoverageMode::Full,
                full_reason: Some(reason),
                ..Coverage::default()
            },
        }
    }
}

/// How one agent compares with the baseline.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Compared<'a> {
    /// Same manifest, schema and settings; last refreshed at this revision and time.
    Unchanged {
        revision: &'a str,
        at: Option<&'a str>,
    },
    /// The manifest or the schema changed (or the agent is new to the baseline, or a file
    /// of it cannot be read now).
    Changed,
    /// Only the settings that bear on it changed.
    SettingsChanged,
    /// The baseline's record of it cannot be read.
    Unreadable,
}

fn compare_record<'a>(
    now: &AgentInputs,
    record: Option<&'a AppliedFrom>,
    groups: Option<&GroupDigests>,
) -> Compared<'a> {
    let Some(record) = record else {
        return Compared::Changed;
    };
    // A shared group it used changed (or is gone, or cannot be read now).
    let group_now = |g: &str| groups.and_then(|all| all.get(g)).and_then(Option::as_deref);
    let same_files = now.manifest.as_deref() == Some(record.manifest.as_str())
        && now.schema.as_deref() == Some(record.schema.as_str())
        && record
            .groups
            .iter()
            .all(|(g, then)| group_now(g) == Some(then.as_str()));
    // Digests equal to today's are well formed (today's are): only a record that differs
    // needs reading closely.
    if same_files && now.settings == record.settings {
        return Compared::Unchanged {
            revision: &record.revision,
            at: Some(&record.at),
        };
    }
    if ![&record.manifest, &record.schema, &record.settings]
        .into_iter()
        .chain(record.groups.values())
        .all(|d| well_formed(d))
    {
        return Compared::Unreadable;
    }
    if same_files {
        Compared::SettingsChanged
    } else {
        Compared::Changed
    }
}

fn compare_inputs<'a>(
    now: &AgentInputs,
    then: Option<&AgentInputs>,
    label: &'a str,
) -> Compared<'a> {
    let Some(then) = then else {
        return Compared::Changed;
    };
    if now.manifest.is_none()
        || now.schema.is_none()
        || now.manifest != then.manifest
        || now.schema != then.schema
    {
        return Compared::Changed;
    }
    if now.settings != then.settings {
        return Compared::SettingsChanged;
    }
    Compared::Unchanged {
        revision: label,
        at: None,
    }
}

/// Why every agent is refreshed against another revision: a shared group file differs (which
/// agents use a group is written only in their encrypted manifests, and a revision records
/// nothing of it), or the groups cannot be listed at one of the two.
fn groups_changed(
    now: Result<&GroupDigests, &String>,
    then: Result<&GroupDigests, &String>,
    label: &str,
) -> Option<String> {
    match (now, then) {
        (Ok(now), Ok(then)) if now == then => None,
        (Ok(now), Ok(then)) => {
            let changed: BTreeSet<&str> = now
                .keys()
                .chain(then.keys())
                .filter(|g| now.get(*g) != then.get(*g))
                .map(String::as_str)
                .collect();
            let changed: Vec<&str> = changed.into_iter().collect();
            Some(format!(
                "shared group {} changed since {label} (which agents use it is written in their encrypted manifests)",
                changed.join(", ")
            ))
        }
        (Err(why), _) | (_, Err(why)) => Some(format!("the shared groups cannot be listed: {why}")),
    }
}

/// Chooses the agents to refresh among `candidates` (the run's agents, after `--agent`).
/// `current` holds each candidate's inputs now.
pub fn select(
    candidates: &[String],
    current: &BTreeMap<String, AgentInputs>,
    baseline: Baseline<'_>,
) -> Selection {
    if let Baseline::Revision {
        label,
        groups,
        groups_then,
        ..
    } = baseline
        && let Some(reason) = groups_changed(groups, groups_then, label)
    {
        return Selection::full(candidates, reason);
    }
    let compared: Vec<(&String, Compared)> = match baseline {
        Baseline::Unreadable { reason } => {
            return Selection::full(candidates, reason.to_owned());
        }
        Baseline::State {
            records: None, gap, ..
        } => {
            let reason = gap.unwrap_or("the state records no applied agent yet");
            return Selection::full(candidates, reason.to_owned());
        }
        Baseline::State {
            records: Some(records),
            groups,
            ..
        } => candidates
            .iter()
            .map(|a| match current.get(a) {
                Some(now) => (a, compare_record(now, records.get(a), groups)),
                None => (a, Compared::Changed),
            })
            .collect(),
        Baseline::Revision { label, inputs, .. } => candidates
            .iter()
            .map(|a| match current.get(a) {
                Some(now) => (a, compare_inputs(now, inputs.get(a), label)),
                None => (a, Compared::Changed),
            })
            .collect(),
    };

    // A record that does not read as this build writes it means the state was written by
    // something else: none of its records is trusted.
    if let Some((agent, _)) = compared.iter().find(|(_, c)| *c == Compared::Unreadable) {
        return Selection::full(
            candidates,
            format!(
                "the state's record of what {agent} was applied from cannot be read (written by another castsync?)"
            ),
        );
    }
    if !compared.is_empty()
        && compared
            .iter()
            .all(|(_, c)| *c == Compared::SettingsChanged)
    {
        return Selection::full(
            candidates,
            "castsync.yaml (or a flag) changed settings that bear on every agent (prune, strict, unmanaged_keys, max_delete_fraction, self_heal or redeploy)"
                .to_owned(),
        );
    }

    let mut refresh = BTreeSet::new();
    let mut unrefreshed = Vec::new();
    let mut oldest: Option<(Option<&str>, &str)> = None;
    let mut revisions = BTreeSet::new();
    for (agent, c) in compared {
        match c {
            Compared::Unchanged { revision, at } => {
                unrefreshed.push(agent.clone());
                revisions.insert(revision);
                // RFC 3339 UTC times written by one clock compare as text.
                if oldest.as_ref().is_none_or(|(t, _)| at < *t) {
                    oldest = Some((at, revision));
                }
            }
            _ => {
                refresh.insert(agent.clone());
            }
        }
    }
    Selection {
        refresh,
        coverage: Coverage {
            mode: CoverageMode::Changed,
            full_reason: None,
            unrefreshed,
            since: oldest.map(|(at, revision)| Since {
                revision: revision.to_owned(),
                at: at.map(str::to_owned),
                uniform: revisions.len() == 1,
            }),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::inputs::ABSENT;

    fn digest(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    fn inputs(m: char, settings: char) -> AgentInputs {
        AgentInputs {
            manifest: Some(digest(m)),
            schema: Some(ABSENT.to_owned()),
            settings: digest(settings),
            groups: Some(BTreeMap::new()),
        }
    }

    fn record(i: &AgentInputs, revision: &str, at: &str) -> AppliedFrom {
        i.record(revision, at).unwrap()
    }

    /// Every agent with the same inputs.
    fn all_with(agents: &[String], m: char, settings: char) -> BTreeMap<String, AgentInputs> {
        agents
            .iter()
            .map(|a| (a.clone(), inputs(m, settings)))
            .collect()
    }

    /// The records of `now`, all at revision c1.
    fn recorded(now: &BTreeMap<String, AgentInputs>, at: &str) -> BTreeMap<String, AppliedFrom> {
        now.iter()
            .map(|(a, i)| (a.clone(), record(i, "c1", at)))
            .collect()
    }

    /// A state file holding `records` and no group digests.
    fn state(records: &BTreeMap<String, AppliedFrom>) -> Baseline<'_> {
        Baseline::State {
            records: Some(records),
            gap: None,
            groups: None,
        }
    }

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("agent-{i}")).collect()
    }

    #[test]
    fn only_agents_whose_inputs_changed_or_that_are_unknown_are_refreshed() {
        let agents = names(4);
        let mut now: BTreeMap<String, AgentInputs> = all_with(&agents, 'a', 'c');
        let mut records: BTreeMap<String, AppliedFrom> = recorded(&now, "2026-01-01T00:00:00Z");
        now.insert("agent-1".into(), inputs('b', 'c')); // a new manifest
        records.remove("agent-2"); // failed last time, or never applied
        records.insert(
            "agent-3".into(),
            record(&inputs('a', 'c'), "c0", "2025-12-31T00:00:00Z"),
        );
        let s = select(&agents, &now, state(&records));
        assert_eq!(
            s.refresh,
            BTreeSet::from(["agent-1".to_owned(), "agent-2".to_owned()])
        );
        assert_eq!(s.coverage.mode, CoverageMode::Changed);
        assert_eq!(s.coverage.unrefreshed, ["agent-0", "agent-3"]);
        let since = s.coverage.since.unwrap();
        assert_eq!(since.revision, "c0", "the oldest refresh");
        assert!(!since.uniform);
    }

    #[test]
    fn without_records_every_agent_is_refreshed_and_the_reason_given() {
        let agents = names(3);
        let now = all_with(&agents, 'a', 'c');
        let s = select(
            &agents,
            &now,
            Baseline::State {
                records: None,
                gap: Some("no state file yet"),
                groups: None,
            },
        );
        assert_eq!(s.refresh.len(), 3);
        assert_eq!(s.coverage.mode, CoverageMode::Full);
        assert_eq!(s.coverage.full_reason.as_deref(), Some("no state file yet"));
    }

    #[test]
    fn a_settings_change_for_every_agent_is_a_full_reconcile_said_once() {
        let agents = names(3);
        let before: BTreeMap<String, AppliedFrom> = agents
            .iter()
            .map(|a| (a.clone(), record(&inputs('a', 'c'), "c1", "t")))
            .collect();
        let now = all_with(&agents, 'a', 'd');
        let s = select(&agents, &now, state(&before));
        assert_eq!(s.refresh.len(), 3);
        assert!(
            s.coverage
                .full_reason
                .as_deref()
                .is_some_and(|r| r.contains("castsync.yaml")),
            "{:?}",
            s.coverage
        );
    }

    #[test]
    fn one_unreadable_record_distrusts_the_whole_state() {
        let agents = names(2);
        let now: BTreeMap<String, AgentInputs> = all_with(&agents, 'a', 'c');
        let mut records: BTreeMap<String, AppliedFrom> = recorded(&now, "t");
        records.get_mut("agent-1").unwrap().manifest = "md5:0".into();
        let s = select(&agents, &now, state(&records));
        assert_eq!(s.refresh.len(), 2);
        assert!(
            s.coverage
                .full_reason
                .unwrap()
                .contains("agent-1 was applied from cannot be read")
        );
    }

    #[test]
    fn an_unreadable_current_file_is_refreshed_never_skipped() {
        let agents = names(2);
        let mut now: BTreeMap<String, AgentInputs> = all_with(&agents, 'a', 'c');
        let records: BTreeMap<String, AppliedFrom> = recorded(&now, "t");
        now.get_mut("agent-0").unwrap().manifest = None;
        now.get_mut("agent-1").unwrap().schema = None;
        let s = select(&agents, &now, state(&records));
        assert_eq!(s.refresh.len(), 2);
        assert_eq!(s.coverage.full_reason, None);
    }

    #[test]
    fn since_a_revision_compares_with_its_inputs_and_new_agents_are_refreshed() {
        let agents = names(3);
        let then: BTreeMap<String, AgentInputs> = agents[..2]
            .iter()
            .map(|a| (a.clone(), inputs('a', 'c')))
            .collect();
        let mut now: BTreeMap<String, AgentInputs> = all_with(&agents, 'a', 'c');
        now.insert("agent-0".into(), inputs('z', 'c'));
        let no_groups = GroupDigests::new();
        let s = select(
            &agents,
            &now,
            Baseline::Revision {
                label: "abc123",
                inputs: &then,
                groups: Ok(&no_groups),
                groups_then: Ok(&no_groups),
            },
        );
        assert_eq!(
            s.refresh,
            BTreeSet::from(["agent-0".to_owned(), "agent-2".to_owned()])
        );
        assert_eq!(s.coverage.unrefreshed, ["agent-1"]);
        let since = s.coverage.since.unwrap();
        assert_eq!((since.revision.as_str(), since.uniform), ("abc123", true));

        let s = select(&agents, &now, Baseline::Unreadable { reason: "broken" });
        assert_eq!(s.refresh.len(), 3);
        assert_eq!(s.coverage.full_reason.as_deref(), Some("broken"));
    }

    #[test]
    fn an_agent_is_refreshed_when_a_shared_group_it_used_changed_and_only_then() {
        let agents = names(3);
        let now: BTreeMap<String, AgentInputs> = all_with(&agents, 'a', 'c');
        let mut records: BTreeMap<String, AppliedFrom> = recorded(&now, "t");
        records
            .get_mut("agent-0")
            .unwrap()
            .groups
            .insert("openai".into(), digest('1'));
        records
            .get_mut("agent-1")
            .unwrap()
            .groups
            .insert("stripe".into(), digest('2'));
        let select_with = |groups: &GroupDigests| {
            select(
                &agents,
                &now,
                Baseline::State {
                    records: Some(&records),
                    gap: None,
                    groups: Some(groups),
                },
            )
        };
        let same = GroupDigests::from([
            ("openai".into(), Some(digest('1'))),
            ("stripe".into(), Some(digest('2'))),
        ]);
        assert!(select_with(&same).refresh.is_empty());
        let rotated = GroupDigests::from([
            ("openai".into(), Some(digest('9'))),
            ("stripe".into(), Some(digest('2'))),
        ]);
        assert_eq!(
            select_with(&rotated).refresh,
            BTreeSet::from(["agent-0".to_owned()])
        );
        let gone = GroupDigests::from([("openai".into(), Some(digest('1')))]);
        assert_eq!(
            select_with(&gone).refresh,
            BTreeSet::from(["agent-1".to_owned()])
        );
        let unreadable = GroupDigests::from([
            ("openai".into(), None),
            ("stripe".into(), Some(digest('2'))),
        ]);
        assert_eq!(
            select_with(&unreadable).refresh,
            BTreeSet::from(["agent-0".to_owned()])
        );
    }

    #[test]
    fn since_a_revision_a_changed_or_unlistable_group_refreshes_every_agent_and_names_it() {
        let agents = names(3);
        let now = all_with(&agents, 'a', 'c');
        let then = now.clone();
        let group = |d: char| GroupDigests::from([("openai".to_owned(), Some(digest(d)))]);
        let (before, after) = (group('1'), group('2'));
        let since = |groups, groups_then| {
            select(
                &agents,
                &now,
                Baseline::Revision {
                    label: "abc123",
                    inputs: &then,
                    groups,
                    groups_then,
                },
            )
        };
        assert!(since(Ok(&before), Ok(&before)).refresh.is_empty());
        let rotated = since(Ok(&after), Ok(&before));
        assert_eq!(rotated.refresh.len(), 3);
        assert_eq!(
            rotated.coverage.full_reason.as_deref(),
            Some(
                "shared group openai changed since abc123 (which agents use it is written in their encrypted manifests)"
            )
        );
        let why = "cannot read shared".to_owned();
        let unlistable = since(Ok(&before), Err(&why));
        assert_eq!(unlistable.refresh.len(), 3);
        assert!(
            unlistable
                .coverage
                .full_reason
                .is_some_and(|r| r.contains("cannot read shared"))
        );
    }
}
