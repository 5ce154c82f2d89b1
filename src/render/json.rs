//! Plans and apply reports as JSON (`schemas/plan.schema.json`): outside text kept exact,
//! every error with its class and hint beside its message.

use serde_json::json;

use super::{RenderContext, coverage_line};
use crate::apply::{AgentResult, ApplyReport, Redeployed};
use crate::deadline::TimedOut;
use crate::plan::Plan;

/// The `--output json` format version; bump on incompatible changes.
pub const PLAN_FORMAT_VERSION: u32 = 1;

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
