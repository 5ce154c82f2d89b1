//! `castsync textconv FILE` (the git diff driver) and `castsync diff [A [B]]`: key-level,
//! redacted views of manifests, agents' and shared groups'. A shared group's change is shown
//! with the agents it reaches (those whose `uses:` takes a changed key), so the group is seen
//! as the cause of their updates. Neither ever prints a value, in any `-o` format.

use std::collections::BTreeMap;
use std::path::Path;

use crate::cli::{DiffArgs, GlobalArgs, OutputFormat, TextconvArgs};
use crate::commands::{Exit, Repo};
use crate::crypto::Identities;
use crate::hint::WithHint;
use crate::render::redacted::{self, Fingerprinter};
use crate::source::Checkout;
use crate::source::{MANIFEST_FILE, SCHEMA_FILE, group_manifest_path, group_names};

/// The diff driver must never make `git diff` fail: every problem becomes a one-line notice
/// in the converted text, and the exit code is 0.
pub fn textconv(global: &GlobalArgs, args: &TextconvArgs) -> anyhow::Result<Exit> {
    let text = match convert(global, &args.file) {
        Ok(text) => text,
        Err(notice) => format!("# castsync: {notice}\n"),
    };
    print!("{text}");
    Ok(Exit::Success)
}

fn convert(global: &GlobalArgs, file: &Path) -> Result<String, String> {
    // git hands the driver a temporary file outside the repository: a regular file, capped.
    let bytes = crate::fsread::read_file(file, crate::fsread::MAX_REPO_FILE)
        .map_err(|e| crate::escape::terminal(&e.to_string()).into_owned())?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(String::new());
    }
    let identities = crate::commands::discover_identities(global)
        .map_err(|_| "no usable identity (see `castsync validate`); key names hidden".to_owned())?;
    let fp = Fingerprinter::for_identities(&identities)
        .ok_or_else(|| "no identity found; key names hidden".to_owned())?;
    decrypt_view(&identities, &fp, &bytes, file)
}

fn decrypt_view(
    identities: &Identities,
    fp: &Fingerprinter,
    bytes: &[u8],
    file: &Path,
) -> Result<String, String> {
    let plain = identities.decrypt(bytes, file).map_err(|_| {
        // A hash of the ciphertext (never of a value) so that two versions nobody here can
        // open still show as different.
        use sha2::Digest;
        let digest = hex::encode(sha2::Sha256::digest(bytes));
        format!(
            "cannot decrypt this version with your identities (not a recipient?); key names hidden (ciphertext sha256:{})",
            &digest[..12]
        )
    })?;
    let text = std::str::from_utf8(&plain)
        .map_err(|_| "the decrypted manifest is not UTF-8 text".to_owned())?;
    Ok(redacted::view(text, fp))
}

/// The `diff -o json` format version (schemas/diff.schema.json); bump on incompatible changes.
pub const DIFF_FORMAT_VERSION: u32 = 1;

/// One file that differs between the two sides, as redacted views (never a value).
struct FileDiff {
    /// The agent (empty for a shared group's file).
    agent: String,
    /// The shared group, for a group's manifest.
    group: Option<String>,
    /// For a group: the agents (on the newer side) that take a changed key, with those keys.
    affects: Vec<(String, Vec<String>)>,
    /// The file's path on each side (each side's config names its agents directory).
    old_path: String,
    new_path: String,
    old: Option<String>,
    new: Option<String>,
    /// Whether it is the encrypted manifest (else the agent's `.env.example`).
    manifest: bool,
}

impl FileDiff {
    fn status(&self) -> &'static str {
        match (&self.old, &self.new) {
            (None, _) => "added",
            (_, None) => "removed",
            _ => "modified",
        }
    }

    /// The path to name the file by: the newer side's, unless it was removed.
    fn path(&self) -> &str {
        if self.new.is_some() {
            &self.new_path
        } else {
            &self.old_path
        }
    }

    fn unified(&self, old_rev: &str, new_label: &str) -> String {
        let header_a = match self.old {
            Some(_) => format!("a/{} ({old_rev})", self.old_path),
            None => "/dev/null".to_owned(),
        };
        let header_b = match self.new {
            Some(_) => format!("b/{} ({new_label})", self.new_path),
            None => "/dev/null".to_owned(),
        };
        let (a, b) = (
            self.old.as_deref().unwrap_or_default(),
            self.new.as_deref().unwrap_or_default(),
        );
        similar::TextDiff::from_lines(a, b)
            .unified_diff()
            .context_radius(3)
            .header(&header_a, &header_b)
            .to_string()
    }

    /// Keys added, removed and changed, from the redacted views' `KEY FINGERPRINT` lines.
    fn keys(&self) -> serde_json::Value {
        if !self.manifest {
            return serde_json::Value::Null;
        }
        let entries = |view: &Option<String>| -> BTreeMap<String, String> {
            view.as_deref()
                .unwrap_or_default()
                .lines()
                .filter(|l| {
                    !l.starts_with("agent:")
                        && !l.starts_with("group:")
                        && !l.starts_with("uses: ")
                        && !l.starts_with('#')
                })
                .filter_map(|l| l.split_once(' '))
                .map(|(k, fp)| (k.to_owned(), fp.to_owned()))
                .collect()
        };
        let (old, new) = (entries(&self.old), entries(&self.new));
        let added: Vec<&String> = new.keys().filter(|k| !old.contains_key(*k)).collect();
        let removed: Vec<&String> = old.keys().filter(|k| !new.contains_key(*k)).collect();
        let changed: Vec<&String> = new
            .iter()
            .filter(|(k, fp)| old.get(*k).is_some_and(|o| o != *fp))
            .map(|(k, _)| k)
            .collect();
        serde_json::json!({ "added": added, "removed": removed, "changed": changed })
    }

    /// For a group: every key added, removed or changed.
    fn touched_keys(&self) -> Vec<String> {
        let keys = self.keys();
        ["added", "removed", "changed"]
            .iter()
            .flat_map(|k| keys[k].as_array().cloned().unwrap_or_default())
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect()
    }

    /// The line naming the agents a group's change reaches (text and Markdown).
    fn affects_line(&self) -> Option<String> {
        let group = self.group.as_ref()?;
        let folder = self
            .path()
            .trim_end_matches(MANIFEST_FILE)
            .trim_end_matches('/');
        Some(if self.affects.is_empty() {
            format!("no agent takes the changed keys of shared group {group} ({folder})")
        } else {
            // At most twenty agents on the line (all of them are in the JSON).
            let mut names = self
                .affects
                .iter()
                .take(20)
                .map(|(agent, keys)| format!("{agent} ({})", keys.join(", ")))
                .collect::<Vec<_>>()
                .join(", ");
            if self.affects.len() > 20 {
                names.push_str(&format!(" and {} more", self.affects.len() - 20));
            }
            format!(
                "shared group {group} ({folder}) is the cause of changes to {} agent(s): {names}",
                self.affects.len(),
            )
        })
    }
}

/// `castsync diff [REV_A [REV_B]]`: REV_A defaults to HEAD, REV_B to the worktree.
pub fn diff(global: &GlobalArgs, args: &DiffArgs) -> anyhow::Result<Exit> {
    let repo = Repo::open(global)?;
    let identities = repo.identities()?;
    let fp = Fingerprinter::for_identities(&identities).ok_or_else(|| {
        WithHint::new(
            "no identity found: castsync diff decrypts both sides",
            "pass -i FILE, set CASTSYNC_AGE_KEY, or run `castsync keygen`",
        )
    })?;
    let old_rev = args.rev_a.as_deref().unwrap_or("HEAD");
    // Each side is read with its own config: the agents directory may have moved between them.
    let explicit = global.config.as_deref();
    let old = Checkout::revision(&repo.root, old_rev, explicit)?;
    let at_rev_b = match &args.rev_b {
        Some(rev) => Some(Checkout::revision(&repo.root, rev, explicit)?),
        None => None,
    };
    let new = at_rev_b.as_ref().unwrap_or(&repo.checkout);
    let mut agents = old.agents.clone();
    agents.extend(new.agents.iter().cloned());
    agents.sort();
    agents.dedup();

    let new_label = args.rev_b.as_deref().unwrap_or("worktree");
    let mut diffs = Vec::new();
    // Which shared groups (and keys) each agent takes, on the newer side.
    let mut uses: BTreeMap<String, Vec<redacted::UsedGroup>> = BTreeMap::new();
    for agent in &agents {
        for file in [MANIFEST_FILE, SCHEMA_FILE] {
            let path_of = |side: &Checkout| side.config.agents_dir.join(agent).join(file);
            let (path_a, path_b) = (path_of(&old), path_of(new));
            let side = |side: &Checkout, path: &Path| -> anyhow::Result<Option<String>> {
                let Some(bytes) = side.tree().read(path)? else {
                    return Ok(None);
                };
                Ok(Some(if file == MANIFEST_FILE {
                    decrypt_view(&identities, &fp, &bytes, path)
                        .unwrap_or_else(|notice| format!("# castsync: {notice}\n"))
                } else {
                    // `.env.example` holds placeholders, never values: shown as it is.
                    String::from_utf8_lossy(&bytes).into_owned()
                }))
            };
            let (a, b) = (side(&old, &path_a)?, side(new, &path_b)?);
            if file == MANIFEST_FILE
                && let Some(view) = &b
            {
                uses.insert(agent.clone(), redacted::uses_of(view));
            }
            if a == b {
                continue;
            }
            diffs.push(FileDiff {
                agent: agent.clone(),
                group: None,
                affects: Vec::new(),
                old_path: path_a.display().to_string(),
                new_path: path_b.display().to_string(),
                old: a,
                new: b,
                manifest: file == MANIFEST_FILE,
            });
        }
    }

    let mut groups = group_names(old.tree(), &old.config)?;
    groups.extend(group_names(new.tree(), &new.config)?);
    groups.sort();
    groups.dedup();
    for group in &groups {
        let path_of = |side: &Checkout| group_manifest_path(&side.config, group);
        let (path_a, path_b) = (path_of(&old), path_of(new));
        let side = |side: &Checkout, path: &Path| -> anyhow::Result<Option<String>> {
            let Some(bytes) = side.tree().read(path)? else {
                return Ok(None);
            };
            Ok(Some(
                decrypt_view(&identities, &fp, &bytes, path)
                    .unwrap_or_else(|notice| format!("# castsync: {notice}\n")),
            ))
        };
        let (a, b) = (side(&old, &path_a)?, side(new, &path_b)?);
        if a == b {
            continue;
        }
        let mut d = FileDiff {
            agent: String::new(),
            group: Some(group.clone()),
            affects: Vec::new(),
            old_path: path_a.display().to_string(),
            new_path: path_b.display().to_string(),
            old: a,
            new: b,
            manifest: true,
        };
        let touched = d.touched_keys();
        for (agent, used) in &uses {
            for (_, keys) in used.iter().filter(|(g, _)| g == group) {
                let hit: Vec<String> = touched
                    .iter()
                    .filter(|k| keys.as_ref().is_none_or(|ks| ks.contains(k)))
                    .cloned()
                    .collect();
                if !hit.is_empty() {
                    d.affects.push((agent.clone(), hit));
                }
            }
        }
        diffs.push(d);
    }

    match args.output {
        OutputFormat::Text => {
            for d in &diffs {
                print!("{}", d.unified(old_rev, new_label));
                if let Some(line) = d.affects_line() {
                    println!("# castsync: {line}");
                }
            }
        }
        OutputFormat::Json => {
            let files: Vec<serde_json::Value> = diffs
                .iter()
                .map(|d| {
                    let mut file = serde_json::json!({
                        "agent": (d.group.is_none()).then_some(&d.agent),
                        "path": d.path(),
                        "status": d.status(),
                        "keys": d.keys(),
                        "diff": d.unified(old_rev, new_label),
                    });
                    if let Some(group) = &d.group {
                        file["group"] = serde_json::json!(group);
                        file["affects"] = d
                            .affects
                            .iter()
                            .map(
                                |(agent, keys)| serde_json::json!({ "agent": agent, "keys": keys }),
                            )
                            .collect();
                    }
                    file
                })
                .collect();
            let doc = serde_json::json!({
                "format_version": DIFF_FORMAT_VERSION,
                "from": old_rev,
                "to": new_label,
                "has_changes": !diffs.is_empty(),
                "files": files,
            });
            println!("{doc:#}");
        }
        OutputFormat::Markdown => {
            use crate::render::md_escape;
            if diffs.is_empty() {
                println!(
                    "No differences between {} and {}.",
                    md_escape(old_rev),
                    md_escape(new_label)
                );
            }
            for d in &diffs {
                // A fence longer than any backtick run in the text, so nothing closes it early.
                let text = d.unified(old_rev, new_label);
                let fence = "`".repeat(longest_backtick_run(&text).max(2) + 1);
                println!(
                    "#### {} ({})\n\n{fence}diff\n{}{fence}\n",
                    md_escape(d.path()),
                    d.status(),
                    text
                );
                if let Some(line) = d.affects_line() {
                    println!("{}\n", md_escape(&line));
                }
            }
        }
    }
    Ok(if args.exit_code && !diffs.is_empty() {
        Exit::Changes
    } else {
        Exit::Success
    })
}

fn longest_backtick_run(text: &str) -> usize {
    text.split(|c| c != '`').map(str::len).max().unwrap_or(0)
}
