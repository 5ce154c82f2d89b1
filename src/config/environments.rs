//! `environments:` in `castsync.yaml`: each environment's platform (its URL and the variable
//! holding its API key), how agent names map to platform slugs there, and who can read its
//! overlays (`secrets.ENV.yaml.age`).
//!
//! Without `environments:` a repository has one implicit environment and nothing here
//! applies: the top-level settings are used as they always were.

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use super::{AccessRule, Config, PlatformConfig, Recipients, null_as_default};
use crate::environment::{self, Environment};

/// The placeholder an `agent_slug` template replaces with the agent's name.
pub const AGENT_PLACEHOLDER: &str = "{agent}";

/// Declared environments, in the order the file lists them (the order runs take them in).
pub type Environments = IndexMap<String, EnvironmentConfig>;

/// One environment: where it lands and who reads its overlays.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EnvironmentConfig {
    /// Its platform; each field falls back to the top-level `platform:`.
    #[serde(deserialize_with = "null_as_default")]
    pub platform: PlatformConfig,
    /// The platform slug of each agent in this environment, e.g. `{agent}-staging` (default:
    /// the agent's name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_slug: Option<String>,
    /// Who can decrypt this environment's overlays (default: the recipients of the file the
    /// overlay is layered on).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recipients: Option<Recipients>,
    /// Per-agent and per-group recipients of this environment's overlays; the first rule
    /// that matches wins, before `recipients`.
    #[serde(deserialize_with = "null_as_default")]
    pub access: Vec<AccessRule>,
}

/// A `--env` that names no declared environment, or `--env` in a repository without any.
#[derive(Debug, thiserror::Error)]
pub enum EnvironmentError {
    /// The name is not among `environments:`.
    #[error("environment {name:?} is not declared in castsync.yaml")]
    Unknown { name: String, declared: Vec<String> },
    /// `--env` in a repository without `environments:`.
    #[error("--env {name}: castsync.yaml declares no environments")]
    NoneDeclared { name: String },
    /// A command that works on one environment was given several.
    #[error("{command} works on one environment at a time, and {count} were given")]
    OneOnly { command: String, count: usize },
    /// A command that works on one environment was given none, and several are declared.
    #[error("{command} needs to know which environment: castsync.yaml declares {}", declared.join(", "))]
    Which {
        command: String,
        declared: Vec<String>,
    },
}

impl crate::hint::Hinted for EnvironmentError {
    fn hint(&self) -> Option<std::borrow::Cow<'_, str>> {
        Some(match self {
            EnvironmentError::Unknown { name, declared } => {
                let names: Vec<&str> = declared.iter().map(String::as_str).collect();
                match crate::suggest::nearest(name, &names) {
                    Some(near) => format!("did you mean --env {near}?").into(),
                    None => format!("declared environments: {}", declared.join(", ")).into(),
                }
            }
            EnvironmentError::NoneDeclared { .. } => {
                "leave out --env, or declare environments under `environments:` in castsync.yaml (docs/environments.md)".into()
            }
            EnvironmentError::OneOnly { .. } => "pass --env once".into(),
            EnvironmentError::Which { declared, .. } => format!(
                "pass --env {}",
                declared.first().map_or("ENV", String::as_str)
            )
            .into(),
        })
    }
}

impl Config {
    /// Whether the file declares environments (else there is one implicit environment).
    pub fn has_environments(&self) -> bool {
        !self.environments.is_empty()
    }

    /// The environments a run covers: those named by `--env` (each must be declared), else
    /// every declared one, else the implicit one.
    pub fn environments_in_run(
        &self,
        requested: &[String],
    ) -> Result<Vec<Environment>, EnvironmentError> {
        if requested.is_empty() {
            return Ok(self.all_environments());
        }
        let mut out: Vec<Environment> = Vec::new();
        for name in requested {
            let env = self.environment_named(name)?;
            if !out.contains(&env) {
                out.push(env);
            }
        }
        Ok(out)
    }

    /// The one environment a command works on (`run`, `export`, `set --env`…): the one
    /// `--env` names, else the implicit one, else (several declared, none named) the
    /// question which.
    pub fn one_environment(
        &self,
        command: &str,
        requested: Option<&str>,
        required: bool,
    ) -> Result<Environment, EnvironmentError> {
        match requested {
            Some(name) => self.environment_named(name),
            None if !required || !self.has_environments() => Ok(Environment::IMPLICIT),
            None => Err(EnvironmentError::Which {
                command: command.to_owned(),
                declared: self.environments.keys().cloned().collect(),
            }),
        }
    }

    /// The layers of a manifest a command that rewrites files covers (`rekey`): the file
    /// every environment shares and every environment's overlay, or with `--env` only the
    /// overlays of the environments named.
    pub fn layers_in_run(
        &self,
        requested: &[String],
    ) -> Result<Vec<Environment>, EnvironmentError> {
        if !requested.is_empty() {
            return self.environments_in_run(requested);
        }
        let mut all = vec![Environment::IMPLICIT];
        all.extend(
            self.all_environments()
                .into_iter()
                .filter(|e| !e.is_implicit()),
        );
        Ok(all)
    }

    /// Every declared environment in file order, or the implicit one.
    pub fn all_environments(&self) -> Vec<Environment> {
        if self.environments.is_empty() {
            return vec![Environment::IMPLICIT];
        }
        self.environments
            .keys()
            .map(|n| Environment::named(n.clone()))
            .collect()
    }

    fn environment_named(&self, name: &str) -> Result<Environment, EnvironmentError> {
        if self.environments.is_empty() {
            return Err(EnvironmentError::NoneDeclared {
                name: crate::escape::terminal(name).into_owned(),
            });
        }
        if !self.environments.contains_key(name) {
            return Err(EnvironmentError::Unknown {
                name: crate::escape::terminal(name).into_owned(),
                declared: self.environments.keys().cloned().collect(),
            });
        }
        Ok(Environment::named(name))
    }

    /// The settings of a declared environment (`None` for the implicit one).
    pub fn environment(&self, env: &Environment) -> Option<&EnvironmentConfig> {
        self.environments.get(env.name()?)
    }

    /// The platform URL the config names for `env`: its own, else the top-level one.
    pub fn platform_url(&self, env: &Environment) -> Option<&str> {
        self.environment(env)
            .and_then(|e| e.platform.url.as_deref())
            .or(self.platform.url.as_deref())
    }

    /// The environment variable holding `env`'s API key: its own `api_key_env`, else the
    /// top-level one, else `CASTARI_API_KEY`.
    pub fn api_key_env(&self, env: &Environment) -> &str {
        self.environment(env)
            .and_then(|e| e.platform.api_key_env.as_deref())
            .or(self.platform.api_key_env.as_deref())
            .unwrap_or(super::DEFAULT_API_KEY_ENV)
    }

    /// The `agent_slug` template of `env`, when it maps names.
    pub fn slug_template(&self, env: &Environment) -> Option<&str> {
        self.environment(env)?.agent_slug.as_deref()
    }

    /// The recipients of an agent's overlay in `env`: the first of the environment's
    /// `agents:` rules that matches, else its `recipients`, else the agent's own recipients.
    /// The implicit environment has no overlays: its answer is the agent's recipients.
    pub fn overlay_recipients_for(&self, env: &Environment, agent: &str) -> &Recipients {
        self.overlay_recipients(env, agent, |r| r.agents.as_deref())
            .unwrap_or_else(|| self.recipients_for(agent))
    }

    /// [`Config::overlay_recipients_for`] of a shared group (`groups:` rules).
    pub fn overlay_recipients_for_group(&self, env: &Environment, group: &str) -> &Recipients {
        self.overlay_recipients(env, group, |r| r.groups.as_deref())
            .unwrap_or_else(|| self.recipients_for_group(group))
    }

    fn overlay_recipients(
        &self,
        env: &Environment,
        name: &str,
        glob_of: impl Fn(&AccessRule) -> Option<&str>,
    ) -> Option<&Recipients> {
        let settings = self.environment(env)?;
        if let Some(rule) = super::matching_rule(&settings.access, name, glob_of) {
            return Some(&rule.recipients);
        }
        settings.recipients.as_ref()
    }
}

/// The platform slug of `agent` under `template` (`{agent}` replaced by the name).
pub fn apply_slug_template(template: &str, agent: &str) -> String {
    template.replace(AGENT_PLACEHOLDER, agent)
}

/// Checks every declared environment; returns the field and the problem of the first bad one.
pub(super) fn problem(config: &Config) -> Option<(String, String)> {
    for (name, env) in &config.environments {
        let at = |field: &str| format!("environments.{name}{field}");
        if let Some(problem) = environment::name_problem(name) {
            return Some((
                format!("environments.{}", crate::escape::terminal(name)),
                problem,
            ));
        }
        if let Some(template) = &env.agent_slug
            && let Some(problem) = template_problem(template)
        {
            return Some((at(".agent_slug"), problem));
        }
        if let Some(var) = &env.platform.api_key_env
            && let Some(problem) = api_key_env_problem(var)
        {
            return Some((at(".platform.api_key_env"), problem));
        }
        if let Some(problem) = env.platform.url.as_deref().and_then(url_problem) {
            return Some((at(".platform.url"), problem));
        }
        // Each recipient's form is checked with every other list (`check_recipient_lists`).
        if env.recipients.as_ref().is_some_and(Recipients::is_empty) {
            return Some((
                at(".recipients"),
                "lists no recipients, so nobody could decrypt this environment's overlays; add at least one, or leave it out to use the agents' own".to_owned(),
            ));
        }
        if let Some((field, problem)) = super::access_problem(&env.access) {
            return Some((at(&format!(".{field}")), problem));
        }
    }
    collision(config)
}

/// Two environments that would write the same agents of the same platform.
fn collision(config: &Config) -> Option<(String, String)> {
    let envs = config.all_environments();
    for (i, a) in envs.iter().enumerate() {
        for b in &envs[i + 1..] {
            let same_url = same_platform(config.platform_url(a), config.platform_url(b));
            if same_url && config.slug_template(a) == config.slug_template(b) {
                return Some((
                    format!("environments.{b}"),
                    format!(
                        "writes the same agents on the same platform as environment {a}: give each environment its own platform.url, or an agent_slug such as \"{{agent}}-{b}\""
                    ),
                ));
            }
        }
    }
    None
}

/// Whether two configured URLs (absent: the default) name the same platform.
pub fn same_platform(a: Option<&str>, b: Option<&str>) -> bool {
    let norm = |u: Option<&str>| {
        u.map(str::trim)
            .filter(|u| !u.is_empty())
            .unwrap_or(super::DEFAULT_PLATFORM_URL)
            .trim_end_matches('/')
            .to_ascii_lowercase()
    };
    norm(a) == norm(b)
}

fn template_problem(template: &str) -> Option<String> {
    if !template.contains(AGENT_PLACEHOLDER) {
        return Some(format!(
            "must contain {AGENT_PLACEHOLDER} (the agent's name), e.g. \"{AGENT_PLACEHOLDER}-staging\": without it every agent would be the same platform agent"
        ));
    }
    let sample = apply_slug_template(template, "a");
    crate::names::validate_slug(&sample).err().map(|_| {
        format!(
            "{:?} does not make valid platform slugs (1-63 characters from a-z, 0-9, '.', '_', '-', around {AGENT_PLACEHOLDER})",
            crate::escape::terminal(template)
        )
    })
}

/// An API key variable: a plain name, and not one of castsync's own secrets (the age key
/// must never be sent to a platform as a bearer token).
/// An empty `platform.url`: it would read as unset and quietly fall back to the default
/// platform (or another environment's), which is never what was meant.
pub(super) fn url_problem(url: &str) -> Option<String> {
    url.trim().is_empty().then(|| {
        format!(
            "is empty: give the API's URL (e.g. {} or local://PATH), or remove the line to use the default",
            super::DEFAULT_PLATFORM_URL
        )
    })
}

pub(super) fn api_key_env_problem(var: &str) -> Option<String> {
    let plain = var
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !plain {
        return Some(format!(
            "{:?} is not an environment variable name (letters, digits and _)",
            crate::escape::terminal(var)
        ));
    }
    if var.to_ascii_uppercase().starts_with("CASTSYNC_") {
        return Some(format!(
            "{var} is one of castsync's own variables (its identities), never an API key: name the variable holding this platform's key, e.g. CASTARI_API_KEY_STAGING"
        ));
    }
    None
}
