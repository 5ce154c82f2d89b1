//! `castsync guard`: the values the manifests declare, found wherever else they were written
//! (a `.env` committed by mistake, a value pasted into an `.env.example`, a config file, a
//! test fixture), in the working tree, in the staged changes (the pre-commit hook) or in
//! every reachable commit. Pattern scanners guess from shapes and entropy; castsync decrypts
//! the manifests, so it knows the real values and looks for exactly them, with one
//! Aho-Corasick automaton (`scan`) over all of them.
//!
//! The phases: `values` decrypts the manifests of the working tree and gathers the values
//! worth searching (not the short ones, not those equal to their placeholder); `files` reads
//! what the mode covers out of git; `scan` finds values in each file and tells plaintext
//! dotenv files and unencrypted manifests by their shape; `render` prints the `model`.
//!
//! It must never print, log or store a value, a part of a matching line, or a hash of either:
//! a finding names the file, the line (or the commit and path) and the manifests and keys
//! whose value it is.

mod files;
pub mod model;
pub mod render;
mod scan;
mod values;

use std::collections::HashSet;
use std::path::PathBuf;

use git2::Repository;
use thiserror::Error;

use crate::config::Config;
use crate::crypto::Identities;
use crate::source::Tree;
use model::{Finding, Kind, Summary};
pub use model::{Mode, Report};

/// What one search is asked.
pub struct Request<'a> {
    /// The secrets repository's root (inside the git repository searched).
    pub root: PathBuf,
    /// The working tree's manifests, whose values are searched for.
    pub tree: &'a dyn Tree,
    /// With `--staged`: the last commit, whose `.env.example` placeholders come first (see
    /// `values::Placeholders::over`).
    pub base: Option<&'a dyn Tree>,
    pub config: &'a Config,
    pub identities: &'a Identities,
    pub mode: Mode,
}

/// Why there is no report.
#[derive(Debug, Error)]
pub enum GuardError {
    /// The repository is not in git.
    #[error("{} is not in a git repository: guard searches what git tracks and would track", root.display())]
    NotGit { root: PathBuf },
    /// No identity is loaded.
    #[error("no identity to decrypt the manifests with: guard needs the values to look for them")]
    NoIdentity,
    /// There are manifests, and none could be decrypted.
    #[error(
        "none of the {count} manifest(s) could be decrypted with your identities ({first}: {why}): there is no value to look for"
    )]
    NothingReadable {
        count: usize,
        first: String,
        why: String,
    },
    /// The manifests' tree cannot be read.
    #[error(transparent)]
    Source(#[from] crate::source::SourceError),
    /// git could not read an object.
    #[error("git: {0}")]
    Git(String),
}

impl crate::hint::Hinted for GuardError {
    fn hint(&self) -> Option<std::borrow::Cow<'_, str>> {
        match self {
            GuardError::NotGit { .. } => {
                Some("run it in a clone of the secrets repository (or after `git init`)".into())
            }
            GuardError::NoIdentity | GuardError::NothingReadable { .. } => Some(
                "pass -i FILE, or set CASTSYNC_AGE_KEY or CASTSYNC_AGE_KEY_FILE (castsync doctor lists where it looked); a pre-commit hook finds the identity the same way"
                    .into(),
            ),
            GuardError::Source(_) | GuardError::Git(_) => None,
        }
    }
}

impl From<git2::Error> for GuardError {
    fn from(e: git2::Error) -> Self {
        GuardError::Git(e.message().to_owned())
    }
}

/// Searches what `req.mode` covers for the values of the manifests of `req.tree`.
pub fn guard(req: &Request<'_>) -> Result<Report, GuardError> {
    let repo = Repository::discover(&req.root).map_err(|_| GuardError::NotGit {
        root: req.root.clone(),
    })?;
    if req.identities.is_empty() {
        return Err(GuardError::NoIdentity);
    }
    let mut placeholders = values::Placeholders::read(req.tree, req.config)?;
    if let Some(base) = req.base {
        placeholders = values::Placeholders::read(base, req.config)?.over(placeholders);
    }
    let needles = values::collect(req.tree, req.config, req.identities, &placeholders)?;
    if needles.manifests > 0 && needles.unreadable.len() == needles.manifests {
        let (first, why) = needles.unreadable[0].clone();
        return Err(GuardError::NothingReadable {
            count: needles.manifests,
            first,
            why,
        });
    }
    let matcher = scan::Matcher::new(&needles.patterns)
        .map_err(|e| GuardError::Git(format!("cannot build the matcher: {e}")))?;
    let mut search = Search {
        matcher: &matcher,
        needles: &needles,
        findings: Vec::new(),
        reported: HashSet::new(),
        files: 0,
    };
    let mut visit = |places: &[files::Place], bytes: &[u8]| search.file(places, bytes);
    let skipped = match req.mode {
        Mode::Worktree => files::worktree(&repo, &mut visit)?,
        Mode::Staged => files::staged(&repo, &mut visit)?,
        Mode::History => files::history(&repo, &mut visit)?,
    };
    let notes = notes(&needles, &skipped);
    let summary = Summary {
        files: search.files,
        commits: skipped.commits,
        values: needles.patterns.len(),
        keys_searched: needles.keys_searched,
        keys_too_short: needles.keys_too_short,
        keys_placeholder: needles.keys_placeholder.len(),
        manifests_unreadable: needles.unreadable.len(),
        findings: search.findings.len(),
    };
    Ok(Report {
        format_version: model::FORMAT_VERSION,
        mode: req.mode,
        summary,
        findings: search.findings,
        notes,
    })
}

/// The search in progress: findings so far, and what was already reported (history reports
/// a value in a file once, at the oldest commit that added it there).
struct Search<'a> {
    matcher: &'a scan::Matcher,
    needles: &'a values::Needles,
    findings: Vec<Finding>,
    reported: HashSet<(String, Kind, usize)>,
    files: usize,
}

impl Search<'_> {
    /// One file (version) and the places where it was found.
    fn file(&mut self, places: &[files::Place], bytes: &[u8]) {
        self.files += 1;
        let hits = self.matcher.hits(bytes);
        let plaintext = places
            .iter()
            .any(|p| scan::is_plaintext_manifest(&p.path, bytes));
        for place in places {
            for hit in &hits {
                self.value(place, hit);
            }
            if plaintext && scan::is_plaintext_manifest(&place.path, bytes) {
                self.shape(place, Kind::PlaintextManifest);
            }
            if place.tracked && scan::is_plain_dotenv(&place.path) {
                self.shape(place, Kind::Dotenv);
            }
        }
    }

    fn first_time(&mut self, place: &files::Place, kind: Kind, pattern: usize) -> bool {
        self.reported.insert((place.path.clone(), kind, pattern))
    }

    fn value(&mut self, place: &files::Place, hit: &scan::Hit) {
        if place.commit.is_some() && !self.first_time(place, Kind::Value, hit.pattern) {
            return;
        }
        let owners = self.needles.owners[hit.pattern].clone();
        let whose = owners
            .iter()
            .map(model::Owner::describe)
            .collect::<Vec<_>>()
            .join(", ");
        let hint = match (&place.commit, owners.first()) {
            (Some(_), Some(o)) => format!(
                "it is in the history of every clone: rotate it where it was issued and set the new one ({}), then remove it from the file",
                set_command(o)
            ),
            _ => format!(
                "remove it from the file (read it from the environment instead); if it was ever pushed or shared, rotate it ({})",
                owners.first().map(set_command).unwrap_or_default()
            ),
        };
        self.findings.push(Finding {
            kind: Kind::Value,
            path: place.path.clone(),
            line: Some(hit.line),
            commit: place.commit.clone(),
            declared_by: owners,
            message: format!("the value of {whose} is written here"),
            hint,
        });
    }

    fn shape(&mut self, place: &files::Place, kind: Kind) {
        if !self.first_time(place, kind, usize::MAX) {
            return;
        }
        let (message, hint) = match kind {
            Kind::Dotenv => (
                "a dotenv file with values is tracked by git".to_owned(),
                format!(
                    "stop tracking it (git rm --cached {path}), add it to .gitignore, and move its values into a manifest (castsync import AGENT --from-dotenv {path}); a file of placeholders belongs in .env.example",
                    path = place.path
                ),
            ),
            _ => (
                "a castsync manifest in plaintext (not age-encrypted)".to_owned(),
                "delete it (its values belong in the encrypted manifest: castsync edit AGENT), and rotate its values if it was ever pushed; castsync never writes a plaintext manifest into the repository"
                    .to_owned(),
            ),
        };
        self.findings.push(Finding {
            kind,
            path: place.path.clone(),
            line: None,
            commit: place.commit.clone(),
            declared_by: Vec::new(),
            message,
            hint,
        });
    }
}

fn set_command(owner: &model::Owner) -> String {
    match owner.kind {
        crate::audit::SourceKind::Agent => format!("castsync set {} {}", owner.name, owner.key),
        crate::audit::SourceKind::Group => {
            format!("castsync set --shared {} {}", owner.name, owner.key)
        }
    }
}

fn notes(needles: &values::Needles, skipped: &files::Skipped) -> Vec<String> {
    let mut notes = Vec::new();
    if !needles.keys_placeholder.is_empty() {
        let shown = needles
            .keys_placeholder
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>();
        let more = needles.keys_placeholder.len() - shown.len();
        notes.push(format!(
            "not searched, equal to their .env.example placeholder: {}{}",
            shown.join(", "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        ));
    }
    for (file, why) in &needles.unreadable {
        notes.push(format!("{file}: {why}: its values were not searched"));
    }
    if !skipped.too_large.is_empty() {
        notes.push(format!(
            "{} file(s) larger than {} MiB were not searched: {}",
            skipped.too_large.len(),
            files::MAX_FILE / (1024 * 1024),
            skipped.too_large.join(", ")
        ));
    }
    for (path, why) in &skipped.unreadable {
        notes.push(format!("{path} could not be read: {why}"));
    }
    notes
}
