//! An agent's values written out for other programs: `castsync export` (dotenv, JSON or
//! shell) and the environment `castsync run` gives a command.
//!
//! Each format is written so that the programs people read it with get back exactly the
//! values: dotenv for python-dotenv and node's `dotenv` alike, JSON for any JSON parser, shell
//! for `eval` in a POSIX shell. A value a format cannot carry exactly is refused with its key
//! named (never written approximately), and nothing here prints a value anywhere but into the
//! buffer it returns.

pub mod show;
pub mod values;

use std::fmt;

use zeroize::Zeroizing;

use crate::plan::DesiredSecrets;

/// The formats of `castsync export`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `KEY='value'` lines, quoted so python-dotenv and node's dotenv read the same values.
    Dotenv,
    /// One JSON object, key to value.
    Json,
    /// `export KEY='value'` lines for a POSIX shell's `eval`.
    Shell,
}

/// A value a format cannot carry exactly.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("key {key}: its value cannot be written as {format} exactly: {why}")]
pub struct Unwritable {
    pub key: String,
    pub format: &'static str,
    pub why: &'static str,
}

impl crate::hint::Hinted for Unwritable {
    fn hint(&self) -> Option<std::borrow::Cow<'_, str>> {
        Some(match self.format {
            "dotenv" => "use --format json or --format shell, or `castsync run` (which passes values without any file)".into(),
            _ => "use --format json".into(),
        })
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Dotenv => "dotenv",
            Format::Json => "JSON",
            Format::Shell => "shell",
        })
    }
}

/// The values in `format`, in key order.
pub fn render(secrets: &DesiredSecrets, format: Format) -> Result<Zeroizing<String>, Unwritable> {
    let mut out = Zeroizing::new(String::new());
    match format {
        Format::Json => {
            let map: serde_json::Map<String, serde_json::Value> = secrets
                .iter()
                .map(|(k, v)| (k.clone(), serde_json::Value::String(v.expose().to_owned())))
                .collect();
            let value = serde_json::Value::Object(map);
            // A String's serialization cannot fail.
            out.push_str(&serde_json::to_string_pretty(&value).unwrap_or_default());
            out.push('\n');
            zeroize_json(value);
        }
        Format::Dotenv => {
            for (key, value) in secrets {
                out.push_str(key);
                out.push('=');
                dotenv_quote(key, value.expose(), &mut out)?;
                out.push('\n');
            }
        }
        Format::Shell => {
            for (key, value) in secrets {
                environment_safe(key, value.expose(), "shell")?;
                out.push_str("export ");
                out.push_str(key);
                out.push('=');
                shell_quote(value.expose(), &mut out);
                out.push('\n');
            }
        }
    }
    Ok(out)
}

/// Overwrites the values of a JSON object built from secrets before it is dropped.
fn zeroize_json(value: serde_json::Value) {
    if let serde_json::Value::Object(map) = value {
        for (_, v) in map {
            if let serde_json::Value::String(s) = v {
                drop(Zeroizing::new(s));
            }
        }
    }
}

/// Whether a value can be an environment variable's: no NUL byte (the C strings of the
/// environment end at it).
pub fn environment_safe(key: &str, value: &str, format: &'static str) -> Result<(), Unwritable> {
    if value.contains('\0') {
        return Err(Unwritable {
            key: key.to_owned(),
            format,
            why: "it contains a NUL byte, which no environment variable can hold",
        });
    }
    Ok(())
}

/// `'value'` with each `'` written as `'\''`: a POSIX shell reads everything between single
/// quotes literally.
fn shell_quote(value: &str, out: &mut String) {
    out.push('\'');
    for c in value.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
}

/// Quotes a value for a dotenv file that python-dotenv and node's dotenv read back the same.
///
/// - Single quotes are literal in both, except that python-dotenv turns `\\` into `\` and
///   `\'` into `'` there, and node's dotenv reads a carriage return as a newline: a value
///   without `'`, without a carriage return, without `\\` and not ending in `\` goes there.
/// - Double quotes: both turn `\n` and `\r` into a newline and a carriage return, and share
///   no other escape (python-dotenv decodes more, node's dotenv has none for `"`): a value
///   without `"` and without `\` goes there, its newlines and carriage returns escaped.
/// - Unquoted, both take the line as it is, trimmed, up to a `#`: a one-line value without
///   `#`, not starting with a quote and without spaces at either end.
///
/// python-dotenv also expands `${NAME}` in every value, quoted or not, and has no escape for
/// it: such a value, and one that fits none of the three, is refused with its key named.
fn dotenv_quote(key: &str, value: &str, out: &mut String) -> Result<(), Unwritable> {
    environment_safe(key, value, "dotenv")?;
    let refuse = |why| Unwritable {
        key: key.to_owned(),
        format: "dotenv",
        why,
    };
    if expands(value) {
        return Err(refuse(
            "python-dotenv would replace its ${...} with another variable's value",
        ));
    }
    let single = !value.contains('\'')
        && !value.contains('\r')
        && !value.contains("\\\\")
        && !value.ends_with('\\');
    if single {
        out.push('\'');
        out.push_str(value);
        out.push('\'');
        return Ok(());
    }
    if !value.contains('"') && !value.contains('\\') {
        out.push('"');
        for c in value.chars() {
            match c {
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                c => out.push(c),
            }
        }
        out.push('"');
        return Ok(());
    }
    let blank = |c: Option<char>| c.is_some_and(|c| c.is_whitespace() || c == '\u{feff}');
    let unquoted = !value.contains(['#', '\n', '\r'])
        && !value.starts_with(['\'', '"', '`'])
        && !blank(value.chars().next())
        && !blank(value.chars().next_back());
    if unquoted {
        out.push_str(value);
        return Ok(());
    }
    Err(refuse(
        "python-dotenv and node's dotenv read no quoting of it alike (a single quote with a double quote or a backslash, and a newline, a # or spaces at an end)",
    ))
}

/// Whether python-dotenv would expand something in `value`: `${` closed by a `}`.
fn expands(value: &str) -> bool {
    value
        .find("${")
        .is_some_and(|at| value[at + 2..].contains('}'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::SecretValue;

    fn one(value: &str, format: Format) -> Result<String, Unwritable> {
        let mut secrets = DesiredSecrets::new();
        secrets.insert("K".to_owned(), SecretValue::new(value));
        render(&secrets, format).map(|s| s.to_string())
    }

    #[test]
    fn dotenv_prefers_single_quotes_and_falls_back_to_escaped_double_quotes() {
        assert_eq!(one("plain", Format::Dotenv).unwrap(), "K='plain'\n");
        assert_eq!(
            one("a\nb $X #c", Format::Dotenv).unwrap(),
            "K='a\nb $X #c'\n"
        );
        assert_eq!(
            one("it's\r\n", Format::Dotenv).unwrap(),
            "K=\"it's\\r\\n\"\n"
        );
        assert_eq!(
            one("it's \"x\"\\", Format::Dotenv).unwrap(),
            "K=it's \"x\"\\\n"
        );
        assert_eq!(one("", Format::Dotenv).unwrap(), "K=''\n");
    }

    #[test]
    fn a_value_neither_quoting_carries_is_refused_by_key() {
        for value in ["it's \"x\"\n", " it's a\\b", "${HOME}", "a\\\\b\r"] {
            let e = one(value, Format::Dotenv).unwrap_err();
            assert_eq!(e.key, "K", "{value:?}");
        }
        let e = one("a\0b", Format::Shell).unwrap_err();
        assert!(e.to_string().contains("NUL"), "{e}");
        assert!(!e.to_string().contains("a\0b"));
    }

    #[test]
    fn shell_quotes_single_quotes_the_posix_way() {
        assert_eq!(one("it's", Format::Shell).unwrap(), "export K='it'\\''s'\n");
    }

    #[test]
    fn json_is_one_object() {
        let text = one("a\"b\0", Format::Json).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["K"], "a\"b\0");
    }
}
