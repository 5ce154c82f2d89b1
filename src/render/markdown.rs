//! Plans as Markdown, for a pull-request comment or `$GITHUB_STEP_SUMMARY`: a summary table,
//! one collapsible block per changed agent, unchanged agents on one line. Outside text is
//! escaped for Markdown and HTML (`md_escape`, `crate::escape::code_span`/`code_line`).

use std::fmt::Write as _;

use super::{
    RenderContext, change_line, coverage_line, drift_note, md_escape, plural, shared_causes,
    totals_line,
};
use crate::escape::{code_line, code_span};
use crate::plan::{Action, CoverageMode, Plan};

/// GitHub refuses comments over 65,536 characters; stay well under.
pub const MARKDOWN_BUDGET: usize = 60_000;

/// Room kept for the line that says what was left out.
const NOTE_ROOM: usize = 200;

/// The plan as Markdown, always under [`MARKDOWN_BUDGET`] characters: when the details would
/// not fit, they are summarised.
pub fn plan_markdown(plan: &Plan, ctx: &RenderContext) -> String {
    plan_markdown_within(plan, ctx, MARKDOWN_BUDGET)
}

pub(super) fn plan_markdown_within(plan: &Plan, ctx: &RenderContext, budget: usize) -> String {
    let head = head(plan, ctx);
    let (table, in_sync) = table(plan);
    let tail = tail(&in_sync, &ctx.warnings);
    let skipped = skipped(plan);
    let details = details(plan);
    within(budget, [head, table], skipped, &details, &tail)
}

/// The title, where the plan came from, its coverage, the totals, redeploys, the shared
/// groups behind the changes and the drift note.
fn head(plan: &Plan, ctx: &RenderContext) -> String {
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
    head
}

/// A row per agent with work or skipped; the agents in sync, by name, for the tail.
fn table(plan: &Plan) -> (String, Vec<&str>) {
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
    (table, in_sync)
}

/// The agents in sync (folded) and the warnings: always shown, after everything else.
fn tail(in_sync: &[&str], warnings: &[String]) -> String {
    let mut tail = String::new();
    if !in_sync.is_empty() {
        let _ = writeln!(
            tail,
            "\n<details><summary>{} agent{} in sync</summary>\n\n{}\n\n</details>",
            in_sync.len(),
            plural(in_sync.len()),
            md_escape(&in_sync.join(", "))
        );
    }
    for w in warnings {
        let _ = writeln!(tail, "\n> warning: {}", md_escape(w));
    }
    tail
}

/// Why each skipped agent was skipped, with its hint.
fn skipped(plan: &Plan) -> String {
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
    skipped
}

/// A collapsible block per changed agent with its changes as a diff.
fn details(plan: &Plan) -> Vec<String> {
    let mut details: Vec<String> = Vec::new();
    for a in plan.agents.iter().filter(|a| a.has_changes()) {
        let mut d = format!(
            "\n<details><summary>{}: {} change{}</summary>\n\n```diff\n",
            md_escape(&a.agent),
            a.changes.len(),
            plural(a.changes.len())
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
    details
}

/// Puts the parts together under `budget`: the head, the table and the tail always; skip
/// reasons and per-agent details while they fit, the rest summarised.
fn within(
    budget: usize,
    [head, table]: [String; 2],
    skipped: String,
    details: &[String],
    tail: &str,
) -> String {
    let mut used = head.len() + table.len() + tail.len();
    let mut out = head;
    out.push_str(&table);
    if used + skipped.len() + NOTE_ROOM <= budget {
        out.push_str(&skipped);
        used += skipped.len();
    } else if !skipped.is_empty() {
        out.push_str("\n(skip reasons omitted: too long for a comment; run `castsync reconcile --dry-run` to see them)\n");
    }
    let mut omitted = 0usize;
    for d in details {
        if omitted == 0 && used + d.len() + NOTE_ROOM <= budget {
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
            plural(omitted)
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
    out.push_str(tail);
    out
}
