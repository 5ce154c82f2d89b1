//! `castsync diff --env A --env B`: two environments' effective values compared by key —
//! keys one environment has and the other lacks, and values that are the same in both where
//! an environment's overlay sets them (a production secret reused in staging is a finding; a
//! key both take from the file they share is the same by design, and is not). Values are never shown: a reused value
//! is named by its key and a keyed fingerprint (HMAC with a key derived from the reader's
//! identity, see [`super::redacted::Fingerprinter`]), the same on both sides only when the
//! values are equal, and useless to anyone without that identity.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde_json::json;

use super::redacted::Fingerprinter;
use crate::load::AgentLoad;

/// One agent in two environments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentComparison {
    pub agent: String,
    /// The keys only the first environment has, and those only the second has.
    pub only: [Vec<String>; 2],
    /// Keys whose value is the same in both, with the value's keyed fingerprint.
    pub same: Vec<(String, String)>,
    /// Why an environment's values could not be read (it is not compared then).
    pub unreadable: [Option<String>; 2],
}

impl AgentComparison {
    fn is_clean(&self) -> bool {
        self.only.iter().all(Vec::is_empty)
            && self.same.is_empty()
            && self.unreadable.iter().all(Option::is_none)
    }
}

/// Each agent's keys that an environment's overlays set (its own, or a shared group's it
/// takes the key from).
pub type Overlaid = BTreeMap<String, BTreeSet<String>>;

/// Compares each agent of two environments' loads (`a` and `b`, by agent); `overlaid` says
/// which keys each environment's overlays set.
pub fn compare(
    fp: &Fingerprinter,
    a: &BTreeMap<String, AgentLoad>,
    b: &BTreeMap<String, AgentLoad>,
    overlaid: [&Overlaid; 2],
) -> Vec<AgentComparison> {
    let mut agents: Vec<&String> = a.keys().chain(b.keys()).collect();
    agents.sort();
    agents.dedup();
    agents
        .into_iter()
        .map(|agent| {
            let sides = [a.get(agent), b.get(agent)];
            let secrets = sides.map(|s| s.and_then(AgentLoad::secrets));
            let unreadable = sides.map(|s| match s {
                None => Some("not in this environment".to_owned()),
                Some(load) => load.failure().map(|f| f.message),
            });
            let mut cmp = AgentComparison {
                agent: agent.clone(),
                only: [Vec::new(), Vec::new()],
                same: Vec::new(),
                unreadable,
            };
            if let [Some(x), Some(y)] = secrets {
                cmp.only[0] = x.keys().filter(|k| !y.contains_key(*k)).cloned().collect();
                cmp.only[1] = y.keys().filter(|k| !x.contains_key(*k)).cloned().collect();
                let set_here = |k: &String| {
                    overlaid
                        .iter()
                        .any(|o| o.get(agent).is_some_and(|keys| keys.contains(k)))
                };
                cmp.same = x
                    .iter()
                    .filter(|(k, v)| y.get(*k) == Some(v) && set_here(k))
                    .map(|(k, v)| (k.clone(), fp.of(k, v.expose())))
                    .collect();
            }
            cmp
        })
        .collect()
}

/// The comparison for people: one block per agent with findings, then a summary.
pub fn text(cmps: &[AgentComparison], envs: [&str; 2]) -> String {
    let mut out = format!(
        "castsync diff of environments {} and {} (values are never shown; a fingerprint stands for a value)\n",
        envs[0], envs[1]
    );
    let mut found = 0;
    for cmp in cmps.iter().filter(|c| !c.is_clean()) {
        found += 1;
        let _ = writeln!(out, "\n{}", crate::escape::terminal(&cmp.agent));
        for (i, env) in envs.iter().enumerate() {
            if let Some(why) = &cmp.unreadable[i] {
                let _ = writeln!(out, "  cannot read {env}: {}", crate::escape::terminal(why));
            }
            if !cmp.only[i].is_empty() {
                let _ = writeln!(out, "  only in {env}: {}", cmp.only[i].join(", "));
            }
        }
        for (key, fingerprint) in &cmp.same {
            let _ = writeln!(
                out,
                "  same value in {} and {}: {key} (fingerprint {fingerprint})",
                envs[0], envs[1]
            );
        }
    }
    let _ = writeln!(
        out,
        "\n{} of {} agent(s) differ in keys, share a value or could not be read.",
        found,
        cmps.len()
    );
    out
}

/// `diff --env A --env B -o json` (schemas/compare.schema.json).
pub fn json(cmps: &[AgentComparison], envs: [&str; 2]) -> serde_json::Value {
    let agents: Vec<serde_json::Value> = cmps
        .iter()
        .map(|c| {
            json!({
                "agent": c.agent,
                "only_in": { envs[0]: c.only[0], envs[1]: c.only[1] },
                "same_value": c.same.iter().map(|(k, f)| json!({"key": k, "fingerprint": f})).collect::<Vec<_>>(),
                "unreadable": { envs[0]: c.unreadable[0], envs[1]: c.unreadable[1] },
            })
        })
        .collect();
    json!({
        "format_version": 1,
        "environments": envs,
        "has_findings": cmps.iter().any(|c| !c.is_clean()),
        "agents": agents,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_names_keys_and_fingerprints_only() {
        let cmp = AgentComparison {
            agent: "bot".into(),
            only: [vec!["DEBUG".into()], vec!["SENTRY".into()]],
            same: vec![("STRIPE".into(), "0123456789ab".into())],
            unreadable: [None, None],
        };
        let text = text(&[cmp], ["staging", "production"]);
        assert!(text.contains("  only in staging: DEBUG\n"), "{text}");
        assert!(text.contains("  only in production: SENTRY\n"), "{text}");
        assert!(
            text.contains(
                "same value in staging and production: STRIPE (fingerprint 0123456789ab)"
            ),
            "{text}"
        );
    }
}
