//! `--repo` mode: file events in the working tree fire [`Reason::FileChange`].
//!
//! Events are debounced (~200 ms, `notify-debouncer-full`), then filtered: anything under
//! `.git/` (git's own bookkeeping) or `.castsync/` (castsync's state file, which every
//! reconcile writes) is ignored, and so are read-only accesses, so the daemon never wakes
//! itself up.

use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use notify::{EventKind, RecommendedWatcher, RecursiveMode};
use notify_debouncer_full::{DebounceEventResult, Debouncer, RecommendedCache, new_debouncer};

use super::triggers::{Reason, Triggers};

/// How long file events are gathered before one trigger fires.
pub const DEBOUNCE: Duration = Duration::from_millis(200);

/// Directories under the root whose events never trigger anything.
const IGNORED: [&str; 2] = [".git", ".castsync"];

/// Keeps the watch alive; dropping it stops watching.
pub struct FileWatcher {
    _debouncer: Debouncer<RecommendedWatcher, RecommendedCache>,
}

impl std::fmt::Debug for FileWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FileWatcher")
    }
}

/// Whether an event at `path` (absolute) can change what the daemon reconciles.
pub fn relevant_path(roots: &[PathBuf], path: &Path) -> bool {
    let Some(rel) = roots.iter().find_map(|r| path.strip_prefix(r).ok()) else {
        // Outside the tree (should not happen for a recursive watch): be safe, look again.
        return true;
    };
    match rel.components().next() {
        Some(Component::Normal(first)) => !IGNORED.iter().any(|i| first == *i),
        _ => true,
    }
}

fn relevant_kind(kind: &EventKind) -> bool {
    use notify::event::{AccessKind, AccessMode};
    match kind {
        // A file written and closed is a change; opening or reading one is not.
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    }
}

/// Watches `root` recursively; relevant changes fire [`Reason::FileChange`] on `triggers`.
pub fn watch(root: &Path, triggers: Triggers) -> Result<FileWatcher, notify::Error> {
    let mut roots = vec![std::path::absolute(root).unwrap_or_else(|_| root.to_owned())];
    if let Ok(canonical) = root.canonicalize()
        && !roots.contains(&canonical)
    {
        roots.push(canonical);
    }
    let handler_roots = roots.clone();
    let mut debouncer = new_debouncer(DEBOUNCE, None, move |result: DebounceEventResult| {
        match result {
            Ok(events) => {
                let changed = events.iter().find(|e| {
                    relevant_kind(&e.kind)
                        && e.paths.iter().any(|p| relevant_path(&handler_roots, p))
                });
                if let Some(event) = changed {
                    tracing::debug!(paths = ?event.paths, "file change");
                    triggers.fire(Reason::FileChange);
                }
            }
            Err(errors) => {
                for error in errors {
                    tracing::warn!(%error, "file watch error");
                }
                // A lost event may hide a change: look again.
                triggers.fire(Reason::FileChange);
            }
        }
    })?;
    debouncer.watch(&roots[0], RecursiveMode::Recursive)?;
    Ok(FileWatcher {
        _debouncer: debouncer,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_under_git_and_castsync_are_ignored() {
        let roots = vec![PathBuf::from("/srv/secrets")];
        let yes = |p: &str| relevant_path(&roots, Path::new(p));
        assert!(yes("/srv/secrets/agents/a/secrets.yaml.age"));
        assert!(yes("/srv/secrets/castsync.yaml"));
        assert!(yes("/srv/secrets/.gitignore"));
        assert!(yes("/srv/secrets/agents/.git-notes"));
        assert!(!yes("/srv/secrets/.git/index.lock"));
        assert!(!yes("/srv/secrets/.git"));
        assert!(!yes("/srv/secrets/.castsync/state.json.tmp"));
    }

    #[test]
    fn read_only_accesses_are_ignored() {
        use notify::event::{AccessKind, AccessMode, CreateKind, ModifyKind};
        assert!(!relevant_kind(&EventKind::Access(AccessKind::Close(
            AccessMode::Read
        ))));
        assert!(!relevant_kind(&EventKind::Access(AccessKind::Open(
            AccessMode::Any
        ))));
        assert!(relevant_kind(&EventKind::Access(AccessKind::Close(
            AccessMode::Write
        ))));
        assert!(relevant_kind(&EventKind::Create(CreateKind::File)));
        assert!(relevant_kind(&EventKind::Modify(ModifyKind::Any)));
    }
}
