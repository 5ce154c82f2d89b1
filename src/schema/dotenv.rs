//! A small dotenv line parser, shared by `.env.example` schemas and `import --from-dotenv`.
//!
//! It reads what python-dotenv reads (tests/dotenv_compat.rs compares the two on a corpus):
//! `KEY=value`, `export KEY=value`, `'literal'` (only `\'` and `\\` are escapes),
//! `"escaped"` (`\n`, `\r`, `\t`, `\a`, `\b`, `\f`, `\v`, `\"`, `\'`, `\\`; other
//! backslashes stay as written), quoted values that span lines, unquoted values with a
//! trailing ` # comment` stripped, `#` comment lines and blank lines. Lines end at `\n`,
//! `\r\n` or a bare `\r` (old Mac files), as python-dotenv's universal newlines read them,
//! and a line break inside quotes is a `\n`. Nothing is expanded. We keep our own parser
//! because dotenvy drops comments (which carry `# optional`
//! and `# rotate: 30d`) and expands variables.
//!
//! Where it differs, it refuses with a named error instead of guessing: a line without `=`,
//! an invalid key name, an unclosed quote, text after a closing quote, a backtick value that
//! spans lines (node reads those, python-dotenv does not). A `#` right after `=` and a space
//! starts a comment (`KEY= # optional`), as in node's dotenv; python-dotenv keeps it as the
//! value. A key repeated in a `.env.example` is a warning and the last value counts, as in
//! every other reader; in a real `.env` it is an error (which value is meant?).
//!
//! Errors carry the path and line number but never the line's text: in a real `.env` file
//! that text is a secret.

use std::collections::HashMap;
use std::path::Path;

use zeroize::Zeroizing;

use super::{Repeated, SchemaError};
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

/// What is being read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// `.env.example`: placeholders; an invalid key may be named, a repeated key is
    /// [`Parsed::repeated`] and its last value counts.
    Example,
    /// A real `.env`: every value a secret; no text of a line is shown (a line without a
    /// proper key may be a value), and a repeated key is an error.
    Secrets,
}

/// A parsed file.
pub(super) struct Parsed {
    /// In file order (a repeated key keeps its first place, with its last value).
    pub assignments: Vec<Assignment>,
    pub repeated: Vec<Repeated>,
    /// Each key's first line and its place in `assignments`.
    first: HashMap<String, (usize, usize)>,
}

impl Parsed {
    /// Adds `a`: a key seen before is an error in a real `.env`, else it is noted and its
    /// last value counts.
    fn add(&mut self, a: Assignment, kind: Kind, path: &Path) -> Result<(), SchemaError> {
        match self.first.get(&a.key).copied() {
            None => {
                self.first
                    .insert(a.key.clone(), (a.line, self.assignments.len()));
                self.assignments.push(a);
            }
            Some((first_line, _)) if kind == Kind::Secrets => {
                return Err(SchemaError::DuplicateKey {
                    path: path.to_path_buf(),
                    line: a.line,
                    key: a.key,
                    first_line,
                });
            }
            Some((first_line, index)) => {
                self.repeated.push(Repeated {
                    key: a.key.clone(),
                    line: a.line,
                    first_line,
                });
                self.assignments[index] = a;
            }
        }
        Ok(())
    }
}

/// `text` with every line break made a `\n` (`\r\n` and a bare `\r` too), as Python's
/// universal newlines read a file; None when there is nothing to change.
fn universal_newlines(text: &str) -> Option<Zeroizing<String>> {
    if !text.contains('\r') {
        return None;
    }
    // Sized up front: a growing buffer would leave unzeroized copies of values behind.
    let mut out = Zeroizing::new(String::with_capacity(text.len()));
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\r' {
            if chars.peek() == Some(&'\n') {
                chars.next();
            }
            out.push('\n');
        } else {
            out.push(c);
        }
    }
    Some(out)
}

/// Parses `text` (see the module doc).
pub(super) fn parse(text: &str, path: &Path, kind: Kind) -> Result<Parsed, SchemaError> {
    // Some Windows editors start a file with a byte order mark.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let normalized = universal_newlines(text);
    let text = normalized.as_deref().map_or(text, String::as_str);
    let mut parsed = Parsed {
        assignments: Vec::new(),
        repeated: Vec::new(),
        first: HashMap::new(),
    };
    let mut pending_optional = false;
    // A `# rotate:` comment in the block of comment lines right above the next key.
    let mut pending_rotate: Option<Period> = None;
    let mut pos = 0;
    let mut line_no = 0;
    while pos < text.len() {
        line_no += 1;
        let line_end = end_of_line(text, pos);
        let line = &text[pos..line_end];
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        let line_start = pos;
        pos = line_end + 1;

        if trimmed.is_empty() {
            pending_optional = false;
            pending_rotate = None;
            continue;
        }
        if let Some(comment) = trimmed.strip_prefix('#') {
            pending_optional = is_optional(comment);
            if kind == Kind::Example
                && let Some(period) = rotation(comment, path, line_no)?
            {
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
                key: (kind == Kind::Example).then(|| key.to_owned()),
            });
        }
        // Byte offset of the text after `=` within `text`.
        let value_start = line_start + indent + (trimmed.len() - rest.len()) + eq + 1;
        let Value {
            value,
            comment,
            next,
            lines,
        } = read_value(text, value_start..line_end, path, key_line)?;
        line_no += lines;
        pos = next;

        let trailing_rotate = match comment {
            Some(c) if kind == Kind::Example => rotation(c, path, key_line)?,
            _ => None,
        };
        let assignment = Assignment {
            key: key.to_owned(),
            value,
            line: key_line,
            optional: pending_optional || comment.is_some_and(is_optional),
            rotate: trailing_rotate.or(pending_rotate.take()),
        };
        pending_optional = false;
        parsed.add(assignment, kind, path)?;
    }
    Ok(parsed)
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
    if after_trimmed.starts_with('`') && !after_trimmed[1..].contains('`') {
        // node's dotenv reads a multi-line backtick value; python-dotenv reads the backtick
        // as text and the next line as a key. Neither guess is safe.
        return Err(SchemaError::OpenBacktick {
            path: path.to_path_buf(),
            line: key_line,
        });
    }
    let Some(q @ ('\'' | '"')) = after_trimmed.chars().next() else {
        let (value, comment) = split_comment(after_eq);
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
    let trailing = text[close + 1..end].trim_start();
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
/// byte offset of its closing quote. Escapes are python-dotenv's: in single quotes `\'` and
/// `\\`; in double quotes also `\"`, `\n`, `\r`, `\t`, `\a`, `\b`, `\f` and `\v`.
fn scan_quoted(text: &str, start: usize, quote: char) -> Option<(Zeroizing<String>, usize)> {
    let close = find_close(text, start, quote)?;
    let raw = &text[start..close];
    // Sized up front: a growing buffer would leave unzeroized copies of the value behind.
    let mut value = Zeroizing::new(String::with_capacity(raw.len()));
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            value.push(c);
            continue;
        }
        let decoded = match (quote, chars.peek().copied()) {
            (_, Some(e @ ('\\' | '\''))) => Some(e),
            ('"', Some('"')) => Some('"'),
            ('"', Some('n')) => Some('\n'),
            ('"', Some('r')) => Some('\r'),
            ('"', Some('t')) => Some('\t'),
            ('"', Some('a')) => Some('\u{7}'),
            ('"', Some('b')) => Some('\u{8}'),
            ('"', Some('f')) => Some('\u{c}'),
            ('"', Some('v')) => Some('\u{b}'),
            _ => None,
        };
        match decoded {
            Some(d) => {
                chars.next();
                value.push(d);
            }
            None => value.push('\\'),
        }
    }
    Some((value, close))
}

/// Byte offset of the closing quote. A backslash escapes the character after it inside
/// double quotes, and a quote or a backslash inside single quotes.
fn find_close(text: &str, start: usize, quote: char) -> Option<usize> {
    let mut chars = text[start..].char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c == quote {
            return Some(start + i);
        }
        if c == '\\' {
            let escapes_next =
                quote == '"' || chars.peek().is_some_and(|(_, n)| *n == '\'' || *n == '\\');
            if escapes_next {
                chars.next()?;
            }
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
