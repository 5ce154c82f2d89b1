//! The daemon's HTTP endpoints (axum): `/healthz`, `/readyz`, `/metrics`, `/history`, and
//! `POST /hooks/git` when a webhook secret is configured (without one the route does not
//! exist: 404).
//!
//! A webhook only ever *fires a trigger*: it cannot choose what is fetched or applied, so
//! even a forged delivery that got past the signature could do no more than a poll does.

use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::controller::Shared;
use super::metrics::{OPENMETRICS_TEXT, PROMETHEUS_TEXT};
use super::triggers::Reason;
use super::webhook::{Delivery, SIGNATURE_HEADER, WebhookSecret, classify};
use crate::history;

/// GitHub caps webhook payloads at 25 MB; nothing larger is read.
const MAX_BODY: usize = 25 * 1024 * 1024;

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
}

/// The router for `shared`, with the webhook route if `hook` is set.
pub fn router(shared: Arc<Shared>, hook: Option<Hook>) -> Router {
    let has_hook = hook.is_some();
    let state = AppState {
        shared,
        hook: hook.map(Arc::new),
    };
    let mut router = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics));
    if has_hook {
        router = router
            .route("/hooks/git", post(webhook))
            .layer(DefaultBodyLimit::max(MAX_BODY));
    }
    router.with_state(state)
}

/// Serves `router` on `listener` until `shutdown` fires.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router)
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
    let (body, content_type) = if wants_openmetrics {
        (app.shared.metrics.encode_openmetrics(), OPENMETRICS_TEXT)
    } else {
        (app.shared.metrics.encode(), PROMETHEUS_TEXT)
    };
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

async fn webhook(State(app): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(hook) = &app.hook else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let metrics = &app.shared.metrics;
    let signature = headers.get(SIGNATURE_HEADER).map(|v| v.as_bytes());
    if let Err(refused) = hook.secret.check(signature, &body) {
        metrics.webhook("unauthorized");
        tracing::warn!(reason = %refused, "webhook delivery refused");
        return (StatusCode::UNAUTHORIZED, format!("{refused}\n")).into_response();
    }
    let event = headers.get("x-github-event").and_then(|v| v.to_str().ok());
    let delivery = match &hook.branch {
        Some(branch) => classify(event, &body, branch),
        None if event == Some("ping") => Delivery::Ping,
        None => Delivery::Fetch,
    };
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
                format!("ignored: {r} is not the followed branch\n"),
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
