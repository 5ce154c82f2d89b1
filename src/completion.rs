//! What shell completion offers beyond the flags: the agents and shared groups of the
//! repository a command line works on, so `castsync set sup<TAB>` completes `support-bot`.
//!
//! The shell runs castsync on every TAB press, so this only reads `castsync.yaml` and lists
//! folders. It must never decrypt anything, never reach the platform, never print to stderr,
//! and never fail: a repository it cannot read offers nothing.

use std::path::PathBuf;

use crate::source::{self, Checkout};

/// Which names a value takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Names {
    /// Agents; with `--shared` on the command line, shared groups instead (`set`, `edit`…).
    AgentsOrGroups,
    /// Agents only (`reconcile --agent`, `validate`, `history`).
    Agents,
}

/// The names of `kind` that start with `prefix`, for the command line `words` (the words
/// typed so far, the program first). The repository is the one the command would use: `-C
/// DIR` / `--repo DIR` and `--config FILE` as typed, else the nearest one from the current
/// directory up.
pub fn candidates(words: &[String], prefix: &str, kind: Names) -> Vec<String> {
    let repo = flag_value(words, &["-C", "--repo"]).map(PathBuf::from);
    let config = flag_value(words, &["--config"]).map(PathBuf::from);
    let Ok(root) = source::find_root(repo.as_deref(), config.as_deref()) else {
        return Vec::new();
    };
    let Ok(checkout) = Checkout::worktree(&root, config.as_deref()) else {
        return Vec::new();
    };
    let groups = kind == Names::AgentsOrGroups && words.iter().any(|w| w == "--shared");
    let names = if groups {
        source::group_names(checkout.tree(), &checkout.config).unwrap_or_default()
    } else {
        checkout.agents.clone()
    };
    names
        .into_iter()
        .filter(|n| n.starts_with(prefix))
        .collect()
}

/// The value of the last of `flags` in `words`: `-C DIR`, `--repo=DIR` or `-CDIR`.
fn flag_value<'w>(words: &'w [String], flags: &[&str]) -> Option<&'w str> {
    let mut found = None;
    let mut words = words.iter();
    while let Some(word) = words.next() {
        if word == "--" {
            break;
        }
        for flag in flags {
            if word == flag {
                found = words.next().map(String::as_str).or(found);
            } else if let Some(value) = word.strip_prefix(flag) {
                let value = if flag.starts_with("--") {
                    value.strip_prefix('=')
                } else {
                    Some(value.strip_prefix('=').unwrap_or(value))
                };
                found = value.filter(|v| !v.is_empty()).or(found);
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<String> {
        line.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn the_repository_flag_is_read_in_each_spelling() {
        for line in [
            "castsync -C repo set",
            "castsync --repo repo set",
            "castsync --repo=repo set",
            "castsync -Crepo set",
            "castsync -C other set -C repo",
        ] {
            assert_eq!(
                flag_value(&words(line), &["-C", "--repo"]),
                Some("repo"),
                "{line}"
            );
        }
        assert_eq!(
            flag_value(&words("castsync --reporter x"), &["--repo"]),
            None
        );
        assert_eq!(
            flag_value(&words("castsync set -C"), &["-C", "--repo"]),
            None
        );
    }

    #[test]
    fn agents_and_groups_come_from_the_named_repository() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join("castsync.yaml"), "version: 1\n").unwrap();
        for path in [
            "agents/support-bot",
            "agents/billing-agent",
            "agents/sales-bot",
        ] {
            std::fs::create_dir_all(root.join(path)).unwrap();
        }
        std::fs::create_dir_all(root.join("shared/openai")).unwrap();
        std::fs::write(root.join("shared/openai/secrets.yaml.age"), "").unwrap();
        let at = |line: &str| {
            let mut w = words(line);
            w.insert(1, root.display().to_string());
            w.insert(1, "-C".to_owned());
            w
        };
        assert_eq!(
            candidates(&at("castsync set s"), "s", Names::AgentsOrGroups),
            ["sales-bot", "support-bot"]
        );
        assert_eq!(
            candidates(&at("castsync set --shared o"), "o", Names::AgentsOrGroups),
            ["openai"]
        );
        assert_eq!(
            candidates(
                &at("castsync reconcile --shared --agent b"),
                "b",
                Names::Agents
            ),
            ["billing-agent"]
        );
        let nowhere = words("castsync -C /nonexistent/castsync-repo set s");
        assert!(candidates(&nowhere, "s", Names::Agents).is_empty());
    }
}
