//! A change to a shared group, seen from the agents that use it. `set --shared`, `unset
//! --shared` and `edit --shared` judge every agent that uses the group against the group's new
//! content before anything is written: a change that would break an agent (a key it takes
//! removed, a key it also defines added, a value equal to its schema's placeholder) is refused
//! with each agent's problem on its own line, so that a group change can never quietly take an
//! agent off the platform's reconcile.
//!
//! Agents the author cannot decrypt are named in a warning, not checked; problems an agent
//! already had before the change do not block it.

use std::collections::BTreeSet;

use zeroize::Zeroizing;

use super::{AgentFiles, AuthoringError};
use crate::crypto::Identities;
use crate::finding::Finding;
use crate::load::shared::SharedGroups;
use crate::manifest::Manifest;
use crate::source::Worktree;

/// Checks the agents that use `files`' group against `new` (the group's next content) in
/// every environment the change reaches: an overlay's own environment, or, for the file every
/// environment shares, each of them (with that environment's overlay of the group laid over
/// the new content). Returns notes for the author: who uses the group, who could not be
/// checked.
pub(super) fn check(
    files: &AgentFiles<'_>,
    new: &Manifest,
    ids: &Identities,
) -> Result<Vec<String>, AuthoringError> {
    let tree = Worktree::new(files.root);
    let source_error = |e: crate::source::SourceError| AuthoringError::Source(Box::new(e));
    let slugs = crate::source::agent_slugs(&tree, files.config).map_err(source_error)?;
    let mut seen = Seen::default();
    if files.is_overlay() {
        // An overlay's next content is what the group holds in its environment: the file
        // every environment shares with the overlay laid over it.
        let mut next = files.base().require(ids)?;
        next.secrets.extend(new.secrets.clone());
        check_in(files, &tree, &slugs, next, ids, &mut seen)?;
    } else {
        for env in files.config.all_environments() {
            let in_env = files.base().in_env(&env);
            let mut next = new.clone();
            if in_env.is_overlay() {
                match in_env.open(ids) {
                    Ok(Some(overlay)) => next.secrets.extend(overlay.secrets),
                    Ok(None) => {}
                    Err(_) => {
                        seen.environments_unchecked.push(env.to_string());
                        continue;
                    }
                }
            }
            check_in(&in_env, &tree, &slugs, next, ids, &mut seen)?;
        }
    }
    let Seen {
        users,
        unchecked,
        problems,
        environments_unchecked,
    } = seen;
    let users: Vec<String> = users.into_iter().collect();
    let unchecked: Vec<String> = unchecked.into_iter().collect();
    if !problems.is_empty() {
        return Err(AuthoringError::Refused {
            path: files.shown.clone(),
            problems,
        });
    }
    let mut notes = Vec::new();
    if users.is_empty() && unchecked.is_empty() {
        notes.push(format!(
            "warning: no agent uses shared group {group} yet: add `uses: [{group}]` (every key) or `uses: {{{group}: [KEY]}}` to the agents that need it (`castsync edit AGENT`)",
            group = files.slug
        ));
    } else if !users.is_empty() {
        notes.push(format!(
            "note: used by {} agent(s), {}: one `castsync reconcile` updates them all",
            users.len(),
            some_names(&users)
        ));
    }
    if !unchecked.is_empty() {
        notes.push(format!(
            "warning: could not check {} agent(s), {}, against the change (their manifests do not decrypt with your identities); `castsync validate` by one of their recipients will",
            unchecked.len(),
            some_names(&unchecked)
        ));
    }
    if !environments_unchecked.is_empty() {
        notes.push(format!(
            "warning: could not check environment(s) {} against the change (the group's overlay there does not decrypt with your identities); `castsync validate` by one of its recipients will",
            environments_unchecked.join(", ")
        ));
    }
    Ok(notes)
}

/// What the check found, over every environment it looked in.
#[derive(Default)]
struct Seen {
    users: BTreeSet<String>,
    unchecked: BTreeSet<String>,
    problems: Vec<String>,
    environments_unchecked: Vec<String>,
}

/// The agents of `slugs` that use `files`' group, judged in `files`' environment with the
/// group as it is and as `next` would make it.
fn check_in(
    files: &AgentFiles<'_>,
    tree: &Worktree,
    slugs: &[String],
    next: Manifest,
    ids: &Identities,
    seen: &mut Seen,
) -> Result<(), AuthoringError> {
    let source_error = |e: crate::source::SourceError| AuthoringError::Source(Box::new(e));
    let env = &files.env;
    let before = SharedGroups::read(tree, files.config, env, ids).map_err(source_error)?;
    let after = SharedGroups::read(tree, files.config, env, ids)
        .map_err(source_error)?
        .with_override(&files.slug, next, files.shown.clone());
    for slug in slugs {
        let (agent, text, manifest) = match view(files, slug, ids) {
            View::Judge(judged) => *judged,
            View::Skip => continue,
            View::Unreadable => {
                seen.unchecked.insert(slug.clone());
                continue;
            }
        };
        if !manifest.uses.contains_key(&files.slug) {
            continue;
        }
        seen.users.insert(slug.clone());
        // What `validate` would fail the agent for: errors, and required keys it would lack.
        let blocking = |groups: &SharedGroups<'_>| -> BTreeSet<String> {
            let verdict = agent.judge_with(&text, groups, super::Verdict::empty(), ids);
            let missing = verdict.missing.iter().map(|key| {
                format!(
                    "{}: key {key}: required by {} but it would no longer get it",
                    agent.schema_shown().display(),
                    crate::schema::FILE_NAME
                )
            });
            verdict
                .blocking
                .iter()
                .map(Finding::text)
                .chain(missing)
                .collect()
        };
        let had = blocking(&before);
        for problem in blocking(&after).difference(&had) {
            seen.problems.push(format!(
                "would break agent {slug}{}: {problem}",
                env.suffix()
            ));
        }
    }
    Ok(())
}

/// What the check sees of one agent.
enum View<'r> {
    /// Nothing to check: no manifest, or one that fails on its own (`validate` names it).
    Skip,
    /// Its manifest (or its overlay in the environment) does not decrypt with the author's
    /// identities.
    Unreadable,
    /// The files to judge (the agent's overlay in the environment, when it has one), their
    /// text, and the agent's own manifest (whose `uses:` says whether it takes the group).
    Judge(Box<(AgentFiles<'r>, Zeroizing<String>, Manifest)>),
}

/// Agent `slug` as the environment of `files` sees it.
fn view<'r>(files: &AgentFiles<'r>, slug: &str, ids: &Identities) -> View<'r> {
    let Ok(agent) = AgentFiles::new(files.root, files.config, slug) else {
        return View::Skip;
    };
    let text = match agent.decrypt(ids) {
        Ok(Some(text)) => text,
        Ok(None) => return View::Skip,
        Err(_) => return View::Unreadable,
    };
    let Ok(manifest) = agent.parse(&text) else {
        return View::Skip;
    };
    let overlay = agent.base().in_env(&files.env);
    if !overlay.is_overlay() {
        return View::Judge(Box::new((agent, text, manifest)));
    }
    match overlay.decrypt(ids) {
        Ok(Some(overlay_text)) => View::Judge(Box::new((overlay, overlay_text, manifest))),
        Ok(None) => View::Judge(Box::new((agent, text, manifest))),
        Err(_) => View::Unreadable,
    }
}

/// At most ten names, then how many more: a group may serve hundreds of agents.
fn some_names(names: &[String]) -> String {
    const SHOWN: usize = 10;
    let mut out = names
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > SHOWN {
        out.push_str(&format!(" and {} more", names.len() - SHOWN));
    }
    out
}
