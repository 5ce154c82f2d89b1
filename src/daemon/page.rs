//! `GET /`: the status page — what the daemon follows, what it last did, each agent's state,
//! when it works next, and the last applies — for a person with a browser.
//!
//! Server-rendered HTML with its style inline and nothing else: no script, no external asset
//! (a Content-Security-Policy forbids both), so it works air-gapped and cannot be made to
//! load anything. It refreshes itself every [`REFRESH_SECONDS`]. Every name on it (agent slugs
//! come from git, key names from the platform) is HTML-escaped; it shows what `/readyz` and
//! `/history` show, so never a value or a fingerprint. Read-only, like `/readyz`.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::controller::Shared;
use super::status::{AgentState, PageView};
use crate::history::{self, Entry};
use crate::platform::ErrorClass;

/// How often the page reloads itself.
pub const REFRESH_SECONDS: u32 = 10;
/// History entries shown.
pub const HISTORY_ROWS: usize = 20;

/// No script, no frame, no outside request: only the inline style.
const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The `/` route over `shared`'s status and the history kept next to the state.
pub fn routes(shared: Arc<Shared>, history_file: PathBuf) -> Router {
    Router::new()
        .route("/", get(page))
        .with_state((shared, Arc::new(history_file)))
}

async fn page(State((shared, history_file)): State<(Arc<Shared>, Arc<PathBuf>)>) -> Response {
    let view = shared.status().page();
    let path = history_file.as_ref().clone();
    let entries = tokio::task::spawn_blocking(move || history::last(&path, HISTORY_ROWS))
        .await
        .ok()
        .and_then(Result::ok)
        .map(|read| read.entries)
        .unwrap_or_default();
    let html = render(&view, &entries);
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        html,
    )
        .into_response()
}

/// Text for HTML element content and attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// `2026-12-06T14:18:42.92Z` → `2026-12-06 14:18:42 UTC`; anything else as it is.
fn time(rfc3339: &str) -> String {
    match (rfc3339.get(..10), rfc3339.get(11..19)) {
        (Some(day), Some(clock)) if rfc3339.ends_with('Z') && rfc3339.as_bytes()[10] == b'T' => {
            format!("{day} {clock} UTC")
        }
        _ => rfc3339.to_owned(),
    }
}

fn short(revision: &str) -> &str {
    revision.get(..12).unwrap_or(revision)
}

const STYLE: &str = "body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:70em;padding:0 1em;color:#1d2329}\
h1{font-size:1.4em}h2{font-size:1.1em;margin-top:1.6em}\
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.3em .6em;border-bottom:1px solid #dde1e5;vertical-align:top}\
code{font:12px ui-monospace,monospace}.ok{color:#1a7f37}.bad{color:#cf222e}.warn{color:#9a6700}\
.badge{display:inline-block;padding:.1em .6em;border-radius:1em;color:#fff}.badge.ok{background:#1a7f37}.badge.bad{background:#cf222e}\
dl{display:grid;grid-template-columns:max-content auto;gap:.2em 1em}dt{color:#57606a}dd{margin:0}";

/// The page for `view` and the last history `entries` (oldest first).
pub fn render(view: &PageView, entries: &[Entry]) -> String {
    let mut html = String::with_capacity(8 * 1024);
    let _ = write!(
        html,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta http-equiv=\"refresh\" content=\"{REFRESH_SECONDS}\">\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
<title>castsync watch</title><style>{STYLE}</style></head><body>"
    );
    let (class, word) = if view.ready {
        ("ok", "ready")
    } else {
        ("bad", "not ready")
    };
    let _ = write!(
        html,
        "<h1>castsync watch <span id=\"readiness\" class=\"badge {class}\">{word}</span></h1>"
    );
    overview(&mut html, view);
    agents(&mut html, view);
    history_table(&mut html, entries);
    let _ = write!(
        html,
        "<p><small>Refreshes every {REFRESH_SECONDS} s. Also: <code>/readyz</code>, \
<code>/metrics</code>, <code>/history</code>.</small></p></body></html>"
    );
    html
}

fn overview(html: &mut String, view: &PageView) {
    let attempt = |a: &Option<(String, Option<String>)>| match a {
        None => "not yet".to_owned(),
        Some((at, None)) => format!("<span class=\"ok\">succeeded</span> at {}", esc(at)),
        Some((at, Some(e))) => format!(
            "<span class=\"bad\">failed</span> at {}: {}",
            esc(at),
            esc(e)
        ),
    };
    let revision = |r: &Option<String>| match r {
        Some(r) => format!("<code title=\"{}\">{}</code>", esc(r), esc(short(r))),
        None => "none yet".to_owned(),
    };
    let when = |t: &Option<String>| {
        t.as_deref()
            .map_or_else(|| "—".to_owned(), |t| esc(&time(t)))
    };
    let source = super::notifier::without_credentials(&view.source);
    let _ = write!(
        html,
        "<dl id=\"overview\"><dt>following</dt><dd id=\"source\">{}</dd>\
<dt>fetched commit</dt><dd>{}</dd><dt>applied commit</dt><dd id=\"applied\">{}</dd>\
<dt>last fetch</dt><dd>{}</dd><dt>last reconcile</dt><dd id=\"last-reconcile\">{}</dd>\
<dt>next poll</dt><dd>{}</dd><dt>next drift resync</dt><dd id=\"next-resync\">{}</dd></dl>",
        esc(&source),
        revision(&view.fetched),
        revision(&view.applied),
        attempt(&view.last_fetch),
        attempt(&view.last_reconcile),
        when(&view.next_poll),
        when(&view.next_resync),
    );
    if let Some((commit, reason)) = &view.rejected {
        let _ = write!(
            html,
            "<p class=\"bad\">Commit <code>{}</code> is not applied: {}</p>",
            esc(short(commit)),
            esc(reason)
        );
    }
    if !view.reasons.is_empty() {
        html.push_str("<h2>Why not ready</h2><ul id=\"reasons\">");
        for reason in &view.reasons {
            let _ = write!(html, "<li>{}</li>", esc(reason));
        }
        html.push_str("</ul>");
    }
}

fn agents(html: &mut String, view: &PageView) {
    let _ = write!(
        html,
        "<h2>Agents ({})</h2><table id=\"agents\"><thead><tr><th>agent</th><th>state</th><th>why</th></tr></thead><tbody>",
        view.agents.len()
    );
    for (agent, state) in &view.agents {
        let (class, word, why) = match state {
            AgentState::Converged => ("ok", "converged", String::new()),
            AgentState::Failed(f) | AgentState::Skipped(f) => {
                let word = if matches!(state, AgentState::Skipped(_)) {
                    "skipped"
                } else {
                    "failed"
                };
                let retry = match f.class {
                    ErrorClass::Transient => "retrying with backoff",
                    ErrorClass::Terminal => "waits for a new commit, a config change or SIGHUP",
                };
                let hint = f
                    .hint
                    .as_deref()
                    .map(|h| format!("<br><small>{}</small>", esc(h)))
                    .unwrap_or_default();
                (
                    "bad",
                    word,
                    format!("{} <small>({retry})</small>{hint}", esc(&f.message)),
                )
            }
        };
        let _ = write!(
            html,
            "<tr><td>{}</td><td class=\"{class}\">{word}</td><td>{why}</td></tr>",
            esc(agent)
        );
    }
    if view.agents.is_empty() {
        html.push_str("<tr><td colspan=\"3\">none yet</td></tr>");
    }
    html.push_str("</tbody></table>");
}

fn history_table(html: &mut String, entries: &[Entry]) {
    html.push_str(
        "<h2>Recent applies</h2><table id=\"history\"><thead><tr><th>time</th><th>commit</th>\
<th>agent</th><th>key</th><th>action</th><th>result</th></tr></thead><tbody>",
    );
    for e in entries.iter().rev() {
        let result_class = if e.result == "applied" { "ok" } else { "warn" };
        let action = match &e.reason {
            Some(reason) => format!("{} ({})", e.action, reason),
            None => e.action.clone(),
        };
        let result = match &e.error {
            Some(error) => format!("{} ({error})", e.result),
            None => e.result.clone(),
        };
        let _ = write!(
            html,
            "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td><code>{}</code></td><td>{}</td><td class=\"{result_class}\">{}</td></tr>",
            esc(&time(&e.time)),
            esc(short(e.commit.as_deref().unwrap_or("—"))),
            esc(&e.agent),
            esc(e.key.as_deref().unwrap_or("—")),
            esc(&action),
            esc(&result),
        );
    }
    if entries.is_empty() {
        html.push_str("<tr><td colspan=\"6\">nothing applied yet</td></tr>");
    }
    html.push_str("</tbody></table>");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::engine::AgentFailure;

    fn view() -> PageView {
        PageView {
            source: "https://user:hunter2@git.example.com/acme/secrets.git (main)".into(),
            ready: false,
            reasons: vec!["agent <b>bad</b> failed".into()],
            fetched: Some("0123456789abcdef0123".into()),
            applied: Some("0123456789abcdef0123".into()),
            last_fetch: Some(("2026-12-06T10:00:00Z".into(), None)),
            last_reconcile: Some((
                "2026-12-06T10:00:01Z".into(),
                Some("1 agent(s) failed".into()),
            )),
            agents: vec![
                ("alpha".into(), AgentState::Converged),
                (
                    "<img src=x onerror=alert(1)>".into(),
                    AgentState::Failed(AgentFailure::new(
                        "platform refused: 401",
                        ErrorClass::Terminal,
                    )),
                ),
            ],
            next_poll: Some("2026-12-06T11:00:00Z".into()),
            next_resync: Some("2026-12-06T10:10:00Z".into()),
            rejected: None,
        }
    }

    fn entry(key: &str) -> Entry {
        serde_json::from_value(serde_json::json!({
            "time": "2026-12-06T10:00:01Z", "commit": "0123456789abcdef", "platform": "x",
            "agent": "alpha", "key": key, "action": "delete", "result": "applied"
        }))
        .unwrap()
    }

    #[test]
    fn every_name_is_escaped_and_credentials_leave_the_source() {
        let html = render(&view(), &[entry("<script>alert(1)</script>")]);
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{html}"
        );
        assert!(
            html.contains("&lt;img src=x onerror=alert(1)&gt;"),
            "{html}"
        );
        assert!(
            html.contains("agent &lt;b&gt;bad&lt;/b&gt; failed"),
            "{html}"
        );
        assert!(
            !html.contains("<script") && !html.contains("<img"),
            "{html}"
        );
        assert!(!html.contains("hunter2"), "{html}");
        assert!(html.contains("https://git.example.com/acme/secrets.git (main)"));
        assert!(html.contains("<meta http-equiv=\"refresh\" content=\"10\">"));
        assert!(
            !html.contains("http-equiv=\"refresh\" content=\"10;"),
            "no redirect"
        );
        assert!(
            !html.contains("src=\"") && !html.contains("href="),
            "no outside asset: {html}"
        );
    }

    #[test]
    fn times_read_as_seconds_in_utc() {
        assert_eq!(
            time("2026-12-06T14:18:42.922175046Z"),
            "2026-12-06 14:18:42 UTC"
        );
        assert_eq!(time("not a time"), "not a time");
    }

    #[test]
    fn esc_covers_quotes_and_control_characters() {
        assert_eq!(esc("a\"b'c&\n"), "a&quot;b&#39;c&amp;\\u{a}");
    }
}
