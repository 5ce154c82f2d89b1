//! One agent's writes as a unit: every set, then — only when every set landed — every delete.
//!
//! Apply hands a platform the whole batch of an agent ([`crate::platform::Platform::write_batch`]).
//! The HTTP client sends it one request per key ([`one_by_one`], the trait's default); the
//! embedded store writes it in one transaction. Both keep the same rules, so the plan's
//! promise (a renamed key is never missing) does not depend on the platform: a delete is
//! held back when a set of the same batch failed, and nothing new starts once the run is
//! shutting down.

use tokio_util::sync::CancellationToken;

use super::{Platform, PlatformError};
use crate::secret::SecretValue;

/// The writes of one agent.
#[derive(Clone, Copy)]
pub struct Batch<'a> {
    pub sets: &'a [(&'a str, &'a SecretValue)],
    pub deletes: &'a [&'a str],
    /// Called once for every write that was sent (landed or failed), as it completes: the
    /// progress bar follows it.
    pub sent: &'a (dyn Fn() + Send + Sync),
}

impl std::fmt::Debug for Batch<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys: Vec<&str> = self.sets.iter().map(|(k, _)| *k).collect();
        f.debug_struct("Batch")
            .field("sets", &keys)
            .field("deletes", &self.deletes)
            .finish_non_exhaustive()
    }
}

/// A `sent` hook for callers that do not follow progress.
pub fn unobserved() {}

/// What became of one write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    /// The platform accepted it.
    Landed,
    /// The platform refused it, or the call failed.
    Failed(PlatformError),
    /// Not sent: the run is shutting down.
    Cancelled,
    /// A delete not sent because a set of the same batch failed.
    HeldBack,
}

/// One [`Written`] per write, in the batch's order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BatchResult {
    pub sets: Vec<Written>,
    pub deletes: Vec<Written>,
}

impl BatchResult {
    /// Whether the deletes may be sent: only when every set landed.
    pub fn deletes_allowed(&self) -> bool {
        self.sets.iter().all(|w| *w == Written::Landed)
    }
}

/// Writes a batch one call per key, in order, checking `cancel` before each call.
pub async fn one_by_one<P: Platform + ?Sized>(
    platform: &P,
    agent: &str,
    batch: Batch<'_>,
    cancel: &CancellationToken,
) -> BatchResult {
    let mut result = BatchResult::default();
    for (key, value) in batch.sets {
        let written = if cancel.is_cancelled() {
            Written::Cancelled
        } else {
            let set = platform.set(agent, key, value).await;
            (batch.sent)();
            match set {
                Ok(()) => Written::Landed,
                Err(e) => Written::Failed(e),
            }
        };
        result.sets.push(written);
    }
    let allowed = result.deletes_allowed();
    for key in batch.deletes {
        let written = if !allowed {
            Written::HeldBack
        } else if cancel.is_cancelled() {
            Written::Cancelled
        } else {
            let deleted = platform.delete(agent, key).await;
            (batch.sent)();
            match deleted {
                Ok(()) => Written::Landed,
                Err(e) => Written::Failed(e),
            }
        };
        result.deletes.push(written);
    }
    result
}
