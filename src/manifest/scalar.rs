//! Which unquoted YAML scalars are safe to take as text, and which would silently change.
//!
//! A manifest value is a string. An unquoted (plain) scalar is taken exactly as written when
//! every YAML reader agrees it is that text: ordinary words, canonical integers (`8080`) and
//! `true`/`false`. Anything that YAML 1.2 (serde_norway) or YAML 1.1 (PyYAML, older Go and
//! Ruby tools) would read as something else — `1.10`, `~`, `0x1F`, `0755`, `1_000`,
//! `2024-01-01`, `.inf`, `yes`, `True` — is refused with the quoted fix, because the same file
//! would then mean different things to different tools.
//!
//! No message ever shows the scalar or what a reader would turn it into: an unquoted
//! `0x4c08…` may be a private key and `0123` a PIN, so a problem is described by its kind
//! (the caller adds the file, line, column and key) and the fix is shown with `...` in place
//! of the value.

use std::fmt;

/// What a plain scalar would be read as, when that is not simply its text. No variant holds
/// the scalar's text or its reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueProblem {
    /// Nothing at all: YAML reads an empty plain value as null.
    Empty,
    /// `~`, `null`, `Null` or `NULL`.
    Null,
    /// A float in YAML 1.2 (`1.10`, `1e3`, `.5`, `.inf`, `.nan`).
    Float,
    /// An integer written in a non-canonical form YAML 1.2 converts (`0x1F`, `0o17`, `+5`, `-0`).
    Number,
    /// A number only in YAML 1.1 (`0755` octal, `1_000`, `1:20` base 60, `1_0.5`).
    Yaml11Number,
    /// A canonical integer too large for 64 bits, which many tools round.
    BigNumber,
    /// `True`, `FALSE`…: YAML 1.2 reads a boolean and writes it back lowercase.
    Bool,
    /// `yes`, `no`, `on`, `off`, `y`, `n` (any case): booleans in YAML 1.1.
    Yaml11Bool,
    /// A YAML 1.1 timestamp such as `2024-01-01`, which some tools turn into a date.
    Timestamp,
    /// An explicit YAML tag (`!!float`, `!foo`).
    Tagged,
    /// A list where a string belongs.
    List,
    /// A mapping where a string belongs.
    Mapping,
}

impl ValueProblem {
    /// The message for key `key`, with the quoted fix where one exists; never the value.
    pub fn describe(&self, key: &str) -> String {
        let fix = format!("put the value in double quotes: {key}: \"...\"");
        match self {
            ValueProblem::Empty => format!(
                "the value is empty, which YAML reads as null; write {key}: \"\" for an empty value, or remove the key"
            ),
            ValueProblem::Null => format!(
                "the unquoted value is a null word (such as ~ or null), which YAML reads as no value; {fix} (or {key}: \"\" for an empty value)"
            ),
            ValueProblem::Float => format!(
                "the unquoted value is read as a floating-point number, which YAML tools rewrite (trailing zeros are lost, for one); {fix}"
            ),
            ValueProblem::Number => format!(
                "the unquoted value is read as a hexadecimal, octal, binary or signed integer, which YAML tools rewrite in decimal; {fix}"
            ),
            ValueProblem::Yaml11Number => format!(
                "the unquoted value is a number in YAML 1.1 (a leading zero, underscores or colons) and some tools would rewrite it; {fix}"
            ),
            ValueProblem::BigNumber => format!(
                "the unquoted value is an integer too large for 64 bits, which many YAML tools round; {fix}"
            ),
            ValueProblem::Bool => format!(
                "the unquoted value is a capitalised boolean word, which YAML reads as a boolean and writes back in lowercase; {fix}"
            ),
            ValueProblem::Yaml11Bool => format!(
                "the unquoted value is a boolean word in YAML 1.1 (such as yes, no, on, off) and some tools would rewrite it as true/false; {fix}"
            ),
            ValueProblem::Timestamp => format!(
                "the unquoted value looks like a date, which some YAML tools rewrite as a timestamp; {fix}"
            ),
            ValueProblem::Tagged => format!(
                "the value carries a YAML tag such as !!float; remove the tag and write the value as a quoted string: {key}: \"...\""
            ),
            ValueProblem::List => format!(
                "the value is a list, but secret values are strings; write it as one quoted string: {key}: \"...\""
            ),
            ValueProblem::Mapping => format!(
                "the value is a mapping, but secret values are strings (check the indentation); write it as one quoted string: {key}: \"...\""
            ),
        }
    }
}

impl fmt::Display for ValueProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe("KEY"))
    }
}

/// Checks a plain (unquoted) scalar: `Ok(())` when its text is what every reader sees.
pub fn check_plain(token: &str) -> Result<(), ValueProblem> {
    if token.is_empty() {
        return Err(ValueProblem::Empty);
    }
    if matches!(token, "~" | "null" | "Null" | "NULL") {
        return Err(ValueProblem::Null);
    }
    match token {
        "true" | "false" => return Ok(()),
        "True" | "TRUE" | "False" | "FALSE" => return Err(ValueProblem::Bool),
        "y" | "Y" | "yes" | "Yes" | "YES" | "n" | "N" | "no" | "No" | "NO" | "on" | "On" | "ON"
        | "off" | "Off" | "OFF" => {
            return Err(ValueProblem::Yaml11Bool);
        }
        _ => {}
    }
    if is_canonical_int(token) {
        let fits = token.parse::<i64>().is_ok() || token.parse::<u64>().is_ok();
        return if fits {
            Ok(())
        } else {
            Err(ValueProblem::BigNumber)
        };
    }
    if yaml12_int(token).is_some() {
        return Err(ValueProblem::Number);
    }
    if is_yaml12_float(token) {
        return Err(ValueProblem::Float);
    }
    if is_yaml11_number(token) {
        return Err(ValueProblem::Yaml11Number);
    }
    if is_yaml11_timestamp(token) {
        return Err(ValueProblem::Timestamp);
    }
    Ok(())
}

/// True when `token` needs quotes to be read back as the same string.
pub fn needs_quotes(token: &str) -> bool {
    check_plain(token).is_err() || matches!(token, "true" | "false") || is_canonical_int(token)
}

/// `-?(0|[1-9][0-9]*)`: the one integer form whose text survives every reader.
fn is_canonical_int(token: &str) -> bool {
    let digits = token.strip_prefix('-').unwrap_or(token);
    let canonical = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'));
    canonical && token != "-0"
}

fn split_sign(token: &str) -> (bool, &str) {
    match token.as_bytes().first() {
        Some(b'-') => (true, &token[1..]),
        Some(b'+') => (false, &token[1..]),
        _ => (false, token),
    }
}

/// The integer serde_norway (YAML 1.2 core schema) would read, if any.
fn yaml12_int(token: &str) -> Option<i128> {
    let (negative, rest) = split_sign(token);
    let parsed = if let Some(hex) = rest.strip_prefix("0x") {
        radix(hex, 16)
    } else if let Some(oct) = rest.strip_prefix("0o") {
        radix(oct, 8)
    } else if let Some(bin) = rest.strip_prefix("0b") {
        radix(bin, 2)
    } else if rest.len() > 1 && rest.starts_with('0') {
        // Leading zeros make a string in YAML 1.2 (they are octal in YAML 1.1).
        None
    } else {
        radix(rest, 10)
    }?;
    Some(if negative { -parsed } else { parsed })
}

fn radix(digits: &str, radix: u32) -> Option<i128> {
    if digits.is_empty() || digits.starts_with(['+', '-']) {
        return None;
    }
    i128::from_str_radix(digits, radix).ok()
}

/// Whether serde_norway would read a float.
fn is_yaml12_float(token: &str) -> bool {
    let (_, rest) = split_sign(token);
    if matches!(rest, ".inf" | ".Inf" | ".INF") || matches!(token, ".nan" | ".NaN" | ".NAN") {
        return true;
    }
    let leading_zero_digits =
        rest.len() > 1 && rest.starts_with('0') && rest.bytes().all(|b| b.is_ascii_digit());
    if leading_zero_digits || rest.starts_with(['+', '-']) {
        return false;
    }
    rest.parse::<f64>().is_ok_and(f64::is_finite)
}

/// YAML 1.1 integers and floats that YAML 1.2 leaves as strings: `0755`, `1_000`, `0b1_0`,
/// `0x_1F`, `1:20`, `1:20.5`, `1_0.5`, `1.5_0`.
fn is_yaml11_number(token: &str) -> bool {
    let (_, rest) = split_sign(token);
    let digits_or_underscores =
        |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit() || b == b'_');
    if let Some(bin) = rest.strip_prefix("0b") {
        return !bin.is_empty() && bin.bytes().all(|b| matches!(b, b'0' | b'1' | b'_'));
    }
    if let Some(hex) = rest.strip_prefix("0x") {
        return !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit() || b == b'_');
    }
    if rest.starts_with(|c: char| c.is_ascii_digit()) && digits_or_underscores(rest) {
        return true;
    }
    // Base 60: [1-9][0-9_]*(:[0-5]?[0-9])+ with an optional .fraction (floats only).
    if let Some((head, tail)) = rest.split_once(':') {
        let tail = match tail.rsplit_once('.') {
            Some((t, f)) if f.bytes().all(|b| b.is_ascii_digit() || b == b'_') => t,
            _ => tail,
        };
        let head_ok =
            head.starts_with(|c: char| ('1'..='9').contains(&c)) && digits_or_underscores(head);
        let parts_ok = tail.split(':').all(|p| {
            let b = p.as_bytes();
            match b.len() {
                1 => b[0].is_ascii_digit(),
                2 => (b'0'..=b'5').contains(&b[0]) && b[1].is_ascii_digit(),
                _ => false,
            }
        });
        return head_ok && parts_ok;
    }
    // Floats with underscores: [0-9][0-9_]*\.[0-9_]*([eE][-+][0-9]+)? or \.[0-9_]+…
    let (mantissa, exponent) = match rest.find(['e', 'E']) {
        Some(i) => (&rest[..i], Some(&rest[i + 1..])),
        None => (rest, None),
    };
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['+', '-']).unwrap_or(e);
        !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit())
    });
    match mantissa.split_once('.') {
        Some((int, frac)) => {
            let int_ok = int.is_empty()
                || (int.starts_with(|c: char| c.is_ascii_digit()) && digits_or_underscores(int));
            let frac_ok = frac.bytes().all(|b| b.is_ascii_digit() || b == b'_');
            let has_digit = mantissa.bytes().any(|b| b.is_ascii_digit());
            int_ok && frac_ok && has_digit && exponent_ok
        }
        None => false,
    }
}

/// YAML 1.1 timestamps: `2024-01-01`, or `2024-1-1T10:00:00.5Z` / `2024-01-01 10:00:00 +02:00`.
fn is_yaml11_timestamp(token: &str) -> bool {
    let mut c = Cursor(token.as_bytes());
    if !(c.digits(4, 4) && c.eat(b'-') && c.digits(1, 2) && c.eat(b'-') && c.digits(1, 2)) {
        return false;
    }
    if c.0.is_empty() {
        // The date-only form needs two-digit month and day.
        return token.len() == 10;
    }
    if !(c.eat(b'T') || c.eat(b't') || c.spaces() > 0) {
        return false;
    }
    if !(c.digits(1, 2) && c.eat(b':') && c.digits(2, 2) && c.eat(b':') && c.digits(2, 2)) {
        return false;
    }
    if c.eat(b'.') {
        c.digits(0, usize::MAX);
    }
    c.spaces();
    if c.0.is_empty() || (c.eat(b'Z') && c.0.is_empty()) {
        return true;
    }
    (c.eat(b'+') || c.eat(b'-'))
        && c.digits(1, 2)
        && (c.0.is_empty() || (c.eat(b':') && c.digits(2, 2)))
        && c.0.is_empty()
}

struct Cursor<'a>(&'a [u8]);

impl Cursor<'_> {
    fn eat(&mut self, b: u8) -> bool {
        match self.0.split_first() {
            Some((first, rest)) if *first == b => {
                self.0 = rest;
                true
            }
            _ => false,
        }
    }

    fn digits(&mut self, min: usize, max: usize) -> bool {
        let n = self
            .0
            .iter()
            .take(max)
            .take_while(|b| b.is_ascii_digit())
            .count();
        self.0 = &self.0[n..];
        n >= min
    }

    fn spaces(&mut self) -> usize {
        let n = self
            .0
            .iter()
            .take_while(|b| matches!(b, b' ' | b'\t'))
            .count();
        self.0 = &self.0[n..];
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_text_canonical_integers_and_lowercase_booleans_are_safe() {
        for ok in [
            "hello",
            "sk-abc123",
            "8080",
            "0",
            "-12",
            "true",
            "false",
            "1.2.3",
            "v1.10",
            "inf",
            "nan",
            "infinity",
            "12e",
            "0x",
            "0xZZ",
            "8080:80",
            "2024-01",
            "postgres://u:p@h/db",
            "9223372036854775807",
            "18446744073709551615",
            "1:2:3:4:5x",
            "a_b",
            ".",
            "-",
            "e5",
            "1e",
            "_1",
        ] {
            assert_eq!(check_plain(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn floats_are_refused() {
        for token in ["1.10", "1e3", ".5", "-2.50", "1.", "+1.5"] {
            assert_eq!(check_plain(token), Err(ValueProblem::Float), "{token}");
        }
        for special in [".inf", "-.inf", "+.INF", ".nan", ".NaN"] {
            assert!(
                matches!(check_plain(special), Err(ValueProblem::Float)),
                "{special}"
            );
        }
    }

    #[test]
    fn nulls_and_empty_values_are_refused() {
        assert_eq!(check_plain(""), Err(ValueProblem::Empty));
        for token in ["~", "null", "Null", "NULL"] {
            assert_eq!(check_plain(token), Err(ValueProblem::Null), "{token:?}");
        }
    }

    #[test]
    fn non_canonical_integers_are_refused() {
        for token in ["0x1F", "0o17", "0b101", "+5", "-0", "-0x10"] {
            assert_eq!(check_plain(token), Err(ValueProblem::Number), "{token}");
        }
    }

    #[test]
    fn yaml_1_1_numbers_are_refused_even_though_yaml_1_2_keeps_them_as_text() {
        for token in [
            "0755",
            "00",
            "1_000",
            "-1_000",
            "0b1_0",
            "0x_1F",
            "1:20",
            "190:20:30",
            "1:20.5",
            "1_0.5",
            "1.5_0",
            "+0755",
        ] {
            assert!(
                matches!(check_plain(token), Err(ValueProblem::Yaml11Number)),
                "{token}"
            );
        }
    }

    #[test]
    fn integers_too_large_for_64_bits_are_refused() {
        assert!(matches!(
            check_plain("99999999999999999999"),
            Err(ValueProblem::BigNumber)
        ));
        assert!(matches!(
            check_plain("-9223372036854775809"),
            Err(ValueProblem::BigNumber)
        ));
    }

    #[test]
    fn capitalised_and_yaml_1_1_booleans_are_refused() {
        assert_eq!(check_plain("True"), Err(ValueProblem::Bool));
        assert_eq!(check_plain("FALSE"), Err(ValueProblem::Bool));
        for token in ["yes", "No", "ON", "off", "y", "N"] {
            assert!(
                matches!(check_plain(token), Err(ValueProblem::Yaml11Bool)),
                "{token}"
            );
        }
    }

    #[test]
    fn yaml_1_1_timestamps_are_refused() {
        for token in [
            "2024-01-01",
            "2001-12-14t21:59:43.10-05:00",
            "2001-12-14 21:59:43.10 -5",
            "2001-12-15T02:59:43.1Z",
            "2002-12-14 21:59:43",
            "2024-1-1T1:00:00",
        ] {
            assert!(
                matches!(check_plain(token), Err(ValueProblem::Timestamp)),
                "{token}"
            );
        }
        for not in ["2024-1-1", "2024-01-01x", "2024-01-01T", "20240-01-01"] {
            assert!(
                !matches!(check_plain(not), Err(ValueProblem::Timestamp)),
                "{not}"
            );
        }
    }

    #[test]
    fn the_message_shows_the_quoted_fix_but_never_the_value_or_its_reading() {
        for token in [
            "1.25",
            "0x4c08",
            "0123",
            "12345678901234567890123",
            "Yes",
            "2931-07-19",
        ] {
            let message = check_plain(token).unwrap_err().describe("PIN");
            assert!(message.ends_with("PIN: \"...\""), "{message}");
            assert!(!message.contains(token), "{message}");
        }
        // What a reader would make of it is as secret as the value itself.
        let hex = check_plain("0x4c08").unwrap_err().describe("K");
        assert!(!hex.contains("19464"), "{hex}");
    }

    #[test]
    fn quotes_are_needed_exactly_when_the_plain_form_would_change_or_look_typed() {
        for quoted in ["1.10", "~", "", "true", "8080", "yes", "2024-01-01", "0755"] {
            assert!(needs_quotes(quoted), "{quoted}");
        }
        for plain in ["support-bot", "OPENAI_API_KEY", "billing.agent_2"] {
            assert!(!needs_quotes(plain), "{plain}");
        }
    }
}
