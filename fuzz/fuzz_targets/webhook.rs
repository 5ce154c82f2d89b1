//! The daemon's HTTP handlers (`/hooks/git` above all) on any request: the first byte picks
//! the route, the event header and whether the body is signed with the right secret; the
//! next 80 bytes are a raw signature header when unsigned; the rest is the body.
#![no_main]

use std::sync::OnceLock;

use axum::body::Body;
use axum::http::Request;
use castsync::daemon::WebhookSecret;
use http_body_util::BodyExt as _;
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt as _;

const SECRET: &[u8] = b"fuzz-webhook-secret";

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let path = match mode & 0b11 {
        0 | 1 => "/hooks/git",
        2 => "/readyz",
        _ => "/metrics",
    };
    let event = ["push", "ping", "pull_request", "\u{1b}"][usize::from(mode >> 2 & 0b11)];
    let (signature, body) = if mode & 0b1_0000 != 0 {
        (
            WebhookSecret::new(SECRET.to_vec()).sign(rest).into_bytes(),
            rest,
        )
    } else {
        let cut = rest.len().min(80);
        (rest[..cut].to_vec(), &rest[cut..])
    };
    let mut request = Request::post(path).header("x-github-event", event);
    if let Ok(value) = axum::http::HeaderValue::from_bytes(&signature) {
        request = request.header("x-hub-signature-256", value);
    }
    let Ok(request) = request.body(Body::from(body.to_vec())) else {
        return;
    };
    runtime().block_on(async {
        let router = castsync::daemon::router_for_fuzzing(SECRET);
        let response = router.oneshot(request).await.expect("infallible");
        let _ = response.into_body().collect().await;
    });
});
