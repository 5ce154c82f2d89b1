//! `castsync diff --env A --env B`: two environments compared by key, never by value (see
//! `render::compare`): keys one has and the other lacks, and values an overlay sets that are
//! the same in both.

use std::collections::{BTreeMap, BTreeSet};

use super::{Exit, Repo};
use crate::authoring::AgentFiles;
use crate::cli::{DiffArgs, GlobalArgs, OutputFormat};
use crate::crypto::Identities;
use crate::environment::Environment;
use crate::hint::WithHint;
use crate::load::{AgentLoad, load_all};
use crate::manifest::Kind;
use crate::render::compare::{self, Overlaid};
use crate::render::redacted::Fingerprinter;

pub(super) fn run(global: &GlobalArgs, args: &DiffArgs) -> anyhow::Result<Exit> {
    let repo = Repo::open(global)?;
    let envs = repo.config().environments_in_run(&args.envs)?;
    let [a, b] = &envs[..] else {
        return Err(WithHint::new(
            format!(
                "diff --env compares two environments, and {} distinct one(s) were given",
                envs.len()
            ),
            "pass --env twice, e.g. castsync diff --env staging --env production",
        )
        .into());
    };
    if args.rev_a.is_some() || args.rev_b.is_some() {
        return Err(WithHint::new(
            "diff --env compares the worktree's environments, not revisions",
            "leave out the revisions, or the --env flags",
        )
        .into());
    }
    let identities = repo.identities()?;
    let fp = Fingerprinter::for_identities(&identities).ok_or_else(|| {
        WithHint::new(
            "no identity found: castsync diff decrypts both environments",
            "pass -i FILE, set CASTSYNC_AGE_KEY, or run `castsync keygen`",
        )
    })?;
    let none = BTreeSet::new();
    let load =
        |env: &Environment| load_all(repo.checkout.tree(), repo.config(), env, &identities, &none);
    let (loaded_a, loaded_b) = (load(a)?, load(b)?);
    let overlaid = [a, b].map(|env| {
        let loaded = if env == a { &loaded_a } else { &loaded_b };
        overlaid(&repo, env, &identities, &loaded.agents)
    });
    let cmps = compare::compare(
        &fp,
        &loaded_a.agents,
        &loaded_b.agents,
        [&overlaid[0], &overlaid[1]],
    );
    let names = [a, b].map(|e| e.name().unwrap_or_default());
    match args.output {
        OutputFormat::Json => {
            super::print_out(format_args!("{:#}\n", compare::json(&cmps, names)))?
        }
        _ => super::print_out(compare::text(&cmps, names))?,
    }
    let unreadable = cmps
        .iter()
        .any(|c| c.unreadable.iter().any(Option::is_some));
    let found = cmps
        .iter()
        .any(|c| c.only.iter().any(|o| !o.is_empty()) || !c.same.is_empty());
    Ok(if unreadable {
        Exit::Failure
    } else if args.exit_code && found {
        Exit::Changes
    } else {
        Exit::Success
    })
}

/// The keys `env`'s overlays set for each agent that loaded: its own overlay's, and those
/// it takes from a shared group whose overlay sets them.
fn overlaid(
    repo: &Repo,
    env: &Environment,
    ids: &Identities,
    agents: &BTreeMap<String, AgentLoad>,
) -> Overlaid {
    let keys_of = |kind: Kind, name: &str| -> BTreeSet<String> {
        AgentFiles::of_kind(&repo.root, repo.config(), kind, name)
            .ok()
            .and_then(|files| files.in_env(env).open(ids).ok().flatten())
            .map(|m| m.secrets.into_keys().collect())
            .unwrap_or_default()
    };
    let mut group_keys: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut out = Overlaid::new();
    for (agent, load) in agents {
        let Some(effective) = &load.effective else {
            continue;
        };
        let mut keys = keys_of(Kind::Agent, agent);
        for (key, group) in &effective.origins {
            let set = group_keys
                .entry(group.clone())
                .or_insert_with(|| keys_of(Kind::Group, group));
            if set.contains(key) {
                keys.insert(key.clone());
            }
        }
        out.insert(agent.clone(), keys);
    }
    out
}
