//! Command-line definitions only (clap derive). No behaviour lives here: `commands` turns
//! these into actions. Secret values never appear as arguments; they come from stdin or a
//! hidden prompt.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "castsync",
    version,
    about = "Keep Castari agents' secrets in git: age-encrypted manifests, planned and applied like terraform",
    propagate_version = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags accepted before or after any subcommand.
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// Secrets repository to work in (default: the nearest directory holding castsync.yaml,
    /// from the current one up to the filesystem root).
    #[arg(short = 'C', long = "repo", global = true, value_name = "DIR")]
    pub repo: Option<PathBuf>,
    /// Config file (default: castsync.yaml at the repository root).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// age identity file or OpenSSH private key; repeatable. Tried before CASTSYNC_AGE_KEY,
    /// CASTSYNC_AGE_KEY_FILE and ~/.config/castsync/keys.txt.
    #[arg(short = 'i', long = "identity", global = true, value_name = "FILE")]
    pub identity: Vec<PathBuf>,
    /// Log line format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// More logging (-v info, -vv debug, -vvv trace). Values are never logged at any level.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Less output (-q: errors only).
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "verbose")]
    pub quiet: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Set up a secrets repository: castsync.yaml, agents/, .gitignore, .gitattributes.
    Init(InitArgs),
    /// Generate a new age X25519 identity (mode 0600) and print its public recipient.
    Keygen(KeygenArgs),
    /// Create agents/AGENT/secrets.yaml.age with no secrets (and an .env.example).
    New(AgentArg),
    /// Decrypt an agent's manifest into $VISUAL/$EDITOR, validate, re-encrypt.
    Edit(AgentArg),
    /// Set one key; the value is read from stdin or a hidden prompt, never from argv.
    Set(SetArgs),
    /// Remove one key from an agent's manifest.
    Unset(UnsetArgs),
    /// List an agent's keys (values only with --reveal).
    Show(ShowArgs),
    /// Create or merge an agent's manifest from a dotenv file.
    Import(ImportArgs),
    /// Re-encrypt manifests to the recipients the config now assigns.
    Rekey(RekeyArgs),
    /// Decrypt, parse and check every manifest against its schema (offline).
    Validate(ValidateArgs),
    /// Plan and apply the sets and deletes that make the platform match git.
    Reconcile(ReconcileArgs),
    /// Check the setup read-only: repository, identities, recipients, platform, API key,
    /// rate limits, and what each agent's key list means for drift.
    Doctor(DoctorArgs),
    /// Run as a daemon that follows a branch and converges on every change.
    Watch(WatchArgs),
    /// Serve a local emulator of the Castari secrets API (tests, demos, offline CI).
    Emulator(EmulatorArgs),
    /// git diff driver: print an encrypted manifest's keys with keyed fingerprints.
    Textconv(TextconvArgs),
    /// Key-level redacted diff of manifests between two revisions.
    Diff(DiffArgs),
    /// Print a shell completion script.
    Completions(CompletionsArgs),
    /// Print the man page (roff).
    Man,
}

#[derive(Debug, Args)]
pub struct InitArgs {}

#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Write the identity here (default: ~/.config/castsync/keys.txt).
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct AgentArg {
    /// Agent slug (its directory name under agents/).
    pub agent: String,
}

#[derive(Debug, Args)]
pub struct SetArgs {
    pub agent: String,
    pub key: String,
    /// Keep the value exactly as read (by default one trailing newline is removed).
    #[arg(long)]
    pub raw: bool,
}

#[derive(Debug, Args)]
pub struct UnsetArgs {
    pub agent: String,
    pub key: String,
    /// Succeed when the key is already absent.
    #[arg(long)]
    pub idempotent: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ShowFormat {
    Yaml,
    Dotenv,
    Json,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    pub agent: String,
    /// Print values too (they are hidden by default).
    #[arg(long)]
    pub reveal: bool,
    #[arg(long, value_enum, default_value_t = ShowFormat::Yaml)]
    pub format: ShowFormat,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    pub agent: String,
    /// dotenv file to read (`-` for stdin).
    #[arg(long = "from-dotenv", value_name = "FILE")]
    pub from_dotenv: PathBuf,
    /// Replace keys whose value differs from the manifest's.
    #[arg(long)]
    pub overwrite: bool,
}

#[derive(Debug, Args)]
pub struct RekeyArgs {
    /// Agents to rekey (default: all).
    pub agents: Vec<String>,
    /// Only list files whose recipients differ from the config; exit 1 if any.
    #[arg(long)]
    pub check: bool,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Agents to validate (default: all).
    pub agents: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
    Markdown,
}

/// How to reach the platform: shared by `reconcile` and `watch`.
#[derive(Debug, Clone, Args)]
pub struct PlatformArgs {
    /// Platform base URL, or local://PATH for the embedded store (overrides CASTARI_API_URL
    /// and the config's platform.url).
    #[arg(long, value_name = "URL")]
    pub api_url: Option<String>,
    /// File holding the Castari API key (default: the CASTARI_API_KEY variable).
    #[arg(long, value_name = "FILE")]
    pub api_key_file: Option<PathBuf>,
    /// Allow plain http:// to a host that is not loopback (the API key would travel in clear).
    #[arg(long)]
    pub allow_insecure_http: bool,
}

#[derive(Debug, Clone, Args)]
pub struct ApplyArgs {
    /// Never delete platform keys, whatever the config's prune says.
    #[arg(long)]
    pub no_prune: bool,
    /// Allow a plan that deletes more than max_delete_fraction (or all) of an agent's keys.
    #[arg(long)]
    pub allow_mass_delete: bool,
    /// Agents applied in parallel.
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub concurrency: u16,
    /// State file (default: .castsync/state.json under the repository).
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
    /// Redeploy each agent whose secrets change, whatever the config's `redeploy` says.
    #[arg(long, conflicts_with = "no_redeploy")]
    pub redeploy: bool,
    /// Never redeploy, whatever the config's `redeploy` says.
    #[arg(long)]
    pub no_redeploy: bool,
}

impl ApplyArgs {
    /// `--redeploy` → Some(true), `--no-redeploy` → Some(false), neither → the config.
    pub fn redeploy_override(&self) -> Option<bool> {
        match (self.redeploy, self.no_redeploy) {
            (true, _) => Some(true),
            (_, true) => Some(false),
            _ => None,
        }
    }
}

#[derive(Debug, Args)]
pub struct ReconcileArgs {
    /// Plan only: list keys (GET requests only) and print what would change.
    #[arg(long)]
    pub dry_run: bool,
    /// Only these agents (repeatable).
    #[arg(long = "agent", value_name = "AGENT")]
    pub agents: Vec<String>,
    /// Read manifests from this git revision instead of the worktree.
    #[arg(long = "ref", value_name = "REF")]
    pub git_ref: Option<String>,
    /// Treat values at this git revision as last applied (for pull-request plans).
    #[arg(long, value_name = "REF")]
    pub base: Option<String>,
    /// Refresh only agents whose manifest, .env.example or bearing settings changed since
    /// they last converged (as the state recorded), or since --since REF; the plan says how
    /// many were left unrefreshed. Without a usable baseline every agent is refreshed.
    #[arg(long)]
    pub changed: bool,
    /// With --changed: compare with this git revision instead of the state.
    #[arg(long, value_name = "REF", requires = "changed")]
    pub since: Option<String>,
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    /// With --dry-run: exit 2 when the plan has changes.
    #[arg(long)]
    pub exit_code: bool,
    /// Rewrite this key's value whatever the state says (repeatable), as `terraform apply
    /// -replace`: heals a value changed on a platform that lists no timestamps.
    #[arg(long = "replace", value_name = "AGENT/KEY", value_parser = parse_replace_target)]
    pub replace: Vec<(String, String)>,
    /// Rewrite every value of these agents (of every agent when none is named).
    #[arg(long = "replace-all", value_name = "AGENT", num_args = 0..)]
    pub replace_all: Option<Vec<String>>,
    #[command(flatten)]
    pub apply: ApplyArgs,
    #[command(flatten)]
    pub platform: PlatformArgs,
}

/// `AGENT/KEY` for `--replace`.
fn parse_replace_target(s: &str) -> Result<(String, String), String> {
    match s.split_once('/') {
        Some((agent, key)) if !agent.is_empty() && !key.is_empty() && !key.contains('/') => {
            Ok((agent.to_owned(), key.to_owned()))
        }
        _ => Err(format!(
            "expected AGENT/KEY (e.g. support-bot/OPENAI_API_KEY), got {s:?}"
        )),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DoctorFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Report format.
    #[arg(short = 'o', long, value_enum, default_value_t = DoctorFormat::Text)]
    pub output: DoctorFormat,
    #[command(flatten)]
    pub platform: PlatformArgs,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Remote to follow (https://, ssh://, file:// or a path); without it, the -C/--repo
    /// working tree is watched for file changes.
    #[arg(long, value_name = "URL")]
    pub git_url: Option<String>,
    #[arg(long, default_value = "main")]
    pub branch: String,
    /// Where the bare clone and the state file live.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// SSH private key for ssh:// remotes.
    #[arg(long, value_name = "FILE")]
    pub ssh_key: Option<PathBuf>,
    /// Poll interval (e.g. 60s, 5m).
    #[arg(long, default_value = "60s", value_name = "DURATION")]
    pub interval: String,
    /// Drift resync interval.
    #[arg(long, default_value = "10m", value_name = "DURATION")]
    pub resync: String,
    /// Secret for GitHub-style X-Hub-Signature-256 on POST /hooks/git.
    #[arg(long, value_name = "FILE")]
    pub webhook_secret_file: Option<PathBuf>,
    /// Address for /healthz, /readyz, /metrics and /hooks/git.
    #[arg(long, default_value = "127.0.0.1:9464")]
    pub listen: SocketAddr,
    /// Apply only commits signed by a key in this ssh allowed_signers file.
    #[arg(long, value_name = "FILE")]
    pub verify_signatures: Option<PathBuf>,
    #[command(flatten)]
    pub apply: ApplyArgs,
    #[command(flatten)]
    pub platform: PlatformArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FailMode {
    #[value(name = "500")]
    ServerError,
    #[value(name = "429")]
    TooManyRequests,
    Reset,
    Malformed,
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
    #[arg(long, default_value = "127.0.0.1:8787")]
    pub listen: SocketAddr,
    /// Persist the store to this JSON file (default: in memory).
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
    #[arg(long, value_enum, default_value_t = FailMode::ServerError)]
    pub fail_mode: FailMode,
    /// Delay added to every /api/v1 response.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub latency_ms: u64,
    /// Seed for fault injection (default: random).
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
}

#[derive(Debug, Args)]
pub struct TextconvArgs {
    pub file: PathBuf,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// Older revision (default: HEAD).
    pub rev_a: Option<String>,
    /// Newer revision (default: the worktree).
    pub rev_b: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
    Powershell,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    #[arg(value_enum)]
    pub shell: Shell,
}
