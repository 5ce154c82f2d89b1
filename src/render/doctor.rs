//! `castsync doctor`'s report for people (text) and machines (JSON,
//! schemas/doctor.schema.json).

use crate::doctor::{DOCTOR_FORMAT_VERSION, Report, Status};
use crate::escape::terminal;

/// One `ok`/`note`/`warn`/`FAIL` line per check, a `fix:` line under each problem, then the
/// count. A message may carry the platform's own words (an error's `detail`), so every part is
/// escaped for the terminal: a newline or `ESC[2J` in it cannot forge an `ok` line.
pub fn text(report: &Report) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    for c in &report.checks {
        let tag = match c.status {
            Status::Ok => "ok  ",
            Status::Note => "note",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
        };
        let mut subject = match &c.agent {
            Some(agent) => format!("{} {}", c.check, terminal(agent)),
            None => c.check.to_owned(),
        };
        if let Some(env) = &c.environment {
            subject.push_str(&format!(" ({})", terminal(env)));
        }
        let _ = writeln!(out, "{tag}  {subject}: {}", terminal(&c.message));
        if let Some(fix) = &c.fix {
            let _ = writeln!(out, "        fix: {}", terminal(fix));
        }
    }
    let problems = report.problems();
    let _ = writeln!(
        out,
        "\n{}",
        match problems {
            0 => "castsync doctor: no problems found.".to_owned(),
            1 => "castsync doctor: 1 problem found (see FAIL above).".to_owned(),
            n => format!("castsync doctor: {n} problems found (see FAIL above)."),
        }
    );
    out
}

/// The `-o json` document.
pub fn json(report: &Report) -> serde_json::Value {
    serde_json::json!({
        "format_version": DOCTOR_FORMAT_VERSION,
        "ok": report.problems() == 0,
        "problems": report.problems(),
        "checks": report.checks,
        "agents": report.lists,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_makes_the_report_a_problem_and_its_hint_the_fix() {
        let mut r = Report::default();
        r.push("repository", None, Status::Ok, "/x".to_owned(), None);
        r.push(
            "api key",
            None,
            Status::Fail,
            "refused".to_owned(),
            Some("check the key".to_owned()),
        );
        assert_eq!(r.problems(), 1);
        let t = text(&r);
        assert!(t.contains("FAIL  api key: refused"), "{t}");
        assert!(t.contains("        fix: check the key"), "{t}");
        assert!(t.contains("1 problem found"), "{t}");
        assert_eq!(json(&r)["problems"], 1);
    }

    #[test]
    fn the_platform_words_in_a_message_cannot_forge_a_line() {
        let mut r = Report::default();
        r.push(
            "api key",
            Some("a\u{1b}[31m"),
            Status::Fail,
            "refused: \u{1b}[2J\nok    api key: accepted".to_owned(),
            Some("check\r\u{9b}31m".to_owned()),
        );
        let t = text(&r);
        assert!(!t.contains(['\u{1b}', '\r', '\u{9b}']), "{t:?}");
        assert_eq!(t.lines().filter(|l| l.starts_with("ok")).count(), 0, "{t}");
        assert!(t.contains("refused: \\x1b[2J\\nok    api key"), "{t}");
        assert_eq!(
            json(&r)["checks"][0]["message"],
            "refused: \u{1b}[2J\nok    api key: accepted"
        );
    }
}
