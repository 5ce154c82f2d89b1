//! `local://PATH`: the embedded platform, an SQLite store (see [`crate::platform::store`])
//! with the same semantics as the API.
//!
//! It is for demos and local development: the agents the repository declares exist
//! automatically (the real platform creates agents elsewhere), other agents are "not found"
//! as on the API. One agent's batch of changes is one transaction, so a first apply costs
//! one commit per agent, not one per key, and several castsync processes can share the store
//! (SQLite's locks queue their writes). Reads never create the file. The file is mode 0600:
//! it holds values in clear, like the platform it stands in for.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use crate::names::{validate_key, validate_slug};
use crate::platform::batch::{Batch, BatchResult, Written, unobserved};
use crate::platform::store::{MAX_VALUE_LEN, Store, StoreError, Txn};
use crate::platform::{LOCAL_SCHEME, Listing, OpenError, Platform, PlatformError};
use crate::secret::SecretValue;

/// The embedded store-backed platform.
#[derive(Debug)]
pub struct LocalPlatform {
    id: String,
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    path: PathBuf,
    declared: BTreeSet<String>,
    /// The open connection; None until the file exists (a read of a missing store sees an
    /// empty one and creates nothing).
    store: Mutex<Option<Store>>,
}

impl LocalPlatform {
    /// Opens the store at `path` if it exists (it must be a castsync store); a missing
    /// one is created by the first write.
    pub fn open(path: &Path, declared_agents: Vec<String>) -> Result<LocalPlatform, OpenError> {
        if path.as_os_str().is_empty() {
            return Err(OpenError::InvalidUrl {
                url: LOCAL_SCHEME.to_owned(),
                reason: "no path after local://".to_owned(),
            });
        }
        let store = Store::open_existing(path)?;
        Ok(LocalPlatform {
            id: format!("{LOCAL_SCHEME}{}", path.display()),
            inner: Arc::new(Inner {
                path: path.to_owned(),
                declared: declared_agents.into_iter().collect(),
                store: Mutex::new(store),
            }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Runs `op` on the store, off the async threads. Without a store file, a read (`write`
    /// false) gets None and a write creates the file.
    async fn with_store<T, F>(&self, write: bool, op: F) -> Result<T, PlatformError>
    where
        T: Send + 'static,
        F: FnOnce(&Inner, Option<&mut Store>) -> Result<T, PlatformError> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        let task = tokio::task::spawn_blocking(move || {
            // A poisoned lock means a panic mid-call; SQLite rolled back what it did not commit.
            let mut guard = inner.store.lock().unwrap_or_else(|e| e.into_inner());
            if guard.is_none() {
                *guard = if write {
                    Some(Store::open(&inner.path).map_err(local_error)?)
                } else {
                    Store::open_existing(&inner.path).map_err(local_error)?
                };
            }
            op(&inner, guard.as_mut())
        });
        task.await.map_err(|e| PlatformError::Local {
            detail: format!("store task failed: {e}"),
        })?
    }
}

impl Inner {
    /// Creates a declared agent that is not in the store yet; fails for an undeclared one.
    fn ensure_agent(&self, tx: &mut Txn<'_>, agent: &str) -> Result<(), StoreError> {
        if self.declared.contains(agent) {
            tx.ensure_agent(agent)?;
        } else if !tx.has_agent(agent)? {
            return Err(StoreError::NoSuchAgent {
                agent: agent.to_owned(),
            });
        }
        Ok(())
    }
}

fn local_error(err: StoreError) -> PlatformError {
    if let StoreError::NoSuchAgent { agent } = err {
        return PlatformError::AgentNotFound { agent };
    }
    let mut detail = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        detail.push_str(": ");
        detail.push_str(&cause.to_string());
        source = cause.source();
    }
    PlatformError::Local { detail }
}

fn check(agent: &str, key: Option<&str>) -> Result<(), PlatformError> {
    let invalid = |e: crate::names::NameError| PlatformError::InvalidName {
        detail: e.to_string(),
    };
    validate_slug(agent).map_err(invalid)?;
    if let Some(key) = key {
        validate_key(key).map_err(invalid)?;
    }
    Ok(())
}

/// Checks a set before anything is written: the name, and the size the API accepts.
fn check_set(agent: &str, key: &str, value: &SecretValue) -> Result<(), PlatformError> {
    check(agent, Some(key))?;
    if value.len() > MAX_VALUE_LEN {
        // The API's answer, word for word.
        return Err(PlatformError::InvalidRequest {
            status: 422,
            detail: format!(
                "body.value: String should have at most {MAX_VALUE_LEN} characters (string_too_long)"
            ),
        });
    }
    Ok(())
}

#[async_trait]
impl Platform for LocalPlatform {
    fn id(&self) -> &str {
        &self.id
    }

    async fn list(&self, agent: &str) -> Result<Listing, PlatformError> {
        check(agent, None)?;
        let name = agent.to_owned();
        let keys = self
            .with_store(false, move |inner, store| {
                let declared = inner.declared.contains(&name);
                match store {
                    Some(store) => match store.list(&name) {
                        // A declared agent exists before its first write.
                        Err(StoreError::NoSuchAgent { .. }) if declared => Ok(Vec::new()),
                        other => other.map_err(local_error),
                    },
                    None if declared => Ok(Vec::new()),
                    None => Err(PlatformError::AgentNotFound { agent: name }),
                }
            })
            .await?;
        Ok(Listing::whole(keys))
    }

    async fn set(&self, agent: &str, key: &str, value: &SecretValue) -> Result<(), PlatformError> {
        let sets = [(key, value)];
        let batch = Batch {
            sets: &sets,
            deletes: &[],
            sent: &unobserved,
        };
        match self
            .write_batch(agent, batch, &CancellationToken::new())
            .await
            .sets
            .pop()
        {
            Some(Written::Failed(e)) => Err(e),
            _ => Ok(()),
        }
    }

    async fn delete(&self, agent: &str, key: &str) -> Result<(), PlatformError> {
        let deletes = [key];
        let batch = Batch {
            sets: &[],
            deletes: &deletes,
            sent: &unobserved,
        };
        match self
            .write_batch(agent, batch, &CancellationToken::new())
            .await
            .deletes
            .pop()
        {
            Some(Written::Failed(e)) => Err(e),
            _ => Ok(()),
        }
    }

    /// The embedded store runs no agents, so there is nothing to redeploy: the call only
    /// checks that the agent exists, as the API would.
    async fn redeploy(&self, agent: &str) -> Result<(), PlatformError> {
        self.list(agent).await.map(|_| ())
    }

    /// The whole batch in one transaction: checks first (a refused set fails alone and holds
    /// the deletes back, as one call per key would), then every accepted write, committed
    /// together. A failed commit fails every write of the batch.
    async fn write_batch(
        &self,
        agent: &str,
        batch: Batch<'_>,
        cancel: &CancellationToken,
    ) -> BatchResult {
        let all = |w: Written| BatchResult {
            sets: vec![w.clone(); batch.sets.len()],
            deletes: vec![w; batch.deletes.len()],
        };
        if cancel.is_cancelled() {
            let mut result = all(Written::Cancelled);
            if !batch.sets.is_empty() {
                result.deletes.fill(Written::HeldBack);
            }
            return result;
        }
        if let Err(e) = check(agent, None) {
            return all(Written::Failed(e));
        }
        let mut result = BatchResult::default();
        let mut sets: Vec<(String, SecretValue)> = Vec::new();
        for (key, value) in batch.sets {
            match check_set(agent, key, value) {
                Ok(()) => {
                    sets.push(((*key).to_owned(), (*value).clone()));
                    result.sets.push(Written::Landed);
                }
                Err(e) => result.sets.push(Written::Failed(e)),
            }
        }
        let allowed = result.deletes_allowed();
        let mut deletes: Vec<String> = Vec::new();
        for key in batch.deletes {
            let written = if !allowed {
                Written::HeldBack
            } else if let Err(e) = check(agent, Some(key)) {
                Written::Failed(e)
            } else {
                deletes.push((*key).to_owned());
                Written::Landed
            };
            result.deletes.push(written);
        }
        if sets.is_empty() && deletes.is_empty() {
            return result;
        }
        let name = agent.to_owned();
        let committed = self
            .with_store(true, move |inner, store| {
                let Some(store) = store else {
                    return Err(PlatformError::Local {
                        detail: "the store was not opened".to_owned(),
                    });
                };
                store
                    .write(|tx| {
                        inner.ensure_agent(tx, &name)?;
                        for (key, value) in &sets {
                            tx.set(&name, key, value)?;
                        }
                        for key in &deletes {
                            tx.delete(&name, key)?;
                        }
                        Ok(())
                    })
                    .map_err(local_error)
            })
            .await;
        for w in result.sets.iter_mut().chain(result.deletes.iter_mut()) {
            if let (Err(e), Written::Landed) = (&committed, &w) {
                *w = Written::Failed(e.clone());
            }
            if matches!(w, Written::Landed | Written::Failed(_)) {
                (batch.sent)();
            }
        }
        result
    }
}

#[cfg(test)]
mod tests;
