//! `/api/v1`: the Castari secrets API, and the gate every call passes (counters, bearer
//! auth, rate budget, fault injection, latency, rate headers).
//!
//! Shapes per wire profile. `sdk` (SDK-confirmed, `@castari/sdk` `agents.ts`/`types.ts`):
//! the list is `{"secrets": [{"key"}]}` with no paging and no timestamps. `docs` (the API
//! docs' variant, an assumption): the list pages with `limit` (default 20, at most 100) and
//! `offset` and answers `{"secrets": [{"key", "created_at", "updated_at"}], "meta": {total,
//! limit, offset, has_more}}` as Castari's other list routes do. Both: set is `POST` with
//! `{"key", "value"}` (201 with `{"key"}` under `sdk`, whose body the SDK never reads — its
//! status is an assumption; 200 with timestamps under `docs`), delete answers 204, an unknown
//! agent 404 `{"detail": "Agent not found"}`, redeploy answers the agent.
//!
//! Faults that fail a call (500, 429, reset) are injected before the store is touched, so
//! the store always holds exactly what successful calls wrote. `malformed` lets the call
//! run and garbles only a successful reply: the write landed, the client just cannot read
//! the answer.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::header::{
    ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE,
};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use serde_json::{Value, json};

use super::Wire;
use super::conn::Conn;
use super::faults::{Fault, Quota, Targeted};
use super::{Emu, lock};
use crate::names::{MAX_KEY_LEN, validate_key, validate_slug};
use crate::platform::castari::AGENT_NOT_FOUND;
use crate::platform::castari::wire::ValidationIssue;
use crate::platform::store::{MAX_VALUE_LEN, Store, StoreError};
use crate::secret::SecretValue;

/// The API's page size when `limit` is not given, and its maximum.
pub const DEFAULT_LIMIT: usize = 20;
pub const MAX_LIMIT: usize = 100;
const API_PREFIX: &str = "/api/v1/";

pub(super) fn routes() -> Router<Arc<Emu>> {
    Router::new()
        .route("/api/v1/agents/{slug}/secrets", get(list).post(set))
        .route("/api/v1/agents/{slug}/secrets/{key}", delete(remove))
        .route("/api/v1/agents/{slug}/redeploy", post(redeploy))
}

/// A JSON `{"detail": …}` response.
pub(super) fn detail(status: StatusCode, detail: impl Into<Value>) -> Response {
    (status, axum::Json(json!({ "detail": detail.into() }))).into_response()
}

/// The reply to a failed store call: 404 for a missing agent, else a 500.
pub(super) fn store_failure(err: StoreError) -> Response {
    if let StoreError::NoSuchAgent { .. } = err {
        return detail(StatusCode::NOT_FOUND, AGENT_NOT_FOUND);
    }
    tracing::error!(error = %err, "the emulator store failed");
    detail(
        StatusCode::INTERNAL_SERVER_ERROR,
        "The emulator could not read or save its store",
    )
}

fn validation(issues: Vec<ValidationIssue>) -> Response {
    detail(StatusCode::UNPROCESSABLE_ENTITY, json!(issues))
}

/// Middleware for every route; only `/api/v1/` calls are gated and counted.
pub(super) async fn gate(
    State(emu): State<Arc<Emu>>,
    ConnectInfo(conn): ConnectInfo<Conn>,
    request: Request,
    next: Next,
) -> Response {
    if !request.uri().path().starts_with(API_PREFIX) {
        return next.run(request).await;
    }
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    count(&emu, &request);
    let pinned = lock(&emu.targeted)
        .iter()
        .find(|f| f.matches(method.as_str(), &path))
        .cloned();
    let (quota, response, reset) = match unauthorized(&emu, request.headers()) {
        Some(denied) => (
            lock(&emu.window).peek(emu.rate, SystemTime::now()),
            denied,
            false,
        ),
        None => {
            let quota = lock(&emu.window).take(emu.rate, SystemTime::now());
            let (response, reset) = if quota.allowed {
                serve(&emu, pinned.as_ref(), request, next).await
            } else {
                (rate_limited(&emu, &quota), false)
            };
            (quota, response, reset)
        }
    };
    // A pinned delay holds back a reply that was served: the write has landed, its answer
    // is late.
    let delay = emu.latency + Duration::from_millis(pinned.and_then(|f| f.delay_ms).unwrap_or(0));
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if reset {
        tracing::debug!(%method, path, "connection reset (injected fault)");
        lock(&emu.stats).response("reset");
        conn.reset();
        return response;
    }
    let mut response = response;
    rate_headers(response.headers_mut(), &quota);
    let status = response.status();
    tracing::debug!(%method, path, peer = %conn.peer, status = status.as_u16(), "api request");
    lock(&emu.stats).response(status.as_str());
    response
}

/// Counts an API call: its method, whether it asked for JSON, and its user agent.
fn count(emu: &Emu, request: &Request) {
    let accepts_json = request
        .headers()
        .get(ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"));
    // Bounded: a user agent is counted under at most its first 100 characters.
    let user_agent: String = request
        .headers()
        .get(axum::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("(none)")
        .chars()
        .take(100)
        .collect();
    let mut stats = lock(&emu.stats);
    stats.request(request.method().as_str());
    if !accepts_json {
        stats.missing_accept += 1;
    }
    *stats.user_agents.entry(user_agent).or_default() += 1;
}

/// The 429 of the emulator's own rate limit, with the Retry-After it owes.
fn rate_limited(emu: &Emu, quota: &Quota) -> Response {
    let mut r = detail(
        StatusCode::TOO_MANY_REQUESTS,
        format!(
            "Rate limit exceeded: {} requests per {} seconds",
            emu.rate.limit, emu.rate.period_secs
        ),
    );
    r.headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from(quota.retry_after));
    r
}

/// An admitted call: a pinned status, a drawn fault, or the route's own answer; `true` when
/// the connection is to be reset instead of answered.
async fn serve(
    emu: &Emu,
    pinned: Option<&Targeted>,
    request: Request,
    next: Next,
) -> (Response, bool) {
    let pinned_status = pinned
        .and_then(|f| f.status)
        .and_then(|s| StatusCode::from_u16(s).ok());
    if let Some(status) = pinned_status {
        return (detail(status, "Injected fault (pinned)"), false);
    }
    match emu.faults.draw() {
        None => (next.run(request).await, false),
        Some(Fault::ServerError) => (
            detail(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Internal Server Error (injected fault)",
            ),
            false,
        ),
        // No Retry-After: an upstream throttle the client must back off from.
        Some(Fault::TooManyRequests) => (
            detail(
                StatusCode::TOO_MANY_REQUESTS,
                "Too Many Requests (injected fault)",
            ),
            false,
        ),
        Some(Fault::Reset) => (StatusCode::INTERNAL_SERVER_ERROR.into_response(), true),
        Some(Fault::Malformed) => {
            let served = next.run(request).await;
            let malformed_reply = if served.status().is_success() {
                malformed()
            } else {
                served
            };
            (malformed_reply, false)
        }
    }
}

fn rate_headers(headers: &mut HeaderMap, quota: &Quota) {
    headers.insert("x-ratelimit-limit", HeaderValue::from(quota.limit));
    headers.insert("x-ratelimit-remaining", HeaderValue::from(quota.remaining));
    headers.insert("x-ratelimit-reset", HeaderValue::from(quota.reset));
}

/// A 200 whose JSON is cut short.
fn malformed() -> Response {
    let mut r = Response::new(Body::from(r#"{"items": [{"key": "#));
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// Bearer auth: with `--token`, only that token; without it, any non-empty one. Returns the
/// 401 to send, if any.
fn unauthorized(emu: &Emu, headers: &HeaderMap) -> Option<Response> {
    let token = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty());
    let message = match (token, &emu.token) {
        (None, _) => "Not authenticated",
        (Some(given), Some(expected)) if given != expected => "Invalid API key",
        _ => return None,
    };
    let mut r = detail(StatusCode::UNAUTHORIZED, message);
    r.headers_mut()
        .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    Some(r)
}

/// Finds the agent (creating it with `--auto-create-agents`); returns the 404 to send when
/// it does not exist.
fn missing_agent(emu: &Emu, store: &mut Store, slug: &str) -> Option<Response> {
    match store.has_agent(slug) {
        Ok(true) => return None,
        Ok(false) => {}
        Err(e) => return Some(store_failure(e)),
    }
    if emu.auto_create && validate_slug(slug).is_ok() {
        return store.ensure_agent(slug).err().map(store_failure);
    }
    Some(detail(StatusCode::NOT_FOUND, AGENT_NOT_FOUND))
}

/// Reads an integer query parameter the way FastAPI validates `Query(ge=.., le=..)`.
fn int_param(
    query: &HashMap<String, String>,
    name: &str,
    default: usize,
    min: usize,
    max: Option<usize>,
    issues: &mut Vec<ValidationIssue>,
) -> usize {
    let Some(raw) = query.get(name) else {
        return default;
    };
    let loc = ["query", name];
    match raw.trim().parse::<i64>() {
        Err(_) => issues.push(ValidationIssue::new(
            &loc,
            "Input should be a valid integer, unable to parse string as an integer",
            "int_parsing",
        )),
        Ok(n) if n < min as i64 => issues.push(ValidationIssue::new(
            &loc,
            format!("Input should be greater than or equal to {min}"),
            "greater_than_equal",
        )),
        Ok(n) if max.is_some_and(|max| n > max as i64) => issues.push(ValidationIssue::new(
            &loc,
            format!(
                "Input should be less than or equal to {}",
                max.unwrap_or_default()
            ),
            "less_than_equal",
        )),
        Ok(n) => return usize::try_from(n).unwrap_or(default),
    }
    default
}

/// `GET /api/v1/agents/{slug}/secrets`: key names, sorted; paged and timestamped only under
/// `--wire docs`.
async fn list(
    State(emu): State<Arc<Emu>>,
    Path(slug): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if emu.wire == Wire::Sdk {
        // The SDK sends no query and reads `response.secrets`; a server that ignores
        // `limit`/`offset` (as FastAPI does with undeclared parameters) answers everything.
        let mut store = emu.store();
        if let Some(not_found) = missing_agent(&emu, &mut store, &slug) {
            return not_found;
        }
        return match store.list(&slug) {
            Ok(keys) => {
                let secrets: Vec<Value> = keys.iter().map(|k| json!({ "key": k.key })).collect();
                axum::Json(json!({ "secrets": secrets })).into_response()
            }
            Err(e) => store_failure(e),
        };
    }
    let mut issues = Vec::new();
    let limit = int_param(
        &query,
        "limit",
        DEFAULT_LIMIT,
        1,
        Some(MAX_LIMIT),
        &mut issues,
    );
    let offset = int_param(&query, "offset", 0, 0, None, &mut issues);
    // Like FastAPI, the request is validated before the handler looks anything up.
    if !issues.is_empty() {
        return validation(issues);
    }
    let mut store = emu.store();
    if let Some(not_found) = missing_agent(&emu, &mut store, &slug) {
        return not_found;
    }
    let total = store.list(&slug).map(|k| k.len()).unwrap_or(0);
    match store.page(&slug, offset, limit) {
        Ok(page) => axum::Json(json!({
            "secrets": page,
            "meta": {
                "total": total,
                "limit": limit,
                "offset": offset,
                "has_more": offset.saturating_add(page.len()) < total,
            },
        }))
        .into_response(),
        Err(e) => store_failure(e),
    }
}

/// `POST /api/v1/agents/{slug}/redeploy`: the agent, rebuilt (here: counted).
async fn redeploy(State(emu): State<Arc<Emu>>, Path(slug): Path<String>) -> Response {
    let mut store = emu.store();
    if let Some(not_found) = missing_agent(&emu, &mut store, &slug) {
        return not_found;
    }
    drop(store);
    lock(&emu.stats).redeployed(&slug);
    axum::Json(json!({ "slug": slug, "status": "active" })).into_response()
}

/// Checks a set body like pydantic would: `{"key": str, "value": str}`.
fn parse_set_body(body: &[u8]) -> Result<(String, SecretValue), Vec<ValidationIssue>> {
    let parsed: Value = serde_json::from_slice(body).map_err(|_| {
        vec![ValidationIssue::new(
            &["body"],
            "JSON decode error",
            "json_invalid",
        )]
    })?;
    let Value::Object(mut fields) = parsed else {
        return Err(vec![ValidationIssue::new(
            &["body"],
            "Input should be a valid dictionary or object to extract fields from",
            "model_attributes_type",
        )]);
    };
    let mut issues = Vec::new();
    let mut text = |name: &str, issues: &mut Vec<ValidationIssue>| match fields.remove(name) {
        None => {
            issues.push(ValidationIssue::new(
                &["body", name],
                "Field required",
                "missing",
            ));
            None
        }
        Some(Value::String(s)) => Some(s),
        Some(_) => {
            issues.push(ValidationIssue::new(
                &["body", name],
                "Input should be a valid string",
                "string_type",
            ));
            None
        }
    };
    let key = text("key", &mut issues);
    let value = text("value", &mut issues).map(SecretValue::new);
    if let Some(key) = &key {
        if key.len() > MAX_KEY_LEN {
            issues.push(ValidationIssue::new(
                &["body", "key"],
                format!("String should have at most {MAX_KEY_LEN} characters"),
                "string_too_long",
            ));
        } else if validate_key(key).is_err() {
            issues.push(ValidationIssue::new(
                &["body", "key"],
                "String should match pattern '^[A-Za-z_][A-Za-z0-9_]*$'",
                "string_pattern_mismatch",
            ));
        }
    }
    if let Some(value) = &value
        && value.len() > MAX_VALUE_LEN
    {
        issues.push(ValidationIssue::new(
            &["body", "value"],
            format!("String should have at most {MAX_VALUE_LEN} characters"),
            "string_too_long",
        ));
    }
    match (key, value) {
        (Some(key), Some(value)) if issues.is_empty() => Ok((key, value)),
        _ => Err(issues),
    }
}

/// `POST /api/v1/agents/{slug}/secrets` with `{"key", "value"}`: create or overwrite.
async fn set(State(emu): State<Arc<Emu>>, Path(slug): Path<String>, body: Bytes) -> Response {
    let (key, value) = match parse_set_body(&body) {
        Ok(parsed) => parsed,
        Err(issues) => return validation(issues),
    };
    let mut store = emu.store();
    if let Some(not_found) = missing_agent(&emu, &mut store, &slug) {
        return not_found;
    }
    let reply = match store.set(&slug, &key, &value) {
        Ok(entry) if emu.wire == Wire::Docs => (
            StatusCode::OK,
            json!({ "key": key, "created_at": entry.created_at, "updated_at": entry.updated_at }),
        ),
        Ok(_) => (StatusCode::CREATED, json!({ "key": key })),
        Err(e) => return store_failure(e),
    };
    (reply.0, axum::Json(reply.1)).into_response()
}

/// `DELETE /api/v1/agents/{slug}/secrets/{key}`: 204, or 404 when the key is absent.
async fn remove(
    State(emu): State<Arc<Emu>>,
    Path((slug, key)): Path<(String, String)>,
) -> Response {
    let mut store = emu.store();
    if let Some(not_found) = missing_agent(&emu, &mut store, &slug) {
        return not_found;
    }
    match store.delete(&slug, &key) {
        Ok(true) => StatusCode::NO_CONTENT.into_response(),
        Ok(false) => detail(StatusCode::NOT_FOUND, "Secret not found"),
        Err(e) => store_failure(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issues(body: &str) -> Vec<(String, String)> {
        parse_set_body(body.as_bytes())
            .unwrap_err()
            .into_iter()
            .map(|i| (serde_json::to_string(&i.loc).unwrap(), i.kind))
            .collect()
    }

    #[test]
    fn set_bodies_are_validated_like_fastapi() {
        let ok = parse_set_body(br#"{"key":"A_1","value":"v"}"#).unwrap();
        assert_eq!(ok.0, "A_1");
        assert_eq!(
            issues("nope"),
            [(r#"["body"]"#.into(), "json_invalid".into())]
        );
        assert_eq!(
            issues("[]"),
            [(r#"["body"]"#.into(), "model_attributes_type".into())]
        );
        assert_eq!(
            issues("{}"),
            [
                (r#"["body","key"]"#.into(), "missing".into()),
                (r#"["body","value"]"#.into(), "missing".into())
            ]
        );
        assert_eq!(
            issues(r#"{"key":"1A","value":5}"#),
            [
                (r#"["body","value"]"#.into(), "string_type".into()),
                (r#"["body","key"]"#.into(), "string_pattern_mismatch".into())
            ]
        );
        let long = format!(
            r#"{{"key":"K","value":"{}"}}"#,
            "x".repeat(MAX_VALUE_LEN + 1)
        );
        assert_eq!(
            issues(&long),
            [(r#"["body","value"]"#.into(), "string_too_long".into())]
        );
    }
}
