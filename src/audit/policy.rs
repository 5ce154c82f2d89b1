//! Which rotation period applies to a key: its `# rotate:` comment in the agent's
//! `.env.example`, else the `rotate_after` of the agent's `access` rule, else the top-level
//! `rotate_after`. A shared group's key takes the shortest period among the group's own and
//! the `# rotate:` comments of the agents that use the group and declare the key.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use super::model::SourceKind;
use crate::config::{Config, Period};
use crate::schema::EnvSchema;
use crate::source::{SCHEMA_FILE, Tree};

/// Every key's period, read once.
#[derive(Default)]
pub struct Policies {
    /// `# rotate:` comments: (agent, key) → period and where.
    annotated: HashMap<(String, String), (Period, String)>,
    /// group → key → the shortest `# rotate:` of the agents using it.
    via_agents: HashMap<String, BTreeMap<String, (Period, String)>>,
    config: Config,
}

impl Policies {
    /// Reads the `.env.example` of each agent of `tree`; `uses` is each agent's shared groups.
    /// A schema that does not parse is a note (its comments are not read).
    pub fn read(
        tree: &dyn Tree,
        config: &Config,
        uses: &BTreeMap<String, Vec<String>>,
        notes: &mut Vec<String>,
    ) -> Policies {
        let mut policies = Policies {
            config: config.clone(),
            ..Policies::default()
        };
        let agents = crate::source::agent_slugs(tree, config).unwrap_or_default();
        for agent in agents {
            let path = config.agents_dir.join(&agent).join(SCHEMA_FILE);
            let Some(schema) = read_schema(tree, &path, notes) else {
                continue;
            };
            for entry in &schema.entries {
                let Some(period) = entry.rotate else { continue };
                let from = format!("{}:{}", path.display(), entry.line);
                policies
                    .annotated
                    .insert((agent.clone(), entry.key.clone()), (period, from.clone()));
                for group in uses.get(&agent).into_iter().flatten() {
                    let keys = policies.via_agents.entry(group.clone()).or_default();
                    let shorter = keys.get(&entry.key).is_none_or(|(p, _)| period < *p);
                    if shorter {
                        keys.insert(entry.key.clone(), (period, from.clone()));
                    }
                }
            }
        }
        policies
    }

    /// The period of `key` of an agent or a group, and where it was set.
    pub fn of(&self, kind: SourceKind, name: &str, key: &str) -> Option<(Period, String)> {
        let in_config =
            |(period, field): (Period, String)| (period, format!("castsync.yaml {field}"));
        match kind {
            SourceKind::Agent => self
                .annotated
                .get(&(name.to_owned(), key.to_owned()))
                .cloned()
                .or_else(|| self.config.rotate_after_for(name).map(in_config)),
            SourceKind::Group => {
                let own = self.config.rotate_after_for_group(name).map(in_config);
                let via = self
                    .via_agents
                    .get(name)
                    .and_then(|keys| keys.get(key))
                    .cloned();
                match (own, via) {
                    (Some(a), Some(b)) => Some(if b.0 < a.0 { b } else { a }),
                    (a, b) => a.or(b),
                }
            }
        }
    }
}

fn read_schema(tree: &dyn Tree, path: &Path, notes: &mut Vec<String>) -> Option<EnvSchema> {
    let bytes = match tree.read(path) {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return None,
        Err(e) => {
            notes.push(format!("{e} (its rotation comments were not read)"));
            return None;
        }
    };
    let text = String::from_utf8(bytes).ok()?;
    match EnvSchema::parse(&text, path) {
        Ok(schema) => Some(schema),
        Err(e) => {
            notes.push(format!("{e} (its rotation comments were not read)"));
            None
        }
    }
}
