//! Plans and apply reports as text for a terminal or a log, like `terraform plan`: colour
//! only on a terminal, outside text escaped (`crate::escape::terminal`).

use std::fmt::Write as _;

use super::{
    RenderContext, change_line, coverage_line, drift_note, first_names, plural, totals_line,
};
use crate::apply::{ApplyReport, Redeployed};
use crate::escape::terminal;
use crate::plan::{Action, AgentPlan, CoverageMode, Plan, RedeployReason, SkipReason};
use crate::platform::PlatformError;

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

/// A list of names for a terminal.
fn names(list: &[String]) -> String {
    list.iter()
        .map(|n| terminal(n).into_owned())
        .collect::<Vec<_>>()
        .join(", ")
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

/// `      hint: …` under an agent's error line, when castsync knows the fix.
fn hint_line(out: &mut String, hint: Option<String>) {
    if let Some(hint) = hint {
        let _ = writeln!(out, "{}", crate::hint::line("      ", &hint));
    }
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
