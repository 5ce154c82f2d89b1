//! The platform's values as plain data: what a list returns and what a client has counted.
//! No I/O and no HTTP types here, so the pure parts (`plan`, `render`, `state`) can name
//! them without depending on the client that talks to the network.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

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
