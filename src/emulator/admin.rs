//! `/_emulator/`: test and demo controls. Not rate limited, not counted, no fault
//! injection, no authentication — and they hand out stored values, which is why the
//! emulator is not a secrets store and listens on loopback by default.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::api::{detail, store_failure};
use super::faults::{Stats, Targeted};
use super::{Emu, lock};
use crate::names::validate_slug;
use crate::platform::castari::AGENT_NOT_FOUND;
use crate::platform::castari::wire::ValidationIssue;
use crate::platform::store::Entry;

pub(super) fn routes() -> Router<Arc<Emu>> {
    Router::new()
        .route("/_emulator/stats", get(stats))
        .route("/_emulator/stats/reset", post(reset_stats))
        .route("/_emulator/agents", post(create_agent))
        .route("/_emulator/agents/{slug}/secrets", get(dump_agent))
        .route("/_emulator/agents/{slug}/secrets/{key}", get(read_secret))
        .route("/_emulator/faults", post(add_fault).delete(clear_faults))
}

/// `POST /_emulator/faults` with `{"agent": "a", "method": "GET", "route": "secrets", "status": 500}`
/// (or `"delay_ms": 30000` instead of, or as well as, `status`).
async fn add_fault(State(emu): State<Arc<Emu>>, body: Bytes) -> Response {
    match serde_json::from_slice::<Targeted>(&body) {
        Ok(fault) if fault.is_valid() => {
            lock(&emu.targeted).push(fault);
            StatusCode::NO_CONTENT.into_response()
        }
        _ => {
            let issue = ValidationIssue::new(
                &["body"],
                "expected {\"agent\": SLUG, \"method\": METHOD (optional), \"route\": \"secrets\" or \"redeploy\" (optional), \"status\": CODE and/or \"delay_ms\": MS (at most 3600000)}",
                "value_error",
            );
            detail(StatusCode::UNPROCESSABLE_ENTITY, json!([issue]))
        }
    }
}

/// `DELETE /_emulator/faults`: remove every pinned fault.
async fn clear_faults(State(emu): State<Arc<Emu>>) -> Response {
    lock(&emu.targeted).clear();
    StatusCode::NO_CONTENT.into_response()
}

/// `GET /_emulator/stats`: `{"requests": {"GET": n, …}, "responses": {"200": n, …}}`.
async fn stats(State(emu): State<Arc<Emu>>) -> Response {
    let stats = lock(&emu.stats).clone();
    axum::Json(stats).into_response()
}

/// `POST /_emulator/stats/reset`: zero the counters.
async fn reset_stats(State(emu): State<Arc<Emu>>) -> Response {
    *lock(&emu.stats) = Stats::default();
    StatusCode::NO_CONTENT.into_response()
}

/// `POST /_emulator/agents` with `{"slug": …}`: 201 when created, 200 when it existed.
async fn create_agent(State(emu): State<Arc<Emu>>, body: Bytes) -> Response {
    let slug = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("slug").and_then(Value::as_str).map(str::to_owned));
    let Some(slug) = slug else {
        let issue = ValidationIssue::new(&["body", "slug"], "Field required", "missing");
        return detail(StatusCode::UNPROCESSABLE_ENTITY, json!([issue]));
    };
    if let Err(err) = validate_slug(&slug) {
        let issue = ValidationIssue::new(
            &["body", "slug"],
            err.to_string(),
            "string_pattern_mismatch",
        );
        return detail(StatusCode::UNPROCESSABLE_ENTITY, json!([issue]));
    }
    let created = match emu.store().ensure_agent(&slug) {
        Ok(created) => created,
        Err(e) => return store_failure(e),
    };
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    (status, axum::Json(json!({ "slug": slug }))).into_response()
}

fn readback(key: &str, entry: &Entry) -> Value {
    json!({
        "key": key,
        "value": entry.value.expose(),
        "created_at": entry.created_at,
        "updated_at": entry.updated_at,
    })
}

/// `GET /_emulator/agents/{slug}/secrets`: every key of an agent with its value, unpaged.
async fn dump_agent(State(emu): State<Arc<Emu>>, Path(slug): Path<String>) -> Response {
    let store = emu.store();
    let keys = match store.list(&slug) {
        Ok(keys) => keys,
        Err(e) => return store_failure(e),
    };
    let mut items: Vec<Value> = Vec::with_capacity(keys.len());
    for k in &keys {
        match store.get(&slug, &k.key) {
            Ok(Some(e)) => items.push(readback(&k.key, &e)),
            Ok(None) => {}
            Err(e) => return store_failure(e),
        }
    }
    axum::Json(items).into_response()
}

/// `GET /_emulator/agents/{slug}/secrets/{key}`: `{"key", "value", "created_at", "updated_at"}`.
async fn read_secret(
    State(emu): State<Arc<Emu>>,
    Path((slug, key)): Path<(String, String)>,
) -> Response {
    let store = emu.store();
    match store.has_agent(&slug) {
        Ok(true) => {}
        Ok(false) => return detail(StatusCode::NOT_FOUND, AGENT_NOT_FOUND),
        Err(e) => return store_failure(e),
    }
    match store.get(&slug, &key) {
        Ok(Some(entry)) => axum::Json(readback(&key, &entry)).into_response(),
        Ok(None) => detail(StatusCode::NOT_FOUND, "Secret not found"),
        Err(e) => store_failure(e),
    }
}
