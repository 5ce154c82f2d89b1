//! Plans and apply reports as text (like `terraform plan`, [`text`]), JSON ([`json`],
//! `schemas/plan.schema.json`) and Markdown ([`markdown`]); and what the other commands show:
//! the apply's console ([`progress`]), redacted manifests ([`redacted`], [`diff`]), the
//! doctor's, rekey's and history's reports.
//!
//! Renderers see key names, actions and reasons only: a [`Plan`] holds no values, so nothing
//! here can print one. Skip reasons are error messages, which are built without values.
//!
//! Key names the platform lists, its error details and directory names are outside text:
//! text output shows their control characters as escapes and Markdown output escapes them
//! for Markdown and HTML (`crate::escape`); JSON output keeps them exact.

pub mod compare;
pub mod diff;
pub mod doctor;
pub mod git_setup;
pub mod history;
pub mod json;
pub mod markdown;
pub mod outcome;
pub mod progress;
pub mod redacted;
pub mod rekey;
pub mod text;

use std::fmt::Write as _;

pub use json::{PLAN_FORMAT_VERSION, apply_json, plan_json};
pub use markdown::{MARKDOWN_BUDGET, plan_markdown};
pub use text::{apply_text, plan_text};

use crate::escape::terminal;
use crate::plan::{Action, Change, Coverage, CoverageMode, Plan, Since, Totals};

/// The formats of plans and reports (`-o text|json|markdown`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
    Markdown,
}

/// Where the plan came from and how to decorate it.
#[derive(Debug, Clone, Default)]
pub struct RenderContext {
    /// Platform id (base URL or `local://…`).
    pub platform: String,
    /// Source revision (commit id, or `worktree`).
    pub revision: Option<String>,
    /// `--base` revision, when planning for a pull request.
    pub base: Option<String>,
    pub dry_run: bool,
    /// ANSI colour (only on a terminal, never with `NO_COLOR`).
    pub color: bool,
    /// Warnings from loading the sources (lowercase keys, missing schemas, …).
    pub warnings: Vec<String>,
    /// The environment planned (`None`: a repository without environments, whose output
    /// does not mention any).
    pub environment: Option<String>,
}

/// `~ KEY (value changed, from shared/openai)`: the sign and the text of one change; a key
/// taken from a shared group names the group as the cause. The key and the group's path are
/// escaped for a terminal (and so also for a line of a code block: they never hold a line
/// break).
pub(crate) fn change_line(change: &Change) -> (char, String) {
    let key = terminal(&change.key);
    let from = change
        .from
        .as_ref()
        .map(|o| format!("from {}", terminal(&o.path)));
    let with = |reason: Option<&str>| {
        let parts: Vec<&str> = reason.into_iter().chain(from.as_deref()).collect();
        if parts.is_empty() {
            key.clone().into_owned()
        } else {
            format!("{key} ({})", parts.join(", "))
        }
    };
    match change.action {
        Action::Create => ('+', with(None)),
        Action::Update(reason) => ('~', with(Some(reason.describe()))),
        Action::Replace => ('~', with(Some("replace requested"))),
        Action::Delete => ('-', key.clone().into_owned()),
    }
}

/// At most `n` names, then how many more there are.
pub(crate) fn first_names<S: AsRef<str>>(list: impl IntoIterator<Item = S>, n: usize) -> String {
    let list: Vec<S> = list.into_iter().collect();
    let mut out = list
        .iter()
        .take(n)
        .map(AsRef::as_ref)
        .collect::<Vec<_>>()
        .join(", ");
    if list.len() > n {
        let _ = write!(out, " and {} more", list.len() - n);
    }
    out
}

pub(crate) fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// The one line a plan carries when some key lists came without timestamps.
pub fn drift_note(blind: &[&str]) -> Option<String> {
    if blind.is_empty() {
        return None;
    }
    Some(format!(
        "the platform lists no timestamps, so a value changed there outside castsync is not seen ({} agent{} with keys in sync); `--replace-all` rewrites values.",
        blind.len(),
        plural(blind.len())
    ))
}

/// Where a refresh came from, as people read it: a commit id shortened to 7 characters, or
/// (for a working tree, which has no id) `the worktree run of TIME`.
fn refreshed_at(since: &Since) -> String {
    let r = &since.revision;
    if r.len() >= 40 && r.bytes().all(|b| b.is_ascii_hexdigit()) {
        return r[..7].to_owned();
    }
    match &since.at {
        Some(at) => format!("the {r} run of {at}"),
        None => r.clone(),
    }
}

/// The one line a plan carries when it did not refresh every agent of the run
/// (`997 agents unchanged since 1a2b3c4, not refreshed`), or when a run asked to refresh
/// only changed agents refreshed every one (`full reconcile: …`). None otherwise.
pub fn coverage_line(coverage: &Coverage) -> Option<String> {
    if let Some(reason) = &coverage.full_reason {
        return Some(format!("full reconcile: {reason}"));
    }
    let n = coverage.unrefreshed.len();
    if coverage.mode != CoverageMode::Changed || n == 0 {
        return None;
    }
    let agents = format!("{n} agent{}", plural(n));
    Some(match &coverage.since {
        Some(since) if since.uniform => format!(
            "{agents} unchanged since {}, not refreshed",
            refreshed_at(since)
        ),
        Some(since) => format!(
            "{agents} unchanged since their last refresh (the oldest at {}), not refreshed",
            refreshed_at(since)
        ),
        None => format!("{agents} unchanged, not refreshed"),
    })
}

/// "Shared groups behind these changes: shared/openai (3 agents)", when any change comes from
/// a shared group: a pull request that rotates a shared key shows the group as the cause.
pub fn shared_causes(plan: &Plan) -> Option<String> {
    let mut groups: std::collections::BTreeMap<&str, std::collections::BTreeSet<&str>> =
        Default::default();
    for agent in &plan.agents {
        for change in &agent.changes {
            if let Some(from) = &change.from {
                groups
                    .entry(from.path.as_str())
                    .or_default()
                    .insert(agent.agent.as_str());
            }
        }
    }
    if groups.is_empty() {
        return None;
    }
    let parts: Vec<String> = groups
        .iter()
        .map(|(path, agents)| {
            // At most ten names: a group may serve hundreds of agents.
            let names = first_names(agents.iter(), 10);
            format!(
                "{path} ({} agent{}: {names})",
                agents.len(),
                plural(agents.len()),
            )
        })
        .collect();
    Some(format!(
        "Shared groups behind these changes: {}.",
        parts.join("; ")
    ))
}

/// `Plan: 1 to create, 2 to update, 0 to delete, 5 unchanged.` (+ replaces, redeploys,
/// skipped agents)
pub fn totals_line(t: &Totals) -> String {
    let replace = if t.replace > 0 {
        format!(", {} to replace", t.replace)
    } else {
        String::new()
    };
    let mut s = format!(
        "{} to create, {} to update{replace}, {} to delete, {} unchanged",
        t.create, t.update, t.delete, t.unchanged
    );
    if t.redeploy > 0 {
        let _ = write!(
            s,
            "; {} agent{} to redeploy",
            t.redeploy,
            plural(t.redeploy)
        );
    }
    if t.skipped_agents > 0 {
        let _ = write!(
            s,
            "; {} agent{} skipped",
            t.skipped_agents,
            if t.skipped_agents == 1 { "" } else { "s" }
        );
    }
    s
}

/// Escapes text for a Markdown paragraph, table cell or HTML element.
pub(crate) fn md_escape(s: &str) -> String {
    crate::escape::markdown(s)
}

#[cfg(test)]
mod tests;
