//! The platform edge: where secrets are set, listed and deleted, and agents redeployed.
//!
//! [`Platform`] has two implementations: `castari` (the HTTP API, reqwest) and `local`
//! (an embedded file-backed store selected with `local://PATH`). The trait never returns
//! values: like the real API, a list gives key names (and timestamps, when the platform
//! sends them) only. [`open`] picks the implementation from the URL; [`resolve_url`] and
//! [`read_api_key`] find the URL and key the way every command does. The values that cross
//! this edge (listings, typed errors) live in [`types`], without I/O.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use secrecy::SecretString;
use thiserror::Error;
use zeroize::Zeroizing;

use crate::secret::SecretValue;

pub mod batch;
pub mod castari;
pub mod limiter;
pub mod local;
pub mod renamed;
pub mod retry;
pub mod store;
pub mod types;

pub use types::{
    ClientStats, ErrorClass, ListShape, Listing, Paging, PlatformError, RemoteKey, Timestamps,
};

/// The platform castsync talks to when nothing else is configured.
pub const DEFAULT_URL: &str = crate::config::DEFAULT_PLATFORM_URL;
/// Environment variable overriding the config's `platform.url`.
pub const URL_ENV: &str = "CASTARI_API_URL";
/// Environment variable holding the API key.
pub const API_KEY_ENV: &str = crate::config::DEFAULT_API_KEY_ENV;
/// URL scheme of the embedded file-backed store.
pub const LOCAL_SCHEME: &str = "local://";

/// The calls castsync needs. Implementations are shared across tasks (`Arc<dyn
/// Platform>`) and must be safe to call concurrently.
#[async_trait]
pub trait Platform: Send + Sync {
    /// A stable name for this platform (its base URL, or `local://PATH`): the state file keys
    /// its records by it, so state for one platform is never used against another.
    fn id(&self) -> &str;

    /// Every key of an agent (all pages), and how the list route answered.
    async fn list(&self, agent: &str) -> Result<Listing, PlatformError>;

    /// Create or overwrite a key.
    async fn set(&self, agent: &str, key: &str, value: &SecretValue) -> Result<(), PlatformError>;

    /// Delete a key; a key that is already gone is success. The key may be any name the
    /// platform listed, including ones castsync would never create (`my-key`).
    async fn delete(&self, agent: &str, key: &str) -> Result<(), PlatformError>;

    /// Redeploy an agent so that it runs with its current secrets.
    async fn redeploy(&self, agent: &str) -> Result<(), PlatformError>;

    /// Writes one agent's batch: every set, then every delete unless a set failed (see
    /// [`batch`]). The default sends one call per key; a platform that can write the batch
    /// at once (the embedded store: one transaction) overrides it.
    async fn write_batch(
        &self,
        agent: &str,
        batch: batch::Batch<'_>,
        cancel: &tokio_util::sync::CancellationToken,
    ) -> batch::BatchResult {
        batch::one_by_one(self, agent, batch, cancel).await
    }

    /// Request counters for metrics; None for platforms that make no HTTP requests.
    fn stats(&self) -> Option<ClientStats> {
        None
    }

    /// How long a request sent now would wait for the platform's rate budget (None: it would
    /// go at once), for progress output.
    fn rate_wait(&self) -> Option<std::time::Duration> {
        None
    }
}

/// How to reach the platform: built by `reconcile` and `watch` from their flags and config.
#[derive(Debug, Clone)]
pub struct PlatformOptions {
    /// `https://…`, `http://…` or `local://PATH` (see [`resolve_url`]).
    pub url: String,
    /// Needed for http(s) URLs; the embedded store ignores it.
    pub api_key: Option<SecretString>,
    /// The variable the key was looked for in, named when it is missing.
    pub api_key_var: String,
    /// Allow `http://` to a host that is not loopback.
    pub allow_insecure_http: bool,
    /// Retries after a failed attempt (429, 5xx, connection error).
    pub retries: u32,
    /// How long one HTTP request may take (`--request-timeout`).
    pub request_timeout: std::time::Duration,
    /// Agents the repository declares: in `local://` mode they exist automatically.
    pub declared_agents: Vec<String>,
}

impl Default for PlatformOptions {
    fn default() -> Self {
        PlatformOptions {
            url: DEFAULT_URL.to_owned(),
            api_key: None,
            api_key_var: API_KEY_ENV.to_owned(),
            allow_insecure_http: false,
            retries: retry::RetryPolicy::default().retries,
            request_timeout: castari::REQUEST_TIMEOUT,
            declared_agents: Vec::new(),
        }
    }
}

/// The platform could not be set up; nothing was sent.
#[derive(Debug, Error)]
pub enum OpenError {
    /// An http(s) platform needs an API key.
    #[error("no API key for {url}")]
    MissingApiKey {
        url: String,
        /// The variable that would hold it (`CASTARI_API_KEY`, or an environment's
        /// `api_key_env`).
        var: String,
    },
    /// `--api-key-file` could not be read.
    #[error("cannot read the API key file {path}")]
    ApiKeyFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// `--api-key-file` holds nothing but whitespace.
    #[error("the API key file {path} is empty")]
    EmptyApiKeyFile { path: PathBuf },
    /// The key has characters an HTTP header cannot carry (the key itself is not shown).
    #[error("the API key contains characters that cannot be sent in an HTTP header")]
    InvalidApiKey,
    /// The URL is not one castsync can use.
    #[error("invalid platform URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    /// `http://` to a host that is not loopback would send the API key in clear text.
    #[error(
        "refusing plain http:// to {host}: the API key and values would cross the network unencrypted"
    )]
    InsecureHttp { host: String },
    /// `http://` through a proxy on another host would hand it the API key in clear text.
    #[error(
        "refusing plain http:// through the proxy {proxy} to {host}: the proxy would see the API key and values"
    )]
    InsecureProxy { proxy: String, host: String },
    /// The proxy the environment names cannot be used.
    #[error("cannot use the proxy {proxy}: {reason}")]
    BadProxy { proxy: String, reason: String },
    /// The HTTP client could not be built (TLS setup).
    #[error("cannot set up the HTTP client")]
    HttpClient {
        #[source]
        source: reqwest::Error,
    },
    /// The embedded store could not be opened.
    #[error(transparent)]
    Store(#[from] store::StoreError),
}

impl crate::hint::Hinted for OpenError {
    fn hint(&self) -> Option<std::borrow::Cow<'_, str>> {
        Some(match self {
            OpenError::MissingApiKey { var, .. } => format!(
                "set {var}, or pass --api-key-file FILE (or use --api-url local://PATH for the embedded store)"
            )
            .into(),
            OpenError::EmptyApiKeyFile { .. } => {
                format!("write the key (cast_…) into it, or set {API_KEY_ENV}").into()
            }
            OpenError::InvalidApiKey => format!(
                "check {API_KEY_ENV} or the --api-key-file content for stray quotes or control characters"
            )
            .into(),
            OpenError::InvalidUrl { .. } => "use https://HOST[/PREFIX] or local://PATH".into(),
            OpenError::InsecureHttp { .. } => {
                "use https://, or pass --allow-insecure-http if this network is trusted".into()
            }
            OpenError::InsecureProxy { host, .. } => format!(
                "add {host} to NO_PROXY to reach it directly, use https://, or pass --allow-insecure-http if this network is trusted"
            )
            .into(),
            OpenError::BadProxy { .. } => {
                "check HTTPS_PROXY, HTTP_PROXY and ALL_PROXY (and NO_PROXY for hosts to reach directly)".into()
            }
            OpenError::Store(e) => return e.hint(),
            OpenError::ApiKeyFile { .. } | OpenError::HttpClient { .. } => return None,
        })
    }
}

/// Connects to the platform named by `opts.url`: `local://PATH` opens the embedded store,
/// `http(s)://` the Castari API client. Nothing is sent yet.
pub fn open(opts: PlatformOptions) -> Result<Arc<dyn Platform>, OpenError> {
    if let Some(path) = opts.url.strip_prefix(LOCAL_SCHEME) {
        let platform = local::LocalPlatform::open(Path::new(path), opts.declared_agents)?;
        return Ok(Arc::new(platform));
    }
    let Some(api_key) = opts.api_key else {
        // Say what is wrong with the URL before asking for a key it would never need.
        castari::parse_base_url(&opts.url, opts.allow_insecure_http)?;
        return Err(OpenError::MissingApiKey {
            url: opts.url,
            var: opts.api_key_var,
        });
    };
    let config = castari::ClientConfig {
        retry: retry::RetryPolicy {
            retries: opts.retries,
            ..retry::RetryPolicy::default()
        },
        allow_insecure_http: opts.allow_insecure_http,
        request_timeout: opts.request_timeout,
        ..castari::ClientConfig::new(opts.url, api_key)
    };
    Ok(Arc::new(castari::CastariClient::new(config)?))
}

/// The platform URL: `--api-url`, then `CASTARI_API_URL`, then the config's `platform.url`,
/// then `https://api.castari.com`. Empty values count as unset here; the command line refuses
/// an empty `--api-url` or `CASTARI_API_URL` before it gets here.
pub fn resolve_url(cli: Option<&str>, config_url: Option<&str>) -> String {
    let env = std::env::var(URL_ENV).ok();
    first_url([cli, env.as_deref(), config_url])
}

fn first_url(candidates: [Option<&str>; 3]) -> String {
    candidates
        .into_iter()
        .flatten()
        .map(str::trim)
        .find(|u| !u.is_empty())
        .unwrap_or(DEFAULT_URL)
        .to_owned()
}

/// The API key: the content of `--api-key-file` (trimmed), else `CASTARI_API_KEY` (trimmed),
/// else None. Whether None is an error depends on the URL (see [`open`]).
pub fn read_api_key(file: Option<&Path>) -> Result<Option<SecretString>, OpenError> {
    read_api_key_from(file, API_KEY_ENV)
}

/// [`read_api_key`] with the key in the variable `var` (an environment's `api_key_env`).
pub fn read_api_key_from(
    file: Option<&Path>,
    var: &str,
) -> Result<Option<SecretString>, OpenError> {
    if let Some(path) = file {
        let file_error = |source| OpenError::ApiKeyFile {
            path: path.to_owned(),
            source,
        };
        let bytes =
            crate::fsread::read_secret_file(path, crate::fsread::MAX_KEY_FILE).map_err(|e| {
                file_error(match e {
                    crate::fsread::ReadError::Io { source, .. } => source,
                    crate::fsread::ReadError::NotFound { .. } => {
                        std::io::Error::from(std::io::ErrorKind::NotFound)
                    }
                    refused => std::io::Error::other(refused.to_string()),
                })
            })?;
        let text = Zeroizing::new(
            std::str::from_utf8(&bytes)
                .map_err(|_| {
                    file_error(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        "not UTF-8 text",
                    ))
                })?
                .to_owned(),
        );
        let key = text.trim();
        if key.is_empty() {
            return Err(OpenError::EmptyApiKeyFile {
                path: path.to_owned(),
            });
        }
        return Ok(Some(SecretString::from(key.to_owned())));
    }
    let Some(var) = std::env::var_os(var) else {
        return Ok(None);
    };
    let var = Zeroizing::new(var.into_string().map_err(|_| OpenError::InvalidApiKey)?);
    let key = var.trim();
    Ok((!key.is_empty()).then(|| SecretString::from(key.to_owned())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_comes_from_the_flag_then_the_environment_then_the_config() {
        let url = |cli, env, config| first_url([cli, env, config]);
        assert_eq!(
            url(Some("http://flag"), Some("http://env"), Some("http://cfg")),
            "http://flag"
        );
        assert_eq!(
            url(None, Some("http://env"), Some("http://cfg")),
            "http://env"
        );
        assert_eq!(
            url(Some(" "), Some(""), Some("local://x.json")),
            "local://x.json"
        );
        assert_eq!(url(None, None, None), DEFAULT_URL);
    }
}
