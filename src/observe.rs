//! The observe step of a reconcile, between load and plan: what the platform holds now.
//!
//! It only lists (GET): it never sets or deletes, so a dry run and an apply observe alike.
//! An agent whose list fails is reported as such, never as an agent with no keys, so the
//! plan skips it instead of creating everything or pruning nothing by mistake.
//!
//! A platform that refuses connections refuses them for every agent: once one list finds
//! it unreachable, the lists still waiting or in flight stop and report the same error, so
//! a run against a platform that is not running ends at once rather than after every
//! agent's retries.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::apply::Progress;
use crate::platform::{Listing, Platform, PlatformError};

/// Lists the keys of every agent in `agents`, at most `concurrency` at once (and within the
/// rate budget: the client's limiter paces them, holding them back behind a first probe for
/// at most `limiter::PROBE_PATIENCE` while the budget is unknown). Every agent gets
/// an entry: its listing, or the typed list error (which the plan turns into a skip, keeping
/// the error's class). `progress` hears how many agents there are and as each list ends.
pub async fn list_agents(
    platform: Arc<dyn Platform>,
    agents: impl IntoIterator<Item = String>,
    concurrency: usize,
    progress: &dyn Progress,
) -> BTreeMap<String, Result<Listing, PlatformError>> {
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    let agents: Vec<String> = agents.into_iter().collect();
    progress.listing(agents.len());
    let unreachable = Arc::new(std::sync::OnceLock::<PlatformError>::new());
    let down = CancellationToken::new();
    for agent in agents.iter().cloned() {
        let platform = platform.clone();
        let permits = permits.clone();
        let (unreachable, down) = (unreachable.clone(), down.clone());
        tasks.spawn(async move {
            let listed = tokio::select! {
                biased;
                () = down.cancelled() => None,
                listed = async {
                    let _permit = permits.acquire_owned().await;
                    platform.list(&agent).await
                } => Some(listed),
            };
            let listed = match listed {
                Some(Err(error @ PlatformError::Unreachable { .. })) => {
                    let _ = unreachable.set(error.clone());
                    down.cancel();
                    Err(error)
                }
                Some(listed) => listed,
                // Cancelled only after the error was set.
                None => Err(unreachable
                    .get()
                    .cloned()
                    .unwrap_or(PlatformError::Transient {
                        detail: "the platform could not be reached".to_owned(),
                    })),
            };
            (agent, listed)
        });
    }
    let mut out = BTreeMap::new();
    while let Some(joined) = tasks.join_next().await {
        progress.listed();
        // A panicking list task leaves its agent without an entry, which the plan treats as
        // a list failure (skip), never as an empty list.
        if let Ok((agent, listed)) = joined {
            out.insert(agent, listed);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use async_trait::async_trait;

    use super::*;
    use crate::apply::NoProgress;
    use crate::secret::SecretValue;

    /// A platform nobody listens for: every list is refused, after a moment.
    struct Refusing {
        lists: AtomicUsize,
    }

    #[async_trait]
    impl Platform for Refusing {
        fn id(&self) -> &str {
            "http://127.0.0.1:1"
        }

        async fn list(&self, _agent: &str) -> Result<Listing, PlatformError> {
            self.lists.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(100)).await;
            Err(PlatformError::Unreachable {
                origin: "http://127.0.0.1:1".to_owned(),
                detail: "connection refused".to_owned(),
            })
        }

        async fn set(&self, _: &str, _: &str, _: &SecretValue) -> Result<(), PlatformError> {
            unreachable!("observe never writes")
        }

        async fn delete(&self, _: &str, _: &str) -> Result<(), PlatformError> {
            unreachable!("observe never writes")
        }

        async fn redeploy(&self, _: &str) -> Result<(), PlatformError> {
            unreachable!("observe never writes")
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_unreachable_platform_stops_the_other_lists_and_every_agent_gets_its_error() {
        let platform = Arc::new(Refusing {
            lists: AtomicUsize::new(0),
        });
        let agents: Vec<String> = (0..20).map(|i| format!("agent-{i}")).collect();
        let listed = list_agents(platform.clone(), agents.clone(), 4, &NoProgress).await;
        // The first wave (one per permit) was already on its way; nothing after it is sent.
        assert!(platform.lists.load(Ordering::SeqCst) <= 4);
        assert_eq!(listed.len(), 20);
        for agent in &agents {
            assert!(
                matches!(listed[agent], Err(PlatformError::Unreachable { .. })),
                "{agent}: {:?}",
                listed[agent]
            );
        }
    }
}
