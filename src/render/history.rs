//! `castsync history` for people: the apply history's entries as aligned columns. Every cell
//! is escaped for the terminal: a key name comes from the platform's list, and the file may
//! have been edited. For the same reason a cell is cut at [`MAX_CELL`] characters, so one
//! giant key name cannot widen every row of the table (`-o json` keeps every cell whole).

/// The widest cell of the table, in characters; a longer one ends in [`CUT`].
pub const MAX_CELL: usize = 80;

/// The marker at the end of a cell that was cut.
pub const CUT: char = '…';

use std::path::Path;
use std::time::Duration;

use crate::history::{self, Entry, Read};

/// What `castsync history` says when no entry is shown: `No applies recorded for agent A in
/// the last 1day (FILE).`
pub fn nothing_recorded(agent: Option<&str>, since: Option<Duration>, file: &Path) -> String {
    let mut what = "No applies recorded".to_owned();
    if let Some(agent) = agent {
        what.push_str(&format!(" for agent {}", escape(agent)));
    }
    if let Some(since) = since {
        what.push_str(&format!(
            " in the last {}",
            humantime::format_duration(since)
        ));
    }
    format!("{what} ({}).\n", escape(&file.display().to_string()))
}

/// The notes (stderr) on what a read of `file` left out.
pub fn read_notes(read: &Read, file: &Path) -> Vec<String> {
    let mut notes = Vec::new();
    if read.skipped > 0 {
        notes.push(format!(
            "note: {} unreadable line(s) in {} skipped (a torn last line is left by an interrupted apply)",
            read.skipped,
            file.display()
        ));
    }
    if read.truncated {
        notes.push(format!(
            "note: {} is larger than castsync reads; only its newest entries are shown",
            file.display()
        ));
    }
    notes
}

/// The entries as aligned columns; a PLATFORM column only when they span more than one.
pub fn table(entries: &[&Entry]) -> String {
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
    let rows: Vec<Vec<String>> = rows
        .into_iter()
        .map(|row| row.into_iter().map(cut).collect())
        .collect();
    let columns = rows[0].len();
    let widths: Vec<usize> = (0..columns)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            line.push_str(cell);
            if c + 1 < columns {
                // Padded by hand: `format!`'s width is a u16 and panics past 65,535.
                let pad = widths[c] - cell.chars().count() + 2;
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `cell` cut to [`MAX_CELL`] characters, the last one [`CUT`].
fn cut(cell: String) -> String {
    match cell.char_indices().nth(MAX_CELL - 1) {
        Some((end, _)) if cell.chars().count() > MAX_CELL => {
            let mut short = cell[..end].to_owned();
            short.push(CUT);
            short
        }
        _ => cell,
    }
}

/// A key name comes from the platform's list and the file may have been edited: text is
/// escaped for the terminal (`escape`), never sent to it raw.
pub fn escape(s: &str) -> String {
    crate::escape::terminal(s).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: &str) -> Entry {
        serde_json::from_value(serde_json::json!({
            "time": "2026-11-20T10:00:00Z",
            "platform": "https://api.example",
            "agent": "alpha",
            "key": key,
            "action": "delete",
            "result": "ok",
        }))
        .expect("a history entry")
    }

    #[test]
    fn a_giant_cell_is_cut_and_widens_no_row() {
        let giant = "K".repeat(70_000);
        let entries = [entry(&giant), entry("SHORT")];
        let refs: Vec<&Entry> = entries.iter().collect();
        let text = table(&refs);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines.iter().all(|l| l.chars().count() < 200), "{text}");
        let cut_key = format!("{}{CUT}", "K".repeat(MAX_CELL - 1));
        assert!(lines[1].contains(&cut_key), "{}", lines[1]);
        assert!(lines[2].contains("SHORT "), "{}", lines[2]);
    }

    #[test]
    fn a_cell_of_exactly_the_limit_is_kept_whole() {
        assert_eq!(cut("é".repeat(MAX_CELL)), "é".repeat(MAX_CELL));
        assert_eq!(
            cut("é".repeat(MAX_CELL + 1)),
            format!("{}{CUT}", "é".repeat(MAX_CELL - 1))
        );
    }
}
