//! Plans and apply reports as text (like `terraform plan`), JSON and Markdown.
//!
//! Renderers see key names, actions and reasons only: a [`Plan`] holds no values, so nothing
//! here can print one. Skip reasons are error messages, which are built without values.
//!
//! Key names the platform lists, its error details and directory names are outside text:
//! text output shows their control characters as escapes and Markdown output escapes them
//! for Markdown and HTML (`crate::escape`); JSON output keeps them exact.

use std::fmt::Write as _;

use serde_json::json;

use crate::apply::{AgentResult, ApplyReport, Redeployed};
use crate::deadline::TimedOut;
use crate::escape::{code_line, code_span, terminal};

pub mod diff;
pub mod doctor;
pub mod history;
pub mod redacted;
pub mod rekey;
use crate::plan::{
    Action, AgentPlan, Change, Coverage, CoverageMode, Plan, RedeployReason, Since, SkipReason,
    Totals,
};
use crate::platform::PlatformError;

/// The `--output json` format version; bump on incompatible changes.
pub const PLAN_FORMAT_VERSION: u32 = 1;

/// GitHub refuses comments over 65,536 characters; stay well under.
pub const MARKDOWN_BUDGET: usize = 60_000;

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

struct Paint(bool);

impl Paint {
    fn wrap(&self, code: &str, s: &str) -> String {
        if self.0 {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_owned()
        }
    }
    fn green(&self, s: &str) -> String {
        self.wrap("32", s)
    }
    fn yellow(&self, s: &str) -> String {
        self.wrap("33", s)
    }
    fn red(&self, s: &str) -> String {
        self.wrap("31", s)
    }
    fn bold(&self, s: &str) -> String {
        self.wrap("1", s)
    }
}

/// `~ KEY (value changed, from shared/openai)`: the sign and the text of one change; a key
/// taken from a shared group names the group as the cause. The key and the group's path are
/// escaped for a terminal (and so also for a line of a code block: they never hold a line
/// break).
fn change_line(change: &Change) -> (char, String) {
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

/// A skip reason for a terminal: castsync's own load messages keep their detail lines (the
/// identities looked for, say); a list failure carries the platform's words, kept to one
/// line. The hint is not part of it (see [`hint_line`]).
fn reason_text(reason: &crate::plan::SkipReason) -> String {
    let text = reason.to_string();
    match reason {
        crate::plan::SkipReason::LoadFailed { .. } => {
            crate::escape::terminal_lines(&text).into_owned()
        }
        _ => terminal(&text).into_owned(),
    }
}

/// A platform that refused the connection refuses it for every agent: said once, with the
/// agents it left skipped, instead of once per agent. Returns the agents it covered.
fn unreachable_text(out: &mut String, plan: &Plan, p: &Paint) -> Vec<String> {
    let mut first = None;
    let mut agents = Vec::new();
    for agent in &plan.agents {
        if let Some(error @ PlatformError::Unreachable { .. }) =
            agent.skipped.as_ref().and_then(SkipReason::platform_error)
        {
            first.get_or_insert(error);
            agents.push(agent.agent.clone());
        }
    }
    let Some(error) = first else {
        return agents;
    };
    let _ = writeln!(out, "{} {}", p.red("!"), terminal(&error.to_string()));
    let _ = writeln!(
        out,
        "      {} agent{} skipped, nothing changed: {}",
        agents.len(),
        plural(agents.len()),
        terminal(&first_names(&agents, 10))
    );
    hint_line(
        out,
        crate::hint::Hinted::hint(error).map(|h| h.into_owned()),
    );
    out.push('\n');
    agents
}

/// At most `n` names, then how many more there are.
fn first_names<S: AsRef<str>>(list: impl IntoIterator<Item = S>, n: usize) -> String {
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

/// A list of names for a terminal.
fn names(list: &[String]) -> String {
    list.iter()
        .map(|n| terminal(n).into_owned())
        .collect::<Vec<_>>()
        .join(", ")
}

fn plural(n: usize) -> &'static str {
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

/// `      hint: …` under an agent's error line, when castsync knows the fix.
fn hint_line(out: &mut String, hint: Option<String>) {
    if let Some(hint) = hint {
        let _ = writeln!(out, "{}", crate::hint::line("      ", &hint));
    }
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

/// The plan as text.
pub fn plan_text(plan: &Plan, ctx: &RenderContext) -> String {
    let p = Paint(ctx.color);
    let mut out = String::new();
    for w in &ctx.warnings {
        let _ = writeln!(
            out,
            "{} {}",
            p.yellow("warning:"),
            crate::escape::terminal_lines(w)
        );
    }
    if !ctx.warnings.is_empty() {
        out.push('\n');
    }
    let _ = writeln!(
        out,
        "castsync plan for {}{}{}{}",
        ctx.environment
            .as_deref()
            .map(|e| format!("environment {e} at "))
            .unwrap_or_default(),
        terminal(&ctx.platform),
        ctx.revision
            .as_deref()
            .map(|r| format!(" from {}", terminal(r)))
            .unwrap_or_default(),
        ctx.base
            .as_deref()
            .map(|b| format!(" (base {})", terminal(b)))
            .unwrap_or_default()
    );
    out.push('\n');
    let unreachable = unreachable_text(&mut out, plan, &p);
    for agent in plan
        .agents
        .iter()
        .filter(|a| !unreachable.contains(&a.agent))
    {
        agent_text(&mut out, agent, &p);
    }
    let totals = plan.totals();
    if !out.ends_with("\n\n") {
        out.push('\n');
    }
    if let Some(note) = drift_note(&plan.drift_unseen()) {
        let _ = writeln!(out, "note: {note}");
    }
    let partial = plan.coverage.mode == CoverageMode::Changed;
    if let Some(line) = coverage_line(&plan.coverage) {
        let _ = writeln!(out, "{line}.");
    }
    if !plan.has_changes() && !plan.has_skips() && partial {
        let _ = writeln!(
            out,
            "{} The refreshed agents match git ({} keys in sync).",
            p.bold("No changes."),
            totals.unchanged
        );
    } else if !plan.has_changes() && !plan.has_skips() {
        let _ = writeln!(
            out,
            "{} The platform matches git ({} keys in sync).",
            p.bold("No changes."),
            totals.unchanged
        );
    } else {
        let _ = writeln!(out, "{} {}.", p.bold("Plan:"), totals_line(&totals));
    }
    out
}

fn agent_text(out: &mut String, agent: &AgentPlan, p: &Paint) {
    let name = terminal(&agent.agent);
    if let Some(reason) = &agent.skipped {
        let _ = writeln!(
            out,
            "{} {name}: skipped, nothing changed: {}",
            p.red("!"),
            reason_text(reason)
        );
        hint_line(out, reason.hint());
        out.push('\n');
        return;
    }
    if !agent.has_work() {
        let _ = write!(
            out,
            "  {name}: no changes ({} in sync)",
            agent.unchanged.len()
        );
    } else {
        let _ = write!(out, "  {}:", p.bold(&name));
    }
    out.push('\n');
    for change in &agent.changes {
        let (sign, text) = change_line(change);
        let painted = match sign {
            '+' => p.green(&format!("{sign} {text}")),
            '-' => p.red(&format!("{sign} {text}")),
            _ => p.yellow(&format!("{sign} {text}")),
        };
        let _ = writeln!(out, "      {painted}");
    }
    for key in &agent.drift_ignored {
        let _ = writeln!(
            out,
            "      {} {} (drifted; not fixed because self_heal is false)",
            p.yellow("?"),
            terminal(key)
        );
    }
    if !agent.kept.is_empty() {
        let _ = writeln!(out, "      kept (prune is off): {}", names(&agent.kept));
    }
    match agent.redeploy {
        Some(RedeployReason::Changes) => {
            let _ = writeln!(out, "      redeploy: after these changes land");
        }
        Some(RedeployReason::Pending) => {
            let _ = writeln!(
                out,
                "      redeploy: owed by an earlier run whose redeploy did not succeed"
            );
        }
        None => {}
    }
    if agent.has_work() || !agent.drift_ignored.is_empty() || !agent.kept.is_empty() {
        out.push('\n');
    }
}

/// The plan as JSON (`schemas/plan.schema.json`).
pub fn plan_json(plan: &Plan, ctx: &RenderContext) -> serde_json::Value {
    let agents: Vec<_> = plan
        .agents
        .iter()
        .map(|a| {
            let status = if a.skipped.is_some() {
                "skipped"
            } else if a.has_work() {
                "changes"
            } else {
                "in-sync"
            };
            let mut v = json!({
                "agent": a.agent,
                "status": status,
                "changes": a.changes,
                "unchanged": a.unchanged,
                "drift_ignored": a.drift_ignored,
                "kept": a.kept,
                "unmanaged": a.unmanaged,
                "redeploy": a.redeploy,
            });
            if let Some(reason) = &a.skipped {
                let mut skip = serde_json::to_value(reason).unwrap_or_default();
                skip["message"] = json!(reason.to_string());
                skip["class"] = json!(reason.class());
                skip["hint"] = json!(reason.hint());
                v["skipped"] = skip;
            }
            v
        })
        .collect();
    let mut v = json!({
        "format_version": PLAN_FORMAT_VERSION,
        "dry_run": ctx.dry_run,
        "platform": ctx.platform,
        "revision": ctx.revision,
        "base": ctx.base,
        "has_changes": plan.has_changes(),
        "totals": plan.totals(),
        "warnings": ctx.warnings,
        "value_drift_undetectable": plan.drift_blind(),
        "coverage": coverage_json(plan),
        "agents": agents,
    });
    if let Some(env) = &ctx.environment {
        v["environment"] = json!(env);
    }
    if let Some(timed_out) = TimedOut::find(plan, None) {
        v["timed_out"] = timed_out.json();
    }
    v
}

fn coverage_json(plan: &Plan) -> serde_json::Value {
    let c = &plan.coverage;
    json!({
        "mode": c.mode,
        "full_reason": c.full_reason,
        "refreshed": plan.agents.len(),
        "unrefreshed": c.unrefreshed.len(),
        "unrefreshed_agents": c.unrefreshed,
        "since": c.since,
        "summary": coverage_line(c),
    })
}

fn redeploy_json(r: &AgentResult) -> serde_json::Value {
    match &r.redeploy {
        None => serde_json::Value::Null,
        Some(Redeployed::Done) => json!({ "status": "done", "error": null }),
        Some(Redeployed::Postponed) => json!({ "status": "postponed", "error": null }),
        Some(Redeployed::Failed(e)) => json!({ "status": "failed", "error": e }),
    }
}

/// The plan as JSON plus what apply did (`result`), for `reconcile --output json`.
pub fn apply_json(report: &ApplyReport, plan: &Plan, ctx: &RenderContext) -> serde_json::Value {
    let mut v = plan_json(plan, ctx);
    let agents: Vec<_> = report
        .agents
        .iter()
        .map(|a| {
            let failed: Vec<_> = a
                .failed
                .iter()
                .map(|f| {
                    let mut c = serde_json::to_value(&f.change).unwrap_or_default();
                    c["error"] = json!(f.reason.to_string());
                    c["class"] = json!(f.reason.class());
                    c["hint"] = json!(
                        f.reason
                            .platform_error()
                            .and_then(crate::hint::Hinted::hint)
                    );
                    c
                })
                .collect();
            json!({
                "agent": a.agent,
                "applied": a.applied,
                "failed": failed,
                "error": a.error.as_ref().map(ToString::to_string),
                "class": a.class(),
                "hint": a.hint(),
                "redeploy": redeploy_json(a),
            })
        })
        .collect();
    v["result"] = json!({
        "ok": report.ok() && !plan.has_skips(),
        "agents": agents,
    });
    if let Some(timed_out) = TimedOut::find(plan, Some(report)) {
        v["timed_out"] = timed_out.json();
    }
    v
}

/// Escapes text for a Markdown paragraph, table cell or HTML element.
pub(crate) fn md_escape(s: &str) -> String {
    crate::escape::markdown(s)
}

/// The plan as Markdown for a pull-request comment or `$GITHUB_STEP_SUMMARY`: a summary
/// table, one collapsible block per changed agent, unchanged agents on one line. Always under
/// [`MARKDOWN_BUDGET`] characters: when the details would not fit, they are summarised.
pub fn plan_markdown(plan: &Plan, ctx: &RenderContext) -> String {
    plan_markdown_within(plan, ctx, MARKDOWN_BUDGET)
}

fn plan_markdown_within(plan: &Plan, ctx: &RenderContext, budget: usize) -> String {
    let totals = plan.totals();
    let mut head = String::new();
    let env = ctx.environment.as_deref().map(|e| format!(": {e}"));
    let _ = writeln!(head, "### castsync plan{}\n", env.unwrap_or_default());
    let _ = writeln!(
        head,
        "Platform `{}`{}{}.\n",
        code_span(&ctx.platform),
        ctx.revision
            .as_deref()
            .map(|r| format!(", source `{}`", code_span(r)))
            .unwrap_or_default(),
        ctx.base
            .as_deref()
            .map(|b| format!(", base `{}`", code_span(b)))
            .unwrap_or_default()
    );
    if let Some(line) = coverage_line(&plan.coverage) {
        // Our own text around agent counts and a revision label.
        let _ = writeln!(head, "{}.\n", md_escape(&line));
    }
    if !plan.has_changes() && !plan.has_skips() && plan.coverage.mode == CoverageMode::Changed {
        let _ = writeln!(
            head,
            "**No changes.** The refreshed agents match git ({} keys in sync).",
            totals.unchanged
        );
    } else if !plan.has_changes() && !plan.has_skips() {
        let _ = writeln!(
            head,
            "**No changes.** The platform matches git ({} keys in sync).",
            totals.unchanged
        );
    } else {
        let _ = writeln!(head, "**Plan:** {}.", totals_line(&totals));
    }
    let redeploys: Vec<String> = plan
        .agents
        .iter()
        .filter(|a| a.redeploy.is_some())
        .map(|a| md_escape(&a.agent))
        .collect();
    if !redeploys.is_empty() {
        let _ = writeln!(
            head,
            "\n**Redeploy** after their changes land: {}.",
            redeploys.join(", ")
        );
    }
    if let Some(line) = shared_causes(plan) {
        let _ = writeln!(head, "\n{}", md_escape(&line));
    }
    if let Some(note) = drift_note(&plan.drift_unseen()) {
        // Our own fixed text (only a count varies): nothing to escape.
        let _ = writeln!(head, "\n> note: {note}");
    }
    head.push('\n');

    let mut table = String::from(
        "| agent | create | update | delete | unchanged | status |\n|---|---:|---:|---:|---:|---|\n",
    );
    let mut in_sync = Vec::new();
    for a in &plan.agents {
        let count = |f: fn(&Action) -> bool| a.changes.iter().filter(|c| f(&c.action)).count();
        let status = if a.skipped.is_some() {
            "⚠️ skipped"
        } else if a.has_changes() && a.redeploy.is_some() {
            "changes, redeploy"
        } else if a.has_changes() {
            "changes"
        } else if a.redeploy.is_some() {
            "redeploy"
        } else {
            in_sync.push(a.agent.as_str());
            continue;
        };
        let _ = writeln!(
            table,
            "| {} | {} | {} | {} | {} | {} |",
            md_escape(&a.agent),
            count(|x| *x == Action::Create),
            count(|x| matches!(x, Action::Update(_) | Action::Replace)),
            count(|x| *x == Action::Delete),
            a.unchanged.len(),
            status
        );
    }
    let mut tail = String::new();
    if !in_sync.is_empty() {
        let _ = writeln!(
            tail,
            "\n<details><summary>{} agent{} in sync</summary>\n\n{}\n\n</details>",
            in_sync.len(),
            if in_sync.len() == 1 { "" } else { "s" },
            md_escape(&in_sync.join(", "))
        );
    }
    for w in &ctx.warnings {
        let _ = writeln!(tail, "\n> warning: {}", md_escape(w));
    }

    let mut skipped = String::new();
    for a in plan.agents.iter().filter(|a| a.skipped.is_some()) {
        if let Some(reason) = &a.skipped {
            let _ = writeln!(
                skipped,
                "- **{}** skipped, nothing changed: {}",
                md_escape(&a.agent),
                md_escape(&reason.to_string())
            );
            if let Some(hint) = reason.hint() {
                let _ = writeln!(skipped, "  - hint: {}", md_escape(&hint));
            }
        }
    }
    if !skipped.is_empty() {
        skipped.insert(0, '\n');
    }

    let mut details: Vec<String> = Vec::new();
    for a in plan.agents.iter().filter(|a| a.has_changes()) {
        let mut d = format!(
            "\n<details><summary>{}: {} change{}</summary>\n\n```diff\n",
            md_escape(&a.agent),
            a.changes.len(),
            if a.changes.len() == 1 { "" } else { "s" }
        );
        for c in &a.changes {
            let (sign, text) = change_line(c);
            // `!` is what GitHub's diff highlighting colours as a modification.
            let sign = if sign == '~' { '!' } else { sign };
            let _ = writeln!(d, "{sign} {}", code_line(&text));
        }
        d.push_str("```\n\n</details>\n");
        details.push(d);
    }

    let fixed = head.len() + table.len() + tail.len();
    let mut out = head;
    out.push_str(&table);
    // Skip reasons and per-agent details go in while they fit; the rest is summarised.
    let note_room = 200;
    let mut used = fixed;
    if used + skipped.len() + note_room <= budget {
        out.push_str(&skipped);
        used += skipped.len();
    } else if !skipped.is_empty() {
        out.push_str("\n(skip reasons omitted: too long for a comment; run `castsync reconcile --dry-run` to see them)\n");
    }
    let mut omitted = 0usize;
    for d in &details {
        if omitted == 0 && used + d.len() + note_room <= budget {
            out.push_str(d);
            used += d.len();
        } else {
            omitted += 1;
        }
    }
    if omitted > 0 {
        let _ = writeln!(
            out,
            "\n… details of {omitted} more changed agent{} omitted to stay under the comment size limit; the table above counts them all. Run `castsync reconcile --dry-run` for the full plan.",
            if omitted == 1 { "" } else { "s" }
        );
    }
    // The table itself could in theory exceed the budget (thousands of changed agents).
    if out.len() + tail.len() > budget {
        let mut cut = budget.saturating_sub(tail.len() + 200);
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push_str("\n\n… table truncated to stay under the comment size limit.\n");
    }
    out.push_str(&tail);
    out
}

/// What apply did, after the plan it applied: the counts, then what did not land, with the
/// reasons. The plan above already lists each change, so the changes that landed are not
/// listed again.
pub fn apply_text(report: &ApplyReport, plan: &Plan, color: bool) -> String {
    let p = Paint(color);
    let mut out = String::new();
    let (mut created, mut updated, mut deleted) = (0, 0, 0);
    for change in report.agents.iter().flat_map(|a| &a.applied) {
        match change.action {
            Action::Create => created += 1,
            Action::Update(_) | Action::Replace => updated += 1,
            Action::Delete => deleted += 1,
        }
    }
    let failed: usize = report.agents.iter().map(|a| a.failed.len()).sum();
    let skipped = plan.totals().skipped_agents;
    let redeployed = report
        .agents
        .iter()
        .filter(|a| a.redeploy == Some(Redeployed::Done))
        .count();
    let redeployed = if redeployed > 0 {
        format!(", {redeployed} agent{} redeployed", plural(redeployed))
    } else {
        String::new()
    };
    let _ = writeln!(
        out,
        "\n{} {created} created, {updated} updated, {deleted} deleted{redeployed}{}{}.",
        if report.ok() && skipped == 0 {
            p.bold("Apply complete:")
        } else {
            p.red("Apply incomplete:")
        },
        if failed > 0 {
            format!(", {failed} not applied")
        } else {
            String::new()
        },
        if skipped > 0 {
            format!(
                "; {skipped} agent{} skipped",
                if skipped == 1 { "" } else { "s" }
            )
        } else {
            String::new()
        }
    );
    if !report.ok() || skipped > 0 {
        not_applied(&mut out, report, plan, &p);
    }
    out
}

/// The `Not applied:` part of [`apply_text`]: skipped agents, failed changes, agent errors
/// and redeploys, each with its reason and hint.
fn not_applied(out: &mut String, report: &ApplyReport, plan: &Plan, p: &Paint) {
    let _ = writeln!(out, "\nNot applied:");
    for a in plan.agents.iter() {
        if let Some(reason) = &a.skipped {
            let _ = writeln!(
                out,
                "  {} {}: {}",
                p.red("!"),
                terminal(&a.agent),
                reason_text(reason)
            );
            hint_line(out, reason.hint());
        }
    }
    for a in &report.agents {
        for f in &a.failed {
            let (sign, text) = change_line(&f.change);
            let _ = writeln!(
                out,
                "  {} {}: {sign} {text}: {}",
                p.red("!"),
                terminal(&a.agent),
                terminal(&f.reason.to_string())
            );
        }
        if let Some(e) = &a.error {
            let _ = writeln!(
                out,
                "  {} {}: {}",
                p.red("!"),
                terminal(&a.agent),
                terminal(&e.to_string())
            );
        }
        match &a.redeploy {
            Some(Redeployed::Failed(e)) => {
                let _ = writeln!(
                    out,
                    "  {} {}: redeploy failed: {}; its secrets are applied and the next run redeploys it",
                    p.red("!"),
                    terminal(&a.agent),
                    terminal(&e.to_string())
                );
            }
            Some(Redeployed::Postponed) => {
                let _ = writeln!(
                    out,
                    "  {} {}: not redeployed because some changes did not land; the next run redeploys it",
                    p.red("!"),
                    terminal(&a.agent)
                );
            }
            _ => {}
        }
        if !a.ok() {
            hint_line(out, a.hint());
        }
    }
}

#[cfg(test)]
mod tests;
