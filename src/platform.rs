//! The platform edge: where secrets are set, listed and deleted.
//!
//! [`Platform`] has two implementations: `castari` (the HTTP API, reqwest) and `local`
//! (an embedded file-backed store selected with `local://PATH`). The trait never returns
//! values: like the real API, a list gives key names and timestamps only.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::secret::SecretValue;

/// One key as the platform lists it. Timestamps are kept as the platform's text: the plan
/// only asks whether they moved, never does arithmetic on them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteKey {
    pub key: String,
    pub created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
}

impl RemoteKey {
    /// The newest timestamp the platform reports for this key.
    pub fn last_write(&self) -> &str {
        self.updated_at.as_deref().unwrap_or(&self.created_at)
    }
}

/// A failed platform call. Messages carry the API's `detail` text but never a value, the
/// API key or the Authorization header.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum PlatformError {
    /// The agent does not exist on the platform (404 "Agent not found").
    #[error("agent {agent:?} not found on the platform")]
    AgentNotFound { agent: String },
    /// 401: the API key is missing or wrong.
    #[error("unauthorized (401): {detail}")]
    Unauthorized { detail: String },
    /// 403: the API key may not touch this agent.
    #[error("forbidden (403): {detail}")]
    Forbidden { detail: String },
    /// 429 after every retry.
    #[error("rate limited (429): {detail}")]
    RateLimited { detail: String },
    /// 5xx, a connection error or a timeout, after every retry.
    #[error("transient platform error: {detail}")]
    Transient { detail: String },
    /// Another 4xx: the request itself is wrong; retrying will not help.
    #[error("platform refused the request ({status}): {detail}")]
    InvalidRequest { status: u16, detail: String },
    /// A response we cannot make sense of (unparseable body, a page that repeats keys).
    #[error("protocol error: {detail}")]
    Protocol { detail: String },
}

impl PlatformError {
    /// Transient errors may succeed on a later attempt; terminal ones will not.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            PlatformError::RateLimited { .. } | PlatformError::Transient { .. }
        )
    }
}

/// The three calls castsync needs. Implementations are shared across tasks (`Arc<dyn
/// Platform>`) and must be safe to call concurrently.
#[async_trait]
pub trait Platform: Send + Sync {
    /// A stable name for this platform (its base URL, or `local://PATH`): the state file keys
    /// its records by it, so state for one platform is never used against another.
    fn id(&self) -> &str;

    /// Every key of an agent (all pages).
    async fn list(&self, agent: &str) -> Result<Vec<RemoteKey>, PlatformError>;

    /// Create or overwrite a key.
    async fn set(&self, agent: &str, key: &str, value: &SecretValue) -> Result<(), PlatformError>;

    /// Delete a key; a key that is already gone is success.
    async fn delete(&self, agent: &str, key: &str) -> Result<(), PlatformError>;
}
