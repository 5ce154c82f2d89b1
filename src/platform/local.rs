//! `local://PATH`: the embedded platform, a JSON file with the same semantics as the API.
//!
//! It is for demos and local development: the agents the repository declares exist
//! automatically (the real platform creates agents elsewhere), other agents are "not found"
//! as on the API. Every call takes an exclusive lock on `PATH.lock`, reads the file, and (for
//! writes) replaces it atomically, so several castsync processes can share one store. The
//! file is mode 0600: it holds values in clear, like the platform it stands in for.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;

use crate::names::{validate_key, validate_slug};
use crate::platform::store::{
    MAX_VALUE_LEN, NoSuchAgent, Store, StoreError, StoreLock, ensure_parent,
};
use crate::platform::{LOCAL_SCHEME, Listing, OpenError, Platform, PlatformError};
use crate::secret::SecretValue;

/// The embedded file-backed platform.
#[derive(Debug)]
pub struct LocalPlatform {
    id: String,
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    path: PathBuf,
    declared: BTreeSet<String>,
}

impl LocalPlatform {
    /// Opens (without creating) the store at `path`; an existing file must parse.
    pub fn open(path: &Path, declared_agents: Vec<String>) -> Result<LocalPlatform, OpenError> {
        if path.as_os_str().is_empty() {
            return Err(OpenError::InvalidUrl {
                url: LOCAL_SCHEME.to_owned(),
                reason: "no path after local://".to_owned(),
            });
        }
        if path.exists() {
            Store::load(path)?;
        }
        Ok(LocalPlatform {
            id: format!("{LOCAL_SCHEME}{}", path.display()),
            inner: Arc::new(Inner {
                path: path.to_owned(),
                declared: declared_agents.into_iter().collect(),
            }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Runs `op` on the store under the lock, off the async threads; saves when `op` says it
    /// changed something. Reads (`may_write` false) never create the store's directory.
    async fn with_store<T, F>(
        &self,
        agent: &str,
        may_write: bool,
        op: F,
    ) -> Result<T, PlatformError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Store) -> Result<(T, bool), NoSuchAgent> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        let agent = agent.to_owned();
        let task = tokio::task::spawn_blocking(move || -> Result<T, PlatformError> {
            let path = &inner.path;
            if may_write {
                ensure_parent(path).map_err(local_error)?;
            }
            let dir_exists = path
                .parent()
                .is_none_or(|d| d.as_os_str().is_empty() || d.is_dir());
            // No directory, no store and nothing to lock: a read sees an empty store.
            let _lock = if dir_exists {
                Some(StoreLock::acquire(path).map_err(local_error)?)
            } else {
                None
            };
            let mut store = Store::load(path).map_err(local_error)?;
            if inner.declared.contains(&agent) {
                store.ensure_agent(&agent);
            }
            let (result, changed) =
                op(&mut store).map_err(|NoSuchAgent| PlatformError::AgentNotFound { agent })?;
            if changed {
                store.save(path).map_err(local_error)?;
            }
            Ok(result)
        });
        task.await.map_err(|e| PlatformError::Local {
            detail: format!("store task failed: {e}"),
        })?
    }
}

fn local_error(err: StoreError) -> PlatformError {
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

#[async_trait]
impl Platform for LocalPlatform {
    fn id(&self) -> &str {
        &self.id
    }

    async fn list(&self, agent: &str) -> Result<Listing, PlatformError> {
        check(agent, None)?;
        let name = agent.to_owned();
        let keys = self
            .with_store(agent, false, move |store| Ok((store.list(&name)?, false)))
            .await?;
        Ok(Listing::whole(keys))
    }

    async fn set(&self, agent: &str, key: &str, value: &SecretValue) -> Result<(), PlatformError> {
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
        let (name, key, value) = (agent.to_owned(), key.to_owned(), value.clone());
        self.with_store(agent, true, move |store| {
            store.set(&name, &key, value).map(|_| ((), true))
        })
        .await
    }

    async fn delete(&self, agent: &str, key: &str) -> Result<(), PlatformError> {
        check(agent, Some(key))?;
        let (name, key) = (agent.to_owned(), key.to_owned());
        self.with_store(agent, true, move |store| {
            store.delete(&name, &key).map(|existed| ((), existed))
        })
        .await
    }

    /// The embedded store runs no agents, so there is nothing to redeploy: the call only
    /// checks that the agent exists, as the API would.
    async fn redeploy(&self, agent: &str) -> Result<(), PlatformError> {
        check(agent, None)?;
        let name = agent.to_owned();
        self.with_store(agent, false, move |store| {
            store.list(&name).map(|_| ((), false))
        })
        .await
    }
}

#[cfg(test)]
mod tests;
