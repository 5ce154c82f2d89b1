//! Loopback fakes of what `castsync watch` notifies: the commit status APIs of GitHub, GitLab
//! and Gitea/Forgejo, and a plain receiver for webhooks and Slack-compatible messages.
//!
//! Each forge fake checks a request against that forge's published API before accepting it,
//! and answers as the forge does when it does not fit: the method and path, the auth header
//! (with the expected token), the JSON fields it knows and the values each may take.
//!   GitHub REST "Create a commit status": POST /repos/{owner}/{repo}/statuses/{sha};
//!     `Authorization: Bearer|token T`, a User-Agent; body {state, target_url, description,
//!     context}, state in error|failure|pending|success, description at most 140 characters.
//!   GitLab "Set the pipeline status of a commit": POST /api/v4/projects/:id/statuses/:sha;
//!     `PRIVATE-TOKEN: T` (or Bearer); body {state, ref, name|context, target_url,
//!     description, coverage, pipeline_id}, state in pending|running|success|failed|canceled|
//!     skipped; the same state twice in a row for one commit and name is refused (400).
//!   Gitea "Create a commit status": POST /api/v1/repos/{owner}/{repo}/statuses/{sha};
//!     `Authorization: token T` (or Bearer); body {state, target_url, description, context},
//!     state in pending|success|error|failure|warning.
//! Whatever does not fit is recorded too, with why, so a test can show what was wrong.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// One request as the fake saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
    /// `None` when the request fit the API; else why it did not.
    pub refused: Option<String>,
}

impl Seen {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    GitHub,
    GitLab,
    Gitea,
    /// Accepts any POST (webhooks, Slack).
    Receiver,
}

struct Inner {
    kind: Kind,
    token: String,
    seen: Mutex<Vec<Seen>>,
    /// GitLab: the last state per (sha, name).
    states: Mutex<BTreeMap<(String, String), String>>,
}

/// A fake running on a thread of its own; stops when dropped.
pub struct FakeForge {
    pub url: String,
    inner: Arc<Inner>,
    _runtime: tokio::runtime::Runtime,
}

impl FakeForge {
    pub fn start(kind: Kind, token: &str) -> FakeForge {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let inner = Arc::new(Inner {
            kind,
            token: token.to_owned(),
            seen: Mutex::new(Vec::new()),
            states: Mutex::new(BTreeMap::new()),
        });
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().unwrap());
        let app = Router::new().fallback(handle).with_state(inner.clone());
        runtime.spawn(async move { axum::serve(listener, app).await });
        FakeForge {
            url,
            inner,
            _runtime: runtime,
        }
    }

    /// The `api_url` castsync should be given for this fake.
    pub fn api_url(&self) -> String {
        match self.inner.kind {
            Kind::GitLab => format!("{}/api/v4", self.url),
            Kind::Gitea => format!("{}/api/v1", self.url),
            Kind::GitHub | Kind::Receiver => self.url.clone(),
        }
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.inner.seen.lock().unwrap().clone()
    }
}

async fn handle(
    State(inner): State<Arc<Inner>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let headers: BTreeMap<String, String> = headers
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    let path = uri.path().to_owned();
    let verdict = if method != Method::POST {
        Err((
            StatusCode::NOT_FOUND,
            format!("{method} is not a status route"),
        ))
    } else {
        check(&inner, &path, &headers, &body)
    };
    let refused = verdict.as_ref().err().map(|(_, why)| why.clone());
    inner.seen.lock().unwrap().push(Seen {
        path,
        headers,
        body: body.to_vec(),
        refused,
    });
    match verdict {
        Ok(reply) => (StatusCode::CREATED, axum::Json(reply)).into_response(),
        Err((code, why)) => (code, axum::Json(json!({ "message": why }))).into_response(),
    }
}

type Verdict = Result<Value, (StatusCode, String)>;

fn check(inner: &Inner, path: &str, headers: &BTreeMap<String, String>, body: &[u8]) -> Verdict {
    let unprocessable = |why: String| (StatusCode::UNPROCESSABLE_ENTITY, why);
    let (prefix, auth_ok, fields, states): (&str, bool, &[&str], &[&str]) = match inner.kind {
        Kind::Receiver => return Ok(json!({})),
        Kind::GitHub => (
            "/repos/",
            bearer_or_token(headers, &inner.token) && headers.contains_key("user-agent"),
            &["state", "target_url", "description", "context"],
            &["error", "failure", "pending", "success"],
        ),
        Kind::GitLab => (
            "/api/v4/projects/",
            headers.get("private-token") == Some(&inner.token)
                || bearer_or_token(headers, &inner.token),
            &[
                "state",
                "ref",
                "name",
                "context",
                "target_url",
                "description",
                "coverage",
                "pipeline_id",
            ],
            &[
                "pending", "running", "success", "failed", "canceled", "skipped",
            ],
        ),
        Kind::Gitea => (
            "/api/v1/repos/",
            bearer_or_token(headers, &inner.token),
            &["state", "target_url", "description", "context"],
            &["pending", "success", "error", "failure", "warning"],
        ),
    };
    let rest = path
        .strip_prefix(prefix)
        .ok_or((StatusCode::NOT_FOUND, format!("no route {path}")))?;
    let parts: Vec<&str> = rest.split('/').collect();
    // GitHub and Gitea: OWNER/REPO/statuses/SHA; GitLab: ID/statuses/SHA (ID URL-encoded).
    let (repo_parts, sha) = match parts.as_slice() {
        [owner, repo, "statuses", sha] if inner.kind != Kind::GitLab => (vec![*owner, *repo], *sha),
        [id, "statuses", sha] if inner.kind == Kind::GitLab => (vec![*id], *sha),
        _ => return Err((StatusCode::NOT_FOUND, format!("no route {path}"))),
    };
    if repo_parts.iter().any(|p| p.is_empty()) {
        return Err((StatusCode::NOT_FOUND, format!("no repository in {path}")));
    }
    if sha.len() != 40 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err((StatusCode::NOT_FOUND, format!("{sha} is not a commit")));
    }
    if !auth_ok {
        return Err((StatusCode::UNAUTHORIZED, "Bad credentials".into()));
    }
    if !headers
        .get("content-type")
        .is_some_and(|c| c.starts_with("application/json"))
    {
        return Err(unprocessable("the body must be JSON".into()));
    }
    let body: Value = serde_json::from_slice(body).map_err(|e| unprocessable(e.to_string()))?;
    let object = body
        .as_object()
        .ok_or_else(|| unprocessable("the body must be an object".into()))?;
    for (name, value) in object {
        if !fields.contains(&name.as_str()) {
            return Err(unprocessable(format!("unknown field {name}")));
        }
        if !value.is_string() && name != "coverage" && name != "pipeline_id" {
            return Err(unprocessable(format!("{name} must be a string")));
        }
    }
    let state = object
        .get("state")
        .and_then(Value::as_str)
        .ok_or_else(|| unprocessable("state is required".into()))?;
    if !states.contains(&state) {
        return Err(unprocessable(format!(
            "state {state} is not one of {states:?}"
        )));
    }
    let description = object
        .get("description")
        .and_then(Value::as_str)
        .unwrap_or("");
    if inner.kind == Kind::GitHub && description.chars().count() > 140 {
        return Err(unprocessable(
            "description is too long (maximum is 140 characters)".into(),
        ));
    }
    if inner.kind == Kind::GitLab {
        let name = object
            .get("name")
            .or_else(|| object.get("context"))
            .and_then(Value::as_str)
            .unwrap_or("default")
            .to_owned();
        let mut states = inner.states.lock().unwrap();
        let last = states.insert((sha.to_owned(), name), state.to_owned());
        if last.as_deref() == Some(state) && matches!(state, "pending" | "running") {
            return Err((
                StatusCode::BAD_REQUEST,
                format!("Cannot transition status via :enqueue from :{state}"),
            ));
        }
    }
    Ok(json!({ "id": 1, "state": state, "description": description, "sha": sha }))
}

fn bearer_or_token(headers: &BTreeMap<String, String>, token: &str) -> bool {
    headers
        .get("authorization")
        .is_some_and(|a| a == &format!("Bearer {token}") || a == &format!("token {token}"))
}
