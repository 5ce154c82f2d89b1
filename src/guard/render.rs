//! The guard's report for people (text: one `error:` line per finding with its `hint:`, then
//! a summary that says what was not searched), for programs (JSON: the model itself) and for
//! a job summary or a comment (Markdown). Paths come from git and may hold anything: every
//! one passes through `escape`.

use std::fmt::Write as _;

use super::model::{Finding, Report};
use crate::escape::{code_span, markdown as md, terminal};

/// Most rows of the Markdown table before the rest is counted instead.
const MARKDOWN_ROWS: usize = 200;

/// The report as JSON (schemas/guard.schema.json).
pub fn json(report: &Report) -> String {
    serde_json::to_string_pretty(report).expect("the report is plain data")
}

/// Where a finding is: `path:line`, after `commit (date)` in history.
fn location(f: &Finding, escape: impl Fn(&str) -> String) -> String {
    let mut out = String::new();
    if let Some(c) = &f.commit {
        let _ = write!(out, "commit {} ({}) ", c.short(), c.day());
    }
    out.push_str(&escape(&f.path));
    if let Some(line) = f.line {
        let _ = write!(out, ":{line}");
    }
    out
}

/// The summary: what was found where, and what was not searched.
pub fn headline(report: &Report) -> String {
    let s = &report.summary;
    let mut out = format!(
        "{} finding(s) in {} file(s) of {}",
        s.findings,
        s.files,
        report.mode.describe()
    );
    if s.commits > 0 {
        let _ = write!(out, " ({} commit(s))", s.commits);
    }
    let _ = write!(
        out,
        "; searched {} value(s) of {} key(s)",
        s.values, s.keys_searched
    );
    let mut not = Vec::new();
    if s.keys_too_short > 0 {
        not.push(format!(
            "{} key(s) whose value is shorter than 8 bytes",
            s.keys_too_short
        ));
    }
    if s.keys_placeholder > 0 {
        not.push(format!(
            "{} key(s) whose value is its .env.example placeholder",
            s.keys_placeholder
        ));
    }
    if s.manifests_unreadable > 0 {
        not.push(format!(
            "the keys of {} manifest(s) that could not be decrypted",
            s.manifests_unreadable
        ));
    }
    if !not.is_empty() {
        let _ = write!(out, "; not searched: {}", not.join(", "));
    }
    out
}

/// One `error:` line per finding with a `hint:` line, the notes, then the summary.
pub fn text(report: &Report) -> String {
    let mut out = String::new();
    let plain = |s: &str| terminal(s).into_owned();
    for f in &report.findings {
        let _ = writeln!(
            out,
            "error: {}: {}",
            location(f, plain),
            terminal(&f.message)
        );
        let _ = writeln!(out, "{}", crate::hint::line("  ", &f.hint));
    }
    for note in &report.notes {
        let _ = writeln!(out, "note: {}", terminal(note));
    }
    let _ = writeln!(out, "guard: {}", terminal(&headline(report)));
    out
}

/// A heading, the findings as a table, the notes.
pub fn markdown(report: &Report) -> String {
    let mut out = String::from("## castsync guard\n\n");
    let _ = writeln!(out, "{}\n", md(&headline(report)));
    if !report.findings.is_empty() {
        out.push_str("| where | what | declared by |\n|---|---|---|\n");
        for f in report.findings.iter().take(MARKDOWN_ROWS) {
            let owners = f
                .declared_by
                .iter()
                .map(|o| format!("{} `{}`", md(&o.describe()), code_span(&o.file)))
                .collect::<Vec<_>>()
                .join("<br>");
            let _ = writeln!(
                out,
                "| {} | {} | {} |",
                location(f, md),
                md(&f.message),
                owners
            );
        }
        if report.findings.len() > MARKDOWN_ROWS {
            let _ = writeln!(
                out,
                "\n…and {} more (`castsync guard -o json` lists them all).",
                report.findings.len() - MARKDOWN_ROWS
            );
        }
        out.push('\n');
    }
    for note in &report.notes {
        let _ = writeln!(out, "- {}", md(note));
    }
    out
}
