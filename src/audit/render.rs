//! The audit for people (text), for programs (JSON: the model itself) and for an issue or a
//! job summary (Markdown, under GitHub's size limit). What needs action comes first: overdue
//! keys, then keys due soon, then the values former readers could read; then who can read
//! each manifest and every key's date. Every name and key passes through `escape`.

use std::fmt::Write as _;

use super::model::{Audit, CommitRef, ExposedValue, KeyReport, Reader, SourceReport, Status};
use crate::escape::{markdown as md, terminal};

/// Most rows of one Markdown table before the rest is counted instead.
const MARKDOWN_ROWS: usize = 200;
/// The Markdown stays under this many characters (GitHub refuses an issue body over 65,536).
const MARKDOWN_BUDGET: usize = crate::render::MARKDOWN_BUDGET;

/// The report as JSON (schemas/audit.schema.json).
pub fn json(audit: &Audit) -> String {
    serde_json::to_string_pretty(audit).expect("the report is plain data")
}

/// One line saying what needs doing.
pub fn headline(audit: &Audit) -> String {
    let s = &audit.summary;
    let mut parts = vec![
        format!("{} overdue", s.overdue),
        format!("{} due within 14 days", s.due_soon),
    ];
    if s.without_policy > 0 {
        parts.push(format!("{} without a rotation period", s.without_policy));
    }
    parts.push(format!(
        "{} value(s) exposed to {} former reader(s)",
        s.exposed_values, s.former_readers
    ));
    if s.unreadable > 0 {
        parts.push(format!("{} manifest(s) not audited", s.unreadable));
    }
    parts.join(", ")
}

fn scope(audit: &Audit) -> String {
    let s = &audit.summary;
    format!(
        "{} agent(s), {} shared group(s), {} key(s)",
        s.agents, s.groups, s.keys
    )
}

/// `agent NAME`, with the environment of an overlay: `agent NAME (production)`.
fn source_name(kind: super::SourceKind, name: &str, environment: Option<&str>) -> String {
    match environment {
        Some(env) => format!("{} {name} ({env})", kind.noun()),
        None => format!("{} {name}", kind.noun()),
    }
}

fn labels(readers: &[Reader]) -> String {
    if readers.is_empty() {
        return "(unknown)".to_owned();
    }
    readers
        .iter()
        .map(|r| r.label.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn changed(key: &KeyReport) -> String {
    let bound = if key.exact { "" } else { "on or before " };
    format!(
        "{bound}{} ({} days ago, {})",
        key.last_changed.day(),
        key.age_days,
        key.last_changed.short()
    )
}

fn policy(key: &KeyReport) -> String {
    match (&key.rotate_after, &key.policy_from) {
        (Some(period), Some(from)) => format!("rotate: {period} ({from})"),
        _ => "no rotation period".to_owned(),
    }
}

/// Keys of `status`, each with its manifest.
fn with_status(audit: &Audit, status: Status) -> Vec<(&SourceReport, &KeyReport)> {
    audit
        .sources
        .iter()
        .flat_map(|s| s.keys.iter().map(move |k| (s, k)))
        .filter(|(_, k)| k.status == status)
        .collect()
}

/// The sections on rotation, in the order the reports show them.
const ROTATION_SECTIONS: [(&str, Status); 2] = [
    ("Overdue for rotation", Status::Overdue),
    ("Due within 14 days", Status::DueSoon),
];

/// The report for a terminal.
pub fn text(audit: &Audit) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "castsync audit of {} (committed {}): {}",
        audit.revision.short(),
        audit.revision.day(),
        scope(audit)
    );
    let _ = writeln!(out, "{}", headline(audit));
    for (title, status) in ROTATION_SECTIONS {
        let keys = with_status(audit, status);
        if keys.is_empty() {
            continue;
        }
        let _ = writeln!(out, "\n{title}:");
        for (source, key) in keys {
            let _ = writeln!(
                out,
                "  {}  {}  last changed {}, {}",
                terminal(&source_name(
                    source.kind,
                    &source.name,
                    source.environment.as_deref()
                )),
                terminal(&key.key),
                changed(key),
                terminal(&policy(key))
            );
        }
    }
    for exposure in &audit.exposures {
        let who = terminal(&exposure.reader.label);
        let _ = writeln!(
            out,
            "\nRotate these {} value(s) that {who} could read (last lost access {}, {}):",
            exposure.values.len(),
            exposure.lost_access.day(),
            exposure.lost_access.short()
        );
        for value in &exposure.values {
            let _ = writeln!(out, "  {}", exposed_line(value, terminal));
        }
    }
    out.push_str(&readers_text(audit));
    notes_text(&mut out, audit);
    out
}

fn exposed_line(value: &ExposedValue, esc: fn(&str) -> std::borrow::Cow<'_, str>) -> String {
    format!(
        "{}  {}  unchanged since {} ({}), encrypted to them until {}",
        esc(&source_name(
            value.kind,
            &value.name,
            value.environment.as_deref()
        )),
        esc(&value.key),
        value.last_changed.day(),
        value.last_changed.short(),
        value.lost_access.short()
    )
}

fn readers_text(audit: &Audit) -> String {
    let mut out = String::from("\nWho can read what:\n");
    for source in &audit.sources {
        let _ = writeln!(
            out,
            "  {} ({}): {}{}",
            terminal(&source_name(
                source.kind,
                &source.name,
                source.environment.as_deref()
            )),
            terminal(&source.file),
            terminal(&labels(&source.readers)),
            if source.readers_recorded || source.readers.is_empty() {
                ""
            } else {
                " (from castsync.yaml: the file records no recipients)"
            }
        );
        if let Some(error) = &source.error {
            let _ = writeln!(out, "    not audited: {}", terminal(error));
        }
        for key in &source.keys {
            let _ = writeln!(
                out,
                "    {}  {}  {}",
                terminal(&key.key),
                changed(key),
                status_word(key)
            );
        }
    }
    out
}

fn status_word(key: &KeyReport) -> String {
    match (key.status, &key.rotate_after) {
        (Status::Overdue, Some(p)) => format!("OVERDUE (rotate: {p})"),
        (Status::DueSoon, Some(p)) => format!("due soon (rotate: {p})"),
        (Status::Ok, Some(p)) => format!("ok (rotate: {p})"),
        _ => "no rotation period".to_owned(),
    }
}

fn notes_text(out: &mut String, audit: &Audit) {
    if audit.notes.is_empty() {
        return;
    }
    out.push_str("\nNotes:\n");
    for note in &audit.notes {
        let _ = writeln!(out, "  - {}", terminal(note));
    }
}

/// The report for an issue or a job summary, under [`MARKDOWN_BUDGET`] characters.
pub fn markdown(audit: &Audit) -> String {
    let mut out = format!("## castsync audit: {}\n\n", md(&headline(audit)));
    let _ = writeln!(
        out,
        "Commit `{}` ({}): {}.",
        audit.revision.short(),
        audit.revision.day(),
        scope(audit)
    );
    for (title, status) in ROTATION_SECTIONS {
        let keys = with_status(audit, status);
        if !keys.is_empty() {
            out.push_str(&due_table(title, &keys));
        }
    }
    for exposure in &audit.exposures {
        out.push_str(&exposure_table(
            &exposure.reader,
            &exposure.lost_access,
            &exposure.values,
        ));
    }
    let mut rest = readers_markdown(audit);
    rest.push_str(&every_key_markdown(audit));
    if !audit.notes.is_empty() {
        rest.push_str("\n### Notes\n\n");
        for note in &audit.notes {
            let _ = writeln!(rest, "- {}", md(note));
        }
    }
    if out.len() + rest.len() < MARKDOWN_BUDGET {
        out.push_str(&rest);
    } else {
        out.push_str(
            "\n_The full tables do not fit here: `castsync audit` (or `-o json`) lists every key._\n",
        );
    }
    out.truncate(floor_char_boundary(&out, MARKDOWN_BUDGET));
    out
}

fn floor_char_boundary(s: &str, at: usize) -> usize {
    let mut at = at.min(s.len());
    while !s.is_char_boundary(at) {
        at -= 1;
    }
    at
}

fn rows_left(out: &mut String, total: usize) {
    if total > MARKDOWN_ROWS {
        let _ = writeln!(out, "\n…and {} more.", total - MARKDOWN_ROWS);
    }
}

fn due_table(title: &str, keys: &[(&SourceReport, &KeyReport)]) -> String {
    let mut out = format!(
        "\n### {title} ({})\n\n| agent or group | key | last changed | age | rotate after | set in |\n|---|---|---|---|---|---|\n",
        keys.len()
    );
    for (source, key) in keys.iter().take(MARKDOWN_ROWS) {
        let _ = writeln!(
            out,
            "| {} | {} | {}{} `{}` | {} days | {} | {} |",
            md(&source_name(
                source.kind,
                &source.name,
                source.environment.as_deref()
            )),
            md(&key.key),
            if key.exact { "" } else { "on or before " },
            key.last_changed.day(),
            key.last_changed.short(),
            key.age_days,
            md(key.rotate_after.as_deref().unwrap_or("")),
            md(key.policy_from.as_deref().unwrap_or("")),
        );
    }
    rows_left(&mut out, keys.len());
    out
}

fn exposure_table(reader: &Reader, lost: &CommitRef, values: &[ExposedValue]) -> String {
    let mut out = format!(
        "\n### Rotate these {} value(s) that {} could read\n\nThey lost access on {} (`{}`); git keeps every earlier ciphertext, so they can still decrypt these.\n\n| agent or group | key | unchanged since | encrypted to them until |\n|---|---|---|---|\n",
        values.len(),
        md(&reader.label),
        lost.day(),
        lost.short()
    );
    for value in values.iter().take(MARKDOWN_ROWS) {
        let _ = writeln!(
            out,
            "| {} | {} | {} `{}` | `{}` |",
            md(&source_name(
                value.kind,
                &value.name,
                value.environment.as_deref()
            )),
            md(&value.key),
            value.last_changed.day(),
            value.last_changed.short(),
            value.lost_access.short()
        );
    }
    rows_left(&mut out, values.len());
    out
}

fn readers_markdown(audit: &Audit) -> String {
    let mut out = String::from(
        "\n### Who can read what\n\n| agent or group | file | readers | keys |\n|---|---|---|---|\n",
    );
    for source in audit.sources.iter().take(MARKDOWN_ROWS) {
        let readers = match &source.error {
            Some(error) => format!("not audited: {error}"),
            None => labels(&source.readers),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            md(&source_name(
                source.kind,
                &source.name,
                source.environment.as_deref()
            )),
            md(&source.file),
            md(&readers),
            source.keys.len()
        );
    }
    rows_left(&mut out, audit.sources.len());
    out
}

fn every_key_markdown(audit: &Audit) -> String {
    let total: usize = audit.sources.iter().map(|s| s.keys.len()).sum();
    let mut out = format!(
        "\n<details><summary>Every key ({total})</summary>\n\n| agent or group | key | last changed | status |\n|---|---|---|---|\n"
    );
    let rows = audit
        .sources
        .iter()
        .flat_map(|s| s.keys.iter().map(move |k| (s, k)));
    for (source, key) in rows.take(MARKDOWN_ROWS) {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            md(&source_name(
                source.kind,
                &source.name,
                source.environment.as_deref()
            )),
            md(&key.key),
            md(&changed(key)),
            md(&status_word(key)),
        );
    }
    rows_left(&mut out, total);
    out.push_str("\n</details>\n");
    out
}
