//! The arguments of the commands that reach a platform: reconcile, doctor, history.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use secrecy::SecretString;

use super::complete::agents;
use super::{duration, secret_value};

/// `-o/--output` of reconcile, validate, diff and rekey --check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// For people (colour on a terminal).
    Text,
    /// Versioned JSON, described by a schema under schemas/.
    Json,
    /// For pull-request comments and job summaries.
    Markdown,
}

/// `--api-url` / `CASTARI_API_URL`: set but empty is refused rather than read as unset, which
/// would send the API key to the config's URL or the production API without anyone asking.
fn api_url(text: &str) -> Result<String, String> {
    if text.trim().is_empty() {
        return Err("an empty URL: give the platform's URL, or unset CASTARI_API_URL to use platform.url from castsync.yaml (default https://api.castari.com)".to_owned());
    }
    Ok(text.to_owned())
}

/// How to reach the platform: shared by `reconcile`, `doctor` and `watch`.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Platform options")]
pub struct PlatformArgs {
    /// Platform URL, or local://PATH for the embedded store.
    ///
    /// Overrides the config's platform.url; the default is https://api.castari.com.
    #[arg(long, value_name = "URL", env = "CASTARI_API_URL", value_parser = api_url)]
    pub api_url: Option<String>,
    /// File holding the API key (default: the CASTARI_API_KEY variable).
    #[arg(long, value_name = "FILE")]
    pub api_key_file: Option<PathBuf>,
    /// The API key (cast_…), from the environment only.
    ///
    /// On the command line it would show in `ps` and shell history, so a value given as a
    /// flag is refused.
    #[arg(long = "api-key", env = "CASTARI_API_KEY", hide_env_values = true, value_name = "KEY",
          value_parser = secret_value)]
    pub api_key: Option<SecretString>,
    /// Allow plain http:// to a host that is not loopback.
    ///
    /// The API key and the values would cross the network in clear: for trusted networks
    /// only.
    #[arg(long)]
    pub allow_insecure_http: bool,
    /// How long one HTTP request may take.
    ///
    /// Connecting included, at least 1s; a request that runs out is retried once. A redeploy
    /// gets at least 120s.
    #[arg(long, default_value = "30s", value_name = "DURATION", value_parser = duration)]
    pub request_timeout: Duration,
}

#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Apply options")]
pub struct ApplyArgs {
    /// Never delete platform keys, whatever the config's prune says.
    #[arg(long)]
    pub no_prune: bool,
    /// Allow deleting more than max_delete_fraction of an agent's keys.
    ///
    /// Without it, a plan that would delete more than the config's max_delete_fraction of an
    /// agent's keys, or all of them, skips that agent.
    #[arg(long)]
    pub allow_mass_delete: bool,
    /// Agents applied in parallel.
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub concurrency: u16,
    /// State database (default: .castsync/state.db in the repository).
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
    /// Redeploy each agent whose secrets change (overrides the config).
    #[arg(long, conflicts_with = "no_redeploy")]
    pub redeploy: bool,
    /// Never redeploy (overrides the config).
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
    /// Plan only: GET requests, nothing written.
    #[arg(long)]
    pub dry_run: bool,
    /// Only this agent (repeatable).
    #[arg(long = "agent", value_name = "AGENT", add = agents())]
    pub agents: Vec<String>,
    /// Read the manifests from this git revision, not the worktree.
    #[arg(long = "ref", value_name = "REF")]
    pub git_ref: Option<String>,
    /// Take last-applied values from this revision (pull-request plans).
    ///
    /// A key whose value is the same at REF and in the source counts as in sync, so the plan
    /// shows exactly what the pull request changes.
    #[arg(long, value_name = "REF")]
    pub base: Option<String>,
    /// Refresh only the agents changed since they last converged.
    ///
    /// An agent is refreshed when its manifest, .env.example, the settings that bear on it
    /// or a shared group it used changed since the state recorded it converging (or since
    /// --since REF), or its last run failed; the plan says how many were left out. Without a
    /// usable baseline every agent is refreshed. Not with --plan (a saved plan is applied
    /// exactly) or --save-plan (a saved plan covers every agent of its run).
    #[arg(long, conflicts_with_all = ["plan", "save_plan"])]
    pub changed: bool,
    /// With --changed: compare with this revision, not the state.
    #[arg(long, value_name = "REF", requires = "changed")]
    pub since: Option<String>,
    /// How to print the plan (and what landed).
    #[arg(short, long, value_enum, default_value_t = OutputFormat::Text, value_name = "FORMAT")]
    pub output: OutputFormat,
    /// With --dry-run: exit 2 when the plan has changes.
    #[arg(long)]
    pub exit_code: bool,
    /// Apply without asking.
    ///
    /// On a terminal, a plan that deletes keys is shown first and applied only after `y`;
    /// without a terminal castsync never asks.
    #[arg(short, long)]
    pub yes: bool,
    /// Rewrite this key's value whatever the state says (repeatable).
    ///
    /// As `terraform apply -replace`: heals a value changed on a platform that lists no
    /// timestamps.
    #[arg(long = "replace", value_name = "AGENT/KEY", value_parser = parse_replace_target)]
    pub replace: Vec<(String, String)>,
    /// Rewrite every value of these agents (all when none is named).
    #[arg(long = "replace-all", value_name = "AGENT", num_args = 0.., add = agents())]
    pub replace_all: Option<Vec<String>>,
    /// With --dry-run: also save the plan, for --plan.
    ///
    /// The file holds key names, actions, the git blob ids of the files the plan was made
    /// from, the target and a digest of each agent's key list; never a value.
    #[arg(long, value_name = "FILE", requires = "dry_run")]
    pub save_plan: Option<PathBuf>,
    /// Apply exactly a saved plan, or refuse if anything moved.
    ///
    /// Applies the changes of a plan saved with --save-plan and nothing else. Refused (exit
    /// 1, naming what moved) when the config, a manifest or .env.example, the target or the
    /// key list of an agent it changes differs from when it was saved. With --dry-run, only
    /// checks that it still applies.
    #[arg(long, value_name = "FILE", conflicts_with_all = [
        "save_plan", "base", "replace", "replace_all", "agents", "no_prune", "redeploy", "no_redeploy",
    ])]
    pub plan: Option<PathBuf>,
    /// Deadline for the whole run (default: 5m + 0.6s per request).
    ///
    /// When it passes (e.g. 90s, 10m), the requests in flight are cancelled and what did not
    /// finish is reported (exit 1). The default gives each request the run needs 0.6s, since
    /// Castari allows 100 a minute.
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub timeout: Option<Duration>,
    /// Only this environment (repeatable; default: all).
    #[arg(long = "env", value_name = "ENV")]
    pub envs: Vec<String>,
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

/// `-o/--output` of doctor (a report, not a plan: no Markdown).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DoctorFormat {
    /// One ok/note/warn/FAIL line per check, with a fix under each problem.
    Text,
    /// Versioned JSON, described by schemas/doctor.schema.json.
    Json,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// How to print the report.
    #[arg(short, long, value_enum, default_value_t = DoctorFormat::Text, value_name = "FORMAT")]
    pub output: DoctorFormat,
    /// Deadline for the platform checks (e.g. 90s); agents not listed by then fail the
    /// check. Default: 5m plus 0.6s per agent.
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub timeout: Option<Duration>,
    /// Only this environment (repeatable; default: all).
    #[arg(long = "env", value_name = "ENV")]
    pub envs: Vec<String>,
    #[command(flatten)]
    pub platform: PlatformArgs,
}

/// `-o/--output` of history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum HistoryFormat {
    /// One line per change, aligned in columns.
    Text,
    /// Versioned JSON, described by schemas/history.schema.json.
    Json,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Only this agent's changes.
    #[arg(add = agents())]
    pub agent: Option<String>,
    /// Only changes from this long ago until now (e.g. 30m, 24h, 7d; at least 1s).
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub since: Option<Duration>,
    /// How to print the entries.
    #[arg(short, long, value_enum, default_value_t = HistoryFormat::Text, value_name = "FORMAT")]
    pub output: HistoryFormat,
    /// The state whose history to read (default: .castsync/state.db under the
    /// repository); the history is the file next to it.
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
    /// The environment whose history to read (each has its own, next to its state file).
    #[arg(long = "env", value_name = "ENV")]
    pub env: Option<String>,
}

#[derive(Debug, Args)]
pub struct StateArgs {
    #[command(subcommand)]
    pub command: StateCommand,
}

#[derive(Debug, Subcommand)]
pub enum StateCommand {
    /// Print the state as the JSON document the state file held.
    ///
    /// Read only: it takes no lock, so it works while a reconcile or the daemon runs, and it
    /// migrates nothing (a state file not migrated yet is printed as it is). The document is
    /// described by schemas/state.schema.json; it holds the HMAC key of the fingerprints, so
    /// keep it as private as the state.
    #[command(after_help = "Examples:
  castsync state export > .castsync/state-export.json   # the whole state, as one JSON document
  castsync state export --env production    # one environment's state
  castsync state export --state /var/lib/castsync/acme/state.db   # a daemon's state")]
    Export(StateExportArgs),
}

#[derive(Debug, Args)]
pub struct StateExportArgs {
    /// The state to print (default: .castsync/state.db under the repository).
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
    /// The environment whose state to print (each has its own).
    #[arg(long = "env", value_name = "ENV")]
    pub env: Option<String>,
}
