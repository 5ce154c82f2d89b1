//! The arguments of the commands that write or read the repository: init, keygen, new, set,
//! unset, show, import, rekey, validate, and the git drivers (textconv, merge-driver,
//! git-setup, diff) and completions.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use super::OutputFormat;
use super::complete::{agents, agents_or_groups};

#[derive(Debug, Args)]
pub struct InitArgs {}

#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Write the identity here (default: ~/.config/castsync/keys.txt).
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct NewArgs {
    /// Agent slug (its directory name under agents/), or with --shared the group name.
    pub agent: String,
    /// Create a shared group instead of an agent (shared/GROUP/secrets.yaml.age).
    #[arg(long)]
    pub shared: bool,
    /// Work on this environment's overlay (secrets.ENV.yaml.age: its keys added to, or
    /// replacing, the shared file's in that environment) instead of the shared file.
    #[arg(long = "env", value_name = "ENV")]
    pub env: Option<String>,
}

#[derive(Debug, Args)]
pub struct AgentArg {
    /// Agent slug (its directory name under agents/), or with --shared the group name.
    #[arg(add = agents_or_groups())]
    pub agent: String,
    /// Work on the shared group named instead of an agent (shared/GROUP/secrets.yaml.age).
    #[arg(long)]
    pub shared: bool,
    /// Work on this environment's overlay (secrets.ENV.yaml.age: its keys added to, or
    /// replacing, the shared file's in that environment) instead of the shared file.
    #[arg(long = "env", value_name = "ENV")]
    pub env: Option<String>,
}

#[derive(Debug, Args)]
pub struct SetArgs {
    /// Agent slug (its directory name under agents/), or with --shared the group name.
    #[arg(add = agents_or_groups())]
    pub agent: String,
    /// Work on the shared group named instead of an agent: every agent whose `uses:` takes
    /// the key gets the new value at the next reconcile.
    #[arg(long)]
    pub shared: bool,
    /// Key name, an environment variable name such as OPENAI_API_KEY.
    pub key: String,
    /// Keep the value exactly as read (by default one trailing newline is removed).
    #[arg(long)]
    pub raw: bool,
    /// Work on this environment's overlay (secrets.ENV.yaml.age: its keys added to, or
    /// replacing, the shared file's in that environment) instead of the shared file.
    #[arg(long = "env", value_name = "ENV")]
    pub env: Option<String>,
}

#[derive(Debug, Args)]
pub struct UnsetArgs {
    /// Agent slug (its directory name under agents/), or with --shared the group name.
    #[arg(add = agents_or_groups())]
    pub agent: String,
    /// Work on the shared group named instead of an agent (refused when an agent using the
    /// group would break, e.g. its `uses:` names the key).
    #[arg(long)]
    pub shared: bool,
    /// Key name to remove.
    pub key: String,
    /// Succeed when the key is already absent.
    #[arg(long)]
    pub idempotent: bool,
    /// Work on this environment's overlay (secrets.ENV.yaml.age: its keys added to, or
    /// replacing, the shared file's in that environment) instead of the shared file.
    #[arg(long = "env", value_name = "ENV")]
    pub env: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ShowFormat {
    /// The manifest as YAML (what `castsync edit` shows).
    Yaml,
    /// KEY='value' lines that `castsync import --from-dotenv` reads back.
    Dotenv,
    /// {"agent": …, "secrets": {…}} (schemas/manifest.schema.json).
    Json,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// Agent slug (its directory name under agents/), or with --shared the group name.
    #[arg(add = agents_or_groups())]
    pub agent: String,
    /// Show the shared group named instead of an agent.
    #[arg(long)]
    pub shared: bool,
    /// Print values too (they are hidden by default).
    #[arg(long)]
    pub reveal: bool,
    /// How to print the manifest.
    #[arg(long, value_enum, default_value_t = ShowFormat::Yaml)]
    pub format: ShowFormat,
    /// Work on this environment's overlay (secrets.ENV.yaml.age: its keys added to, or
    /// replacing, the shared file's in that environment) instead of the shared file.
    #[arg(long = "env", value_name = "ENV")]
    pub env: Option<String>,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Agent slug (its directory name under agents/).
    #[arg(add = agents())]
    pub agent: String,
    /// dotenv file to read (`-` for stdin).
    #[arg(long = "from-dotenv", value_name = "FILE")]
    pub from_dotenv: PathBuf,
    /// Replace keys whose value differs from the manifest's.
    #[arg(long)]
    pub overwrite: bool,
    /// Work on this environment's overlay (secrets.ENV.yaml.age: its keys added to, or
    /// replacing, the shared file's in that environment) instead of the shared file.
    #[arg(long = "env", value_name = "ENV")]
    pub env: Option<String>,
}

/// Which values `run` and `export` take: an agent's, in one environment, all or some keys.
#[derive(Debug, Args)]
pub struct ValuesArgs {
    /// Agent slug (its directory name under agents/).
    #[arg(add = agents())]
    pub agent: String,
    /// The environment whose values to use (needed when castsync.yaml declares several).
    #[arg(long = "env", value_name = "ENV")]
    pub env: Option<String>,
    /// Only this key (repeatable; default: every key of the agent).
    #[arg(long = "only", value_name = "KEY")]
    pub only: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub values: ValuesArgs,
    /// Keep inherited variables: a key already set in castsync's environment is not
    /// replaced by the manifest's value.
    #[arg(long)]
    pub keep_env: bool,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// KEY='value' lines (python-dotenv and node's dotenv read the same values back).
    Dotenv,
    /// One JSON object, key to value.
    Json,
    /// `export KEY='value'` lines for `eval` in a POSIX shell.
    Shell,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub values: ValuesArgs,
    /// How to write the values.
    #[arg(long, value_enum, default_value_t = ExportFormat::Dotenv)]
    pub format: ExportFormat,
    /// Write to this new file (mode 0600) instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// With -o: replace the file if it exists.
    #[arg(long, requires = "output")]
    pub force: bool,
    /// Print the values even when stdout is a terminal.
    #[arg(long)]
    pub reveal: bool,
}

#[derive(Debug, Args)]
pub struct RekeyArgs {
    /// Agents to rekey, or with --shared shared groups (default: every agent and group).
    #[arg(add = agents_or_groups())]
    pub agents: Vec<String>,
    /// Rekey shared groups: those named, or every group when none is named.
    #[arg(long)]
    pub shared: bool,
    /// Only list files whose recipients differ from the config; exit 1 if any.
    #[arg(long)]
    pub check: bool,
    /// With --check: how to print the result.
    #[arg(short, long, value_enum, value_name = "FORMAT", requires = "check")]
    pub output: Option<OutputFormat>,
    /// Only these environments' overlays (repeatable; default: the shared files and every
    /// environment's overlays, each to the recipients castsync.yaml gives it).
    #[arg(long = "env", value_name = "ENV")]
    pub envs: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Agents to validate (default: all).
    #[arg(add = agents())]
    pub agents: Vec<String>,
    /// Only this environment (repeatable; default: every environment castsync.yaml declares,
    /// each agent's file with that environment's overlay, against its .env.example).
    #[arg(long = "env", value_name = "ENV")]
    pub envs: Vec<String>,
    /// How to print the findings.
    #[arg(short, long, value_enum, default_value_t = OutputFormat::Text, value_name = "FORMAT")]
    pub output: OutputFormat,
}

#[derive(Debug, Args)]
pub struct TextconvArgs {
    /// The encrypted manifest git hands the driver (a temporary copy of one version).
    pub file: PathBuf,
}

/// The placeholders git fills in for a merge driver (gitattributes(5), "Defining a custom
/// merge driver"): `%O %A %B %P`.
#[derive(Debug, Args)]
pub struct MergeDriverArgs {
    /// The common ancestor's version (git's %O; an empty file when both branches added it).
    #[arg(value_name = "ANCESTOR")]
    pub base: PathBuf,
    /// Our version (git's %A): replaced by the merged result, left as it was on a conflict.
    #[arg(value_name = "OURS")]
    pub ours: PathBuf,
    /// Their version (git's %B).
    #[arg(value_name = "THEIRS")]
    pub theirs: PathBuf,
    /// Where the manifest lives in the repository (git's %P): it names the agent.
    #[arg(value_name = "PATH")]
    pub path: PathBuf,
}

#[derive(Debug, Args)]
pub struct GitSetupArgs {
    /// Replace diff and merge drivers that are configured differently (and, with --hooks,
    /// another pre-commit hook, saved beside it first).
    #[arg(long)]
    pub force: bool,
    /// Also install a git pre-commit hook that runs `castsync guard --staged`.
    #[arg(long)]
    pub hooks: bool,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// Older revision (default: HEAD).
    pub rev_a: Option<String>,
    /// Newer revision (default: the worktree).
    pub rev_b: Option<String>,
    /// Exit 2 when the manifests differ (0 when they do not), like `git diff --exit-code`.
    #[arg(long)]
    pub exit_code: bool,
    /// Compare two environments instead (pass it twice): keys in one only, reused values.
    #[arg(long = "env", value_name = "ENV")]
    pub envs: Vec<String>,
    /// How to print the differences.
    #[arg(short, long, value_enum, default_value_t = OutputFormat::Text, value_name = "FORMAT")]
    pub output: OutputFormat,
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
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: Shell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write castsync.1 and a page per command into this directory (created if missing),
    /// instead of printing castsync.1.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}
