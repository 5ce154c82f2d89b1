//! `castsync history` for people: the apply history's entries as aligned columns. Every cell
//! is escaped for the terminal: a key name comes from the platform's list, and the file may
//! have been edited.

use crate::history::{self, Entry};

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
pub fn escape(s: &str) -> String {
    crate::escape::terminal(s).into_owned()
}
