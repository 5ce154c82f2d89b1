//! `castsync.yaml`: the repository's settings (documented for users in docs/config.md).
//!
//! Every field has a default, so a repository without the file works. Anything the file says
//! that castsync does not understand is an error rather than silently ignored: a misspelled
//! `prune` must not leave pruning on. The config holds no secrets (recipients are public
//! keys), but a private key pasted by mistake into `recipients` is recognised and never
//! echoed.

mod environments;
mod fields;
mod period;
mod recipients;
mod notify;
#[cfg(test)]
mod tests;

use std::io;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize};
use thiserror::Error;

pub use environments::{
    AGENT_PLACEHOLDER, EnvironmentConfig, EnvironmentError, Environments, apply_slug_template,
    same_platform,
};
pub use fields::fields_of;
pub use notify::{CommitStatus, NotifyEntry, NotifyEvent, SlackTarget, WebhookTarget};
pub use period::Period;
pub use recipients::{Names, Recipients, canonical as canonical_recipient, short_label};

/// The config file's name at the repository root.
pub const FILE_NAME: &str = "castsync.yaml";

/// The platform castsync talks to when nothing else is configured.
pub const DEFAULT_PLATFORM_URL: &str = "https://api.castari.com";

/// The environment variable holding the API key, unless `api_key_env` names another.
pub const DEFAULT_API_KEY_ENV: &str = "CASTARI_API_KEY";

/// The only config format version this build reads.
pub const VERSION: u32 = 1;

/// The repository config. `Config::default()` is what an absent file means.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Format version; only 1 exists.
    pub version: u32,
    /// Where the agent directories live, relative to the repository root.
    pub agents_dir: PathBuf,
    /// Where the shared group directories live (`SHARED_DIR/GROUP/secrets.yaml.age`),
    /// relative to the repository root.
    pub shared_dir: PathBuf,
    /// Which platform to reconcile onto.
    #[serde(deserialize_with = "null_as_default")]
    pub platform: PlatformConfig,
    /// Who can decrypt manifests, unless an `access` rule says otherwise; each key may be
    /// named (`alice: age1…`) for reports.
    pub recipients: Recipients,
    /// Per-agent and per-group recipient sets; the first rule whose glob matches the agent
    /// (an `agents:` rule) or the shared group (a `groups:` rule) wins.
    #[serde(deserialize_with = "null_as_default")]
    pub access: Vec<AccessRule>,
    /// Delete platform keys that the manifest does not declare.
    pub prune: bool,
    /// A manifest key that `.env.example` does not list is an error (else a warning).
    pub strict: bool,
    /// Keys the platform injects itself: never declared, never deleted.
    #[serde(deserialize_with = "null_as_default")]
    pub unmanaged_keys: Vec<String>,
    /// Refuse a plan that deletes more than this share of an agent's keys.
    pub max_delete_fraction: f64,
    /// When reconcile finds drift, fix it (`false`: only report it).
    pub self_heal: bool,
    /// Redeploy an agent after its secrets change (`on-change`) or never; an `access` rule
    /// may set it per agent.
    pub redeploy: Redeploy,
    /// Values unchanged for longer than this are overdue for rotation (`audit`); an `access`
    /// rule may set it per agent or group, an `.env.example` per key (`# rotate: 30d`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rotate_after: Option<Period>,
    /// Where `castsync watch` reports: commit statuses, webhooks, chat.
    #[serde(deserialize_with = "null_as_default")]
    pub notify: Vec<NotifyEntry>,
    /// Staging, production…: each its own platform and overlays (none: one implicit
    /// environment, the top-level settings).
    #[serde(
        deserialize_with = "null_as_default",
        skip_serializing_if = "Environments::is_empty"
    )]
    pub environments: Environments,
}

/// When to redeploy an agent. Castari's `cast` CLI prints "Redeploy the agent to apply
/// changes" after `cast secrets set`/`delete` (SDK-confirmed CLI text), while the Secrets
/// docs say changes take effect on the next invocation; which one holds is not confirmed, so
/// the default sends nothing extra.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Redeploy {
    /// Never call the redeploy route.
    #[default]
    Never,
    /// One `POST /api/v1/agents/{slug}/redeploy` after an agent's changes land.
    OnChange,
}

/// `platform:` — where the Castari API is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PlatformConfig {
    /// Base URL (`https://…` or `local://PATH`); `CASTARI_API_URL` and `--api-url` override it.
    pub url: Option<String>,
    /// The environment variable holding the API key (default `CASTARI_API_KEY`);
    /// `--api-key-file` overrides it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key_env: Option<String>,
}

/// One `access:` rule: the agents (`agents:`) or the shared groups (`groups:`) whose name
/// matches the glob are encrypted to these recipients. A rule names exactly one of the two,
/// so an `agents: "*"` rule never reaches a shared group: groups are matched by `groups:`
/// rules only (and fall back to the top-level `recipients`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessRule {
    /// A glob over agent slugs, e.g. `billing-*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agents: Option<String>,
    /// A glob over shared group names (the directories under `shared_dir`), e.g. `openai`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<String>,
    /// The recipients for matching agents or groups (replacing the top-level `recipients`).
    pub recipients: Recipients,
    /// `redeploy` for matching agents (default: the top-level `redeploy`); not allowed in a
    /// `groups:` rule (a group is never deployed: the agents using it are).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redeploy: Option<Redeploy>,
    /// `rotate_after` for matching agents or groups (default: the top-level one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotate_after: Option<Period>,
}

impl AccessRule {
    /// What the rule's glob is over, and the glob: `("agents", …)` or `("groups", …)`.
    pub fn pattern(&self) -> (&'static str, &str) {
        match (&self.agents, &self.groups) {
            (Some(glob), _) => ("agents", glob),
            (None, Some(glob)) => ("groups", glob),
            // `validate` refuses a rule with neither; match nothing.
            (None, None) => ("agents", ""),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            version: VERSION,
            agents_dir: PathBuf::from("agents"),
            shared_dir: PathBuf::from("shared"),
            platform: PlatformConfig::default(),
            recipients: Recipients::default(),
            access: Vec::new(),
            prune: true,
            strict: true,
            unmanaged_keys: vec!["ANTHROPIC_API_KEY".to_owned()],
            max_delete_fraction: 0.5,
            self_heal: true,
            redeploy: Redeploy::Never,
            rotate_after: None,
            notify: Vec::new(),
            environments: Environments::new(),
        }
    }
}

/// Why the config could not be used. Each message names the file and the fix.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file exists but is not UTF-8 text.
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Not a regular file, leading outside the repository, too large, or unreadable.
    #[error(transparent)]
    Refused(crate::fsread::ReadError),
    /// A config file named explicitly (`--config`) does not exist.
    #[error("config file {} does not exist (check the --config path)", path.display())]
    NotFound { path: PathBuf },
    /// The file is not valid YAML (or has a duplicate key).
    #[error("{}: invalid YAML: {message}", path.display())]
    Syntax { path: PathBuf, message: String },
    /// Nested deeper than [`crate::yaml_depth::MAX_DEPTH`] (refused before parsing).
    #[error(
        "{}, line {line}, column {column}: the YAML is nested more than {} levels deep; castsync.yaml needs at most 4",
        path.display(),
        crate::yaml_depth::MAX_DEPTH
    )]
    TooDeep {
        path: PathBuf,
        line: usize,
        column: usize,
    },
    /// The document is not a mapping of settings.
    #[error("{}: the config must be a YAML mapping of settings", path.display())]
    NotAMapping { path: PathBuf },
    /// A field castsync does not know, at any level.
    #[error(
        "unknown field {field:?} in {}{}: {}{}",
        path.display(),
        under.as_ref().map(|u| format!(" (under {u})")).unwrap_or_default(),
        match suggestion {
            Some(s) => format!("did you mean {s:?}?"),
            None => format!("valid fields are {}", valid.join(", ")),
        },
        line.map(|l| format!(" (line {l})")).unwrap_or_default()
    )]
    UnknownField {
        path: PathBuf,
        field: String,
        under: Option<String>,
        line: Option<usize>,
        suggestion: Option<&'static str>,
        valid: &'static [&'static str],
    },
    /// A `version` other than the one this build reads.
    #[error(
        "{}: config version {found} is not supported: this castsync reads version {VERSION} (upgrade castsync, or write `version: 1`)",
        path.display()
    )]
    UnsupportedVersion { path: PathBuf, found: String },
    /// A field has the wrong type.
    #[error("{}: {message}", path.display())]
    Type { path: PathBuf, message: String },
    /// A field has a value outside its rules.
    #[error("{}: {field}: {problem}", path.display())]
    Invalid {
        path: PathBuf,
        field: String,
        problem: String,
    },
}

/// No fix beyond what the message says (it names the file, line and key); implemented so
/// findings and reports can be built from it like from any error that has one.
impl crate::hint::Hinted for ConfigError {
    fn hint(&self) -> Option<std::borrow::Cow<'_, str>> {
        match self {
            ConfigError::NotAMapping { .. } => Some(
                "write one `setting: value` per line, starting with `version: 1` (castsync's docs/config.md lists every setting)"
                    .into(),
            ),
            _ => None,
        }
    }
}

impl Config {
    /// Loads the config: `explicit` (which must exist) or `castsync.yaml` at `repo_root`
    /// (defaults when absent). A relative `explicit` path is taken as given, relative to the
    /// current directory.
    pub fn load(repo_root: &Path, explicit: Option<&Path>) -> Result<Config, ConfigError> {
        use crate::fsread::{self, MAX_REPO_FILE, ReadError};
        // The repository's own file must be a regular file inside it; a `--config` the user
        // names may be anywhere, but is still only read when it is a regular file.
        let (path, read) = match explicit {
            Some(p) => (p.to_path_buf(), fsread::read_file(p, MAX_REPO_FILE)),
            None => (
                repo_root.join(FILE_NAME),
                fsread::read_in_repo(repo_root, Path::new(FILE_NAME), MAX_REPO_FILE),
            ),
        };
        match read {
            Ok(bytes) => match fsread::text(bytes) {
                Ok(text) => Self::from_yaml(&text, &path),
                Err(_) => Err(ConfigError::Read {
                    path,
                    source: io::Error::new(io::ErrorKind::InvalidData, "not UTF-8 text"),
                }),
            },
            Err(ReadError::NotFound { .. }) if explicit.is_none() => Ok(Config::default()),
            Err(ReadError::NotFound { .. }) => Err(ConfigError::NotFound { path }),
            Err(e) => Err(ConfigError::Refused(e)),
        }
    }

    /// Parses and checks a config text; `path` is only used in messages. A byte order mark
    /// at the start is ignored.
    pub fn from_yaml(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let path = path.to_path_buf();
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        // Before any parse: libyaml's time grows faster than linearly with nesting.
        match crate::yaml_depth::check(text) {
            Ok(()) => {}
            Err(crate::yaml_depth::DepthError::TooDeep { line, column }) => {
                return Err(ConfigError::TooDeep { path, line, column });
            }
            Err(crate::yaml_depth::DepthError::Syntax {
                line,
                column,
                problem,
            }) => {
                return Err(ConfigError::Syntax {
                    path,
                    message: format!("{problem} at line {line} column {column}"),
                });
            }
        }
        // Parsing into a `Value` first refuses duplicate keys and lets us check the version
        // and the field names before the types.
        let value: serde_yaml::Value =
            serde_yaml::from_str(text).map_err(|e| ConfigError::Syntax {
                path: path.clone(),
                message: e.to_string(),
            })?;
        let map = match &value {
            serde_yaml::Value::Null => return Ok(Config::default()),
            serde_yaml::Value::Mapping(map) => map,
            _ => return Err(ConfigError::NotAMapping { path }),
        };
        check_version(map, &path)?;
        check_fields(map, text, &path)?;
        let config: Config = serde_yaml::from_str(text).map_err(|e| ConfigError::Type {
            path: path.clone(),
            message: e.to_string(),
        })?;
        config.validate(&path)?;
        Ok(config)
    }

    /// The recipients an agent's manifest is encrypted to: the first `access` rule whose glob
    /// matches the slug, else the top-level `recipients`.
    pub fn recipients_for(&self, agent: &str) -> &Recipients {
        self.rule_for(agent)
            .map_or(&self.recipients, |rule| &rule.recipients)
    }

    /// Whether to redeploy an agent after its changes: the `redeploy` of the first `access`
    /// rule that matches the slug (the same rule that assigns its recipients), when that rule
    /// sets one, else the top-level `redeploy`.
    pub fn redeploy_for(&self, agent: &str) -> Redeploy {
        self.rule_for(agent)
            .and_then(|rule| rule.redeploy)
            .unwrap_or(self.redeploy)
    }

    /// Whether `agent` is redeployed after its changes land: `overridden` (`--redeploy` or
    /// `--no-redeploy`) when given, else [`Config::redeploy_for`] is `on-change`.
    pub fn redeploys(&self, agent: &str, overridden: Option<bool>) -> bool {
        overridden.unwrap_or(self.redeploy_for(agent) == Redeploy::OnChange)
    }

    /// The recipients a shared group's manifest is encrypted to: the first `groups:` rule
    /// whose glob matches the group name, else the top-level `recipients`.
    pub fn recipients_for_group(&self, group: &str) -> &Recipients {
        self.matching_rule(group, |rule| rule.groups.as_deref())
            .map_or(&self.recipients, |rule| &rule.recipients)
    }

    /// How long an agent's values may stay unchanged, and where that is set: the
    /// `rotate_after` of the first `access` rule matching the slug (`access[i]`), when it
    /// sets one, else the top-level one (`rotate_after`).
    pub fn rotate_after_for(&self, agent: &str) -> Option<(Period, String)> {
        self.rotation(agent, |rule| rule.agents.as_deref())
    }

    /// [`Config::rotate_after_for`] for a shared group (`groups:` rules).
    pub fn rotate_after_for_group(&self, group: &str) -> Option<(Period, String)> {
        self.rotation(group, |rule| rule.groups.as_deref())
    }

    fn rotation(
        &self,
        name: &str,
        glob_of: impl Fn(&AccessRule) -> Option<&str>,
    ) -> Option<(Period, String)> {
        let rule = self.matching_rule(name, glob_of);
        match rule.and_then(|rule| Some((rule, rule.rotate_after?))) {
            Some((rule, period)) => {
                let i = self.access.iter().position(|r| std::ptr::eq(r, rule));
                Some((period, format!("access[{}].rotate_after", i.unwrap_or(0))))
            }
            None => self.rotate_after.map(|p| (p, "rotate_after".to_owned())),
        }
    }

    /// Whether any rotation period is set in the config (`.env.example` files may set more).
    pub fn has_rotation_policy(&self) -> bool {
        self.rotate_after.is_some() || self.access.iter().any(|r| r.rotate_after.is_some())
    }

    /// The names given to recipients anywhere in the file.
    pub fn names(&self) -> Names {
        let mut names = Names::default();
        for (_, list) in self.recipient_lists() {
            names.add(list);
        }
        names
    }

    /// Every recipient list with its field name: `recipients`, then `access[i].recipients`,
    /// then each environment's (`environments.NAME.recipients`, its `access[i].recipients`).
    pub fn recipient_lists(&self) -> impl Iterator<Item = (String, &Recipients)> {
        let mut lists = vec![("recipients".to_owned(), &self.recipients)];
        lists.extend(rule_lists("", &self.access));
        for (name, env) in &self.environments {
            if let Some(list) = &env.recipients {
                lists.push((format!("environments.{name}.recipients"), list));
            }
            lists.extend(rule_lists(&format!("environments.{name}."), &env.access));
        }
        lists.into_iter()
    }

    fn rule_for(&self, agent: &str) -> Option<&AccessRule> {
        self.matching_rule(agent, |rule| rule.agents.as_deref())
    }

    fn matching_rule(
        &self,
        name: &str,
        glob_of: impl Fn(&AccessRule) -> Option<&str>,
    ) -> Option<&AccessRule> {
        matching_rule(&self.access, name, glob_of)
    }

    fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |field: &str, problem: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            field: field.to_owned(),
            problem,
        };
        if !(0.0..=1.0).contains(&self.max_delete_fraction) {
            return Err(invalid(
                "max_delete_fraction",
                format!(
                    "must be between 0 and 1 (a share of an agent's keys), not {}",
                    self.max_delete_fraction
                ),
            ));
        }
        if let Some(problem) = agents_dir_problem(&self.agents_dir) {
            return Err(invalid("agents_dir", problem.to_owned()));
        }
        if let Some(problem) = agents_dir_problem(&self.shared_dir) {
            return Err(invalid("shared_dir", problem.replace("agents", "shared")));
        }
        if self.shared_dir == self.agents_dir {
            return Err(invalid(
                "shared_dir",
                format!(
                    "must differ from agents_dir ({}): a shared group's folder is not an agent's",
                    self.agents_dir.display()
                ),
            ));
        }
        check_recipient_lists(self, path)?;
        if let Some((field, problem)) = access_problem(&self.access) {
            return Err(invalid(&field, problem));
        }
        if let Some(var) = &self.platform.api_key_env
            && let Some(problem) = environments::api_key_env_problem(var)
        {
            return Err(invalid("platform.api_key_env", problem));
        }
        if let Some(problem) = self
            .platform
            .url
            .as_deref()
            .and_then(environments::url_problem)
        {
            return Err(invalid("platform.url", problem));
        }
        if let Some((field, problem)) = environments::problem(self) {
            return Err(invalid(&field, problem));
        }
        for (i, entry) in self.notify.iter().enumerate() {
            if let Some((at, problem)) = entry.problem() {
                return Err(invalid(&format!("notify[{i}]{at}"), problem));
            }
        }
        for (i, key) in self.unmanaged_keys.iter().enumerate() {
            if let Err(e) = crate::names::validate_key(key) {
                return Err(invalid(&format!("unmanaged_keys[{i}]"), e.to_string()));
            }
        }
        Ok(())
    }
}

/// The recipients of each rule of `rules`, named `UNDERaccess[i].recipients`.
fn rule_lists<'c>(under: &str, rules: &'c [AccessRule]) -> Vec<(String, &'c Recipients)> {
    rules
        .iter()
        .enumerate()
        .map(|(i, rule)| (format!("{under}access[{i}].recipients"), &rule.recipients))
        .collect()
}

/// The first rule of `rules` whose glob (the one `glob_of` picks: `agents:` or `groups:`)
/// matches `name`.
fn matching_rule<'r>(
    rules: &'r [AccessRule],
    name: &str,
    glob_of: impl Fn(&AccessRule) -> Option<&str>,
) -> Option<&'r AccessRule> {
    rules.iter().find(|rule| {
        glob_of(rule).is_some_and(|g| glob::Pattern::new(g).is_ok_and(|p| p.matches(name)))
    })
}

/// The first bad rule of an `access:` list: the field (`access[i]…`) and the problem.
fn access_problem(rules: &[AccessRule]) -> Option<(String, String)> {
    for (i, rule) in rules.iter().enumerate() {
        let at = |field: &str| format!("access[{i}]{field}");
        match (&rule.agents, &rule.groups) {
            (Some(_), Some(_)) => {
                return Some((
                    at(""),
                    "names both `agents:` and `groups:`; a rule covers agents or shared groups, not both: split it into two rules".to_owned(),
                ));
            }
            (None, None) => {
                return Some((
                    at(""),
                    "names neither `agents:` nor `groups:`: add `agents: \"GLOB\"` (agent slugs) or `groups: \"GLOB\"` (shared groups)".to_owned(),
                ));
            }
            _ => {}
        }
        let (over, glob) = rule.pattern();
        if let Err(e) = glob::Pattern::new(glob) {
            return Some((
                at(&format!(".{over}")),
                format!("{glob:?} is not a valid glob: {}", e.msg),
            ));
        }
        if over == "groups" && rule.redeploy.is_some() {
            return Some((
                at(".redeploy"),
                "a `groups:` rule cannot set redeploy: a shared group is never deployed, the agents using it are; set redeploy in the agents' rule".to_owned(),
            ));
        }
        if rule.recipients.is_empty() {
            return Some((
                at(".recipients"),
                format!(
                    "the rule for {glob:?} lists no recipients, so nobody could decrypt those {over}; add at least one"
                ),
            ));
        }
    }
    None
}

/// Every key is a recipient, every name well formed, and a name stands for one key (and a
/// key has one name) across the whole file. Messages name the field, never a bad key.
fn check_recipient_lists(config: &Config, path: &Path) -> Result<(), ConfigError> {
    let invalid = |field: String, problem: String| ConfigError::Invalid {
        path: path.to_path_buf(),
        field,
        problem,
    };
    // name -> (key, where), key -> (name, where)
    let mut keys_of: std::collections::BTreeMap<&str, (String, String)> = Default::default();
    let mut names_of: std::collections::BTreeMap<String, (&str, String)> = Default::default();
    for (field, list) in config.recipient_lists() {
        for (j, (name, key)) in list.entries().enumerate() {
            let at = format!("{field}[{j}]");
            // The name first: swapped `KEY: NAME` reads best as "the name looks like a key".
            if let Some(problem) = name.and_then(recipients::name_problem) {
                return Err(invalid(at, problem.to_owned()));
            }
            if let Some(problem) = recipient_problem(key) {
                return Err(invalid(at, problem.to_owned()));
            }
            let Some(name) = name else { continue };
            let key = recipients::canonical(key);
            if let Some((other, first)) = keys_of.get(name)
                && *other != key
            {
                return Err(invalid(
                    at,
                    format!(
                        "the name {name:?} stands for another key at {first}: a name is one person or machine; give this key its own name"
                    ),
                ));
            }
            if let Some((other, first)) = names_of.get(&key)
                && *other != name
            {
                return Err(invalid(
                    at,
                    format!(
                        "this key is named {other:?} at {first}: a key has one name; use {other:?} here too"
                    ),
                ));
            }
            keys_of.insert(name, (key.clone(), at.clone()));
            names_of.insert(key, (name, at));
        }
    }
    Ok(())
}

/// `null` (e.g. a list whose items are all commented out) means the default.
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Option::<T>::deserialize(deserializer).map(Option::unwrap_or_default)
}

fn check_version(map: &serde_yaml::Mapping, path: &Path) -> Result<(), ConfigError> {
    let Some(version) = map.get("version") else {
        return Ok(());
    };
    if version.as_u64() == Some(u64::from(VERSION)) {
        return Ok(());
    }
    let found = match version {
        serde_yaml::Value::Number(n) => n.to_string(),
        serde_yaml::Value::String(s) => format!("{s:?}"),
        serde_yaml::Value::Null => "null".to_owned(),
        serde_yaml::Value::Bool(b) => b.to_string(),
        _ => "(not a number)".to_owned(),
    };
    Err(ConfigError::UnsupportedVersion {
        path: path.to_path_buf(),
        found,
    })
}

/// Refuses unknown field names at every level, with a suggestion.
fn check_fields(map: &serde_yaml::Mapping, text: &str, path: &Path) -> Result<(), ConfigError> {
    check_map(map, fields_of::<Config>(), None, text, path)?;
    if let Some(serde_yaml::Value::Mapping(platform)) = map.get("platform") {
        check_map(
            platform,
            fields_of::<PlatformConfig>(),
            Some("platform".into()),
            text,
            path,
        )?;
    }
    check_access_fields(map, "", text, path)?;
    check_environment_fields(map, text, path)?;
    if let Some(serde_yaml::Value::Sequence(entries)) = map.get("notify") {
        for (i, entry) in entries.iter().enumerate() {
            let serde_yaml::Value::Mapping(entry) = entry else {
                continue;
            };
            check_map(
                entry,
                fields_of::<NotifyEntry>(),
                Some(format!("notify[{i}]")),
                text,
                path,
            )?;
            for (kind, target) in entry {
                let (Some(kind), serde_yaml::Value::Mapping(target)) = (kind.as_str(), target)
                else {
                    continue;
                };
                let valid = match kind {
                    "webhook" => fields_of::<WebhookTarget>(),
                    "slack" => fields_of::<SlackTarget>(),
                    _ => fields_of::<CommitStatus>(),
                };
                check_map(
                    target,
                    valid,
                    Some(format!("notify[{i}].{kind}")),
                    text,
                    path,
                )?;
            }
        }
    }
    Ok(())
}

/// The fields of each rule of the `access:` list in `map` (`under` prefixes the field names
/// in messages).
fn check_access_fields(
    map: &serde_yaml::Mapping,
    under: &str,
    text: &str,
    path: &Path,
) -> Result<(), ConfigError> {
    if let Some(serde_yaml::Value::Sequence(rules)) = map.get("access") {
        for (i, rule) in rules.iter().enumerate() {
            if let serde_yaml::Value::Mapping(rule) = rule {
                let under = Some(format!("{under}access[{i}]"));
                check_map(rule, fields_of::<AccessRule>(), under, text, path)?;
            }
        }
    }
    Ok(())
}

/// The fields of each environment under `environments:`, its `platform:` and its `access:`.
fn check_environment_fields(
    map: &serde_yaml::Mapping,
    text: &str,
    path: &Path,
) -> Result<(), ConfigError> {
    let Some(serde_yaml::Value::Mapping(envs)) = map.get("environments") else {
        return Ok(());
    };
    for (name, env) in envs {
        let (Some(name), serde_yaml::Value::Mapping(env)) = (name.as_str(), env) else {
            continue;
        };
        let under = format!("environments.{}", crate::escape::terminal(name));
        check_map(
            env,
            fields_of::<EnvironmentConfig>(),
            Some(under.clone()),
            text,
            path,
        )?;
        if let Some(serde_yaml::Value::Mapping(platform)) = env.get("platform") {
            let at = Some(format!("{under}.platform"));
            check_map(platform, fields_of::<PlatformConfig>(), at, text, path)?;
        }
        check_access_fields(env, &format!("{under}."), text, path)?;
    }
    Ok(())
}

fn check_map(
    map: &serde_yaml::Mapping,
    valid: &'static [&'static str],
    under: Option<String>,
    text: &str,
    path: &Path,
) -> Result<(), ConfigError> {
    for key in map.keys() {
        let field = match key {
            serde_yaml::Value::String(s) => s.clone(),
            other => serde_yaml::to_string(other)
                .map_or_else(|_| "?".to_owned(), |s| s.trim().to_owned()),
        };
        if !valid.contains(&field.as_str()) {
            return Err(ConfigError::UnknownField {
                path: path.to_path_buf(),
                line: line_of_field(text, &field),
                suggestion: crate::suggest::nearest(&field, valid),
                field,
                under,
                valid,
            });
        }
    }
    Ok(())
}

/// The first line that starts a mapping entry named `field` (for messages only).
fn line_of_field(text: &str, field: &str) -> Option<usize> {
    text.lines()
        .position(|line| {
            let t = line.trim_start().trim_start_matches("- ").trim_start();
            t.strip_prefix(field)
                .is_some_and(|rest| rest.trim_start().starts_with(':'))
        })
        .map(|i| i + 1)
}

fn agents_dir_problem(dir: &Path) -> Option<&'static str> {
    if dir.as_os_str().is_empty() {
        return Some("must not be empty (the default is `agents`)");
    }
    for component in dir.components() {
        match component {
            Component::Prefix(_) | Component::RootDir => {
                return Some(
                    "must be a path relative to the repository root, not an absolute path",
                );
            }
            Component::ParentDir => {
                return Some("must stay inside the repository: `..` is not allowed");
            }
            Component::CurDir | Component::Normal(_) => {}
        }
    }
    None
}

/// A syntactic check of one recipient line (the real parse belongs to `crypto`). The message
/// never repeats the recipient: a private key pasted here by mistake must not be printed.
pub fn recipient_problem(recipient: &str) -> Option<&'static str> {
    let r = recipient.trim();
    if r.to_ascii_uppercase().starts_with("AGE-SECRET-KEY-") || r.contains("PRIVATE KEY") {
        return Some(
            "this is a private key (an identity), not a recipient: remove it from castsync.yaml, treat it as leaked, and list its public key instead (age-keygen -y prints it)",
        );
    }
    if let Some(rest) = r.strip_prefix("age1") {
        if rest.len() >= 10
            && rest
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        {
            return None;
        }
        return Some(
            "looks like an age recipient but is malformed: expected age1 followed by lowercase letters and digits",
        );
    }
    let mut parts = r.split_ascii_whitespace();
    if let (Some("ssh-ed25519" | "ssh-rsa"), Some(blob)) = (parts.next(), parts.next()) {
        let base64 = blob
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='));
        if blob.starts_with("AAAA") && base64 {
            return None;
        }
        return Some("looks like an SSH public key but its key data is malformed");
    }
    Some(
        "not a recipient: expected an age recipient (age1…) or an SSH public key line (ssh-ed25519 … or ssh-rsa …)",
    )
}
