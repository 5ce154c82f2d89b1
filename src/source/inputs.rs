//! What one agent's reconcile depends on, as digests: its manifest file, its `.env.example`,
//! and the settings (from `castsync.yaml`, after the command line's overrides) that change
//! what a reconcile does with it. `reconcile --changed` and the daemon compare these with
//! what the state recorded (`state::AppliedFrom`), or with another revision's (`--since`),
//! to refresh only the agents whose inputs changed.
//!
//! Files are identified as git does, by their blob id (`git hash-object`): for a commit that
//! comes from the tree without reading the file, so an unchanged agent costs two tree
//! lookups; a working tree's files are read and hashed the same way, so the two agree. The
//! manifest is identified as stored, the age ciphertext: that needs no identity and no
//! decryption, and identifies nothing secret (the ciphertext is in git already). Git's ids
//! are SHA-1, as git itself names the content: someone able to craft a colliding manifest
//! can commit whatever they like anyway, and the full reconcile lists every agent regardless.
//! Re-encrypting an unchanged manifest (`rekey`) changes its id, which costs that agent one
//! refresh: a list and no write.
//!
//! An agent that takes keys from shared groups (`uses:`) depends on those groups' files as
//! well. Which groups it uses is written inside its encrypted manifest, so it is known only
//! after a load: the state records, with each agent, the digest of every group file it used
//! ([`with_groups`]), and an agent is refreshed when one of those files changed.
//! A new `uses:` entry changes the agent's own manifest, so it is seen too. Against another
//! revision (`--since`), which records nothing, any changed group file refreshes every agent.
//!
//! It never decrypts, and never digests a value.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{MANIFEST_FILE, SCHEMA_FILE, SourceError, Tree, group_manifest_path, group_names};
use crate::config::Config;
use crate::environment::Environment;
use crate::state::AppliedFrom;

mod remembered;

use remembered::Found;
pub use remembered::Remembered;

/// The schema digest of an agent without `.env.example`.
pub const ABSENT: &str = "absent";

/// What the command line changes about the config for one run (the same flags for every
/// agent, and for both sides of a `--since` comparison).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Overrides {
    /// `--no-prune`.
    pub no_prune: bool,
    /// `--redeploy` (true) / `--no-redeploy` (false).
    pub redeploy: Option<bool>,
}

/// The settings that bear on one agent: all but `redeploy` are the same for every agent
/// (`SettingsDigests` relies on it). Recipients do not (they decide who can decrypt, not
/// what is applied); the platform URL does not either (the state is kept per platform).
#[derive(Debug, Serialize)]
struct Settings<'a> {
    /// Bumped when the meaning of a field changes, so every agent is refreshed once.
    format: u32,
    prune: bool,
    strict: bool,
    unmanaged_keys: BTreeSet<&'a str>,
    max_delete_fraction: f64,
    self_heal: bool,
    redeploy: bool,
}

/// The digest of the settings that bear on `agent`.
pub fn settings_digest(config: &Config, overrides: Overrides, agent: &str) -> String {
    let settings = Settings {
        format: 1,
        prune: config.prune && !overrides.no_prune,
        strict: config.strict,
        unmanaged_keys: config.unmanaged_keys.iter().map(String::as_str).collect(),
        max_delete_fraction: config.max_delete_fraction,
        self_heal: config.self_heal,
        redeploy: config.redeploys(agent, overrides.redeploy),
    };
    // Field order is fixed by the struct and the set is sorted: the same settings always
    // give the same bytes.
    let bytes = serde_json::to_vec(&settings).expect("plain settings serialize");
    sha256(&bytes)
}

/// One agent's inputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentInputs {
    /// The manifest file's digest; `None` when it cannot be read (missing, or an I/O error):
    /// such an agent is always refreshed, and its load says what is wrong.
    pub manifest: Option<String>,
    /// The `.env.example`'s digest, [`ABSENT`] without one; `None` when it cannot be read.
    pub schema: Option<String>,
    pub settings: String,
    /// The digest of each shared group file the agent uses, once its manifest was loaded
    /// ([`with_groups`]); `None` before that, or when such a file cannot be read.
    pub groups: Option<BTreeMap<String, String>>,
}

impl AgentInputs {
    /// The state record for these inputs at `revision`, or `None` when a digest is
    /// unknown (an agent whose files cannot be read, or whose groups are not known, is
    /// never recorded as applied).
    pub fn record(&self, revision: &str, at: &str) -> Option<AppliedFrom> {
        Some(AppliedFrom {
            manifest: self.manifest.clone()?,
            schema: self.schema.clone()?,
            settings: self.settings.clone(),
            groups: self.groups.clone()?,
            revision: revision.to_owned(),
            at: at.to_owned(),
        })
    }

    /// Sets the groups this agent uses (`uses`), with their files' digests from `groups`.
    fn set_groups(&mut self, uses: &[String], groups: &GroupDigests) {
        self.groups = uses
            .iter()
            .map(|g| Some((g.clone(), groups.get(g)?.clone()?)))
            .collect();
    }
}

/// Each shared group's manifest digest (`None` when it cannot be read), or why the groups
/// cannot be listed.
pub type GroupDigests = BTreeMap<String, Option<String>>;

/// The digests of every shared group file of `tree`, as environment `env` sees it (with
/// its overlay).
fn of_groups(tree: &dyn Tree, config: &Config, env: &Environment) -> Result<GroupDigests, String> {
    let names = group_names(tree, config).map_err(|e| e.to_string())?;
    Ok(names
        .into_iter()
        .map(|g| {
            let path = group_manifest_path(config, &g);
            let digest = layered_digest(tree, &path, env).flatten();
            (g, digest)
        })
        .collect())
}

/// The digest of a manifest as environment `env` sees it: the file's own for the implicit
/// environment, else one digest of the file and its overlay (absent or not), so that a
/// change to either is a change.
fn layered_digest(tree: &dyn Tree, manifest: &Path, env: &Environment) -> Option<Option<String>> {
    let base = file_digest(tree, manifest);
    let Some(overlay) = env.overlay_file() else {
        return base;
    };
    let overlay = file_digest(tree, &manifest.with_file_name(overlay))?;
    let base = base?;
    Some(base.map(|base| {
        let overlay = overlay.unwrap_or_else(|| ABSENT.to_owned());
        sha256(format!("{base}\n{overlay}").as_bytes())
    }))
}

/// Fills in, for each agent whose manifest loaded (`used`: its slug and the shared groups it
/// uses, see `load::Loaded::groups_used`), the groups' digests: from then on its inputs can
/// be recorded. `groups` is [`of_groups`] of the same tree.
fn with_groups<'a>(
    current: &mut BTreeMap<String, AgentInputs>,
    used: impl IntoIterator<Item = (&'a str, &'a [String])>,
    groups: &Result<GroupDigests, String>,
) {
    let Ok(groups) = groups else {
        return;
    };
    for (slug, uses) in used {
        if let Some(inputs) = current.get_mut(slug) {
            inputs.set_groups(uses, groups);
        }
    }
}

/// What a run's agents are made from: each agent's own inputs, and the digests of the shared
/// group files (filled into each agent's inputs once its manifest says which it uses).
#[derive(Debug, Clone)]
pub struct RunInputs {
    pub agents: BTreeMap<String, AgentInputs>,
    pub groups: Result<GroupDigests, String>,
}

impl RunInputs {
    /// The inputs of `agents` only (and every shared group's digest): a batch's share of the
    /// run's inputs.
    pub fn only(&self, agents: &[String]) -> RunInputs {
        RunInputs {
            agents: agents
                .iter()
                .filter_map(|a| Some((a.clone(), self.agents.get(a)?.clone())))
                .collect(),
            groups: self.groups.clone(),
        }
    }

    /// The agents' inputs with the digests of the groups each uses (`used`, see
    /// `load::Loaded::groups_used`): what an agent that converges is recorded as converged
    /// from.
    pub fn with_groups_used<'a>(
        &self,
        used: impl IntoIterator<Item = (&'a str, &'a [String])>,
    ) -> BTreeMap<String, AgentInputs> {
        let mut agents = self.agents.clone();
        with_groups(&mut agents, used, &self.groups);
        agents
    }
}

/// The inputs of the agents in `slugs` and the shared groups' digests, read from `tree` as
/// environment `env` sees it and judged by `config`. With `remembered`, the agent
/// directories that have not changed since the previous run are not read again, and
/// `remembered` is left holding this run's (see [`Remembered`]).
pub fn of_run<'a>(
    tree: &dyn Tree,
    config: &Config,
    env: &Environment,
    overrides: Overrides,
    slugs: impl IntoIterator<Item = &'a String>,
    remembered: Option<&mut Remembered>,
) -> RunInputs {
    RunInputs {
        agents: of_agents(tree, config, env, overrides, slugs, remembered),
        groups: of_groups(tree, config, env),
    }
}

/// The inputs of each agent in `slugs`, read from `tree` and judged by `config` (see
/// [`of_run`] for `remembered`).
fn of_agents<'a>(
    tree: &dyn Tree,
    config: &Config,
    env: &Environment,
    overrides: Overrides,
    slugs: impl IntoIterator<Item = &'a String>,
    remembered: Option<&mut Remembered>,
) -> BTreeMap<String, AgentInputs> {
    let mut settings = SettingsDigests::new(config, overrides);
    let mut inputs = |slug: &str, (manifest, schema)| AgentInputs {
        manifest,
        schema,
        settings: settings.of(slug),
        groups: None,
    };
    let Some(memory) = remembered else {
        return slugs
            .into_iter()
            .map(|slug| {
                let files = own_files(tree, &config.agents_dir.join(slug), env);
                (slug.clone(), inputs(slug, files))
            })
            .collect();
    };
    memory.for_overlay(env.overlay_file());
    let ids = tree.dir_ids(&config.agents_dir);
    // The agents to remember after this run, with their directory's id.
    let mut keep: Vec<(&str, &[u8])> = Vec::new();
    let agents: BTreeMap<String, AgentInputs> = slugs
        .into_iter()
        .map(|slug| {
            let id = ids.get(slug.as_bytes()).map(Vec::as_slice);
            let (files, remember) = match memory.get(slug).filter(|k| Some(k.dir) == id) {
                Some(k) => (
                    (Some(k.manifest.to_owned()), Some(k.schema.to_owned())),
                    true,
                ),
                None => {
                    // A directory read again is remembered when it has an id, both digests
                    // are known and it has no link in it.
                    let dir = config.agents_dir.join(slug);
                    let files = own_files(tree, &dir, env);
                    let complete = matches!(files, (Some(_), Some(_)));
                    (files, id.is_some() && complete && !tree.links_in(&dir))
                }
            };
            if let (Some(id), true) = (id, remember) {
                keep.push((slug, id));
            }
            (slug.clone(), inputs(slug, files))
        })
        .collect();
    let found = keep.into_iter().filter_map(|(slug, dir)| {
        let inputs = agents.get(slug)?;
        let (manifest, schema) = (inputs.manifest.as_deref()?, inputs.schema.as_deref()?);
        Some((
            slug,
            Found {
                dir,
                manifest,
                schema,
            },
        ))
    });
    memory.keep(found.collect());
    agents
}

/// The digests of an agent directory's manifest (with `env`'s overlay) and `.env.example`.
fn own_files(tree: &dyn Tree, dir: &Path, env: &Environment) -> (Option<String>, Option<String>) {
    let manifest = layered_digest(tree, &dir.join(MANIFEST_FILE), env);
    let schema = file_digest(tree, &dir.join(SCHEMA_FILE));
    (
        manifest.flatten(),
        schema.map(|d| d.unwrap_or_else(|| ABSENT.to_owned())),
    )
}

/// [`settings_digest`] for many agents: the settings differ between agents only by whether
/// they are redeployed, so there are at most two digests to compute.
struct SettingsDigests<'a> {
    config: &'a Config,
    overrides: Overrides,
    /// By `redeploy`: false, true.
    known: [Option<String>; 2],
}

impl<'a> SettingsDigests<'a> {
    fn new(config: &'a Config, overrides: Overrides) -> Self {
        SettingsDigests {
            config,
            overrides,
            known: [None, None],
        }
    }

    fn of(&mut self, agent: &str) -> String {
        let redeploy = self.config.redeploys(agent, self.overrides.redeploy);
        let (config, overrides) = (self.config, self.overrides);
        self.known[usize::from(redeploy)]
            .get_or_insert_with(|| settings_digest(config, overrides, agent))
            .clone()
    }
}

/// The inputs of one agent in environment `env` (its manifest's digest covers the
/// environment's overlay), as [`of_run`] finds them.
#[cfg(test)]
fn of_agent(
    tree: &dyn Tree,
    config: &Config,
    env: &Environment,
    overrides: Overrides,
    slug: &str,
) -> AgentInputs {
    let (manifest, schema) = own_files(tree, &config.agents_dir.join(slug), env);
    AgentInputs {
        manifest,
        schema,
        settings: settings_digest(config, overrides, slug),
        groups: None,
    }
}

/// The files an agent's own inputs are read from in environment `env`, relative to the
/// repository root: its manifest, its `.env.example`, and the environment's overlay.
pub fn agent_files(config: &Config, env: &Environment, slug: &str) -> Vec<PathBuf> {
    let dir = config.agents_dir.join(slug);
    let mut files = vec![dir.join(MANIFEST_FILE), dir.join(SCHEMA_FILE)];
    files.extend(env.overlay_file().map(|f| dir.join(f)));
    files
}

/// The manifest file of every shared group of `tree` (and `env`'s overlay of it), relative
/// to the repository root.
pub fn group_files(
    tree: &dyn Tree,
    config: &Config,
    env: &Environment,
) -> Result<Vec<PathBuf>, SourceError> {
    let mut files = Vec::new();
    for group in group_names(tree, config)? {
        let path = group_manifest_path(config, &group);
        if let Some(overlay) = env.overlay_file() {
            files.push(path.with_file_name(overlay));
        }
        files.push(path);
    }
    Ok(files)
}

/// `Some(Some(digest))` for a file, `Some(None)` when it is absent, `None` when it cannot be
/// read.
fn file_digest(tree: &dyn Tree, path: &Path) -> Option<Option<String>> {
    match tree.blob_id(path) {
        Ok(Some(id)) => Some(Some(format!("{BLOB}{id}"))),
        Ok(None) => Some(None),
        Err(_) => None,
    }
}

/// The prefix of a file's digest: git's blob id follows.
const BLOB: &str = "git-blob:";

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn lower_hex(s: &str, lengths: &[usize]) -> bool {
    lengths.contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Whether `digest` has a form this module writes (anything else in a state file was
/// written by something else, and means "unknown").
pub fn well_formed(digest: &str) -> bool {
    digest == ABSENT
        || digest
            .strip_prefix("sha256:")
            .is_some_and(|h| lower_hex(h, &[64]))
        // SHA-1 ids, or SHA-256 ones in a repository that uses them.
        || digest.strip_prefix(BLOB).is_some_and(|h| lower_hex(h, &[40, 64]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::Worktree;

    fn config(yaml: &str) -> Config {
        Config::from_yaml(yaml, Path::new("castsync.yaml")).unwrap()
    }

    #[test]
    fn each_file_and_each_bearing_setting_changes_the_inputs_and_nothing_else_does() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("agents/a")).unwrap();
        std::fs::write(root.join("agents/a/secrets.yaml.age"), "ciphertext-1").unwrap();
        let tree = Worktree::new(root);
        let base = config("prune: true\n");
        let o = Overrides::default();
        let first = of_agent(&tree, &base, &Environment::IMPLICIT, o, "a");
        assert_eq!(first.schema.as_deref(), Some(ABSENT));
        assert!(first.manifest.as_deref().is_some_and(well_formed));

        std::fs::write(root.join("agents/a/notes.md"), "not an input").unwrap();
        assert_eq!(
            of_agent(&tree, &base, &Environment::IMPLICIT, o, "a"),
            first
        );
        // Recipients decide who can decrypt, not what is applied.
        let recipients = config(
            "recipients:\n  - age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs3290gq\n",
        );
        assert_eq!(
            of_agent(&tree, &recipients, &Environment::IMPLICIT, o, "a"),
            first
        );

        for changed in [
            "prune: false\n",
            "strict: false\n",
            "unmanaged_keys: [OTHER]\n",
            "max_delete_fraction: 0.9\n",
            "self_heal: false\n",
            "redeploy: on-change\n",
        ] {
            assert_ne!(
                of_agent(&tree, &config(changed), &Environment::IMPLICIT, o, "a").settings,
                first.settings,
                "{changed}"
            );
        }
        let no_prune = Overrides {
            no_prune: true,
            ..o
        };
        assert_ne!(
            of_agent(&tree, &base, &Environment::IMPLICIT, no_prune, "a").settings,
            first.settings
        );

        std::fs::write(root.join("agents/a/.env.example"), "K=v\n").unwrap();
        let with_schema = of_agent(&tree, &base, &Environment::IMPLICIT, o, "a");
        assert_ne!(with_schema.schema, first.schema);
        std::fs::write(root.join("agents/a/secrets.yaml.age"), "ciphertext-2").unwrap();
        assert_ne!(
            of_agent(&tree, &base, &Environment::IMPLICIT, o, "a").manifest,
            with_schema.manifest
        );
    }

    #[test]
    fn a_redeploy_rule_bears_only_on_the_agents_it_matches() {
        let dir = tempfile::tempdir().unwrap();
        let c = config(
            "access:\n  - agents: \"billing-*\"\n    recipients: [age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs3290gq]\n    redeploy: on-change\n",
        );
        let o = Overrides::default();
        let plain = Config::default();
        assert_ne!(
            settings_digest(&c, o, "billing-x"),
            settings_digest(&plain, o, "billing-x")
        );
        assert_eq!(
            settings_digest(&c, o, "support"),
            settings_digest(&plain, o, "support")
        );
        // A run computes each distinct digest once, and gives each agent its own.
        let slugs: Vec<String> = ["billing-x", "support", "billing-y"]
            .map(String::from)
            .to_vec();
        let tree = Worktree::new(dir.path());
        let run = of_run(&tree, &c, &Environment::IMPLICIT, o, &slugs, None);
        for slug in &slugs {
            assert_eq!(
                run.agents[slug].settings,
                settings_digest(&c, o, slug),
                "{slug}"
            );
        }
        drop(dir);
    }

    #[test]
    fn a_commit_and_its_checkout_give_the_same_file_ids() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("agents/a")).unwrap();
        std::fs::write(root.join("agents/a/secrets.yaml.age"), "ciphertext").unwrap();
        std::fs::write(root.join("agents/a/.env.example"), "K=v\n").unwrap();
        crate::source::git::tests::commit_agents(root);
        let at_head = crate::source::GitRevision::open(root, "HEAD").unwrap();
        let c = Config::default();
        let o = Overrides::default();
        let from_git = of_agent(&at_head, &c, &Environment::IMPLICIT, o, "a");
        assert_eq!(
            from_git,
            of_agent(&Worktree::new(root), &c, &Environment::IMPLICIT, o, "a")
        );
        assert!(from_git.manifest.as_deref().is_some_and(well_formed));
        assert_eq!(
            of_agent(&at_head, &c, &Environment::IMPLICIT, o, "absent").manifest,
            None
        );
    }

    /// Commits everything under `root` on top of HEAD (if any); the commit's revision.
    fn commit_all(root: &Path) -> crate::source::GitRevision {
        let repo = git2::Repository::open(root)
            .or_else(|_| git2::Repository::init(root))
            .unwrap();
        let mut index = repo.index().unwrap();
        index
            .add_all(["*"], git2::IndexAddOption::DEFAULT, None)
            .unwrap();
        index.write().unwrap();
        let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
        let sig = git2::Signature::now("t", "t@example.com").unwrap();
        let parent = repo.head().ok().and_then(|h| h.peel_to_commit().ok());
        let parents: Vec<&git2::Commit<'_>> = parent.iter().collect();
        repo.commit(Some("HEAD"), &sig, &sig, "c", &tree, &parents)
            .unwrap();
        crate::source::GitRevision::open(root, "HEAD").unwrap()
    }

    #[test]
    fn remembered_inputs_are_what_reading_gives_and_a_directory_with_a_link_is_read_again() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for agent in ["a", "b", "c"] {
            std::fs::create_dir_all(root.join("agents").join(agent)).unwrap();
            let manifest = root.join("agents").join(agent).join(MANIFEST_FILE);
            std::fs::write(manifest, format!("ciphertext-{agent}")).unwrap();
        }
        // b's schema is a link out of its directory: the target changes, b's directory not.
        std::fs::write(root.join("shared.env"), "K=1\n").unwrap();
        std::os::unix::fs::symlink("../../shared.env", root.join("agents/b/.env.example")).unwrap();
        let (c, o, env) = (
            Config::default(),
            Overrides::default(),
            Environment::IMPLICIT,
        );
        let slugs: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let mut memory = Remembered::default();
        let fresh = |tree: &dyn Tree| of_run(tree, &c, &env, o, &slugs, None).agents;

        let first = commit_all(root);
        let remembered = of_run(&first, &c, &env, o, &slugs, Some(&mut memory)).agents;
        assert_eq!(remembered, fresh(&first));
        let kept: Vec<bool> = slugs.iter().map(|s| memory.get(s).is_some()).collect();
        assert_eq!(kept, [true, false, true], "b has a link in it");

        std::fs::write(root.join("agents/a").join(MANIFEST_FILE), "ciphertext-a2").unwrap();
        std::fs::write(root.join("shared.env"), "K=2\n").unwrap();
        let second = commit_all(root);
        let again = of_run(&second, &c, &env, o, &slugs, Some(&mut memory)).agents;
        assert_eq!(again, fresh(&second));
        assert_ne!(again["a"].manifest, remembered["a"].manifest);
        assert_ne!(again["b"].schema, remembered["b"].schema);
        assert_eq!(again["c"], remembered["c"]);

        // Another environment's digests cover its overlay: nothing remembered is reused.
        let staging = Environment::named("staging");
        let other = of_run(&second, &c, &staging, o, &slugs, Some(&mut memory)).agents;
        assert_eq!(other, of_run(&second, &c, &staging, o, &slugs, None).agents);
        assert_eq!(memory.len(), 2, "staging's digests of a and c");
    }

    #[test]
    fn a_missing_manifest_has_no_digest_and_is_never_recorded() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("agents/a")).unwrap();
        let tree = Worktree::new(dir.path());
        let inputs = of_agent(
            &tree,
            &Config::default(),
            &Environment::IMPLICIT,
            Overrides::default(),
            "a",
        );
        assert_eq!(inputs.manifest, None);
        assert!(inputs.record("c1", "t").is_none());
    }

    #[test]
    fn only_digests_of_the_written_form_are_well_formed() {
        assert!(well_formed(ABSENT));
        assert!(well_formed(&sha256(b"x")));
        assert!(well_formed(&format!("{BLOB}{}", "0a".repeat(20))));
        assert!(!well_formed(&format!("{BLOB}{}", "0a".repeat(19))));
        assert!(!well_formed("md5:abc"));
        assert!(!well_formed("sha256:XYZ"));
    }
}
