//! A request that got no HTTP answer, classified by what fixes it.
//!
//! A reset or a refused connection may pass by itself: transient, retried. An untrusted
//! certificate, https to a port that does not speak TLS, or a proxy that is down or refuses
//! the tunnel will fail the same way on every request until a person changes something (a CA
//! file, the URL, the proxy): terminal, and the end of the run (see
//! [`PlatformError::ends_run`]). Messages are one line: reqwest's chain of causes, each said
//! once, with OpenSSL's error stack (`error:0A000086:SSL routines:…:statem_clnt.c:1889:`)
//! reduced to its reason.

use crate::platform::PlatformError;

/// The platform error for a request that got no answer (a timeout is the caller's, who knows
/// how long it waited). `proxy` is the proxy the request went through (masked), if any.
pub fn classify(err: &reqwest::Error, host: &str, proxy: Option<&str>) -> PlatformError {
    let causes = causes(err);
    let text = causes.join(": ");
    if let Some(at) = text.find("certificate verify failed") {
        let reason = text[at..]
            .split_once(" (")
            .and_then(|(_, r)| r.split_once(')'))
            .map_or("certificate verify failed", |(r, _)| r);
        return PlatformError::Untrusted {
            host: host.to_owned(),
            reason: reason.to_owned(),
        };
    }
    if text.contains("wrong version number") {
        return PlatformError::NotTls {
            host: host.to_owned(),
            detail: "wrong version number".to_owned(),
        };
    }
    if let Some(proxy) = proxy
        && (err.is_connect() || text.contains("tunnel error"))
    {
        return PlatformError::Proxy {
            proxy: proxy.to_owned(),
            detail: proxy_problem(&causes),
        };
    }
    PlatformError::Transient {
        detail: describe(err),
    }
}

/// The error and its causes on one line, each once.
pub fn describe(err: &reqwest::Error) -> String {
    let kind = if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    format!("{kind}: {}", causes(err).join(": "))
}

/// What went wrong at the proxy, in words: hyper's tunnel errors name no status and no cause
/// of their own.
fn proxy_problem(causes: &[String]) -> String {
    let tunnel = causes
        .iter()
        .find_map(|c| c.split_once("tunnel error: ").map(|(_, what)| what));
    let deepest = causes.last().map_or("no detail", String::as_str);
    match tunnel {
        Some("unsuccessful") => "the proxy refused to open a tunnel to the platform".to_owned(),
        Some("proxy authorization required") => {
            "the proxy asks for credentials (407 Proxy Authentication Required)".to_owned()
        }
        Some("unexpected end of file") => {
            "the proxy closed the connection while opening the tunnel".to_owned()
        }
        _ => format!("cannot connect to the proxy: {deepest}"),
    }
}

/// The error's own text and each of its causes, OpenSSL stacks reduced to their reasons, a
/// cause already said by the one before it left out.
fn causes(err: &(dyn std::error::Error + 'static)) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut next = Some(err);
    while let Some(e) = next {
        let text = crate::redact::in_text(&openssl_reasons(&e.to_string())).into_owned();
        if !text.is_empty() && !out.iter().any(|said| said.contains(&text)) {
            out.push(text);
        }
        next = e.source();
    }
    out
}

/// Each `error:CODE:LIBRARY:FUNCTION:REASON:FILE:LINE:` of an OpenSSL error stack replaced
/// by its REASON; other text kept.
fn openssl_reasons(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("error:") {
        out.push_str(&rest[..at]);
        let fields: Vec<&str> = rest[at..].splitn(8, ':').collect();
        let is_entry = fields.len() >= 7
            && !fields[1].is_empty()
            && fields[1].chars().all(|c| c.is_ascii_hexdigit())
            && fields[6].chars().all(|c| c.is_ascii_digit());
        if is_entry {
            out.push_str(fields[4]);
            rest = fields.get(7).copied().unwrap_or("");
        } else {
            out.push_str("error:");
            rest = &rest[at + "error:".len()..];
        }
    }
    out.push_str(rest);
    out.trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openssl_stacks_become_their_reasons() {
        let native = "error:0A000086:SSL routines:tls_post_process_server_certificate:certificate verify failed:../ssl/statem/statem_clnt.c:1889: (unable to get local issuer certificate)";
        assert_eq!(
            openssl_reasons(native),
            "certificate verify failed (unable to get local issuer certificate)"
        );
        assert_eq!(
            openssl_reasons(
                "error:0A00010B:SSL routines:ssl3_get_record:wrong version number:ssl/record/ssl3_record.c:354:"
            ),
            "wrong version number"
        );
        assert_eq!(openssl_reasons("no error: here"), "no error: here");
    }

    #[test]
    fn tunnel_errors_are_said_in_words() {
        let causes = |c: &[&str]| c.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            proxy_problem(&causes(&[
                "client error (Connect)",
                "tunnel error: unsuccessful"
            ])),
            "the proxy refused to open a tunnel to the platform"
        );
        assert_eq!(
            proxy_problem(&causes(&[
                "tunnel error: failed to create underlying connection",
                "tcp connect error",
                "Connection refused (os error 111)"
            ])),
            "cannot connect to the proxy: Connection refused (os error 111)"
        );
    }
}
