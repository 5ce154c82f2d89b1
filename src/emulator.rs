//! `castsync emulator`: the Castari secrets API served from the same store model as
//! `local://`, for tests, demos and offline CI.
//!
//! It speaks the API of docs/platform.md (bearer auth, 404 "Agent not found", FastAPI-style 422s, a
//! fixed-window rate limit with the real headers, the redeploy route) in one of two wire
//! profiles (`--wire`): `sdk`, the default, answers exactly the shapes Castari's SDK reads
//! (`{"secrets":[{"key"}]}`, unpaged, no timestamps, POST 201, DELETE 204); `docs` answers the
//! API docs' variant (paged with `limit`/`offset`/`meta`, timestamped items). It can misbehave
//! on purpose (`--fail-rate`, `--fail-mode`, `--latency-ms`, `--seed`). Admin
//! routes under `/_emulator/` count requests and read values back. It is not a secrets
//! store: values sit in memory or in the same SQLite store as `local://` (`--data`), and the
//! admin routes hand them out without authentication. It never logs a value or a request body.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use thiserror::Error;
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

use crate::names::{NameError, validate_slug};
use crate::platform::store::{Store, StoreError};

mod admin;
mod api;
mod conn;
mod faults;

use conn::{Conn, ResettableListener};
pub use faults::FailMode;
use faults::{Faults, Stats, Window};

/// How long open connections may finish after SIGTERM/SIGINT before the emulator exits anyway.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The emulator could not start or stopped abnormally.
#[derive(Debug, Error)]
pub enum EmulatorError {
    /// `--rate-limit` is not `N/SECONDS`.
    #[error(
        "invalid --rate-limit {value:?}: expected N/SECONDS with N and SECONDS at least 1, e.g. 100/60"
    )]
    RateLimit { value: String },
    /// `--fail-rate` is outside 0–1.
    #[error("invalid --fail-rate {value}: expected a share between 0.0 and 1.0")]
    FailRate { value: f64 },
    /// An `--agents` entry is not a valid slug.
    #[error("invalid --agents entry")]
    Agent(#[source] NameError),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// `--data` could not be read or written.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Signal handlers or stdout failed.
    #[error("emulator i/o failed")]
    Io(#[from] std::io::Error),
}

impl crate::hint::Hinted for EmulatorError {
    fn hint(&self) -> Option<std::borrow::Cow<'_, str>> {
        match self {
            EmulatorError::Bind { .. } => {
                Some("pick another --listen address (port 0 picks a free one)".into())
            }
            EmulatorError::Store(e) => e.hint(),
            EmulatorError::RateLimit { .. }
            | EmulatorError::FailRate { .. }
            | EmulatorError::Agent(_)
            | EmulatorError::Io(_) => None,
        }
    }
}

/// Which wire format the emulator speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Wire {
    /// Exactly the shapes of Castari's SDK: `{"secrets":[{"key"}]}`, unpaged, no timestamps,
    /// POST 201, DELETE 204.
    #[default]
    Sdk,
    /// The API docs' variant: paged (`limit`, `offset`, `meta`), timestamped items.
    Docs,
}

/// How to run the emulator (the `castsync emulator` flags, resolved).
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// The wire profile (`--wire`).
    pub wire: Wire,
    /// Address to listen on (port 0 picks a free port).
    pub listen: std::net::SocketAddr,
    /// Persist the store to this file (default: in memory).
    pub data: Option<PathBuf>,
    /// Accept only this bearer token (default: any non-empty token).
    pub token: Option<String>,
    /// Agents to create at start.
    pub agents: Vec<String>,
    /// Create unknown agents on first use instead of answering 404.
    pub auto_create_agents: bool,
    /// Requests allowed per window, as `N/SECONDS` (see [`RateLimit`]).
    pub rate_limit: String,
    /// Share of /api/v1 requests to fail (0.0-1.0).
    pub fail_rate: f64,
    pub fail_mode: FailMode,
    /// Delay added to every /api/v1 response.
    pub latency_ms: u64,
    /// Seed for fault injection (default: random).
    pub seed: Option<u64>,
}

/// The rate budget: `limit` requests per `period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub limit: u32,
    pub period_secs: u64,
}

impl std::str::FromStr for RateLimit {
    type Err = EmulatorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || EmulatorError::RateLimit {
            value: s.to_owned(),
        };
        let (n, secs) = s.split_once('/').ok_or_else(bad)?;
        let limit: u32 = n.trim().parse().map_err(|_| bad())?;
        let period_secs: u64 = secs.trim().parse().map_err(|_| bad())?;
        if limit == 0 || period_secs == 0 {
            return Err(bad());
        }
        Ok(RateLimit { limit, period_secs })
    }
}

/// Shared state of a running emulator.
#[derive(Debug)]
pub(crate) struct Emu {
    /// In memory, or the `--data` file: each write is committed before the reply.
    store: Mutex<Store>,
    wire: Wire,
    token: Option<String>,
    auto_create: bool,
    rate: RateLimit,
    window: Mutex<Window>,
    faults: Faults,
    latency: Duration,
    stats: Mutex<Stats>,
    /// Faults pinned to one agent (and optionally one method) by `POST /_emulator/faults`.
    targeted: Mutex<Vec<faults::Targeted>>,
}

/// Locks a mutex, recovering from poisoning (a panicked handler must not wedge the server).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Emu {
    fn store(&self) -> MutexGuard<'_, Store> {
        lock(&self.store)
    }
}

/// Runs the emulator until SIGTERM or SIGINT.
pub async fn run(args: EmulatorConfig) -> Result<(), EmulatorError> {
    let rate: RateLimit = args.rate_limit.parse()?;
    if !(0.0..=1.0).contains(&args.fail_rate) {
        return Err(EmulatorError::FailRate {
            value: args.fail_rate,
        });
    }
    let agents: Vec<&str> = args
        .agents
        .iter()
        .map(|a| a.trim())
        .filter(|a| !a.is_empty())
        .collect();
    for agent in &agents {
        validate_slug(agent).map_err(EmulatorError::Agent)?;
    }
    let mut store = match &args.data {
        Some(path) => Store::open(path)?,
        None => Store::in_memory()?,
    };
    store.write(|tx| {
        for agent in &agents {
            tx.ensure_agent(agent)?;
        }
        Ok(())
    })?;
    let emu = Arc::new(Emu {
        wire: args.wire,
        token: args.token.clone().filter(|t| !t.is_empty()),
        auto_create: args.auto_create_agents,
        rate,
        window: Mutex::new(Window::default()),
        faults: Faults::new(args.fail_rate, args.fail_mode, args.seed),
        latency: Duration::from_millis(args.latency_ms),
        stats: Mutex::new(Stats::default()),
        targeted: Mutex::new(Vec::new()),
        store: Mutex::new(store),
    });
    // Handlers first, so a signal sent right after the first line is never fatal.
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let listener = TcpListener::bind(args.listen)
        .await
        .map_err(|source| EmulatorError::Bind {
            addr: args.listen,
            source,
        })?;
    let addr = listener.local_addr()?;
    announce(addr)?;
    tracing::info!(
        %addr,
        wire = ?args.wire,
        limit = rate.limit,
        period_secs = rate.period_secs,
        fail_rate = args.fail_rate,
        fail_mode = ?args.fail_mode,
        "emulator ready"
    );

    let stop = CancellationToken::new();
    let app = router(emu).into_make_service_with_connect_info::<Conn>();
    let server = axum::serve(ResettableListener::new(listener), app)
        .with_graceful_shutdown(stop.clone().cancelled_owned());
    let server = tokio::spawn(server.into_future());
    tokio::select! {
        _ = sigterm.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = sigint.recv() => tracing::info!("SIGINT: shutting down"),
    }
    stop.cancel();
    if tokio::time::timeout(SHUTDOWN_GRACE, server).await.is_err() {
        tracing::warn!("connections still open after {SHUTDOWN_GRACE:?}; exiting anyway");
    }
    Ok(())
}

/// The first stdout line, which tests and scripts wait for: `listening on http://HOST:PORT`.
fn announce(addr: std::net::SocketAddr) -> std::io::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    writeln!(out, "listening on http://{addr}")?;
    out.flush()
}

fn router(emu: Arc<Emu>) -> Router {
    api::routes()
        .merge(admin::routes())
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&emu),
            api::gate,
        ))
        .with_state(emu)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limits_are_n_per_seconds() {
        assert_eq!(
            "20/2".parse::<RateLimit>().unwrap(),
            RateLimit {
                limit: 20,
                period_secs: 2
            }
        );
        for bad in ["", "20", "0/60", "20/0", "a/b", "-1/60", "20/2/3"] {
            assert!(bad.parse::<RateLimit>().is_err(), "{bad}");
        }
    }
}
