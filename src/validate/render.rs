//! `castsync validate`'s findings: one line per problem (`error:` or `warning:` with the
//! file, and a `hint:` line under it when the fix is known) then a summary; the same as
//! versioned JSON (schemas/validate.schema.json), or as a Markdown table.

use serde_json::json;

use super::Validation;
use crate::finding::Finding;
use crate::render::md_escape;

/// The `validate -o json` format version (schemas/validate.schema.json); bump on
/// incompatible changes.
pub const VALIDATE_FORMAT_VERSION: u32 = 1;

/// `ok: 3 agents valid, 0 warning(s)` or `failed: …, 2 error(s), 0 warning(s)`.
pub fn summary(v: &Validation) -> String {
    let (errors, warnings) = (v.errors(), v.warnings());
    let scope = match v.agents {
        Some(1) => "1 agent".to_owned(),
        Some(n) => format!("{n} agents"),
        None => "the config".to_owned(),
    };
    if errors == 0 {
        format!("ok: {scope} valid, {warnings} warning(s)")
    } else {
        format!("failed: {scope} checked, {errors} error(s), {warnings} warning(s)")
    }
}

/// Each finding (with its hint line), then the summary.
pub fn text(v: &Validation) -> String {
    let mut out = String::new();
    for finding in &v.findings {
        out.push_str(&format!("{finding}\n"));
        if let Some(hint) = &finding.hint {
            out.push_str(&format!("{}\n", crate::hint::line("  ", hint)));
        }
    }
    out.push_str(&format!("{}\n", summary(v)));
    out
}

/// The `-o json` document.
pub fn json(v: &Validation) -> serde_json::Value {
    let errors = v.errors();
    json!({
        "format_version": VALIDATE_FORMAT_VERSION,
        "ok": errors == 0,
        "agents_checked": v.agents,
        "errors": errors,
        "warnings": v.warnings(),
        "findings": v.findings.iter().map(finding_json).collect::<Vec<_>>(),
    })
}

fn finding_json(f: &Finding) -> serde_json::Value {
    json!({
        "severity": f.severity.to_string(),
        "file": f.path.display().to_string(),
        "line": f.line,
        "agent": f.agent,
        "key": f.key,
        "message": f.message,
        "hint": f.hint,
    })
}

/// A heading with the summary and one table row per finding.
pub fn markdown(v: &Validation) -> String {
    let mut out = format!("### castsync validate: {}\n", md_escape(&summary(v)));
    if !v.findings.is_empty() {
        out.push_str("\n| | file | key | problem | hint |\n|---|---|---|---|---|\n");
        for f in &v.findings {
            let file = match f.line {
                Some(line) => format!("{}:{line}", f.path.display()),
                None => f.path.display().to_string(),
            };
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} |\n",
                f.severity,
                md_escape(&file),
                md_escape(f.key.as_deref().unwrap_or("")),
                md_escape(&f.message),
                md_escape(f.hint.as_deref().unwrap_or("")),
            ));
        }
    }
    out
}
