//! The daemon's HTTP endpoints (axum): `/healthz`, `/readyz`, `/metrics`, `/history`, and
//! `POST /hooks/git` when a webhook secret is configured (without one the route does not
//! exist: 404).
//!
//! A webhook only ever *fires a trigger*: it cannot choose what is fetched or applied, so
//! even a forged delivery that got past the signature could do no more than a poll does.
//!
//! The route is open to the internet, so it must never let a flood of deliveries exhaust the
//! daemon: a delivery without a well-formed signature header is refused before its body is
//! read; a body is read in pieces, the HMAC computed as they arrive, and never beyond
//! [`MAX_BODY`] or [`BODY_DEADLINE`]; at most [`MAX_CONCURRENT_HOOKS`] deliveries are read at
//! once, and any more are answered 429 at once without reading their bodies; and every
//! connection closes after [`idle::IDLE`] without progress.
//!
//! A delivery refused unread (429, 413, 408) may still have announced a real push, and GitHub
//! does not send it again: each one owes a fetch, paid by `daemon::missed` as one coalesced
//! fetch at most every few seconds, however many were refused.

mod idle;

use std::path::PathBuf;
use std::sync::Arc;

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http_body_util::BodyExt as _;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::controller::Shared;
use super::metrics::{OPENMETRICS_TEXT, PROMETHEUS_TEXT};
use super::triggers::Reason;
use super::webhook::{Delivery, Refused, SIGNATURE_HEADER, Verifier, WebhookSecret, classify};
use crate::history;

/// The largest delivery read. A GitHub `push` delivery for one commit is about 7–10 KB (the
/// repository object dominates; each further commit adds about 1 KB with its file lists), so
/// 1 MiB holds pushes of several hundred commits. GitHub's own cap is 25 MB; a delivery over
/// ours is answered 413 and the change is picked up by the next poll.
pub const MAX_BODY: usize = 1024 * 1024;
/// Deliveries read at the same time; more are answered 429 without reading their bodies.
pub const MAX_CONCURRENT_HOOKS: usize = 4;
/// How long one delivery may take to arrive: GitHub gives up on a delivery after 10 s.
pub const BODY_DEADLINE: Duration = Duration::from_secs(10);

/// The webhook route's settings.
#[derive(Debug, Clone)]
pub struct Hook {
    pub secret: WebhookSecret,
    /// The followed branch: pushes to other branches are acknowledged and ignored. `None`
    /// (working-tree mode): every authenticated delivery fires.
    pub branch: Option<String>,
}

#[derive(Clone)]
struct AppState {
    shared: Arc<Shared>,
    hook: Option<Arc<Hook>>,
    /// Permits for deliveries being read.
    readers: Arc<Semaphore>,
}

/// The router for `shared`, with the webhook route if `hook` is set.
pub fn router(shared: Arc<Shared>, hook: Option<Hook>) -> Router {
    let has_hook = hook.is_some();
    let state = AppState {
        shared,
        hook: hook.map(Arc::new),
        readers: Arc::new(Semaphore::new(MAX_CONCURRENT_HOOKS)),
    };
    let mut router = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics));
    if has_hook {
        router = router.route("/hooks/git", post(webhook));
    }
    router.with_state(state)
}

/// Serves `router` on `listener` until `shutdown` fires.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(idle::IdleTimeoutListener::new(listener, idle::IDLE), router)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(app): State<AppState>) -> Response {
    let (ready, body) = app.shared.status().readiness();
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, axum::Json(body)).into_response()
}

async fn metrics(State(app): State<AppState>, headers: HeaderMap) -> Response {
    let wants_openmetrics = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/openmetrics-text"));
    app.shared.metrics.sample();
    let (body, content_type) = if wants_openmetrics {
        (app.shared.metrics.encode_openmetrics(), OPENMETRICS_TEXT)
    } else {
        (app.shared.metrics.encode(), PROMETHEUS_TEXT)
    };
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

/// A short answer that also closes the connection: its body (if any) is not read.
fn refuse(status: StatusCode, text: String) -> Response {
    let mut response = (status, text).into_response();
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// Every reader is busy: 429 at once, the body unread; the delivery still owes a fetch.
fn busy(shared: &Shared) -> Response {
    shared.metrics.webhook("busy");
    shared.missed.owe();
    let mut response = refuse(
        StatusCode::TOO_MANY_REQUESTS,
        "too many deliveries at once; retry later\n".into(),
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

async fn webhook(State(app): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let Some(hook) = &app.hook else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let metrics = &app.shared.metrics;
    // Held until the delivery is read and judged.
    let Ok(_permit) = app.readers.clone().try_acquire_owned() else {
        return busy(&app.shared);
    };
    let signature = headers.get(SIGNATURE_HEADER).map(|v| v.as_bytes());
    let unauthorized = |refused: Refused| {
        metrics.webhook("unauthorized");
        tracing::warn!(reason = %refused, "webhook delivery refused");
        refuse(StatusCode::UNAUTHORIZED, format!("{refused}\n"))
    };
    let mut verifier = match hook.secret.verifier(signature) {
        Ok(v) => v,
        Err(refused) => return unauthorized(refused),
    };
    let too_large = || {
        metrics.webhook("too_large");
        app.shared.missed.owe();
        refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("a delivery is at most {MAX_BODY} bytes\n"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return too_large();
    }
    let read = tokio::time::timeout(BODY_DEADLINE, read_body(body, declared, &mut verifier)).await;
    let body = match read {
        Ok(Ok(body)) => body,
        Ok(Err(StatusCode::PAYLOAD_TOO_LARGE)) => return too_large(),
        Ok(Err(status)) => {
            metrics.webhook("bad_request");
            return refuse(status, "the delivery's body could not be read\n".into());
        }
        Err(_) => {
            metrics.webhook("timeout");
            app.shared.missed.owe();
            return refuse(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the delivery did not arrive within {}s\n",
                    BODY_DEADLINE.as_secs()
                ),
            );
        }
    };
    if let Err(refused) = verifier.finish() {
        return unauthorized(refused);
    }
    let event = headers.get("x-github-event").and_then(|v| v.to_str().ok());
    let delivery = match &hook.branch {
        Some(branch) => classify(event, &body, branch),
        None if event == Some("ping") => Delivery::Ping,
        None => Delivery::Fetch,
    };
    answer(&app, delivery)
}

/// Reads a delivery's body into the signature check: at most [`MAX_BODY`] bytes (else
/// `413`), a broken stream is a `400`.
async fn read_body(
    mut body: Body,
    declared: Option<u64>,
    verifier: &mut Verifier,
) -> Result<Vec<u8>, StatusCode> {
    let mut kept = Vec::with_capacity(declared.map_or(8 * 1024, |n| n as usize));
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            return Err(StatusCode::BAD_REQUEST);
        };
        if let Ok(data) = frame.into_data() {
            if kept.len() + data.len() > MAX_BODY {
                return Err(StatusCode::PAYLOAD_TOO_LARGE);
            }
            verifier.update(&data);
            kept.extend_from_slice(&data);
        }
    }
    Ok(kept)
}

/// The answer to an authentic delivery: a pong, an ignored branch, or a fetch scheduled.
fn answer(app: &AppState, delivery: Delivery) -> Response {
    let metrics = &app.shared.metrics;
    match delivery {
        Delivery::Ping => {
            metrics.webhook("ping");
            (StatusCode::OK, "pong\n").into_response()
        }
        Delivery::OtherBranch(r) => {
            metrics.webhook("ignored");
            tracing::debug!(git_ref = %r, "webhook for another branch ignored");
            (
                StatusCode::OK,
                format!(
                    "ignored: {} is not the followed branch\n",
                    crate::escape::terminal(&r)
                ),
            )
                .into_response()
        }
        Delivery::Fetch => {
            if app.shared.triggers.fire(Reason::Webhook) {
                metrics.webhook("accepted");
                tracing::info!("webhook accepted; fetch scheduled");
                (StatusCode::ACCEPTED, "fetch scheduled\n").into_response()
            } else {
                metrics.webhook("shutting_down");
                (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response()
            }
        }
    }
}

/// `GET /history`: the last [`history::DAEMON_ENTRIES`] entries of the apply history kept
/// next to the daemon's state file, as `castsync history -o json` prints them (without the
/// file's path). Each request reads at most a small tail of the file.
pub fn history_routes(history_file: PathBuf) -> Router {
    Router::new()
        .route("/history", get(history))
        .with_state(Arc::new(history_file))
}

async fn history(State(path): State<Arc<PathBuf>>) -> Response {
    let read =
        tokio::task::spawn_blocking(move || history::last(&path, history::DAEMON_ENTRIES)).await;
    match read {
        Ok(Ok(read)) => {
            let entries: Vec<&history::Entry> = read.entries.iter().collect();
            axum::Json(history::document(&entries, &read, None)).into_response()
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "GET /history: cannot read the history");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot read the history; the daemon's log says why\n",
            )
                .into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "GET /history: the reader failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::status::Status;

    async fn start(hook: Option<Hook>) -> (String, Arc<Shared>, CancellationToken) {
        let shared = Arc::new(Shared::new(Status::new(
            "test".into(),
            std::time::Duration::from_secs(60),
        )));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let shutdown = CancellationToken::new();
        tokio::spawn(serve(
            listener,
            router(shared.clone(), hook),
            shutdown.clone(),
        ));
        (url, shared, shutdown)
    }

    fn hook() -> Hook {
        Hook {
            secret: WebhookSecret::new(b"s3cret".to_vec()),
            branch: Some("main".into()),
        }
    }

    async fn post(url: &str, body: &'static str, signature: Option<String>) -> StatusCode {
        let mut req = reqwest::Client::new()
            .post(format!("{url}/hooks/git"))
            .header("x-github-event", "push")
            .body(body);
        if let Some(s) = signature {
            req = req.header("X-Hub-Signature-256", s);
        }
        let status = req.send().await.unwrap().status();
        StatusCode::from_u16(status.as_u16()).unwrap()
    }

    #[tokio::test]
    async fn without_a_secret_the_webhook_route_does_not_exist() {
        let (url, shared, _s) = start(None).await;
        assert_eq!(post(&url, "{}", None).await, StatusCode::NOT_FOUND);
        assert!(!shared.triggers.has_pending());
    }

    #[tokio::test]
    async fn a_signed_delivery_fires_and_an_unsigned_or_forged_one_does_not() {
        let (url, shared, _s) = start(Some(hook())).await;
        let body = r#"{"ref":"refs/heads/main"}"#;
        assert_eq!(post(&url, body, None).await, StatusCode::UNAUTHORIZED);
        let forged = WebhookSecret::new(b"guess".to_vec()).sign(body.as_bytes());
        assert_eq!(
            post(&url, body, Some(forged)).await,
            StatusCode::UNAUTHORIZED
        );
        assert!(!shared.triggers.has_pending());

        let good = hook().secret.sign(body.as_bytes());
        assert_eq!(post(&url, body, Some(good)).await, StatusCode::ACCEPTED);
        assert!(shared.triggers.take().contains(Reason::Webhook));

        let other = r#"{"ref":"refs/heads/feature"}"#;
        let sig = hook().secret.sign(other.as_bytes());
        assert_eq!(post(&url, other, Some(sig)).await, StatusCode::OK);
        assert!(!shared.triggers.has_pending());
        let text = shared.metrics.encode();
        assert!(
            text.contains("castsync_webhook_deliveries_total{result=\"unauthorized\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("castsync_webhook_deliveries_total{result=\"accepted\"} 1"),
            "{text}"
        );
    }

    /// Sends the head of a POST with `length` declared and `sent` bytes of body, and leaves
    /// the connection open.
    async fn partial_post(url: &str, length: usize, sent: usize) -> tokio::net::TcpStream {
        use tokio::io::AsyncWriteExt as _;
        let addr = url.trim_start_matches("http://");
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let sig = hook().secret.sign(b"x");
        let head = format!(
            "POST /hooks/git HTTP/1.1\r\nhost: {addr}\r\nx-github-event: push\r\nx-hub-signature-256: {sig}\r\ncontent-length: {length}\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(&vec![b'x'; sent]).await.unwrap();
        stream
    }

    async fn status_of(stream: &mut tokio::net::TcpStream) -> u16 {
        use tokio::io::AsyncReadExt as _;
        let mut buf = vec![0u8; 512];
        let n = stream.read(&mut buf).await.unwrap();
        let head = String::from_utf8_lossy(&buf[..n]).into_owned();
        head.split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0)
    }

    #[tokio::test]
    async fn a_delivery_over_the_cap_is_refused_whether_declared_or_streamed() {
        let (url, shared, _s) = start(Some(hook())).await;
        // Declared too large: refused before any of the body is read.
        let mut declared = partial_post(&url, MAX_BODY + 1, 0).await;
        assert_eq!(status_of(&mut declared).await, 413);
        // Chunked, so the size is only known while reading: refused at the cap.
        use tokio::io::AsyncWriteExt as _;
        let addr = url.trim_start_matches("http://");
        let mut streamed = tokio::net::TcpStream::connect(addr).await.unwrap();
        let sig = hook().secret.sign(b"x");
        let head = format!(
            "POST /hooks/git HTTP/1.1\r\nhost: {addr}\r\nx-hub-signature-256: {sig}\r\ntransfer-encoding: chunked\r\n\r\n"
        );
        streamed.write_all(head.as_bytes()).await.unwrap();
        let chunk = vec![b'x'; 64 * 1024];
        for _ in 0..=MAX_BODY / chunk.len() {
            let mut framed = format!("{:x}\r\n", chunk.len()).into_bytes();
            framed.extend_from_slice(&chunk);
            framed.extend_from_slice(b"\r\n");
            // The server may answer and close before all of it is sent.
            if streamed.write_all(&framed).await.is_err() {
                break;
            }
        }
        assert_eq!(status_of(&mut streamed).await, 413);
        assert!(!shared.triggers.has_pending());
        assert!(
            shared
                .metrics
                .encode()
                .contains("castsync_webhook_deliveries_total{result=\"too_large\"} 2")
        );
    }

    #[tokio::test]
    async fn deliveries_beyond_the_limit_are_answered_429_at_once() {
        let (url, shared, _s) = start(Some(hook())).await;
        // Deliveries whose bodies never finish arriving each hold a reader; the first one
        // past the limit is answered at once.
        let mut slow = Vec::new();
        let status = loop {
            let mut stream = partial_post(&url, 1000, 10).await;
            let answer = tokio::time::timeout(Duration::from_millis(500), status_of(&mut stream));
            match answer.await {
                Ok(code) => break code,
                Err(_) => slow.push(stream),
            }
            assert!(
                slow.len() <= MAX_CONCURRENT_HOOKS,
                "no delivery was refused"
            );
        };
        assert_eq!(status, 429);
        assert_eq!(slow.len(), MAX_CONCURRENT_HOOKS);
        // The refused delivery may have been a real push: a fetch is owed.
        assert!(shared.missed.is_owed());
        let text = shared.metrics.encode();
        assert!(
            text.contains("castsync_webhook_deliveries_total{result=\"busy\"} 1"),
            "{text}"
        );
        drop(slow);
        // Once they are gone, a delivery is read again.
        let body = r#"{"ref":"refs/heads/main"}"#;
        let mut accepted = false;
        for _ in 0..50 {
            let sig = hook().secret.sign(body.as_bytes());
            if post(&url, body, Some(sig)).await == StatusCode::ACCEPTED {
                accepted = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(accepted);
    }

    #[tokio::test]
    async fn an_unsigned_delivery_is_refused_without_reading_its_body() {
        let (url, shared, _s) = start(Some(hook())).await;
        use tokio::io::AsyncWriteExt as _;
        let addr = url.trim_start_matches("http://");
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let head = format!(
            "POST /hooks/git HTTP/1.1\r\nhost: {addr}\r\ncontent-length: {}\r\n\r\n",
            MAX_BODY / 2
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        assert_eq!(status_of(&mut stream).await, 401);
        assert!(!shared.triggers.has_pending());
    }

    #[tokio::test]
    async fn health_readiness_and_metrics_answer() {
        let (url, shared, _s) = start(None).await;
        let get = |path: &str| reqwest::get(format!("{url}{path}"));
        let health = get("/healthz").await.unwrap();
        assert_eq!(health.status().as_u16(), 200);
        let ready = get("/readyz").await.unwrap();
        assert_eq!(ready.status().as_u16(), 503);
        let body: serde_json::Value = ready.json().await.unwrap();
        assert_eq!(body["ready"], false);
        shared.metrics.fetch(true);
        let metrics = get("/metrics").await.unwrap();
        assert!(
            metrics.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/plain; version=0.0.4")
        );
        let text = metrics.text().await.unwrap();
        assert!(
            text.contains("castsync_fetches_total{result=\"success\"} 1"),
            "{text}"
        );
    }
}
