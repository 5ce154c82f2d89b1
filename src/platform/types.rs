//! The platform's values as plain data: what a list returns, how a call failed (with its
//! class, transient or terminal) and what a client has counted. No I/O and no HTTP types
//! here, so the pure parts (`plan`, `render`, `state`) can name them without depending on
//! the client that talks to the network.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::API_KEY_ENV;

/// One key as the platform lists it.
///
/// Castari's SDK types a listed secret as `{ key: string }` only (`@castari/sdk`
/// `types.ts`, SDK-confirmed); `created_at`/`updated_at` are an assumption kept from the API
/// docs, used for drift when a platform sends them and never required. Timestamps are kept
/// as the platform's text: the plan only asks whether they moved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteKey {
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
}

impl RemoteKey {
    /// A key listed without timestamps (the SDK's shape).
    pub fn bare(key: impl Into<String>) -> RemoteKey {
        RemoteKey {
            key: key.into(),
            created_at: None,
            updated_at: None,
        }
    }

    /// The newest timestamp the platform reports for this key, when it reports one.
    pub fn last_write(&self) -> Option<&str> {
        self.updated_at.as_deref().or(self.created_at.as_deref())
    }
}

/// Every key of an agent, and what the listing showed about the platform's list route.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Listing {
    pub keys: Vec<RemoteKey>,
    pub shape: ListShape,
}

impl Listing {
    /// A listing from a store that answers in one go (the embedded store, tests).
    pub fn whole(keys: Vec<RemoteKey>) -> Listing {
        let shape = ListShape {
            requests: 0,
            paging: Paging::Unknown,
            timestamps: Timestamps::of(&keys),
        };
        Listing { keys, shape }
    }
}

/// How the list route answered (for `doctor` and the plan's drift note).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct ListShape {
    /// HTTP requests the listing took (0 for the embedded store).
    pub requests: u32,
    pub paging: Paging,
    pub timestamps: Timestamps,
}

/// Whether the list route pages. The SDK sends no `limit`/`offset` on it (SDK-confirmed);
/// whether the server honours them is unknown, so castsync sends them and watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Paging {
    /// The server paged: it sent `meta`, or a later offset returned new keys.
    Paged,
    /// The server ignored paging: a page longer than `limit`, or an offset that repeated the
    /// first page. What it returned is the whole list.
    Unpaged,
    /// One short page without `meta`: the whole list, but whether the route pages is unknown.
    #[default]
    Unknown,
}

/// Whether listed keys carry timestamps, which value-drift detection needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Timestamps {
    /// Every key has one.
    All,
    /// Some keys have one.
    Some,
    /// No key has one (the SDK's shape): value drift cannot be seen.
    None,
    /// No keys were listed, so it is unknown.
    #[default]
    NoKeys,
}

impl Timestamps {
    pub fn of(keys: &[RemoteKey]) -> Timestamps {
        let with = keys.iter().filter(|k| k.last_write().is_some()).count();
        match (keys.len(), with) {
            (0, _) => Timestamps::NoKeys,
            (n, w) if w == n => Timestamps::All,
            (_, 0) => Timestamps::None,
            _ => Timestamps::Some,
        }
    }

    /// True when some listed key has no timestamp, so a value written behind castsync's back
    /// would go unseen.
    pub fn blind(self) -> bool {
        matches!(self, Timestamps::None | Timestamps::Some)
    }
}

/// Whether a failed call may succeed if tried again. It travels with the error from the
/// client to apply, the run report, the JSON output and the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ErrorClass {
    /// 429, 5xx, timeouts, resets, malformed bodies: retried with backoff.
    Transient,
    /// 400, 401, 403, 404, 422, a name the platform would refuse: never retried; a person
    /// has to fix something (the key, the slug, the config) first.
    Terminal,
}

/// A failed platform call. Messages carry the API's `detail` text but never a value, the
/// API key or the Authorization header. Its hint ([`crate::hint::Hinted`]) says what to do about it.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum PlatformError {
    /// The agent does not exist on the platform (404 "Agent not found").
    #[error("agent {agent:?} not found on the platform")]
    AgentNotFound { agent: String },
    /// 401: the API key is missing or wrong.
    #[error("the platform refused the API key (401): {detail}")]
    Unauthorized { detail: String },
    /// 403: the API key may not touch this agent.
    #[error("the API key may not manage agent {agent:?} (403): {detail}")]
    Forbidden { agent: String, detail: String },
    /// 429 after every retry.
    #[error("rate limited (429): {detail}")]
    RateLimited { detail: String },
    /// 5xx, a connection error or a reset, after every retry.
    #[error("transient platform error: {detail}")]
    Transient { detail: String },
    /// Nothing listens at the platform's address (the connection was refused), after a few
    /// quick retries: a platform that is down, not started (the emulator), or a wrong URL.
    /// Transient, since a platform being restarted refuses connections for a moment.
    #[error("cannot connect to the platform at {origin}: {detail}")]
    Unreachable { origin: String, detail: String },
    /// No answer within the per-request timeout (connecting included), after the retries
    /// a timeout gets: a platform that accepts connections and never answers.
    #[error("the platform did not answer in time: {detail}")]
    Timeout { detail: String },
    /// The run's deadline passed before this call finished: the call was cancelled, or never
    /// sent. A write cut off this way may or may not have landed; it is not recorded, so the
    /// next run checks it again.
    #[error("cancelled: the run's deadline ({}) passed before this call finished", whole_seconds(.after))]
    DeadlineExceeded { after: Duration },
    /// Another 4xx: the request itself is wrong; retrying will not help.
    #[error("platform refused the request ({status}): {detail}")]
    InvalidRequest { status: u16, detail: String },
    /// A response we cannot make sense of (unparseable body, inconsistent pages), after
    /// every retry.
    #[error("protocol error: {detail}")]
    Protocol { detail: String },
    /// An agent slug or key name that the platform would refuse; nothing was sent.
    #[error("{detail}")]
    InvalidName { detail: String },
    /// The embedded `local://` store could not be read or written.
    #[error("local store: {detail}")]
    Local { detail: String },
    /// The TLS handshake failed because the platform's certificate is not trusted (unknown
    /// CA, expired, another host's name). It fails the same way until a person acts.
    #[error("the platform's certificate is not trusted ({reason})")]
    Untrusted { host: String, reason: String },
    /// An https:// URL whose port does not speak TLS (a plain-http server).
    #[error("the platform at {host} does not speak TLS ({detail})")]
    NotTls { host: String, detail: String },
    /// The proxy the environment names is down, refuses the tunnel or wants credentials.
    #[error("cannot reach the platform through the proxy {proxy}: {detail}")]
    Proxy { proxy: String, detail: String },
}

impl PlatformError {
    /// Transient errors may succeed on a later attempt; terminal ones will not.
    pub fn class(&self) -> ErrorClass {
        match self {
            PlatformError::RateLimited { .. }
            | PlatformError::Transient { .. }
            | PlatformError::Unreachable { .. }
            | PlatformError::Timeout { .. }
            | PlatformError::DeadlineExceeded { .. }
            | PlatformError::Protocol { .. } => ErrorClass::Transient,
            PlatformError::AgentNotFound { .. }
            | PlatformError::Unauthorized { .. }
            | PlatformError::Forbidden { .. }
            | PlatformError::InvalidRequest { .. }
            | PlatformError::InvalidName { .. }
            | PlatformError::Local { .. }
            | PlatformError::Untrusted { .. }
            | PlatformError::NotTls { .. }
            | PlatformError::Proxy { .. } => ErrorClass::Terminal,
        }
    }

    pub fn is_transient(&self) -> bool {
        self.class() == ErrorClass::Transient
    }

    /// The platform cannot be reached at all, whatever the call (TLS, proxy): every later
    /// call of the run would fail the same way, so the run stops at the first.
    pub fn ends_run(&self) -> bool {
        matches!(
            self,
            PlatformError::Untrusted { .. }
                | PlatformError::NotTls { .. }
                | PlatformError::Proxy { .. }
        )
    }

    /// A stable machine-readable name (for JSON output).
    pub fn kind(&self) -> &'static str {
        match self {
            PlatformError::AgentNotFound { .. } => "agent-not-found",
            PlatformError::Unauthorized { .. } => "unauthorized",
            PlatformError::Forbidden { .. } => "forbidden",
            PlatformError::RateLimited { .. } => "rate-limited",
            PlatformError::Transient { .. } => "transient",
            PlatformError::Unreachable { .. } => "unreachable",
            PlatformError::Timeout { .. } => "timeout",
            PlatformError::DeadlineExceeded { .. } => "deadline-exceeded",
            PlatformError::InvalidRequest { .. } => "invalid-request",
            PlatformError::Protocol { .. } => "protocol",
            PlatformError::InvalidName { .. } => "invalid-name",
            PlatformError::Local { .. } => "local-store",
            PlatformError::Untrusted { .. } => "tls-untrusted",
            PlatformError::NotTls { .. } => "tls-mismatch",
            PlatformError::Proxy { .. } => "proxy",
        }
    }
}

impl crate::hint::Hinted for PlatformError {
    /// What a person can do about it, when castsync knows.
    fn hint(&self) -> Option<std::borrow::Cow<'_, str>> {
        Some(std::borrow::Cow::Owned(match self {
            PlatformError::AgentNotFound { agent } => format!(
                "create the agent on Castari first (`cast deploy`; `cast agents list` shows the slugs this key sees), or check that the directory agents/{agent} is named after its slug and that the platform URL is right"
            ),
            PlatformError::Unauthorized { .. } => format!(
                "check the API key in {API_KEY_ENV} or --api-key-file: it must be a Castari API key (cast_…) for this platform URL; `castsync doctor` checks it without writing anything"
            ),
            PlatformError::Forbidden { .. } => {
                "use an API key of the account that owns this agent".to_owned()
            }
            PlatformError::RateLimited { .. } => {
                "the platform's rate budget is spent; the next run retries".to_owned()
            }
            PlatformError::Transient { .. } | PlatformError::Protocol { .. } => {
                "the next run retries; if it keeps failing, check the platform URL and the platform's status".to_owned()
            }
            PlatformError::Unreachable { .. } => {
                "is the platform running at that address? Check the URL (--api-url, CASTARI_API_URL or platform.url in castsync.yaml); to try castsync without a platform, start `castsync emulator` or use --api-url local://PATH".to_owned()
            }
            PlatformError::Timeout { .. } => {
                "the next run retries; a platform that accepts connections but does not answer is down or overloaded: check its status, or allow slower answers with --request-timeout".to_owned()
            }
            PlatformError::DeadlineExceeded { .. } => {
                "only verified changes are recorded, so the next run picks up what did not finish; allow more time with --timeout, or check the platform's status".to_owned()
            }
            PlatformError::InvalidRequest { .. } => {
                "the platform refused the request as sent; check the platform URL, and the key name and value size in the manifest".to_owned()
            }
            PlatformError::Untrusted { host, .. } => format!(
                "if the platform's certificate is signed by a private CA, set SSL_CERT_FILE to a PEM file holding that CA; otherwise check that {host} is the platform's name and that its certificate chain is complete and current"
            ),
            PlatformError::NotTls { .. } => {
                "check the URL's scheme: https:// needs a port that speaks TLS (a plain-http server on this machine, such as `castsync emulator`, is reached with http://)".to_owned()
            }
            PlatformError::Proxy { proxy, .. } => format!(
                "check the proxy {proxy} (HTTPS_PROXY, HTTP_PROXY or ALL_PROXY), or add the platform's host to NO_PROXY to reach it directly"
            ),
            PlatformError::InvalidName { .. } | PlatformError::Local { .. } => return None,
        }))
    }
}

/// A duration for messages, in whole seconds (at least 1 s): `2s`, `5m 3s`.
pub fn whole_seconds(d: &Duration) -> String {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() >= 500_000_000);
    humantime::format_duration(Duration::from_secs(secs.max(1))).to_string()
}

/// `{"kind", "class", "message", "hint"}`: the JSON form of an error in plans and reports.
impl Serialize for PlatformError {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("PlatformError", 4)?;
        st.serialize_field("kind", self.kind())?;
        st.serialize_field("class", &self.class())?;
        st.serialize_field("message", &self.to_string())?;
        st.serialize_field("hint", &crate::hint::Hinted::hint(self))?;
        st.end()
    }
}

/// What an HTTP platform client has seen so far (for the daemon's metrics).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientStats {
    /// Responses by HTTP status, retries included.
    pub responses: BTreeMap<u16, u64>,
    /// Attempts that ended without a response (connection error, timeout).
    pub transport_errors: u64,
    /// Attempts that were retried.
    pub retries: u64,
    /// The last `X-RateLimit-Limit` and `X-RateLimit-Remaining` seen.
    pub rate_limit: Option<u64>,
    pub rate_limit_remaining: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limits_server_errors_and_garbled_bodies_are_transient_the_rest_terminal() {
        let detail = || "d".to_owned();
        for transient in [
            PlatformError::RateLimited { detail: detail() },
            PlatformError::Transient { detail: detail() },
            PlatformError::Unreachable {
                origin: detail(),
                detail: detail(),
            },
            PlatformError::Timeout { detail: detail() },
            PlatformError::DeadlineExceeded {
                after: Duration::from_secs(2),
            },
            PlatformError::Protocol { detail: detail() },
        ] {
            assert_eq!(transient.class(), ErrorClass::Transient, "{transient}");
        }
        for terminal in [
            PlatformError::Unauthorized { detail: detail() },
            PlatformError::Forbidden {
                agent: "a".into(),
                detail: detail(),
            },
            PlatformError::AgentNotFound { agent: "a".into() },
            PlatformError::InvalidRequest {
                status: 422,
                detail: detail(),
            },
            PlatformError::InvalidName { detail: detail() },
            PlatformError::Local { detail: detail() },
        ] {
            assert_eq!(terminal.class(), ErrorClass::Terminal, "{terminal}");
        }
    }

    #[test]
    fn errors_serialize_with_their_class_and_hint() {
        let v = serde_json::to_value(PlatformError::AgentNotFound {
            agent: "ghost".into(),
        })
        .unwrap();
        assert_eq!(v["kind"], "agent-not-found");
        assert_eq!(v["class"], "terminal");
        assert!(v["message"].as_str().unwrap().contains("ghost"));
        assert!(v["hint"].as_str().unwrap().contains("agents/ghost"));
    }

    #[test]
    fn timestamps_are_judged_over_every_listed_key() {
        let stamped = RemoteKey {
            created_at: Some("t".into()),
            ..RemoteKey::bare("A")
        };
        assert_eq!(Timestamps::of(&[]), Timestamps::NoKeys);
        assert_eq!(Timestamps::of(&[RemoteKey::bare("A")]), Timestamps::None);
        assert_eq!(
            Timestamps::of(std::slice::from_ref(&stamped)),
            Timestamps::All
        );
        assert_eq!(
            Timestamps::of(&[stamped, RemoteKey::bare("B")]),
            Timestamps::Some
        );
        assert!(Timestamps::None.blind() && Timestamps::Some.blind());
        assert!(!Timestamps::All.blind() && !Timestamps::NoKeys.blind());
    }
}
