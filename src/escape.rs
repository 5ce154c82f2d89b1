//! Escaping of text castsync does not control (key names the platform lists, its error
//! details, directory names from a pull request) for the place it is printed.
//!
//! A key named `X\n\nPlan: 0 to create…` must not print a fake plan line, one holding
//! `\x1b]…` must not drive the terminal, and one holding `` ``` `` or `<img …>` must not break
//! out of the pull-request comment's code block or inject HTML. Terminal text shows control
//! characters as escapes; Markdown text also turns HTML and Markdown syntax into entities or
//! backslash escapes. JSON output never goes through here: serde_json escapes exactly.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Characters that move the cursor, change the terminal or reorder text: C0 and C1 controls,
/// DEL, line and paragraph separators, and the bidirectional overrides and isolates.
fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' | '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}'
                | '\u{2066}'..='\u{2069}' | '\u{feff}'
        )
}

fn push_escaped(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        c if (c as u32) < 0x80 => {
            let _ = write!(out, "\\x{:02x}", c as u32);
        }
        c => {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
    }
}

/// One line of terminal text: every unsafe character (newlines included) shown as an escape.
pub fn terminal(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_unsafe) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if is_unsafe(c) {
            push_escaped(&mut out, c);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Like [`terminal`] but keeps line breaks: for castsync's own multi-line messages (`hint:`
/// lines) that may embed outside text. Carriage returns are still escaped.
pub fn terminal_lines(s: &str) -> Cow<'_, str> {
    if !s.chars().any(|c| c != '\n' && is_unsafe(c)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c != '\n' && is_unsafe(c) {
            push_escaped(&mut out, c);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Text for a Markdown paragraph, table cell or HTML element (`<summary>`): one line (line
/// breaks become spaces, other control characters escapes), HTML
/// special characters as entities (raw HTML blocks do not honour backslash escapes), Markdown
/// syntax backslash-escaped.
pub fn markdown(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '|' | '`' | '*' | '_' | '[' | ']' | '#' | '\\' | '!' | '~' => {
                out.push('\\');
                out.push(c);
            }
            // Keeps castsync's own multi-line messages readable, on one line.
            '\n' => out.push(' '),
            c if is_unsafe(c) => push_escaped(&mut out, c),
            c => out.push(c),
        }
    }
    out
}

/// Text for one line inside a fenced code block: with no line break it cannot close the
/// fence, and nothing inside a fence is HTML or Markdown.
pub fn code_line(s: &str) -> Cow<'_, str> {
    terminal(s)
}

/// Text for an inline code span: backticks cannot be escaped inside one, so they become `'`.
pub fn code_span(s: &str) -> String {
    terminal(s).replace('`', "'")
}

/// How long a word is, for an error that must not repeat it (it may be a value typed in the
/// wrong place): "1 character", "12 characters".
pub fn length_of(word: &str) -> String {
    match word.chars().count() {
        1 => "1 character".to_owned(),
        n => format!("{n} characters"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_text_shows_control_characters_as_escapes() {
        assert_eq!(terminal("PLAIN_KEY"), "PLAIN_KEY");
        assert_eq!(
            terminal("K\x1b[31m\n\nPlan: 0 to create\r\u{202e}\u{85}"),
            "K\\x1b[31m\\n\\nPlan: 0 to create\\r\\u{202e}\\u{85}"
        );
        assert_eq!(terminal_lines("a\nb\x07"), "a\nb\\x07");
    }

    #[test]
    fn markdown_text_cannot_inject_html_or_markdown() {
        let hostile = "<img src=x onerror=alert(1)>\n**Plan:** `x`";
        let md = markdown(hostile);
        assert!(!md.contains('<') && !md.contains('\n'), "{md}");
        assert_eq!(
            md,
            "&lt;img src=x onerror=alert(1)&gt; \\*\\*Plan:\\*\\* \\`x\\`"
        );
    }

    #[test]
    fn a_code_line_cannot_close_its_fence() {
        let line = code_line("K\n```\n<img src=x>");
        assert!(!line.contains('\n'), "{line}");
        assert_eq!(code_span("a`b\n"), "a'b\\n");
    }
}
