//! The observe step of a reconcile, between load and plan: what the platform holds now.
//!
//! It only lists (GET): it never sets or deletes, so a dry run and an apply observe alike.
//! An agent whose list fails is reported as such, never as an agent with no keys, so the
//! plan skips it instead of creating everything or pruning nothing by mistake.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::Semaphore;

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
    for agent in agents.iter().cloned() {
        let platform = platform.clone();
        let permits = permits.clone();
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await;
            let listed = platform.list(&agent).await;
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
