//! A platform seen through an environment's `agent_slug` mapping (`{agent}-staging`): the
//! pipeline keeps speaking of agents by their names in the repository, and every call
//! reaches the platform agent the environment names. The state, history and plan stay keyed
//! by the repository's names; only the requests change.

use std::sync::Arc;

use async_trait::async_trait;

use super::batch::{Batch, BatchResult};
use super::{ClientStats, Listing, Platform, PlatformError};
use crate::secret::SecretValue;

/// `inner`, with each agent name mapped through `template` before it is sent.
pub struct Renamed {
    inner: Arc<dyn Platform>,
    template: String,
    /// The inner id with the mapping: a saved plan or a state record made for one mapping
    /// is never taken for another's on the same platform.
    id: String,
}

impl Renamed {
    pub fn new(inner: Arc<dyn Platform>, template: &str) -> Renamed {
        Renamed {
            id: format!("{} as {template}", inner.id()),
            inner,
            template: template.to_owned(),
        }
    }

    fn slug(&self, agent: &str) -> String {
        crate::config::apply_slug_template(&self.template, agent)
    }
}

#[async_trait]
impl Platform for Renamed {
    fn id(&self) -> &str {
        &self.id
    }

    async fn list(&self, agent: &str) -> Result<Listing, PlatformError> {
        self.inner.list(&self.slug(agent)).await
    }

    async fn set(&self, agent: &str, key: &str, value: &SecretValue) -> Result<(), PlatformError> {
        self.inner.set(&self.slug(agent), key, value).await
    }

    async fn delete(&self, agent: &str, key: &str) -> Result<(), PlatformError> {
        self.inner.delete(&self.slug(agent), key).await
    }

    async fn redeploy(&self, agent: &str) -> Result<(), PlatformError> {
        self.inner.redeploy(&self.slug(agent)).await
    }

    async fn write_batch(
        &self,
        agent: &str,
        batch: Batch<'_>,
        cancel: &tokio_util::sync::CancellationToken,
    ) -> BatchResult {
        self.inner
            .write_batch(&self.slug(agent), batch, cancel)
            .await
    }

    fn stats(&self) -> Option<ClientStats> {
        self.inner.stats()
    }

    fn rate_wait(&self) -> Option<std::time::Duration> {
        self.inner.rate_wait()
    }
}
