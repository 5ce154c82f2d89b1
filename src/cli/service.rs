//! The arguments of the long-running commands: watch and the emulator.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

use super::{ApplyArgs, PlatformArgs, duration};

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Remote to follow (https://, ssh://, file:// or a path); without it, the -C/--repo
    /// working tree is watched for file changes.
    #[arg(long, value_name = "URL")]
    pub git_url: Option<String>,
    /// Branch of --git-url to follow.
    #[arg(long, default_value = "main")]
    pub branch: String,
    /// Where the bare clone and the state file live.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// SSH private key for ssh:// remotes.
    #[arg(long, value_name = "FILE")]
    pub ssh_key: Option<PathBuf>,
    /// Poll interval (e.g. 60s, 5m; at least 1s).
    #[arg(long, default_value = "60s", value_name = "DURATION", value_parser = duration)]
    pub interval: Duration,
    /// Drift resync interval: how often every agent is listed again to find changes made
    /// outside git (at least 1s).
    #[arg(long, default_value = "10m", value_name = "DURATION", value_parser = duration)]
    pub resync: Duration,
    /// Secret for GitHub-style X-Hub-Signature-256 on POST /hooks/git.
    #[arg(long, value_name = "FILE")]
    pub webhook_secret_file: Option<PathBuf>,
    /// Address for /healthz, /readyz, /metrics, /history and /hooks/git.
    #[arg(long, default_value = "127.0.0.1:9464", value_name = "ADDR")]
    pub listen: SocketAddr,
    /// Apply only commits signed by a key in this ssh allowed_signers file.
    ///
    /// The branch must also move forward: a signed commit that does not descend from the
    /// last one applied (a force-push back to an older commit) is refused, unless
    /// --allow-rollback.
    #[arg(long, value_name = "FILE")]
    pub verify_signatures: Option<PathBuf>,
    /// With --verify-signatures, apply a signed commit that does not descend from the last
    /// one applied (a rollback or a rewritten branch).
    #[arg(long, requires = "verify_signatures")]
    pub allow_rollback: bool,
    /// Deadline for each reconcile cycle; a cycle that runs out is cancelled, reported on
    /// /readyz and retried with backoff. Default: 5m plus 0.6s per request it needs.
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub timeout: Option<Duration>,
    /// The environment to follow (one per daemon, each with its own state, history and
    /// rate limiter); needed when castsync.yaml declares environments.
    #[arg(long = "env", value_name = "ENV")]
    pub env: Option<String>,
    #[command(flatten)]
    pub apply: ApplyArgs,
    #[command(flatten)]
    pub platform: PlatformArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FailMode {
    /// Answer 500 before the store is touched.
    #[value(name = "500")]
    ServerError,
    /// Answer 429 before the store is touched.
    #[value(name = "429")]
    TooManyRequests,
    /// Drop the connection without an answer.
    Reset,
    /// Serve the request, then replace a successful reply's body by garbage.
    Malformed,
    /// One of the above at random for each failure.
    Mixed,
}

/// Which wire format the emulator speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum Wire {
    /// Exactly the shapes of Castari's SDK: `{"secrets":[{"key"}]}`, unpaged, no timestamps,
    /// POST 201, DELETE 204.
    #[default]
    Sdk,
    /// The API docs' variant: paged (`limit`, `offset`, `meta`), timestamped items.
    Docs,
}

#[derive(Debug, Clone, Args)]
pub struct EmulatorArgs {
    /// Wire format: the SDK's shapes (default) or the docs' paged, timestamped variant.
    #[arg(long, value_enum, default_value_t = Wire::Sdk)]
    pub wire: Wire,
    /// Address to listen on (port 0 picks a free port; the first stdout line says which).
    #[arg(long, default_value = "127.0.0.1:8787", value_name = "ADDR")]
    pub listen: SocketAddr,
    /// Keep the store in this SQLite file, the same store as local://FILE (default: in memory).
    #[arg(long, value_name = "FILE")]
    pub data: Option<PathBuf>,
    /// Accept only this bearer token (default: any non-empty token).
    #[arg(long, value_name = "T")]
    pub token: Option<String>,
    /// Agents to create at start, comma-separated.
    #[arg(long, value_delimiter = ',', value_name = "A,B")]
    pub agents: Vec<String>,
    /// Create unknown agents on first use instead of answering 404.
    #[arg(long)]
    pub auto_create_agents: bool,
    /// Requests allowed per window, as N/SECONDS.
    #[arg(long, default_value = "100/60", value_name = "N/SECONDS")]
    pub rate_limit: String,
    /// Share of /api/v1 requests to fail (0.0-1.0).
    #[arg(long, default_value_t = 0.0, value_name = "P")]
    pub fail_rate: f64,
    /// How an injected failure fails.
    #[arg(long, value_enum, default_value_t = FailMode::ServerError, value_name = "MODE")]
    pub fail_mode: FailMode,
    /// Delay added to every /api/v1 response, in milliseconds.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub latency_ms: u64,
    /// Seed for fault injection (default: random).
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
}
