//! A small dotenv line parser, shared by `.env.example` schemas and `import --from-dotenv`.
//!
//! Syntax: `KEY=value`, `export KEY=value`, `'literal'`, `"escaped"` (`\n`, `\r`, `\t`,
//! `\"`, `\\`; other backslashes stay as written; quoted values may span lines), unquoted
//! values with a trailing ` # comment` stripped, `#` comment lines and blank lines. Nothing
//! is expanded. We keep our own parser because dotenvy drops comments (which carry
//! `# optional` and `# rotate: 30d`) and expands variables.
//!
//! Errors carry the path and line number but never the line's text: in a real `.env` file
//! that text is a secret.

use std::collections::HashMap;
use std::path::Path;

use zeroize::Zeroizing;

use super::SchemaError;
use crate::config::Period;

/// One `KEY=value` line.
pub(super) struct Assignment {
    pub key: String,
    pub value: Zeroizing<String>,
    /// 1-based line of the key.
    pub line: usize,
    /// `# optional` as the line's trailing comment or as the comment line directly above.
    pub optional: bool,
    /// `# rotate: PERIOD` in the line's trailing comment or in the comment lines right above
    /// it (`.env.example` only).
    pub rotate: Option<Period>,
}

/// Parses `text`. `show_keys`: whether an invalid key name may appear in an error (yes for
/// `.env.example`, no for a real `.env`, where a line without a proper key may be a value).
pub(super) fn parse(
    text: &str,
    path: &Path,
    show_keys: bool,
) -> Result<Vec<Assignment>, SchemaError> {
    // Some Windows editors start a file with a byte order mark.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out: Vec<Assignment> = Vec::new();
    let mut first_lines: HashMap<String, usize> = HashMap::new();
    let mut pending_optional = false;
    // A `# rotate:` comment in the block of comment lines right above the next key.
    let mut pending_rotate: Option<Period> = None;
    let mut pos = 0;
    let mut line_no = 0;
    while pos < text.len() {
        line_no += 1;
        let line_end = end_of_line(text, pos);
        let raw = &text[pos..line_end];
        let line = raw.trim_end_matches('\r');
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        pos = line_end + 1;

        if trimmed.is_empty() {
            pending_optional = false;
            pending_rotate = None;
            continue;
        }
        if let Some(comment) = trimmed.strip_prefix('#') {
            pending_optional = is_optional(comment);
            if show_keys && let Some(period) = rotation(comment, path, line_no)? {
                pending_rotate = Some(period);
            }
            continue;
        }

        let key_line = line_no;
        let err_at = |line| (path.to_path_buf(), line);
        let mut rest = trimmed;
        if let Some(after) = rest.strip_prefix("export")
            && after.starts_with([' ', '\t'])
        {
            rest = after.trim_start();
        }
        let Some(eq) = rest.find('=') else {
            let (path, line) = err_at(key_line);
            return Err(SchemaError::MissingEquals { path, line });
        };
        let key = rest[..eq].trim_end();
        if crate::names::validate_key(key).is_err() {
            let (path, line) = err_at(key_line);
            return Err(SchemaError::InvalidKey {
                path,
                line,
                key: show_keys.then(|| key.to_owned()),
            });
        }
        // Byte offset of the text after `=` within `text`.
        let value_start = (line_end - raw.len()) + indent + (trimmed.len() - rest.len()) + eq + 1;
        let Value {
            value,
            comment,
            next,
            lines,
        } = read_value(text, value_start..line_end, path, key_line)?;
        line_no += lines;
        pos = next;

        if let Some(first) = first_lines.insert(key.to_owned(), key_line) {
            let (path, line) = err_at(key_line);
            return Err(SchemaError::DuplicateKey {
                path,
                line,
                key: key.to_owned(),
                first_line: first,
            });
        }
        let trailing_rotate = match comment {
            Some(c) if show_keys => rotation(c, path, key_line)?,
            _ => None,
        };
        out.push(Assignment {
            key: key.to_owned(),
            value,
            line: key_line,
            optional: pending_optional || comment.is_some_and(is_optional),
            rotate: trailing_rotate.or(pending_rotate.take()),
        });
        pending_optional = false;
    }
    Ok(out)
}

/// What follows a key's `=`.
struct Value<'t> {
    value: Zeroizing<String>,
    /// The line's trailing comment, without its `#`.
    comment: Option<&'t str>,
    /// Byte offset of the next line.
    next: usize,
    /// Lines the value spans past the key's own (a quoted value may span lines).
    lines: usize,
}

/// The value after `=` (`after_eq`: from there to the end of the key's line): quoted, or
/// plain with a trailing ` # comment` cut off.
fn read_value<'t>(
    text: &'t str,
    after_eq: std::ops::Range<usize>,
    path: &Path,
    key_line: usize,
) -> Result<Value<'t>, SchemaError> {
    let line_end = after_eq.end;
    let after_eq = &text[after_eq];
    let after_trimmed = after_eq.trim_start_matches([' ', '\t']);
    let value_at = line_end - after_trimmed.len();
    let Some(q @ ('\'' | '"')) = after_trimmed.chars().next() else {
        let unquoted = after_eq.trim_end_matches('\r');
        let (value, comment) = split_comment(unquoted);
        return Ok(Value {
            value: Zeroizing::new(value.trim().to_owned()),
            comment,
            next: line_end + 1,
            lines: 0,
        });
    };
    let Some((value, close)) = scan_quoted(text, value_at + 1, q) else {
        return Err(SchemaError::UnterminatedQuote {
            path: path.to_path_buf(),
            line: key_line,
            quote: q,
        });
    };
    // A quoted value may span lines: continue after its closing quote.
    let lines = text[value_at..close].matches('\n').count();
    let end = end_of_line(text, close);
    let trailing = text[close + 1..end].trim_end_matches('\r').trim_start();
    let comment = match trailing.strip_prefix('#') {
        Some(c) => Some(c),
        None if trailing.is_empty() => None,
        None => {
            return Err(SchemaError::TrailingText {
                path: path.to_path_buf(),
                line: key_line + lines,
            });
        }
    };
    Ok(Value {
        value,
        comment,
        next: end + 1,
        lines,
    })
}

/// End (exclusive, at the `\n` or the end of text) of the line containing byte `pos`.
fn end_of_line(text: &str, pos: usize) -> usize {
    text[pos..].find('\n').map_or(text.len(), |i| pos + i)
}

/// The value of a quoted string starting at `start` (just after the opening quote) and the
/// byte offset of its closing quote.
fn scan_quoted(text: &str, start: usize, quote: char) -> Option<(Zeroizing<String>, usize)> {
    let close = find_close(text, start, quote)?;
    let raw = &text[start..close];
    // Sized up front: a growing buffer would leave unzeroized copies of the value behind.
    let mut value = Zeroizing::new(String::with_capacity(raw.len()));
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if quote == '"' => match chars.next() {
                Some('n') => value.push('\n'),
                Some('r') => value.push('\r'),
                Some('t') => value.push('\t'),
                Some('"') => value.push('"'),
                Some('\\') => value.push('\\'),
                Some(other) => {
                    value.push('\\');
                    value.push(other);
                }
                None => value.push('\\'),
            },
            // A CRLF file keeps plain `\n` line breaks inside multi-line values.
            '\r' if chars.peek() == Some(&'\n') => {}
            c => value.push(c),
        }
    }
    Some((value, close))
}

/// Byte offset of the closing quote, skipping `\"` and `\\` inside double quotes.
fn find_close(text: &str, start: usize, quote: char) -> Option<usize> {
    let mut chars = text[start..].char_indices();
    while let Some((i, c)) = chars.next() {
        if c == quote {
            return Some(start + i);
        }
        if c == '\\' && quote == '"' {
            chars.next()?;
        }
    }
    None
}

/// Splits an unquoted value from a trailing comment: a `#` that follows whitespace.
fn split_comment(s: &str) -> (&str, Option<&str>) {
    let bytes = s.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        if *b == b'#' && i > 0 && matches!(bytes[i - 1], b' ' | b'\t') {
            return (&s[..i], Some(&s[i + 1..]));
        }
    }
    (s, None)
}

/// `rotate: 30d` anywhere in a comment (after a `#`, `,` or `;`, or at its start):
/// `# rotate: 30d`, `# optional, rotate: 12w`, `# optional # rotate: 90d`. A period that
/// does not read is an error naming the line.
fn rotation(comment: &str, path: &Path, line: usize) -> Result<Option<Period>, SchemaError> {
    for part in comment.split(['#', ',', ';']) {
        let part = part.trim_start();
        let Some(head) = part.get(..6) else { continue };
        if !head.eq_ignore_ascii_case("rotate") {
            continue;
        }
        let Some(text) = part[6..].trim_start().strip_prefix(':') else {
            continue;
        };
        return Period::parse(text)
            .map(Some)
            .map_err(|problem| SchemaError::InvalidRotation {
                path: path.to_path_buf(),
                line,
                problem,
            });
    }
    Ok(None)
}

/// `# optional`, `# Optional: only in prod`, `#optional.` — the comment's first word.
fn is_optional(comment: &str) -> bool {
    let word: String = comment
        .trim_start()
        .chars()
        .take_while(|c| c.is_alphanumeric())
        .collect();
    word.eq_ignore_ascii_case("optional")
}
