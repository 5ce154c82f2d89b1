//! Where a reconcile lands and as whom: the platform, the state file and the identities,
//! resolved from flags, environment and the checkout's config. `reconcile` and `watch` build
//! it through the same functions, so they can never disagree about which platform or which
//! state file a repository means.
//!
//! Nothing here sends a request: opening the platform is the caller's step. The API key is
//! read only for an HTTP platform and is never logged.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;

use crate::config::Config;
use crate::crypto::{CryptoError, Env, Identities};
use crate::environment::Environment;
use crate::platform::{self, OpenError, Platform, PlatformOptions};

/// The state under a repository root, unless `--state` names another: the database, beside
/// the `state.json` of castsync before 0.2 (see `state::StorePaths`).
pub const STATE_FILE: &str = ".castsync/state.db";

/// The state of a daemon that follows a remote, inside that remote's data directory.
pub const MIRROR_STATE_FILE: &str = "state.db";

/// What flags and the environment say about the platform, before any config is read.
#[derive(Debug, Clone, Default)]
pub struct PlatformChoice {
    /// `--api-url` (it beats `CASTARI_API_URL` and the config's `platform.url`).
    pub api_url: Option<String>,
    /// `--api-key-file` (else `CASTARI_API_KEY`).
    pub api_key_file: Option<PathBuf>,
    /// `--allow-insecure-http`.
    pub allow_insecure_http: bool,
    /// `--request-timeout` (None: the client's default).
    pub request_timeout: Option<Duration>,
}

/// What the command line says about a target: identities, state file, platform.
#[derive(Debug, Clone, Default)]
pub struct TargetOptions {
    /// `-i FILE`s, tried before the environment and the default key file.
    pub identity_files: Vec<PathBuf>,
    /// `CASTSYNC_AGE_KEY` and `CASTSYNC_AGE_KEY_FILE` as the command line read them (None:
    /// the process environment).
    pub identity_env: Option<Env>,
    /// `--state FILE`.
    pub state_file: Option<PathBuf>,
    pub platform: PlatformChoice,
}

/// A resolved target. The platform's URL depends on the config, which for the daemon
/// changes with each commit: [`Target::platform`] resolves it against a checkout's config.
pub struct Target {
    pub identities: Identities,
    pub state_path: PathBuf,
    /// The environment a daemon follows (`watch --env`); the implicit one otherwise.
    /// `reconcile`, which runs several, asks [`Target::platform_in`] for each.
    pub environment: Environment,
    platform: PlatformChoice,
    /// Where a relative `local://PATH` is resolved: the repository root, or the data dir of
    /// a followed remote.
    base_dir: PathBuf,
}

impl Target {
    /// The target of the repository at `root`: state in `ROOT/.castsync/state.db`, a
    /// relative `local://PATH` relative to the root (so `-C` works from anywhere).
    pub fn for_repository(options: TargetOptions, root: &Path) -> Result<Target, CryptoError> {
        Self::resolve(options, root, STATE_FILE)
    }

    /// The target of a followed remote whose clone lives in `dir`: state in `DIR/state.db`.
    pub fn for_mirror(options: TargetOptions, dir: &Path) -> Result<Target, CryptoError> {
        Self::resolve(options, dir, MIRROR_STATE_FILE)
    }

    fn resolve(options: TargetOptions, base: &Path, state: &str) -> Result<Target, CryptoError> {
        let env = options.identity_env.unwrap_or_else(Env::from_process);
        let identities = Identities::discover_with(&options.identity_files, &env)?;
        Ok(Target {
            identities,
            state_path: options.state_file.unwrap_or_else(|| base.join(state)),
            environment: Environment::IMPLICIT,
            platform: options.platform,
            base_dir: base.to_path_buf(),
        })
    }

    /// The platform for a checkout whose config is `config`: `--api-url`, then
    /// `CASTARI_API_URL`, then `platform.url`, then the default. Reads the API key only
    /// when the platform is reached over HTTP.
    pub fn platform(&self, config: &Config) -> Result<PlatformTarget, OpenError> {
        self.platform_in(config, &self.environment)
    }

    /// This target for one environment: its platform ([`Target::platform`]) and its own
    /// state file (and so history).
    pub fn in_environment(self, env: Environment) -> Target {
        Target {
            state_path: env.state_path(&self.state_path),
            environment: env,
            ..self
        }
    }

    /// [`Target::platform`] of environment `env`: its `platform.url` and the variable its
    /// `api_key_env` names, its `agent_slug` mapping.
    pub fn platform_in(
        &self,
        config: &Config,
        env: &Environment,
    ) -> Result<PlatformTarget, OpenError> {
        self.platform.resolve_in(config, env, &self.base_dir)
    }

    /// The state file of environment `env` (the one `--state` or the default names, for a
    /// repository without environments).
    pub fn state_path_in(&self, env: &Environment) -> PathBuf {
        env.state_path(&self.state_path)
    }

    /// The flags that name one platform (`--api-url`, `CASTARI_API_URL`, `--api-key-file`),
    /// when any is given: a run over several environments cannot use them.
    pub fn platform_flag(&self) -> Option<&'static str> {
        if self.platform.api_url.is_some() {
            Some("--api-url (or CASTARI_API_URL)")
        } else if self.platform.api_key_file.is_some() {
            Some("--api-key-file")
        } else {
            None
        }
    }
}

impl PlatformChoice {
    /// The platform these flags and `config` name: `--api-url`, then `CASTARI_API_URL`, then
    /// `platform.url`, then the default; a relative `local://PATH` is taken under
    /// `base_dir`. Reads the API key only when the platform is reached over HTTP. Needs no
    /// identity, so `doctor` checks the platform even when the identities are broken.
    pub fn resolve(&self, config: &Config, base_dir: &Path) -> Result<PlatformTarget, OpenError> {
        self.resolve_in(config, &Environment::IMPLICIT, base_dir)
    }

    /// [`PlatformChoice::resolve`] for environment `env` (its URL, key variable and slug
    /// mapping; the implicit environment's are the top-level settings).
    pub fn resolve_in(
        &self,
        config: &Config,
        env: &Environment,
        base_dir: &Path,
    ) -> Result<PlatformTarget, OpenError> {
        let mut url = platform::resolve_url(self.api_url.as_deref(), config.platform_url(env));
        if let Some(path) = url.strip_prefix(platform::LOCAL_SCHEME)
            && Path::new(path).is_relative()
        {
            url = format!(
                "{}{}",
                platform::LOCAL_SCHEME,
                base_dir.join(path).display()
            );
        }
        let api_key_var = config.api_key_env(env).to_owned();
        let api_key = if url.starts_with(platform::LOCAL_SCHEME) {
            None
        } else {
            platform::read_api_key_from(self.api_key_file.as_deref(), &api_key_var)?
        };
        Ok(PlatformTarget {
            url,
            api_key,
            api_key_var,
            slug_template: config.slug_template(env).map(str::to_owned),
            allow_insecure_http: self.allow_insecure_http,
            request_timeout: self.request_timeout,
        })
    }
}

/// A platform resolved but not yet opened.
pub struct PlatformTarget {
    /// `https://…`, `http://…` or `local://ABSOLUTE-PATH`.
    pub url: String,
    api_key: Option<SecretString>,
    api_key_var: String,
    /// The environment's `agent_slug` mapping, when it has one.
    slug_template: Option<String>,
    allow_insecure_http: bool,
    request_timeout: Option<Duration>,
}

impl PlatformTarget {
    /// The embedded store, whose agents are the ones the repository declares.
    pub fn is_local(&self) -> bool {
        self.url.starts_with(platform::LOCAL_SCHEME)
    }

    /// Opens the platform. `declared_agents` exist automatically in the embedded store.
    pub fn open(&self, declared_agents: Vec<String>) -> Result<Arc<dyn Platform>, OpenError> {
        let template = self.slug_template.as_deref();
        let declared_agents = match template {
            Some(t) => declared_agents
                .iter()
                .map(|a| crate::config::apply_slug_template(t, a))
                .collect(),
            None => declared_agents,
        };
        let opened = platform::open(PlatformOptions {
            url: self.url.clone(),
            api_key: self.api_key.clone(),
            api_key_var: self.api_key_var.clone(),
            allow_insecure_http: self.allow_insecure_http,
            declared_agents,
            request_timeout: self
                .request_timeout
                .unwrap_or(PlatformOptions::default().request_timeout),
            ..PlatformOptions::default()
        })?;
        Ok(match template {
            Some(t) => Arc::new(platform::renamed::Renamed::new(opened, t)),
            None => opened,
        })
    }
}
