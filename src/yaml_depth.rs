//! A nesting limit for YAML, enforced before serde_norway (libyaml) sees the text.
//!
//! libyaml's time grows much faster than the input when collections nest deeply: 200,000
//! `[` after `a: ` take minutes, while the same bytes in a flat file take milliseconds. No
//! castsync file needs depth: a manifest is 2 levels (the document and `secrets:`), the config
//! 4 (`access:` → rule → `recipients:`). So every YAML text is first streamed through
//! `saphyr-parser`, a pure-Rust event parser whose work per event is bounded while the depth
//! is, and refused as soon as it nests deeper than [`MAX_DEPTH`] — which keeps the whole
//! check, and the parse after it, linear in the input.
//!
//! A text this parser cannot read is refused too (with its position), rather than handed to
//! libyaml unchecked: otherwise a construct only one of the two parsers accepts could hide
//! deep nesting behind it. Its messages are fixed strings (one quotes a single character),
//! never a value.

use saphyr_parser::{Event, Parser};

/// The deepest nesting of sequences and mappings accepted, counting the document's top
/// collection as 1.
pub const MAX_DEPTH: usize = 16;

/// Why a text was refused; positions are 1-based, columns in characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DepthError {
    /// A collection opens deeper than [`MAX_DEPTH`] here.
    TooDeep { line: usize, column: usize },
    /// The text is not YAML this check can read.
    Syntax {
        line: usize,
        column: usize,
        problem: String,
    },
}

/// Streams `text` and stops at the first collection deeper than [`MAX_DEPTH`].
pub fn check(text: &str) -> Result<(), DepthError> {
    let mut depth = 0usize;
    for event in Parser::new_from_str(text) {
        let (event, span) = match event {
            Ok(e) => e,
            Err(e) => {
                let (line, column) = (e.marker().line(), e.marker().col() + 1);
                // The scanner's own guard against flow nesting (at 255 levels).
                if e.info().contains("recursion limit") {
                    return Err(DepthError::TooDeep { line, column });
                }
                return Err(DepthError::Syntax {
                    line,
                    column,
                    problem: e.info().to_owned(),
                });
            }
        };
        match event {
            Event::SequenceStart(..) | Event::MappingStart(..) => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(DepthError::TooDeep {
                        line: span.start.line(),
                        column: span.start.col() + 1,
                    });
                }
            }
            Event::SequenceEnd | Event::MappingEnd => depth = depth.saturating_sub(1),
            Event::StreamEnd => break,
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_manifests_and_configs_pass() {
        for text in [
            "",
            "agent: a\nsecrets:\n  K: v\n",
            "agent: a\nsecrets: {K: \"[[[[[[[[[[[[[[[[[[[[[[\", L: '{{{{{{{{{{{{{{{{{{{{'}\n",
            "access:\n  - agents: \"b-*\"\n    recipients: [age1x]\n",
            "k: |\n  [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\n",
            "k: a[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\n",
            "a: 1\n---\nb: 2\n",
        ] {
            assert_eq!(check(text), Ok(()), "{text}");
        }
    }

    #[test]
    fn nesting_past_the_limit_is_refused_with_its_position() {
        let at_limit = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert_eq!(check(&at_limit), Ok(()));
        let over = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert_eq!(
            check(&over),
            Err(DepthError::TooDeep {
                line: 1,
                column: MAX_DEPTH + 1
            })
        );
        let mut block = String::new();
        for i in 0..=MAX_DEPTH {
            block.push_str(&format!("{}k:\n", " ".repeat(i)));
        }
        block.push_str(&format!("{}v\n", " ".repeat(MAX_DEPTH + 1)));
        assert!(matches!(check(&block), Err(DepthError::TooDeep { .. })));
    }

    #[test]
    fn hostile_nesting_is_refused() {
        // Each of these takes libyaml seconds to minutes at this size.
        for text in [
            format!("a: {}", "[".repeat(200_000)),
            "{a: ".repeat(200_000),
            "- ".repeat(200_000),
            "[".repeat(1_000_000),
        ] {
            assert!(matches!(check(&text), Err(DepthError::TooDeep { .. })));
        }
    }

    #[test]
    fn text_the_parser_cannot_read_is_refused_with_its_position() {
        match check("a: [1, 2\nb: 3\n") {
            Err(DepthError::Syntax { line, .. }) => assert!(line >= 1),
            other => panic!("{other:?}"),
        }
    }
}
