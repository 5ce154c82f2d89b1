//! `castsync watch`: the long-running mode (docs/daemon.md). It follows a branch (or a working
//! tree) and converges the platform on every change.
//!
//! The daemon decides *when* to reconcile and for which agents — on a webhook, a file
//! event, SIGHUP, the poll interval, a paced drift resync — and never *what*: every run is
//! `reconcile::reconcile`, exactly as `castsync reconcile` runs it. It must never apply a
//! commit that failed the signature gate, never treat a broken manifest as empty, and never
//! put a secret value in a log line, a metric or an HTTP response.
//!
//! Parts: [`triggers`] (the hub every trigger fires into) and [`schedule`] (pure timing) feed
//! the [`controller`] loop, which drives an [`engine::Engine`] — the real one is
//! [`engine::live`] over an origin (`source::remote::origin`: a `source::remote::mirror` clone
//! or a working tree, behind the `source::remote::signatures` gate). [`http`] serves
//! `/healthz`, `/readyz` ([`status`]), `/metrics` ([`metrics`]), `/history` (the apply
//! history), the status page at `/` ([`page`]) and the [`webhook`] (whose deliveries refused
//! unread still owe a fetch: [`missed`]); the [`notifier`] reports to `notify:` targets.

mod controller;
mod engine;
mod http;
mod memory;
mod metrics;
mod missed;
mod notifier;
mod page;
mod schedule;
mod signals;
mod status;
mod triggers;
mod watcher;
mod webhook;

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use thiserror::Error;
use tokio::time::Duration;
use tokio_util::sync::CancellationToken;

pub use controller::Stopped;

use crate::source::remote::mirror;
pub use crate::source::remote::mirror::{
    GitAuth, GitError, TOKEN_ENV, default_data_dir, normalize_url, remote_dir_name,
};
use crate::source::remote::origin::Origin;
pub use crate::source::remote::signatures::{AllowedSigners, Rejection, SignersError};
pub use webhook::{SecretFileError, WebhookSecret};

use crate::request::ApplySettings;
use crate::state::{State, StateError};
use crate::target::Target;

/// The file in a remote's data directory holding the last commit the signature gate let
/// through (its id and a newline).
pub const LAST_SIGNED_FILE: &str = "last-signed-commit";

/// What the daemon follows.
#[derive(Debug, Clone)]
pub enum Follow {
    /// `--git-url`: a branch of a remote, cloned bare under `data_dir`.
    Remote {
        url: String,
        branch: String,
        /// This remote's own directory under the data dir (see [`remote_dir_name`]): the bare
        /// clone lives in `DIR/repo.git`.
        dir: PathBuf,
        ssh_key: Option<PathBuf>,
        /// `--verify-signatures`: an ssh allowed_signers file.
        verify_signatures: Option<PathBuf>,
        /// `--allow-rollback`: a signed commit need not descend from the last one applied.
        allow_rollback: bool,
        /// `--allow-insecure-http`: git credentials may cross plain http to another host.
        allow_insecure_http: bool,
    },
    /// `--repo` mode: a working tree, watched for file changes.
    Local { root: PathBuf },
}

/// Everything the daemon needs, resolved from the command line.
pub struct DaemonConfig {
    pub follow: Follow,
    /// `--config FILE` (a file on disk); default: `castsync.yaml` of each revision.
    pub explicit_config: Option<PathBuf>,
    /// Identities, state file and platform: [`Target::for_mirror`] for a remote,
    /// [`Target::for_repository`] for a working tree.
    pub target: Target,
    pub apply: ApplySettings,
    pub interval: Duration,
    pub resync: Duration,
    pub listen: SocketAddr,
    pub webhook_secret_file: Option<PathBuf>,
    /// How long the reconcile in flight may take to stop after SIGTERM.
    pub grace: Duration,
}

/// The daemon could not start.
#[derive(Debug, Error)]
pub enum DaemonError {
    #[error(transparent)]
    Signers(#[from] SignersError),
    #[error(transparent)]
    WebhookSecret(#[from] SecretFileError),
    #[error(transparent)]
    Git(#[from] GitError),
    #[error(transparent)]
    State(#[from] StateError),
    /// The HTTP address cannot be bound.
    #[error("cannot listen on {addr}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// The working tree cannot be watched.
    #[error("cannot watch {root} for changes")]
    Watch {
        root: PathBuf,
        #[source]
        source: notify::Error,
    },
    /// Signal handlers cannot be installed.
    #[error("cannot install signal handlers")]
    Signals(#[source] std::io::Error),
}

impl crate::hint::Hinted for DaemonError {
    fn hint(&self) -> Option<std::borrow::Cow<'_, str>> {
        match self {
            DaemonError::Signers(e) => e.hint(),
            DaemonError::WebhookSecret(e) => e.hint(),
            DaemonError::Git(e) => e.hint(),
            DaemonError::State(StateError::Locked { .. }) => Some(
                "only one daemon may apply from a state directory: two at different commits would undo each other's changes in turn; stop the other one, or give this one its own --data-dir (see docs/daemon.md)".into(),
            ),
            DaemonError::State(e) => e.hint(),
            DaemonError::Listen { .. } => {
                Some("pick another --listen address (port 0 picks a free port)".into())
            }
            DaemonError::Watch { .. } | DaemonError::Signals(_) => None,
        }
    }
}

/// Runs the daemon until SIGTERM/SIGINT. Prints `listening on http://ADDR` as its first
/// stdout line (so a supervisor or a test can find a port picked with `:0`).
pub async fn run(config: DaemonConfig) -> Result<Stopped, DaemonError> {
    let state_path = config.target.state_path.clone();
    // First, before the clone is touched: the lock is held for the daemon's life, so a second
    // daemon (or a manual reconcile) on the same state is refused, naming the holder, rather
    // than racing this one.
    let state = State::open(&state_path)?;
    let (origin, branch) = open_origin(&config.follow)?;
    let hook = config
        .webhook_secret_file
        .as_deref()
        .map(WebhookSecret::load)
        .transpose()?
        .map(|secret| http::Hook {
            secret,
            branch: branch.clone(),
        });
    let (listener, addr) = bind(config.listen).await?;

    let described = origin.describe();
    let shared = Arc::new(controller::Shared::new(status::Status::new(
        described.clone(),
        config.interval,
    )));
    let shutdown = CancellationToken::new();
    signals::install(shared.clone(), shutdown.clone()).map_err(DaemonError::Signals)?;
    let _watcher = match &origin {
        Origin::Local { root } => Some(watcher::watch(root, shared.triggers.clone()).map_err(
            |source| DaemonError::Watch {
                root: root.clone(),
                source,
            },
        )?),
        Origin::Remote { .. } => None,
    };
    tokio::spawn(shared.missed.clone().run(
        shared.triggers.clone(),
        missed::MIN_GAP,
        shutdown.clone(),
    ));
    let history_file = crate::history::path_for_state(&state_path);
    let routes = http::router(shared.clone(), hook)
        .merge(http::history_routes(history_file.clone()))
        .merge(page::routes(shared.clone(), history_file));
    let server = tokio::spawn(http::serve(listener, routes, shutdown.clone()));

    // A daemon whose stdout is closed still serves: the line is for whoever listens.
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "listening on http://{addr}").and_then(|()| out.flush());
    drop(out);
    tracing::info!(
        source = %described,
        state = %state_path.display(),
        interval = ?config.interval,
        resync = ?config.resync,
        listen = %addr,
        "castsync watch started"
    );

    let engine = engine::live::LiveEngine::new(
        origin,
        config.explicit_config.clone(),
        config.target,
        config.apply.clone(),
        state,
    );
    let notifier = notifier_for(&config.follow, &shared);
    let timing = schedule::Timing::new(config.interval, config.resync);
    let stopped = controller::Controller::new(
        engine,
        schedule::Schedule::new(timing, None),
        shared.clone(),
        shutdown.clone(),
        config.grace,
    )
    .with_notifier(notifier)
    .run()
    .await;
    // The HTTP server stops with the same token; do not let a slow client hold the exit.
    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_millis(500), server).await;
    tracing::info!(?stopped, "castsync watch stopped");
    Ok(stopped)
}

/// The origin `follow` names, and the followed branch (`None` for a working tree).
fn open_origin(follow: &Follow) -> Result<(Origin, Option<String>), DaemonError> {
    Ok(match follow {
        Follow::Remote {
            url,
            branch,
            dir,
            ssh_key,
            verify_signatures,
            allow_rollback,
            allow_insecure_http,
        } => {
            let signers = verify_signatures
                .as_deref()
                .map(AllowedSigners::load)
                .transpose()?;
            let mirror = mirror::Mirror::open(
                url,
                branch,
                &dir.join("repo.git"),
                GitAuth::from_env(ssh_key.clone(), *allow_insecure_http),
            )?;
            // Where the gate keeps the last commit it let through, so that a restart does
            // not forget which way is forward.
            let last_signed =
                (signers.is_some() && !allow_rollback).then(|| dir.join(LAST_SIGNED_FILE));
            (
                Origin::Remote {
                    mirror: Box::new(mirror),
                    signers,
                    last_signed,
                },
                Some(branch.clone()),
            )
        }
        Follow::Local { root } => (Origin::Local { root: root.clone() }, None),
    })
}

/// The listener on `listen`, and the address it got (a port picked for `:0`).
async fn bind(listen: SocketAddr) -> Result<(tokio::net::TcpListener, SocketAddr), DaemonError> {
    let failed = |source| DaemonError::Listen {
        addr: listen,
        source,
    };
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(failed)?;
    let addr = listener.local_addr().map_err(failed)?;
    Ok((listener, addr))
}

/// Where the commit statuses and alerts of `notify:` go, for what `follow` names.
fn notifier_for(follow: &Follow, shared: &controller::Shared) -> notifier::Notifier {
    let (remote, branch) = match follow {
        Follow::Remote { url, branch, .. } => (Some(url.clone()), Some(branch.clone())),
        Follow::Local { .. } => (None, None),
    };
    notifier::Notifier::new(
        notifier::Followed {
            remote,
            branch,
            context: notifier::message::context(None),
        },
        shared.metrics.notifications.clone(),
    )
}

/// The daemon's HTTP routes with the webhook (secret `secret`, following `main`) and a fresh
/// status: the real handlers, for the fuzz target in `fuzz/` to drive without a socket.
#[doc(hidden)]
pub fn router_for_fuzzing(secret: &[u8]) -> axum::Router {
    let status = status::Status::new("fuzz".into(), Duration::from_secs(60));
    let hook = http::Hook {
        secret: WebhookSecret::new(secret.to_vec()),
        branch: Some("main".into()),
    };
    http::router(Arc::new(controller::Shared::new(status)), Some(hook))
}
