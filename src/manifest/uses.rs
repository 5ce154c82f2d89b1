//! Shared groups in a manifest: which kind of manifest it is (an agent's, bound by `agent:`,
//! or a shared group's, bound by `group:`), and an agent's `uses:` block, which takes keys
//! from groups.
//!
//! ```yaml
//! agent: support-bot
//! uses:
//!   openai: [OPENAI_API_KEY]      # these keys of shared/openai
//!   stripe: "*"                   # every key of shared/stripe
//! secrets: { … }
//! ```
//!
//! `uses: [openai, stripe]` is the short form of "every key of each". This module checks the
//! names only; whether the groups and keys exist is decided when the repository is loaded
//! (`load::shared`), since it needs the group files.

use std::collections::{BTreeMap, BTreeSet};

use super::Pos;
use super::reader::{RawScalar, RawUsed, RawUses};
use crate::names;

/// Which kind of manifest a file is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Kind {
    /// An agent's manifest (`agents_dir/AGENT/secrets.yaml.age`, `agent: AGENT`).
    #[default]
    Agent,
    /// A shared group's manifest (`shared_dir/GROUP/secrets.yaml.age`, `group: GROUP`).
    Group,
}

impl Kind {
    /// The binding field: `agent` or `group`.
    pub fn field(self) -> &'static str {
        match self {
            Kind::Agent => "agent",
            Kind::Group => "group",
        }
    }

    /// "agent" or "shared group", for messages.
    pub fn noun(self) -> &'static str {
        match self {
            Kind::Agent => "agent",
            Kind::Group => "shared group",
        }
    }
}

/// What an agent takes from one group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UsedKeys {
    /// Every key of the group (`uses: [openai]`, or `openai: "*"`).
    All,
    /// These keys (never empty).
    Keys(BTreeSet<String>),
}

/// An agent's `uses:`: group name → what it takes. Sorted, so output is deterministic.
pub type Uses = BTreeMap<String, UsedKeys>;

/// Why a `uses:` block was refused: the problem and where, when known. The problem names a
/// group or a key only when it is a valid name (anything else may be a pasted value).
pub(super) struct UsesProblem {
    pub pos: Pos,
    pub problem: String,
}

/// Applies the naming rules to a `uses:` block as read.
pub(super) fn check(raw: RawUses, pos_of: impl Fn(&RawScalar) -> Pos) -> Result<Uses, UsesProblem> {
    let fail = |scalar: &RawScalar, problem: String| UsesProblem {
        pos: pos_of(scalar),
        problem,
    };
    let group_name = |scalar: &RawScalar| -> Result<String, UsesProblem> {
        let name = scalar.text.as_str();
        names::validate_slug(name).map_err(|_| {
            fail(
                scalar,
                "a group name under `uses:` is not valid (not shown): group names follow the agent slug rules (a-z, 0-9, '.', '_', '-', starting with a letter or digit)".to_owned(),
            )
        })?;
        Ok(name.to_owned())
    };
    let mut uses = Uses::new();
    let mut insert = |scalar: &RawScalar, group: String, used: UsedKeys| {
        if uses.insert(group.clone(), used).is_some() {
            return Err(fail(
                scalar,
                format!("group {group} is listed twice under `uses:`; keep one entry"),
            ));
        }
        Ok(())
    };
    match raw {
        RawUses::List(groups) => {
            for scalar in &groups {
                insert(scalar, group_name(scalar)?, UsedKeys::All)?;
            }
        }
        RawUses::Map(entries) => {
            for (scalar, used) in &entries {
                let group = group_name(scalar)?;
                let used = match used {
                    RawUsed::Scalar(s) if s.text.as_str() == "*" => UsedKeys::All,
                    RawUsed::Scalar(_) => {
                        return Err(fail(
                            scalar,
                            format!(
                                "group {group} under `uses:` takes a list of key names (`{group}: [KEY, …]`) or \"*\" for every key of the group"
                            ),
                        ));
                    }
                    RawUsed::Keys(keys) if keys.is_empty() => {
                        return Err(fail(
                            scalar,
                            format!(
                                "group {group} under `uses:` lists no keys: name the keys the agent takes from it, or remove the entry"
                            ),
                        ));
                    }
                    RawUsed::Keys(keys) => {
                        let mut set = BTreeSet::new();
                        for key in keys {
                            let name = key.text.as_str();
                            if names::validate_key(name).is_err() {
                                return Err(fail(
                                    key,
                                    format!(
                                        "a key listed under `uses: {group}` is not a valid environment variable name (not shown)"
                                    ),
                                ));
                            }
                            if !set.insert(name.to_owned()) {
                                return Err(fail(
                                    key,
                                    format!(
                                        "key {name} is listed twice under `uses: {group}`; keep one"
                                    ),
                                ));
                            }
                        }
                        UsedKeys::Keys(set)
                    }
                };
                insert(scalar, group, used)?;
            }
        }
    }
    Ok(uses)
}
