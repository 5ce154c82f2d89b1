//! `castsync history`: print the apply history kept next to a state file (`history`), as
//! aligned text or versioned JSON. It reads only; it never takes the state lock, so it works
//! while a reconcile or the daemon runs.

use anyhow::Context as _;

use crate::cli::{GlobalArgs, HistoryArgs, HistoryFormat};
use crate::commands::{Exit, Repo};
use crate::history::{self, Entry};
use crate::target;

pub fn run(global: &GlobalArgs, args: &HistoryArgs) -> anyhow::Result<Exit> {
    let state = match &args.state {
        Some(path) => path.clone(),
        None => Repo::locate(global)?.join(target::STATE_FILE),
    };
    let path = history::path_for_state(&state);
    // The repository's own state not there yet is an empty history (`[]` in JSON); a
    // --state FILE that does not exist is more likely a mistyped path.
    if args.state.is_some()
        && !state.exists()
        && !path.exists()
        && !history::rotated(&path).exists()
    {
        return Err(crate::hint::WithHint::new(
            format!(
                "no state file at {}: nothing has been applied with it",
                state.display()
            ),
            "check the path: a daemon keeps its state in its --data-dir (one folder per remote), and without --state castsync reads the repository's .castsync/state.json",
        )
        .into());
    }
    let read = history::read(&path)?;
    let cutoff = args
        .since
        .map(|d| {
            time::Duration::try_from(d)
                .ok()
                .and_then(|d| time::OffsetDateTime::now_utc().checked_sub(d))
                .context("--since reaches too far back")
        })
        .transpose()?;
    let entries: Vec<&Entry> = read
        .entries
        .iter()
        .filter(|e| args.agent.as_ref().is_none_or(|a| &e.agent == a))
        .filter(|e| match cutoff {
            Some(cutoff) => history::entry_time(e).is_some_and(|t| t >= cutoff),
            None => true,
        })
        .collect();

    if read.skipped > 0 {
        eprintln!(
            "note: {} unreadable line(s) in {} skipped (a torn last line is left by an interrupted apply)",
            read.skipped,
            path.display()
        );
    }
    if read.truncated {
        eprintln!(
            "note: {} is larger than castsync reads; only its newest entries are shown",
            path.display()
        );
    }
    match args.output {
        HistoryFormat::Json => {
            let doc = history::document(&entries, &read, Some(&path));
            println!("{}", serde_json::to_string_pretty(&doc)?);
        }
        HistoryFormat::Text if entries.is_empty() => {
            let mut what = "No applies recorded".to_owned();
            if let Some(agent) = &args.agent {
                what.push_str(&format!(" for agent {}", escape(agent)));
            }
            if let Some(since) = args.since {
                what.push_str(&format!(
                    " in the last {}",
                    humantime::format_duration(since)
                ));
            }
            println!("{what} ({}).", escape(&path.display().to_string()));
            // A mistyped agent reads like one never applied: list the ones the history knows.
            if let Some(agent) = &args.agent
                && !read.entries.iter().any(|e| &e.agent == agent)
                && !read.entries.is_empty()
            {
                let mut known: Vec<&str> = read.entries.iter().map(|e| e.agent.as_str()).collect();
                known.sort_unstable();
                known.dedup();
                eprintln!(
                    "note: no entry names agent {}; agents in the history: {}",
                    escape(agent),
                    escape(&known.join(", "))
                );
            }
        }
        HistoryFormat::Text => print!("{}", table(&entries)),
    }
    Ok(Exit::Success)
}

/// The entries as aligned columns; a PLATFORM column only when they span more than one.
fn table(entries: &[&Entry]) -> String {
    let many_platforms = entries.iter().any(|e| e.platform != entries[0].platform);
    let mut rows: Vec<Vec<String>> = vec![
        ["TIME", "COMMIT", "AGENT", "KEY", "ACTION", "RESULT"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect(),
    ];
    if many_platforms {
        rows[0].insert(2, "PLATFORM".to_owned());
    }
    for e in entries {
        let commit = e.commit.as_deref().unwrap_or("-");
        let mut action = escape(&e.action);
        if let Some(reason) = &e.reason {
            action.push_str(&format!(" ({})", escape(reason)));
        }
        let mut result = escape(&e.result);
        match (&e.error_class, &e.error) {
            (Some(class), Some(kind)) => {
                result.push_str(&format!(" ({}: {})", escape(class), escape(kind)))
            }
            (None, Some(kind)) => result.push_str(&format!(" ({})", escape(kind))),
            _ => {}
        }
        // Whole seconds are enough to read; JSON keeps the file's precision.
        let time = match history::entry_time(e) {
            Some(t) => t
                .replace_nanosecond(0)
                .ok()
                .and_then(|t| {
                    t.format(&time::format_description::well_known::Rfc3339)
                        .ok()
                })
                .unwrap_or_else(|| e.time.clone()),
            None => e.time.clone(),
        };
        let mut row = vec![
            escape(&time),
            escape(commit.get(..12).unwrap_or(commit)),
            escape(&e.agent),
            escape(e.key.as_deref().unwrap_or("-")),
            action,
            result,
        ];
        if many_platforms {
            row.insert(2, escape(&e.platform));
        }
        rows.push(row);
    }
    let columns = rows[0].len();
    let widths: Vec<usize> = (0..columns)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c + 1 == columns {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<width$}  ", width = widths[c]));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// A key name comes from the platform's list and the file may have been edited: text is
/// escaped for the terminal (`escape`), never sent to it raw.
fn escape(s: &str) -> String {
    crate::escape::terminal(s).into_owned()
}
