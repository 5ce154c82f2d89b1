//! The Castari API client (reqwest with native-tls).
//!
//! Every call validates its names, waits for the shared [`RateLimiter`], and retries 429, 5xx,
//! connection errors and garbled bodies with jittered exponential backoff ([`retry`]); 4xx
//! answers are terminal and sent once. Every request has a connect timeout and a whole-request
//! timeout ([`ClientConfig`]); a request that runs out of it is a typed
//! [`PlatformError::Timeout`], retried once. Set and delete are idempotent on the platform, so
//! retrying them is safe; a repeated redeploy rebuilds the same agent again.
//!
//! The routes and shapes are Castari's published SDK (`@castari/sdk`, `packages/sdk/src/
//! agents.ts` and `http.ts`, SDK-confirmed): `GET/POST /api/v1/agents/{slug}/secrets`,
//! `DELETE …/secrets/{key}` (key URL-encoded), `POST /api/v1/agents/{slug}/redeploy` (allowed
//! 120 s), `Accept: application/json` on every request, errors as `{"detail": …}`. Paging of
//! the list route is an assumption handled in [`paging`].
//!
//! Never logged or put in an error: the API key, the Authorization header (marked sensitive,
//! and this type's `Debug` leaves it out), request bodies (they hold values), and response
//! bodies other than the API's `detail`, which is scrubbed of the value just sent.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue, LOCATION};
use reqwest::{Method, StatusCode, Url};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use tokio::time::Instant;
use zeroize::Zeroizing;

use crate::names::{MAX_KEY_LEN, validate_key, validate_slug};
use crate::platform::limiter::{Completion, RateLimiter, RateObservation};
use crate::platform::retry::{AttemptError, RetryPolicy, with_retries};
use crate::platform::{ClientStats, Listing, OpenError, Platform, PlatformError};
use crate::secret::SecretValue;

pub mod paging;
pub mod transport;
pub mod wire;

/// Keys asked for per list page: the maximum `limit` of Castari's other list routes
/// (assumption: the API docs' `limit` ≤ 100 on paged routes).
pub const PAGE_SIZE: usize = 100;
/// How long a redeploy may take: the SDK's `redeploy()` allows 120 s (SDK-confirmed).
pub const REDEPLOY_TIMEOUT: Duration = Duration::from_secs(120);
/// The `User-Agent` of every request.
pub const USER_AGENT: &str = concat!("castsync/", env!("CARGO_PKG_VERSION"));
/// Largest response body read.
const MAX_BODY: usize = 8 * 1024 * 1024;
/// The API's detail for an unknown agent: 404 `{"detail": "Agent not found"}` (the API docs'
/// error table; the SDK turns any 404 into a `NotFoundError` carrying the `detail`,
/// SDK-confirmed). Only this detail makes a 404 mean "no such agent".
pub const AGENT_NOT_FOUND: &str = "Agent not found";

/// Everything the client needs. `Debug` masks the key (secrecy).
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub base_url: String,
    pub api_key: SecretString,
    pub allow_insecure_http: bool,
    pub retry: RetryPolicy,
    /// TCP and TLS setup.
    pub connect_timeout: Duration,
    /// Whole request, connecting and body included (a redeploy gets at least
    /// [`REDEPLOY_TIMEOUT`]).
    pub request_timeout: Duration,
}

/// How long to wait for a connection (TCP and TLS).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one request may take, connecting and reading the body included. A list of a few
/// hundred keys is a few kilobytes: 30 s is generous on any working link, and a timeout is
/// retried once, so a silent platform holds one call for about a minute.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

impl ClientConfig {
    /// Defaults: 5 retries (1 after a timeout), 10 s to connect, 30 s per request, https only.
    pub fn new(base_url: impl Into<String>, api_key: SecretString) -> ClientConfig {
        ClientConfig {
            base_url: base_url.into(),
            api_key,
            allow_insecure_http: false,
            retry: RetryPolicy::default(),
            connect_timeout: CONNECT_TIMEOUT,
            request_timeout: REQUEST_TIMEOUT,
        }
    }
}

/// The HTTP implementation of [`Platform`].
pub struct CastariClient {
    id: String,
    base: Url,
    http: reqwest::Client,
    /// `Bearer …`, marked sensitive so no header dump shows it.
    auth: HeaderValue,
    retry: RetryPolicy,
    request_timeout: Duration,
    limiter: Arc<RateLimiter>,
    stats: Mutex<ClientStats>,
    /// The proxy every request goes through (masked), for messages.
    proxy: Option<String>,
}

impl std::fmt::Debug for CastariClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CastariClient")
            .field("base", &self.id)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

/// Checks a base URL: http(s) only, no credentials, query or fragment, and plain http only to
/// a loopback host unless `allow_insecure_http`.
pub fn parse_base_url(raw: &str, allow_insecure_http: bool) -> Result<Url, OpenError> {
    let raw = raw.trim();
    let invalid = |shown: &str, reason: &str| OpenError::InvalidUrl {
        url: shown.to_owned(),
        reason: reason.to_owned(),
    };
    let shown = crate::redact::url(raw);
    let url = Url::parse(raw).map_err(|e| invalid(&shown, &e.to_string()))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(
            &shown,
            "credentials in the URL are not supported; the API key comes from CASTARI_API_KEY or --api-key-file",
        ));
    }
    if url.cannot_be_a_base() || url.host().is_none() {
        return Err(invalid(&shown, "no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid(&shown, "a base URL takes no query or fragment"));
    }
    match url.scheme() {
        "https" => {}
        "http" if allow_insecure_http || url.host_str().is_some_and(crate::net::is_loopback) => {}
        "http" => {
            return Err(OpenError::InsecureHttp {
                host: url.host_str().unwrap_or_default().to_owned(),
            });
        }
        other => {
            return Err(invalid(
                &shown,
                &format!("unsupported scheme {other:?} (use https://)"),
            ));
        }
    }
    Ok(url)
}

/// The proxy the environment names for `base` (see [`crate::net`]). Plain http through a
/// proxy on another host would hand it the API key: refused unless `allow_insecure_http`.
fn proxy_for(base: &Url, allow_insecure_http: bool) -> Result<Option<Url>, OpenError> {
    let Some(proxy) = crate::net::proxy_for(base) else {
        return Ok(None);
    };
    let proxy_is_local = proxy.host_str().is_some_and(crate::net::is_loopback);
    if base.scheme() == "http" && !proxy_is_local && !allow_insecure_http {
        return Err(OpenError::InsecureProxy {
            proxy: crate::redact::url(proxy.as_str()),
            host: base.host_str().unwrap_or_default().to_owned(),
        });
    }
    if !matches!(proxy.scheme(), "http" | "https") {
        return Err(OpenError::BadProxy {
            proxy: crate::redact::url(proxy.as_str()),
            reason: format!(
                "unsupported proxy scheme {:?} (use http:// or https://)",
                proxy.scheme()
            ),
        });
    }
    Ok(Some(proxy))
}

#[derive(Serialize)]
struct SetBody<'a> {
    key: &'a str,
    value: &'a str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Call {
    List,
    Set,
    Delete,
    Redeploy,
}

/// A response, before it is judged.
struct Reply {
    status: StatusCode,
    body: Vec<u8>,
    wait_hint: Option<Duration>,
    location: Option<String>,
}

impl CastariClient {
    pub fn new(config: ClientConfig) -> Result<CastariClient, OpenError> {
        let base = parse_base_url(&config.base_url, config.allow_insecure_http)?;
        let bearer = Zeroizing::new(format!("Bearer {}", config.api_key.expose_secret()));
        let mut auth = HeaderValue::from_str(&bearer).map_err(|_| OpenError::InvalidApiKey)?;
        auth.set_sensitive(true);
        // The SDK sends `Accept: application/json` on every request (SDK-confirmed).
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        let proxy = proxy_for(&base, config.allow_insecure_http)?;
        let mut builder = reqwest::Client::builder().no_proxy();
        if let Some(proxy) = &proxy {
            let refused = |reason: String| OpenError::BadProxy {
                proxy: crate::redact::url(proxy.as_str()),
                reason,
            };
            let p = reqwest::Proxy::all(proxy.as_str()).map_err(|e| refused(e.to_string()))?;
            builder = builder.proxy(p);
        }
        let http = builder
            .user_agent(USER_AGENT)
            .default_headers(headers)
            .connect_timeout(config.connect_timeout.min(config.request_timeout))
            .timeout(config.request_timeout)
            // The API never redirects; following one could carry the key elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|source| OpenError::HttpClient { source })?;
        Ok(CastariClient {
            id: base.as_str().trim_end_matches('/').to_owned(),
            base,
            http,
            auth,
            retry: config.retry,
            request_timeout: config.request_timeout,
            limiter: Arc::new(RateLimiter::new()),
            stats: Mutex::new(ClientStats::default()),
            proxy: proxy.map(|p| crate::redact::url(p.as_str())),
        })
    }

    /// Request counters so far.
    pub fn stats(&self) -> ClientStats {
        let mut stats = self.lock_stats().clone();
        (stats.rate_limit, stats.rate_limit_remaining) = self.limiter.last_seen();
        stats
    }

    fn lock_stats(&self) -> std::sync::MutexGuard<'_, ClientStats> {
        self.stats.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `BASE/api/v1/agents/{agent}/secrets[/{key}]`, each segment percent-encoded.
    fn endpoint(&self, agent: &str, key: Option<&str>) -> Url {
        let mut url = self.agent_url(agent, "secrets");
        if let Some(key) = key
            && let Ok(mut segments) = url.path_segments_mut()
        {
            segments.push(key);
        }
        url
    }

    /// `BASE/api/v1/agents/{agent}/{route}`, the slug percent-encoded.
    fn agent_url(&self, agent: &str, route: &str) -> Url {
        let mut url = self.base.clone();
        // parse_base_url refused URLs that cannot be a base, the only case where this fails.
        if let Ok(mut segments) = url.path_segments_mut() {
            segments
                .pop_if_empty()
                .extend(["api", "v1", "agents", agent, route]);
        }
        url
    }

    /// One attempt: wait for the limiter, send, read the reply.
    async fn attempt(
        &self,
        call: Call,
        method: &Method,
        url: &Url,
        body: Option<&[u8]>,
    ) -> Result<Reply, AttemptError> {
        let permit = self
            .limiter
            .acquire_within(self.retry.max_wait)
            .await
            .map_err(|wait| {
                AttemptError::terminal(PlatformError::RateLimited {
                    detail: format!(
                        "the platform's rate budget is spent for another {} s; try again later",
                        wait.as_secs()
                    ),
                })
            })?;
        let mut request = self
            .http
            .request(method.clone(), url.clone())
            .header(AUTHORIZATION, self.auth.clone());
        let timeout = if call == Call::Redeploy {
            self.request_timeout.max(REDEPLOY_TIMEOUT)
        } else {
            self.request_timeout
        };
        request = request.timeout(timeout);
        if let Some(body) = body {
            request = request
                .header(CONTENT_TYPE, "application/json")
                .body(body.to_vec());
        }
        let started = Instant::now();
        let response = match request.send().await {
            Ok(response) => response,
            Err(err) => {
                permit.complete(Completion::NoResponse, SystemTime::now());
                return Err(self.no_response(&err, method, url, timeout));
            }
        };
        let status = response.status();
        let now = SystemTime::now();
        let headers = response.headers();
        let observation = RateObservation::from_headers(headers, now);
        permit.complete(
            observation.map_or(Completion::NoHeaders, Completion::Headers),
            now,
        );
        *self
            .lock_stats()
            .responses
            .entry(status.as_u16())
            .or_default() += 1;
        let wait_hint = wait_hint(headers, observation, status, now);
        let location = headers
            .get(LOCATION)
            .and_then(|l| l.to_str().ok())
            .map(str::to_owned);
        tracing::debug!(
            %method,
            path = url.path(),
            query = url.query().unwrap_or(""),
            status = status.as_u16(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "platform request"
        );
        if let Some(o) = observation {
            tracing::trace!(
                limit = o.limit,
                remaining = o.remaining,
                reset = o.reset_unix,
                "rate limit"
            );
        }
        let body = read_body(response, || timed_out(method, url, timeout))
            .await
            .map_err(|error| {
                self.lock_stats().transport_errors += 1;
                AttemptError::transient(error, None)
            })?;
        Ok(Reply {
            status,
            body,
            wait_hint,
            location,
        })
    }

    /// A request that got no response: timed out, refused, or what the transport says.
    fn no_response(
        &self,
        err: &reqwest::Error,
        method: &Method,
        url: &Url,
        timeout: Duration,
    ) -> AttemptError {
        self.lock_stats().transport_errors += 1;
        let host = url.host_str().unwrap_or_default();
        let error = if err.is_timeout() {
            timed_out(method, url, timeout)
        } else {
            match transport::classify(err, host, self.proxy.as_deref()) {
                PlatformError::Transient { .. } if refused(err) => PlatformError::Unreachable {
                    // The origin holds no credentials, unlike a URL's user info.
                    origin: url.origin().ascii_serialization(),
                    detail: "connection refused".to_owned(),
                },
                classified => classified,
            }
        };
        tracing::debug!(%method, path = url.path(), error = %error, "request failed");
        if error.ends_run() {
            AttemptError::terminal(error)
        } else {
            AttemptError::transient(error, None)
        }
    }

    /// One call with retries; `accept` turns a 2xx body into the result (and may ask for a
    /// retry, e.g. for a garbled list). `payload` is a set's JSON body and the value in it,
    /// which is scrubbed from every error before it is logged or returned.
    async fn call<T>(
        &self,
        call: Call,
        method: Method,
        url: Url,
        agent: &str,
        payload: Option<(&[u8], &SecretValue)>,
        accept: impl Fn(&[u8]) -> Result<T, AttemptError>,
    ) -> Result<T, PlatformError> {
        let (body, value) = payload.unzip();
        let attempts = std::sync::atomic::AtomicU64::new(0);
        let result = with_retries(&self.retry, call.name(), || {
            attempts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let (method, url, accept) = (&method, &url, &accept);
            async move {
                let outcome = match self.attempt(call, method, url, body).await {
                    Ok(reply) => judge(call, agent, reply).and_then(|body| accept(&body)),
                    Err(e) => Err(e),
                };
                outcome.map_err(|mut e| {
                    if let Some(value) = value {
                        e.error = scrub(e.error, value);
                    }
                    e
                })
            }
        })
        .await;
        let retries = attempts.into_inner().saturating_sub(1);
        self.lock_stats().retries += retries;
        result.map_err(|e| e.error)
    }
}

impl Call {
    fn name(self) -> &'static str {
        match self {
            Call::List => "list",
            Call::Set => "set",
            Call::Delete => "delete",
            Call::Redeploy => "redeploy",
        }
    }
}

/// A protocol error's detail prefixed with where it happened.
fn in_context(error: PlatformError, context: &str) -> PlatformError {
    match error {
        PlatformError::Protocol { detail } => PlatformError::Protocol {
            detail: format!("{context}: {detail}"),
        },
        other => other,
    }
}

/// A request that ran out of its timeout, for the error: which call, and how long it had.
fn timed_out(method: &Method, url: &Url, timeout: Duration) -> PlatformError {
    PlatformError::Timeout {
        detail: format!(
            "no complete answer to {method} {} within {}",
            url.path(),
            super::types::whole_seconds(&timeout)
        ),
    }
}

/// Reads at most [`MAX_BODY`] bytes; a body cut short or too large is transient, one that
/// trickles in past the request's timeout is `timed_out()`.
async fn read_body(
    mut response: reqwest::Response,
    timed_out: impl FnOnce() -> PlatformError,
) -> Result<Vec<u8>, PlatformError> {
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > MAX_BODY {
                    return Err(PlatformError::Transient {
                        detail: format!("response body larger than {} MiB", MAX_BODY / 1024 / 1024),
                    });
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(err) if err.is_timeout() => return Err(timed_out()),
            Err(err) => {
                return Err(PlatformError::Transient {
                    detail: format!("reading the response: {}", transport::describe(&err)),
                });
            }
        }
    }
}

/// Whether nothing listened at the address: the connection was refused.
/// How long the platform asks us to wait: its Retry-After, or else, on a 429 with the
/// window spent, until the window resets.
fn wait_hint(
    headers: &reqwest::header::HeaderMap,
    observation: Option<RateObservation>,
    status: StatusCode,
    now: SystemTime,
) -> Option<Duration> {
    wire::retry_after(headers, now).or_else(|| {
        observation
            .filter(|o| o.remaining == 0 && status == StatusCode::TOO_MANY_REQUESTS)
            .map(|o| {
                let reset = SystemTime::UNIX_EPOCH + Duration::from_secs(o.reset_unix);
                reset.duration_since(now).unwrap_or(Duration::ZERO)
            })
    })
}

fn refused(err: &reqwest::Error) -> bool {
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::ConnectionRefused
        {
            return true;
        }
        source = cause.source();
    }
    false
}

/// Maps a reply's status to success (its body) or a typed error, transient or terminal.
fn judge(call: Call, agent: &str, reply: Reply) -> Result<Vec<u8>, AttemptError> {
    let status = reply.status;
    if status.is_success() {
        return Ok(reply.body);
    }
    let json_detail = wire::error_detail(&reply.body);
    let detail = json_detail.clone().unwrap_or_else(|| {
        format!(
            "HTTP {status} without a JSON detail ({} bytes of body)",
            reply.body.len()
        )
    });
    let terminal = |error| Err(AttemptError::terminal(error));
    match status.as_u16() {
        401 => terminal(PlatformError::Unauthorized { detail }),
        403 => terminal(PlatformError::Forbidden {
            agent: agent.to_owned(),
            detail,
        }),
        404 if json_detail.as_deref() == Some(AGENT_NOT_FOUND) => {
            terminal(PlatformError::AgentNotFound {
                agent: agent.to_owned(),
            })
        }
        // The key is already gone: that is what a delete wants (assumption: the API's answer
        // for a missing key is not documented). Only a JSON 404 counts; a
        // bare 404 page more likely means a wrong base URL.
        404 if call == Call::Delete && json_detail.is_some() => Ok(Vec::new()),
        404 if call == Call::Redeploy => terminal(PlatformError::InvalidRequest {
            status: 404,
            detail: format!(
                "{detail}: this platform has no redeploy route for agent {agent:?}; set `redeploy: never` (or pass --no-redeploy) if it does not support redeploys"
            ),
        }),
        429 => Err(AttemptError::transient(
            PlatformError::RateLimited { detail },
            reply.wait_hint,
        )),
        408 | 500..=599 => Err(AttemptError::transient(
            PlatformError::Transient {
                detail: format!("HTTP {status}: {detail}"),
            },
            reply.wait_hint,
        )),
        300..=399 => terminal(PlatformError::InvalidRequest {
            status: status.as_u16(),
            detail: format!(
                "unexpected redirect to {}; check the platform URL",
                reply.location.as_deref().unwrap_or("(no location)")
            ),
        }),
        code => terminal(PlatformError::InvalidRequest {
            status: code,
            detail,
        }),
    }
}

fn check_slug(agent: &str) -> Result<(), PlatformError> {
    validate_slug(agent).map_err(|e| PlatformError::InvalidName {
        detail: e.to_string(),
    })
}

fn check_key(key: &str) -> Result<(), PlatformError> {
    validate_key(key).map_err(|e| PlatformError::InvalidName {
        detail: e.to_string(),
    })
}

/// A key to delete may be any name the platform listed, including ones castsync would
/// never create (`my-key`, lowercase): it travels percent-encoded as one path segment, as the
/// SDK's `encodeURIComponent` sends it. Only names no URL can carry as a segment are refused.
fn check_listed_key(key: &str) -> Result<(), PlatformError> {
    let addressable = !key.is_empty()
        && key.len() <= MAX_KEY_LEN * 4
        && key != "."
        && key != ".."
        && !key.chars().any(char::is_control);
    if addressable {
        Ok(())
    } else {
        Err(PlatformError::InvalidName {
            detail: format!(
                "the platform lists a key {key:?} that cannot be addressed in a URL path; delete it with the Castari dashboard or `cast secrets delete`"
            ),
        })
    }
}

/// Replaces the value in an error's text, in case the platform echoed it.
fn scrub(err: PlatformError, value: &SecretValue) -> PlatformError {
    let v = value.expose();
    if v.is_empty() {
        return err;
    }
    let clean = |s: String| {
        if s.contains(v) {
            s.replace(v, "<redacted>")
        } else {
            s
        }
    };
    match err {
        PlatformError::Unauthorized { detail } => PlatformError::Unauthorized {
            detail: clean(detail),
        },
        PlatformError::Forbidden { agent, detail } => PlatformError::Forbidden {
            agent,
            detail: clean(detail),
        },
        PlatformError::RateLimited { detail } => PlatformError::RateLimited {
            detail: clean(detail),
        },
        PlatformError::Transient { detail } => PlatformError::Transient {
            detail: clean(detail),
        },
        PlatformError::Timeout { detail } => PlatformError::Timeout {
            detail: clean(detail),
        },
        PlatformError::InvalidRequest { status, detail } => PlatformError::InvalidRequest {
            status,
            detail: clean(detail),
        },
        PlatformError::Protocol { detail } => PlatformError::Protocol {
            detail: clean(detail),
        },
        other => other,
    }
}

#[async_trait]
impl Platform for CastariClient {
    fn id(&self) -> &str {
        &self.id
    }

    async fn list(&self, agent: &str) -> Result<Listing, PlatformError> {
        check_slug(agent)?;
        let mut pager = paging::Pager::new(PAGE_SIZE);
        let mut offset = 0usize;
        loop {
            let mut url = self.endpoint(agent, None);
            url.query_pairs_mut()
                .append_pair("limit", &PAGE_SIZE.to_string())
                .append_pair("offset", &offset.to_string());
            let page = self
                .call(Call::List, Method::GET, url, agent, None, |body| {
                    // A garbled page is worth another GET; after the retries it is a
                    // protocol error, never a shorter list.
                    wire::parse_list(body).map_err(|e| {
                        AttemptError::transient(
                            in_context(e, &format!("agent {agent:?}, offset {offset}")),
                            None,
                        )
                    })
                })
                .await?;
            match pager.accept(page) {
                Ok(paging::Next::Fetch { offset: next }) => offset = next,
                Ok(paging::Next::Done) => return Ok(pager.finish()),
                Err(e) => return Err(in_context(e, &format!("agent {agent:?}"))),
            }
        }
    }

    async fn set(&self, agent: &str, key: &str, value: &SecretValue) -> Result<(), PlatformError> {
        check_slug(agent)?;
        check_key(key)?;
        let body = Zeroizing::new(
            serde_json::to_vec(&SetBody {
                key,
                value: value.expose(),
            })
            .map_err(|_| PlatformError::Protocol {
                detail: "cannot encode the request body".to_owned(),
            })?,
        );
        let url = self.endpoint(agent, None);
        // The reply's body is not read: any 2xx means the write landed.
        self.call(
            Call::Set,
            Method::POST,
            url,
            agent,
            Some((&body, value)),
            |_| Ok(()),
        )
        .await
    }

    async fn delete(&self, agent: &str, key: &str) -> Result<(), PlatformError> {
        check_slug(agent)?;
        check_listed_key(key)?;
        let url = self.endpoint(agent, Some(key));
        self.call(Call::Delete, Method::DELETE, url, agent, None, |_| Ok(()))
            .await
    }

    async fn redeploy(&self, agent: &str) -> Result<(), PlatformError> {
        check_slug(agent)?;
        let url = self.agent_url(agent, "redeploy");
        // The reply is the agent (SDK-confirmed type `Agent`); castsync needs nothing from it.
        self.call(Call::Redeploy, Method::POST, url, agent, None, |_| Ok(()))
            .await
    }

    fn stats(&self) -> Option<ClientStats> {
        Some(CastariClient::stats(self))
    }

    fn rate_wait(&self) -> Option<std::time::Duration> {
        self.limiter.wait_left()
    }
}

#[cfg(test)]
mod tests;
