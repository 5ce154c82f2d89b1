//! What `castsync reconcile` prints of a run: the plan in the `-o` format (unless the console
//! showed it before the apply), what landed after an apply, and what it says of a saved plan.

use std::path::Path;

use super::{Format, RenderContext, apply_json, apply_text, plan_json, plan_markdown, plan_text};
use crate::escape::terminal;
use crate::plan::Plan;
use crate::reconcile::Outcome;
use crate::saved_plan::SavedPlan;

/// The plan in `format`: what the console shows before asking, and a dry run prints.
pub fn plan_in(format: Format, plan: &Plan, ctx: &RenderContext) -> String {
    match format {
        Format::Json => format!("{:#}\n", plan_json(plan, ctx)),
        Format::Markdown => plan_markdown(plan, ctx),
        Format::Text => plan_text(plan, ctx),
    }
}

/// The plan (unless `plan_shown`: the console showed it already) and, after an apply, what
/// landed, in `format`. JSON is one document: the apply's, which holds the plan.
pub fn outcome(format: Format, outcome: &Outcome, ctx: &RenderContext, plan_shown: bool) -> String {
    let plan = &outcome.plan;
    let report = outcome.report.as_ref();
    if format == Format::Json {
        return match report {
            Some(report) => format!("{:#}\n", apply_json(report, plan, ctx)),
            None => plan_in(format, plan, ctx),
        };
    }
    let mut out = if plan_shown {
        String::new()
    } else {
        plan_in(format, plan, ctx)
    };
    if let Some(report) = report
        && plan.has_changes()
    {
        if !plan_shown {
            out.push('\n');
        }
        out.push_str(&apply_text(report, plan, ctx.color));
    }
    out
}

/// What `reconcile --plan FILE` says on stderr once the saved plan matched: that it would
/// apply (a dry run) or that exactly its changes were applied; `None` when nothing was.
pub fn saved_plan_used(
    file: &Path,
    saved: &SavedPlan,
    dry_run: bool,
    applied: bool,
) -> Option<String> {
    let made = format!(
        "{} (made from {} at {})",
        file.display(),
        terminal(&saved.revision),
        terminal(&saved.created_at),
    );
    if dry_run {
        Some(format!(
            "The saved plan {made} matches the tree and the platform: `castsync reconcile --plan` would apply it."
        ))
    } else if applied {
        Some(format!(
            "The saved plan {made} matched the tree and the platform: exactly its changes were applied."
        ))
    } else {
        None
    }
}
