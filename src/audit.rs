//! `castsync audit`: how old each value is, who can read it, and what former readers could
//! read — all from git history, offline and read-only.
//!
//! The phases: `walk` finds each manifest's versions in the commits (the commit where its
//! content changed, and when); `facts` decrypts each version once and keeps only keyed
//! fingerprints, the recipients it records and the groups it uses; `cache` keeps those
//! between runs so a second audit reads only new commits; `policy` says which rotation period
//! applies to each key; `analyze` (pure) turns it all into the report (`model`), which
//! `render` prints.
//!
//! It must never print, log or store a value, nor an unkeyed hash of one: only keys, commits,
//! dates, public recipients, and fingerprints keyed by a secret derived from the user's
//! identity (in the cache file, 0600, never in a report). It audits what was committed (HEAD),
//! and says so when the worktree's manifests differ from it.

mod analyze;
mod cache;
mod facts;
pub mod model;
mod policy;
pub mod render;
mod walk;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use git2::{Oid, Repository};
use thiserror::Error;

use crate::config::{Config, Names};
use crate::crypto::Identities;
use crate::source::{Checkout, CheckoutError, MANIFEST_FILE, Tree, slashed};
use analyze::{Seen, Trail};
use facts::{Facts, Fingerprints, Job};
pub use model::{Audit, SourceKind, Status};
use walk::{Chains, Since};

/// What one audit is asked.
pub struct Request<'a> {
    /// The secrets repository's root.
    pub root: PathBuf,
    /// `--config FILE`, else the committed `castsync.yaml`.
    pub config: Option<PathBuf>,
    pub identities: &'a Identities,
    /// Ages and due dates count from this Unix time.
    pub now: i64,
}

/// Why there is no report.
#[derive(Debug, Error)]
pub enum AuditError {
    /// The repository is not in git.
    #[error("{} is not in a git repository: the audit reads the manifests' history from git", root.display())]
    NotGit { root: PathBuf },
    /// Nothing is committed yet.
    #[error("the git repository at {} has no commits yet: the audit reads what was committed", root.display())]
    NoCommits { root: PathBuf },
    /// git could not read an object.
    #[error("git: {0}")]
    Git(String),
    /// The committed config or agent list cannot be read.
    #[error(transparent)]
    Checkout(#[from] CheckoutError),
    /// No identity is loaded.
    #[error("no identity to decrypt the manifests with")]
    NoIdentity,
}

impl crate::hint::Hinted for AuditError {
    fn hint(&self) -> Option<std::borrow::Cow<'_, str>> {
        match self {
            AuditError::NotGit { .. } => Some("run it in a clone of the secrets repository".into()),
            AuditError::NoCommits { .. } => Some("commit the manifests first (git add -A && git commit)".into()),
            AuditError::NoIdentity => Some(
                "pass -i FILE, or set CASTSYNC_AGE_KEY or CASTSYNC_AGE_KEY_FILE (castsync doctor lists where it looked)"
                    .into(),
            ),
            AuditError::Git(_) | AuditError::Checkout(_) => None,
        }
    }
}

impl From<git2::Error> for AuditError {
    fn from(e: git2::Error) -> Self {
        AuditError::Git(e.message().to_owned())
    }
}

/// Audits the commit at HEAD of the repository at `req.root`.
pub fn audit(req: &Request<'_>) -> Result<Audit, AuditError> {
    let git = Git::open(&req.root)?;
    let checkout = Checkout::revision(&req.root, "HEAD", req.config.as_deref())?;
    let config = &checkout.config;
    let sources = sources(checkout.tree(), config, &git.prefix)?;
    let ids = identities_digest(req.identities);
    let mut cache = cache::load(&req.root, |salt| check_of(req.identities, salt), &ids)
        .unwrap_or_else(|| cache::Cache {
            salt: cache::fresh_salt(),
            dirty: true,
            ..cache::Cache::default()
        });
    let fingerprints =
        Fingerprints::new(req.identities, &cache.salt).ok_or(AuditError::NoIdentity)?;
    let config_path = git.path(crate::config::FILE_NAME.as_ref());
    let mut tracked: Vec<String> = sources.iter().map(|s| s.path.clone()).collect();
    tracked.push(config_path.clone());
    let chains = walk_history(&git, &mut cache, &tracked, &config_path)?;
    learn_facts(
        &git.repo,
        &chains,
        &sources,
        &mut cache,
        req.identities,
        &fingerprints,
    )?;
    let mut notes = git.notes(&req.root, &sources, &chains);
    let configs = Configs::read(&git.repo, &chains, &config_path);
    let names = configs.names(config, chains.get(&config_path));
    let trails: Vec<Trail<'_>> = sources
        .iter()
        .map(|s| trail(s, &chains, &cache.facts, &configs, &git.shallow))
        .collect();
    let uses = uses_of(&sources, &cache.facts, &chains);
    let policies = policy::Policies::read(checkout.tree(), config, &uses, &mut notes);
    notes.extend(stale_readers(&trails, config));
    let head = git.head_ref()?;
    let policy = |kind: SourceKind, name: &str, key: &str| policies.of(kind, name, key);
    let ctx = analyze::Context {
        now: req.now,
        revision: head,
        names: &names,
        policy: &policy,
    };
    let report = analyze::analyze(&trails, &ctx, notes);
    drop(trails);
    if cache.dirty {
        cache.chains = chains;
        cache.head = Some(git.head);
        if let Err(e) = cache::save(&req.root, &cache, &fingerprints.check(), &ids) {
            tracing::warn!(
                "could not write {}: {e} (the next audit reads everything again)",
                cache::FILE
            );
        }
    }
    Ok(report)
}

/// `validate`'s warnings: one per key overdue for rotation, with the command that sets a
/// new value.
pub fn overdue_findings(audit: &Audit) -> Vec<crate::finding::Finding> {
    let mut out = Vec::new();
    for source in &audit.sources {
        for key in source.keys.iter().filter(|k| k.status == Status::Overdue) {
            let message = format!(
                "last changed {}{} ({} days ago, commit {}), over its rotation period of {} ({})",
                if key.exact { "" } else { "on or before " },
                key.last_changed.day(),
                key.age_days,
                key.last_changed.short(),
                key.rotate_after.as_deref().unwrap_or("?"),
                key.policy_from.as_deref().unwrap_or("?"),
            );
            let set = match source.kind {
                SourceKind::Agent => format!("castsync set {} {}", source.name, key.key),
                SourceKind::Group => format!("castsync set --shared {} {}", source.name, key.key),
            };
            let mut finding =
                crate::finding::Finding::warning(&source.file, message).for_key(&key.key);
            if source.kind == SourceKind::Agent {
                finding = finding.for_agent(&source.name);
            }
            finding.hint = Some(format!(
                "rotate the value where it was issued, then set the new one with `{set}` and commit"
            ));
            out.push(finding);
        }
    }
    out
}

/// One manifest to audit: the file every environment shares, or one environment's overlay.
struct Source {
    kind: SourceKind,
    name: String,
    /// The overlay's environment; `None` for the file every environment shares.
    environment: Option<String>,
    /// Relative to the git repository's top, with `/`.
    path: String,
    /// Relative to the secrets repository, as reports show it.
    file: String,
}

fn sources(tree: &dyn Tree, config: &Config, prefix: &Path) -> Result<Vec<Source>, AuditError> {
    let mut out = Vec::new();
    let agents = crate::source::agent_slugs(tree, config).map_err(CheckoutError::from)?;
    let groups = crate::source::group_names(tree, config).map_err(CheckoutError::from)?;
    let kinds = agents
        .into_iter()
        .map(|a| (SourceKind::Agent, config.agents_dir.join(&a), a))
        .chain(groups.into_iter().map(|g| {
            let dir = crate::source::group_manifest_path(config, &g)
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_default();
            (SourceKind::Group, dir, g)
        }));
    // Each environment's overlay beside the shared file, when the audited commit has one.
    let overlays: Vec<(String, String)> = config
        .all_environments()
        .into_iter()
        .filter_map(|env| Some((env.name()?.to_owned(), env.overlay_file()?)))
        .collect();
    for (kind, dir, name) in kinds {
        if crate::names::validate_slug(&name).is_err() {
            continue;
        }
        let mut push = |environment: Option<String>, file: PathBuf| {
            out.push(Source {
                kind,
                path: slashed(&prefix.join(&file)),
                file: slashed(&file),
                name: name.clone(),
                environment,
            });
        };
        push(None, dir.join(MANIFEST_FILE));
        for (env, overlay) in &overlays {
            let file = dir.join(overlay);
            if tree.blob_id(&file).map_err(CheckoutError::from)?.is_some() {
                push(Some(env.clone()), file);
            }
        }
    }
    Ok(out)
}

/// The git side: the repository, its head, where the secrets repository sits in it, and the
/// commits a shallow clone ends at.
struct Git {
    repo: Repository,
    head: Oid,
    prefix: PathBuf,
    shallow: BTreeSet<Oid>,
}

impl Git {
    fn open(root: &Path) -> Result<Git, AuditError> {
        let repo = Repository::discover(root).map_err(|_| AuditError::NotGit {
            root: root.to_owned(),
        })?;
        let head = match repo.head().and_then(|h| h.peel_to_commit()) {
            Ok(commit) => commit.id(),
            Err(_) => {
                return Err(AuditError::NoCommits {
                    root: root.to_owned(),
                });
            }
        };
        let prefix = crate::source::dir_in_repository(&repo, root);
        // A shallow clone lists the commits it ends at in `.git/shallow`.
        let shallow = std::fs::read_to_string(repo.path().join("shallow"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| Oid::from_str(l.trim()).ok())
            .collect();
        Ok(Git {
            repo,
            head,
            prefix,
            shallow,
        })
    }

    fn path(&self, rel: &Path) -> String {
        slashed(&self.prefix.join(rel))
    }

    fn head_ref(&self) -> Result<model::CommitRef, AuditError> {
        let commit = self.repo.find_commit(self.head)?;
        Ok(model::CommitRef::new(
            self.head.to_string(),
            commit.time().seconds(),
        ))
    }

    /// A shallow clone, and manifests of the worktree that differ from HEAD.
    fn notes(&self, root: &Path, sources: &[Source], chains: &Chains) -> Vec<String> {
        let mut notes = Vec::new();
        if !self.shallow.is_empty() {
            notes.push(
                "this is a shallow clone: values older than its oldest commit are dated at that commit (fetch the whole history, e.g. fetch-depth: 0 in actions/checkout)"
                    .to_owned(),
            );
        }
        let worktree = crate::source::Worktree::new(root);
        let differ = sources
            .iter()
            .filter(|s| {
                let committed = chains
                    .get(&s.path)
                    .and_then(|c| c.first())
                    .map(|v| v.blob.to_string());
                worktree.blob_id(Path::new(&s.file)).ok().flatten() != committed
            })
            .count();
        if differ > 0 && self.repo.workdir().is_some() {
            notes.push(format!(
                "{differ} manifest(s) in the working tree differ from HEAD: the audit reads what is committed"
            ));
        }
        notes
    }
}

/// Each tracked file's history: joined to the cached one when possible, else walked whole.
fn walk_history(
    git: &Git,
    cache: &mut cache::Cache,
    tracked: &[String],
    config_path: &str,
) -> Result<Chains, AuditError> {
    if let Some(old_head) = cache.head {
        let known = git.repo.find_commit(old_head).is_ok()
            && (old_head == git.head || git.repo.graph_descendant_of(git.head, old_head)?);
        if known {
            let since = Since {
                head: old_head,
                chains: &cache.chains,
            };
            if let Some(walked) =
                walk::walk(&git.repo, git.head, tracked, config_path, Some(since))?
            {
                tracing::debug!(commits = walked.commits, "audit: read the new commits");
                if old_head != git.head || walked.chains.len() != cache.chains.len() {
                    cache.dirty = true;
                }
                return Ok(walked.chains);
            }
        }
    }
    let walked = walk::walk(&git.repo, git.head, tracked, config_path, None)?
        .expect("a walk without a cached history always completes");
    tracing::debug!(commits = walked.commits, "audit: read the whole history");
    cache.dirty = true;
    Ok(walked.chains)
}

/// Decrypts every version no earlier run has read.
fn learn_facts(
    repo: &Repository,
    chains: &Chains,
    sources: &[Source],
    cache: &mut cache::Cache,
    identities: &Identities,
    fingerprints: &Fingerprints,
) -> Result<(), AuditError> {
    let mut jobs = Vec::new();
    let mut queued = BTreeSet::new();
    for source in sources {
        for version in chains.get(&source.path).into_iter().flatten() {
            if cache.facts.contains_key(&version.blob) || !queued.insert(version.blob) {
                continue;
            }
            let blob = repo.find_blob(version.blob)?;
            jobs.push(Job {
                blob: version.blob,
                ciphertext: blob.content().to_vec(),
                kind: source.kind,
                name: source.name.clone(),
                path: source.file.clone(),
            });
        }
    }
    if jobs.is_empty() {
        return Ok(());
    }
    tracing::debug!(blobs = jobs.len(), "audit: decrypting versions not cached");
    cache.dirty = true;
    cache
        .facts
        .extend(facts::gather(jobs, identities, fingerprints));
    Ok(())
}

/// Every committed version of `castsync.yaml` the audit needs, parsed.
struct Configs {
    by_blob: HashMap<Oid, Config>,
}

impl Configs {
    fn read(repo: &Repository, chains: &Chains, config_path: &str) -> Configs {
        let mut blobs: BTreeSet<Oid> = chains.values().flatten().filter_map(|v| v.config).collect();
        blobs.extend(
            chains
                .get(config_path)
                .into_iter()
                .flatten()
                .map(|v| v.blob),
        );
        let by_blob = blobs
            .into_iter()
            .filter_map(|blob| {
                let bytes = repo.find_blob(blob).ok()?;
                let text = std::str::from_utf8(bytes.content()).ok()?;
                let config = Config::from_yaml(text, Path::new(crate::config::FILE_NAME)).ok()?;
                Some((blob, config))
            })
            .collect();
        Configs { by_blob }
    }

    /// The names of the audited config, then those of its committed versions, newest first.
    fn names(&self, current: &Config, history: Option<&Vec<walk::Version>>) -> Names {
        let mut names = current.names();
        for version in history.into_iter().flatten() {
            if let Some(config) = self.by_blob.get(&version.blob) {
                names.merge(&config.names());
            }
        }
        names
    }

    /// Who a version could be read by when the file does not record it: the recipients the
    /// config of its commit assigned.
    fn readers(&self, version: &walk::Version, source: &Source) -> Option<Vec<String>> {
        let config = self.by_blob.get(&version.config?)?;
        let keys = assigned(
            config,
            source.kind,
            &source.name,
            source.environment.as_deref(),
        );
        Some(
            keys.keys()
                .map(crate::config::canonical_recipient)
                .collect(),
        )
    }
}

fn trail<'a>(
    source: &Source,
    chains: &'a Chains,
    facts: &'a HashMap<Oid, Facts>,
    configs: &Configs,
    shallow: &BTreeSet<Oid>,
) -> Trail<'a> {
    let versions: &[walk::Version] = chains.get(&source.path).map_or(&[], Vec::as_slice);
    let seen = versions
        .iter()
        .map(|v| {
            let commit = model::CommitRef::new(v.commit.to_string(), v.time);
            match facts.get(&v.blob) {
                Some(Facts::Readable(r)) => Seen {
                    commit,
                    readers: match &r.recipients {
                        Some(keys) => Some((
                            keys.iter()
                                .map(|k| crate::config::canonical_recipient(k))
                                .collect(),
                            true,
                        )),
                        None => configs.readers(v, source).map(|k| (k, false)),
                    },
                    content: Ok(&r.keys),
                },
                Some(Facts::Unreadable(why)) => Seen {
                    commit,
                    readers: None,
                    content: Err(why.as_str()),
                },
                None => Seen {
                    commit,
                    readers: None,
                    content: Err("not read"),
                },
            }
        })
        .collect();
    Trail {
        kind: source.kind,
        name: source.name.clone(),
        environment: source.environment.clone(),
        file: source.file.clone(),
        versions: seen,
        complete: versions.last().is_none_or(|v| !shallow.contains(&v.commit)),
    }
}

/// Each agent's shared groups, from its audited version.
fn uses_of(
    sources: &[Source],
    facts: &HashMap<Oid, Facts>,
    chains: &Chains,
) -> BTreeMap<String, Vec<String>> {
    sources
        .iter()
        .filter(|s| s.kind == SourceKind::Agent && s.environment.is_none())
        .filter_map(|s| {
            let current = chains.get(&s.path)?.first()?;
            match facts.get(&current.blob)? {
                Facts::Readable(r) => Some((s.name.clone(), r.uses.clone())),
                Facts::Unreadable(_) => None,
            }
        })
        .collect()
}

/// A note when manifests are still encrypted to recipients the config no longer assigns.
fn stale_readers(trails: &[Trail<'_>], config: &Config) -> Option<String> {
    let stale = trails
        .iter()
        .filter(|t| {
            let Some((readers, true)) = t.versions.first().and_then(|v| v.readers.as_ref()) else {
                return false;
            };
            let assigned: BTreeSet<String> =
                assigned(config, t.kind, &t.name, t.environment.as_deref())
                    .keys()
                    .map(crate::config::canonical_recipient)
                    .collect();
            readers.iter().cloned().collect::<BTreeSet<_>>() != assigned
        })
        .count();
    (stale > 0).then(|| {
        format!(
            "{stale} manifest(s) are encrypted to other recipients than castsync.yaml assigns: the readers listed are who can read them now; `castsync rekey` re-encrypts them"
        )
    })
}

/// The recipients `config` assigns to a manifest: an agent's or a group's, the file every
/// environment shares or one environment's overlay.
fn assigned<'c>(
    config: &'c Config,
    kind: SourceKind,
    name: &str,
    environment: Option<&str>,
) -> &'c crate::config::Recipients {
    match (kind, environment) {
        (SourceKind::Agent, None) => config.recipients_for(name),
        (SourceKind::Group, None) => config.recipients_for_group(name),
        (SourceKind::Agent, Some(env)) => {
            config.overlay_recipients_for(&crate::environment::Environment::named(env), name)
        }
        (SourceKind::Group, Some(env)) => {
            config.overlay_recipients_for_group(&crate::environment::Environment::named(env), name)
        }
    }
}

fn check_of(identities: &Identities, salt: &[u8]) -> Option<String> {
    Fingerprints::new(identities, salt).map(|f| f.check())
}

/// Which identities are loaded (their public keys, hashed): a cache's unreadable blobs are
/// tried again under other ones.
fn identities_digest(identities: &Identities) -> String {
    use sha2::Digest;
    let mut keys = identities.recipients();
    keys.sort();
    hex::encode(sha2::Sha256::digest(keys.join("\n").as_bytes()))
}
