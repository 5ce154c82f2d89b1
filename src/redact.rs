//! Credentials taken out of URLs before a URL is printed, logged, served or stored.
//!
//! A git remote may be given as `https://x-access-token:TOKEN@host/repo.git`, a proxy as
//! `http://user:password@proxy:3128`, a webhook as `https://hooks.example.com/x?token=…`.
//! Every place castsync shows or keeps such a URL (log lines, errors, `/readyz`, `/metrics`,
//! `/history`, the mirror's git config, the data directory's name) goes through here:
//! [`url`] for what people see, [`identity`] for what names a remote whatever its
//! credentials, and [`in_text`] for a library's message that may quote a URL. It must never
//! let a password, a token in the user part, or a secret-looking query value through.

use std::borrow::Cow;

/// What replaces a credential in a URL shown to people.
pub const MASK: &str = "***";

/// The URL for messages, logs and status pages: the user-info part becomes [`MASK`] (for
/// ssh, where the user name is a login and not a secret, only a password is masked), and the
/// value of every query parameter whose name looks like a credential (`token`, `key`,
/// `secret`, `password`, `auth`…) becomes [`MASK`]. Text without credentials comes back
/// unchanged.
pub fn url(raw: &str) -> String {
    rebuild(raw, Some(MASK))
}

/// The URL with its credentials left out entirely: what names a remote (the data directory's
/// name, the URL kept in the clone's config), so that rotating a token changes nothing. A URL
/// without credentials comes back unchanged.
pub fn identity(raw: &str) -> String {
    rebuild(raw, None)
}

/// User name and password taken out of a URL's user-info part (percent-decoded).
pub struct UserInfo {
    pub user: String,
    pub password: Option<String>,
}

/// `raw` without its user-info part, and that part, for a URL whose user-info is a credential
/// (not ssh's login). None when there is none to take. The query is kept: a transport may
/// need it.
pub fn take_user_info(raw: &str) -> Option<(String, UserInfo)> {
    let parts = split(raw);
    let user = parts.user?;
    if user_is_login(parts.scheme) {
        return None;
    }
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    let info = UserInfo {
        user: decode(user),
        password: parts.password.map(decode),
    };
    let mut rest = format!("{}{}", parts.scheme, parts.rest);
    if let Some(query) = parts.query {
        rest.push('?');
        rest.push_str(query);
    }
    if let Some(fragment) = parts.fragment {
        rest.push('#');
        rest.push_str(fragment);
    }
    Some((rest, info))
}

/// True when `raw` carries something [`url`] would mask.
pub fn has_credentials(raw: &str) -> bool {
    url(raw) != raw
}

/// Every URL inside free text (a library's error message) passed through [`url`]; an
/// scp-style `user:password@host` too.
pub fn in_text(text: &str) -> Cow<'_, str> {
    if !text.contains('@') && !text.contains('?') {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(|c: char| !is_separator(c)) {
        out.push_str(&rest[..start]);
        rest = &rest[start..];
        let end = rest.find(is_separator).unwrap_or(rest.len());
        let word = &rest[..end];
        if word.contains("://") || word.contains('@') {
            // A URL inside a sentence keeps its closing punctuation outside.
            let trimmed = word.trim_end_matches(['.', ',', ';', ':', ')', ']', '>']);
            out.push_str(&url(trimmed));
            out.push_str(&word[trimmed.len()..]);
        } else {
            out.push_str(word);
        }
        rest = &rest[end..];
    }
    out.push_str(rest);
    Cow::Owned(out)
}

fn is_separator(c: char) -> bool {
    c.is_whitespace() || matches!(c, '"' | '\'' | '`' | '(' | '<' | '[')
}

/// The parts of a URL this module cares about; everything else is kept as written.
struct Parts<'a> {
    /// `https://`, or "" for an scp-style `user@host:path`.
    scheme: &'a str,
    user: Option<&'a str>,
    password: Option<&'a str>,
    /// Host, port and path up to the query.
    rest: &'a str,
    query: Option<&'a str>,
    fragment: Option<&'a str>,
}

fn split(raw: &str) -> Parts<'_> {
    let (scheme, after) = match raw.find("://") {
        Some(i) => raw.split_at(i + 3),
        None => ("", raw),
    };
    let (before_fragment, fragment) = match after.split_once('#') {
        Some((b, f)) => (b, Some(f)),
        None => (after, None),
    };
    let (before_query, query) = match before_fragment.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (before_fragment, None),
    };
    // The authority ends at the first '/'; user info is what precedes its last '@'. (An
    // scp-style `user@host:path` has no '/' before its '@'.)
    let authority_end = before_query.find('/').unwrap_or(before_query.len());
    let (user_info, rest) = match before_query[..authority_end].rfind('@') {
        Some(at) => (Some(&before_query[..at]), &before_query[at + 1..]),
        None => (None, before_query),
    };
    let (user, password) = match user_info.map(|u| u.split_once(':').ok_or(u)) {
        Some(Ok((u, p))) => (Some(u), Some(p)),
        Some(Err(u)) => (Some(u), None),
        None => (None, None),
    };
    Parts {
        scheme,
        user,
        password,
        rest,
        query,
        fragment,
    }
}

/// ssh's user name is a login (`git@github.com`), not a secret.
fn user_is_login(scheme: &str) -> bool {
    let scheme = scheme.trim_end_matches("://").to_ascii_lowercase();
    scheme.is_empty() || scheme.contains("ssh")
}

/// Query parameter names that carry credentials: `token`, `access_token`, `api_key`,
/// `X-Amz-Signature`, `password`, `auth`…
fn secret_parameter(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    [
        "token",
        "key",
        "secret",
        "password",
        "passwd",
        "auth",
        "signature",
        "sig",
        "credential",
        "session",
    ]
    .iter()
    .any(|word| name.contains(word))
}

/// `raw` with credentials replaced by `mask`, or removed when `mask` is None.
fn rebuild(raw: &str, mask: Option<&str>) -> String {
    let parts = split(raw);
    let mut out = String::with_capacity(raw.len());
    out.push_str(parts.scheme);
    match (parts.user, parts.password) {
        (Some(user), None) if user_is_login(parts.scheme) => {
            out.push_str(user);
            out.push('@');
        }
        (Some(user), Some(_)) if user_is_login(parts.scheme) => {
            out.push_str(user);
            if let Some(mask) = mask {
                out.push(':');
                out.push_str(mask);
            }
            out.push('@');
        }
        (Some(_), _) => {
            if let Some(mask) = mask {
                out.push_str(mask);
                out.push('@');
            }
        }
        (None, _) => {}
    }
    out.push_str(parts.rest);
    if let Some(query) = parts.query {
        let kept: Vec<String> = query
            .split('&')
            .filter_map(|pair| {
                let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                match (secret_parameter(name) && !value.is_empty(), mask) {
                    (false, _) => Some(pair.to_owned()),
                    (true, Some(mask)) => Some(format!("{name}={mask}")),
                    (true, None) => None,
                }
            })
            .collect();
        if !kept.is_empty() || mask.is_some() {
            out.push('?');
            out.push_str(&kept.join("&"));
        }
    }
    if let Some(fragment) = parts.fragment {
        out.push('#');
        out.push_str(fragment);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "ghp_canary0123456789";

    #[test]
    fn user_info_is_masked_for_http_and_only_the_password_for_ssh() {
        for (raw, shown) in [
            (
                format!("https://x-access-token:{TOKEN}@github.com/acme/s.git"),
                "https://***@github.com/acme/s.git".to_owned(),
            ),
            (
                format!("https://{TOKEN}@github.com/acme/s.git"),
                "https://***@github.com/acme/s.git".to_owned(),
            ),
            (
                format!("http://user:{TOKEN}@proxy:3128"),
                "http://***@proxy:3128".to_owned(),
            ),
            (
                format!("ssh://git:{TOKEN}@host/r.git"),
                "ssh://git:***@host/r.git".to_owned(),
            ),
            (
                "ssh://git@host:22/r.git".to_owned(),
                "ssh://git@host:22/r.git".to_owned(),
            ),
            (
                "git@github.com:acme/s.git".to_owned(),
                "git@github.com:acme/s.git".to_owned(),
            ),
            (
                "https://github.com/a@b/c.git".to_owned(),
                "https://github.com/a@b/c.git".to_owned(),
            ),
        ] {
            assert_eq!(url(&raw), shown, "{raw}");
            assert!(!url(&raw).contains(TOKEN));
        }
    }

    #[test]
    fn secret_looking_query_values_are_masked_and_the_rest_kept() {
        let raw = format!(
            "https://h/x?ref=main&access_token={TOKEN}&API_KEY={TOKEN}&X-Amz-Signature={TOKEN}&page=2#frag"
        );
        assert_eq!(
            url(&raw),
            "https://h/x?ref=main&access_token=***&API_KEY=***&X-Amz-Signature=***&page=2#frag"
        );
        assert_eq!(identity(&raw), "https://h/x?ref=main&page=2#frag");
        assert_eq!(
            identity(&format!("https://h/x?token={TOKEN}")),
            "https://h/x"
        );
    }

    #[test]
    fn identity_ignores_credentials_and_leaves_plain_urls_alone() {
        let plain = "https://github.com/acme/secrets.git";
        assert_eq!(identity(plain), plain);
        assert_eq!(url(plain), plain);
        assert!(!has_credentials(plain));
        assert_eq!(
            identity(&format!("https://x:{TOKEN}@github.com/acme/secrets.git")),
            plain
        );
        assert_eq!(
            identity(&format!("https://{TOKEN}@github.com/acme/secrets.git")),
            plain
        );
        assert_eq!(identity("/srv/git/repo.git"), "/srv/git/repo.git");
        assert_eq!(
            identity("file:///srv/git/repo.git"),
            "file:///srv/git/repo.git"
        );
    }

    #[test]
    fn user_info_is_taken_out_decoded_and_an_ssh_login_left_in() {
        let (rest, info) = take_user_info("https://x-access-token:a%2Fb%40c@h/r.git?x=1").unwrap();
        assert_eq!(rest, "https://h/r.git?x=1");
        assert_eq!(info.user, "x-access-token");
        assert_eq!(info.password.as_deref(), Some("a/b@c"));
        let (_, info) = take_user_info("https://tok@h/r.git").unwrap();
        assert_eq!((info.user.as_str(), info.password), ("tok", None));
        assert!(take_user_info("ssh://git@h/r.git").is_none());
        assert!(take_user_info("https://h/r.git").is_none());
    }

    #[test]
    fn urls_inside_messages_are_masked_in_place() {
        let message = format!(
            "failed to connect to (https://u:{TOKEN}@host/r.git), proxy http://p:{TOKEN}@proxy:3128: refused; see https://docs.example.com/x."
        );
        let shown = in_text(&message);
        assert!(!shown.contains(TOKEN), "{shown}");
        assert!(shown.contains("(https://***@host/r.git),"), "{shown}");
        assert!(shown.contains("http://***@proxy:3128:"), "{shown}");
        assert!(shown.ends_with("https://docs.example.com/x."), "{shown}");
        assert!(matches!(in_text("no url here"), Cow::Borrowed(_)));
    }
}
