//! Writing a manifest back as YAML: deterministic, and every value double-quoted so that it
//! reads back as exactly the same string whatever it contains.

use zeroize::Zeroizing;

use super::scalar::needs_quotes;
use super::{Manifest, UsedKeys, Uses};

/// `agent` (or `group`), `uses`, `secrets` (sorted by key, since they live in a `BTreeMap`),
/// then the metadata.
pub(super) fn render(manifest: &Manifest, with_meta: bool) -> Zeroizing<String> {
    // Reserve the worst case up front (an escape is at most 4 bytes per input byte), so that
    // the buffer never reallocates and leaves an unzeroized copy of a value behind.
    let mut capacity = 64
        + 4 * manifest.agent.len()
        + manifest
            .environment
            .as_ref()
            .map_or(0, |e| 16 + 4 * e.len());
    for (group, used) in &manifest.uses {
        capacity += 16 + 4 * group.len();
        if let UsedKeys::Keys(keys) = used {
            capacity += keys.iter().map(|k| 4 + 4 * k.len()).sum::<usize>();
        }
    }
    for (key, value) in &manifest.secrets {
        capacity += 16 + 4 * key.len() + 4 * value.len();
    }
    if let Some(meta) = manifest.meta.as_ref().filter(|_| with_meta) {
        capacity += 64
            + meta
                .recipients
                .iter()
                .map(|r| 16 + 4 * r.len())
                .sum::<usize>();
    }
    let mut out = Zeroizing::new(String::with_capacity(capacity));

    out.push_str(manifest.kind.field());
    out.push_str(": ");
    push_name(
        &mut out,
        &manifest.agent,
        crate::names::validate_slug(&manifest.agent).is_ok(),
    );
    out.push('\n');
    if let Some(env) = &manifest.environment {
        out.push_str("environment: ");
        push_name(
            &mut out,
            env,
            crate::environment::name_problem(env).is_none(),
        );
        out.push('\n');
    }
    render_uses(&mut out, &manifest.uses);
    if manifest.secrets.is_empty() {
        out.push_str("secrets: {}\n");
    } else {
        out.push_str("secrets:\n");
        for (key, value) in &manifest.secrets {
            out.push_str("  ");
            push_name(&mut out, key, crate::names::validate_key(key).is_ok());
            out.push_str(": ");
            push_double_quoted(&mut out, value.expose());
            out.push('\n');
        }
    }
    if let Some(meta) = manifest.meta.as_ref().filter(|_| with_meta) {
        out.push_str("castsync:\n");
        if meta.recipients.is_empty() {
            out.push_str("  recipients: []\n");
        } else {
            out.push_str("  recipients:\n");
            for recipient in &meta.recipients {
                out.push_str("    - ");
                push_double_quoted(&mut out, recipient);
                out.push('\n');
            }
        }
    }
    out
}

/// Writes `uses:` (nothing when empty): the list form when every group is used whole, else
/// the mapping form with `"*"` for groups used whole. Names are quoted where a YAML reader
/// would take them for something else (a group named `yes`).
fn render_uses(out: &mut String, uses: &Uses) {
    if uses.is_empty() {
        return;
    }
    let list = |out: &mut String, names: &mut dyn Iterator<Item = &String>| {
        out.push('[');
        for (i, name) in names.enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            push_name(out, name, true);
        }
        out.push(']');
    };
    if uses.values().all(|u| *u == UsedKeys::All) {
        out.push_str("uses: ");
        list(out, &mut uses.keys());
        out.push('\n');
        return;
    }
    out.push_str("uses:\n");
    for (group, used) in uses {
        out.push_str("  ");
        push_name(out, group, true);
        out.push_str(": ");
        match used {
            UsedKeys::All => out.push_str("\"*\""),
            UsedKeys::Keys(keys) => list(out, &mut keys.iter()),
        }
        out.push('\n');
    }
}

/// A key or agent name: plain when it is a valid name that reads back as itself.
pub(super) fn push_name(out: &mut String, name: &str, valid: bool) {
    if valid && !needs_quotes(name) {
        out.push_str(name);
    } else {
        push_double_quoted(out, name);
    }
}

/// A YAML double-quoted scalar. Escapes everything that YAML would fold, drop or refuse:
/// control characters, DEL, C1 controls (including NEL), the Unicode line and paragraph
/// separators, the byte-order mark and the two non-characters YAML forbids.
pub(super) fn push_double_quoted(out: &mut String, s: &str) {
    use std::fmt::Write;
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\0' => out.push_str("\\0"),
            c if (c as u32) < 0x20 || (0x7f..=0x9f).contains(&(c as u32)) => {
                // Writing into a String cannot fail.
                let _ = write!(out, "\\x{:02X}", c as u32);
            }
            '\u{2028}' | '\u{2029}' | '\u{FEFF}' | '\u{FFFE}' | '\u{FFFF}' => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}
