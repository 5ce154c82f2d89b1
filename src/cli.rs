//! Command-line definitions (clap derive) and the rules clap applies while parsing: value
//! parsers (durations), the environment variables behind flags, and the refusal of a secret
//! given as a flag. No behaviour lives here: `commands` turns these into actions. Secret
//! values never appear as arguments; they come from stdin, a hidden prompt or the
//! environment.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::{OsStringValueParser, TypedValueParser as _};
use clap::{Args, Parser, Subcommand, ValueEnum};
use secrecy::SecretString;

/// Builds a long help's closing "Examples:" section from command lines.
macro_rules! examples {
    ($($line:expr),+ $(,)?) => {
        concat!("Examples:", $("\n  ", $line),+)
    };
}

/// The exit status table, shown in `castsync --help` (README: "Exit status").
macro_rules! exit_status {
    () => {
        "\
Exit status:
  0  success; with --exit-code (reconcile --dry-run, diff): no changes
  1  an error: a usage error (unknown flag, bad value), an invalid manifest, an agent that
     failed or was skipped, a platform error, a failed redeploy, a failed doctor check, or
     an apply declined at the prompt
  2  only with --exit-code (reconcile --dry-run, diff): there are changes"
    };
}

/// The exit status table of `castsync --help`.
pub const EXIT_STATUS: &str = exit_status!();

#[derive(Debug, Parser)]
#[command(
    name = "castsync",
    version,
    about = "Keep Castari agents' secrets in git: age-encrypted manifests, planned and applied like terraform",
    propagate_version = true,
    after_long_help = concat!(exit_status!(), "\n\n", examples!(
        "castsync init                       # a new secrets repository here",
        "castsync new support-bot            # an empty manifest and .env.example",
        "printf %s \"$KEY\" | castsync set support-bot OPENAI_API_KEY",
        "castsync validate                   # offline checks, as CI runs them",
        "castsync reconcile --dry-run        # the plan; nothing written",
        "castsync reconcile                  # plan, confirm deletes, apply, verify",
    ))
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags accepted before or after any subcommand; listed after each command's own, under
/// their own heading, so a command's help reads its options first.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Global options")]
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
    /// An age identity's text (age-keygen format or an OpenSSH private key), for CI secret
    /// stores. Read from the environment only: on the command line it would show in `ps` and
    /// shell history, so a value given as a flag is refused.
    #[arg(long = "age-key", global = true, env = "CASTSYNC_AGE_KEY", hide_env_values = true,
          value_name = "KEY", value_parser = secret_value)]
    pub age_key: Option<SecretString>,
    /// An identity file tried after -i and CASTSYNC_AGE_KEY, before
    /// ~/.config/castsync/keys.txt. Set but empty, it is listed among the places searched
    /// rather than refused.
    #[arg(
        long = "age-key-file",
        global = true,
        env = "CASTSYNC_AGE_KEY_FILE",
        value_name = "FILE",
        value_parser = OsStringValueParser::new().map(PathBuf::from)
    )]
    pub age_key_file: Option<PathBuf>,
    /// A command whose stdout is an identity (run by `sh -c`, e.g. `op read
    /// op://vault/castsync/key`), tried after CASTSYNC_AGE_KEY_FILE, before
    /// ~/.config/castsync/keys.txt. Its stdin is closed, its stderr shown; it may take
    /// CASTSYNC_AGE_KEY_CMD_TIMEOUT seconds (default 60) and print at most 64 KiB.
    #[arg(
        long = "age-key-cmd",
        global = true,
        env = "CASTSYNC_AGE_KEY_CMD",
        value_name = "COMMAND"
    )]
    pub age_key_cmd: Option<String>,
    /// Log filter (tracing EnvFilter syntax, e.g. `debug` or `castsync=trace`); overrides -v
    /// and -q.
    #[arg(
        long = "log",
        global = true,
        env = "CASTSYNC_LOG",
        value_name = "FILTER"
    )]
    pub log: Option<String>,
    /// Colour in plans and progress: auto (a terminal, and NO_COLOR unset or empty), always
    /// or never.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto, value_name = "WHEN")]
    pub color: ColorChoice,
}

/// `--color`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    /// Colour on a terminal, unless NO_COLOR is set to a non-empty value.
    Auto,
    /// Colour even when not on a terminal, and despite NO_COLOR.
    Always,
    /// No colour.
    Never,
}

/// Parses the command line. Usage errors come back as clap errors, which `main` turns into
/// exit status 1; a secret given as a flag value is refused here.
pub fn parse() -> Result<Cli, clap::Error> {
    use clap::parser::ValueSource;
    use clap::{CommandFactory as _, FromArgMatches as _};
    let mut command = Cli::command();
    let matches = command.try_get_matches_from_mut(std::env::args_os())?;
    let levels = std::iter::once(&matches).chain(matches.subcommand().map(|(_, m)| m));
    for m in levels {
        for (id, var, instead) in ENV_ONLY {
            if m.ids().any(|i| i == id) && m.value_source(id) == Some(ValueSource::CommandLine) {
                // clap prints usage errors itself; the hint goes into its message, drawn by
                // the one hint renderer.
                return Err(command.error(
                    clap::error::ErrorKind::ArgumentConflict,
                    format!(
                        "--{} is read from the environment only: a secret on the command line shows in `ps` and shell history\n{}",
                        id.replace('_', "-"),
                        crate::hint::line("  ", &format!("export {var}=…, or pass {instead}")),
                    ),
                ));
            }
        }
    }
    Cli::from_arg_matches(&matches)
}

/// Arguments that only the environment may set: (argument id, variable, the file flag to use
/// instead).
const ENV_ONLY: &[(&str, &str, &str)] = &[
    (
        "age_key",
        "CASTSYNC_AGE_KEY",
        "-i FILE or --age-key-file FILE",
    ),
    ("api_key", "CASTARI_API_KEY", "--api-key-file FILE"),
];

/// A secret from the environment, held in a zeroize-on-drop wrapper.
fn secret_value(text: &str) -> Result<SecretString, std::convert::Infallible> {
    Ok(SecretString::from(text.to_owned()))
}

/// The longest `--interval` or `--resync`: far beyond any useful period, and small enough
/// that adding it (with jitter) to the clock can never overflow.
const MAX_PERIOD: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// `60s`, `10m`, `1h30m`: at least one second, at most 365 days.
fn duration(text: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(text.trim())
        .map_err(|e| format!("{e} (use a duration such as 30s, 10m or 1h)"))?;
    if d < Duration::from_secs(1) {
        return Err("too short: the minimum is 1s".to_owned());
    }
    if d > MAX_PERIOD {
        return Err("too long: the maximum is 365d".to_owned());
    }
    Ok(d)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event.
    Text,
    /// One JSON object per line (for log collectors).
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Set up a secrets repository: castsync.yaml, agents/, .gitignore, .gitattributes.
    #[command(after_long_help = examples!(
        "castsync init",
        "castsync -C agent-secrets init",
        "castsync -i ci-key.txt init            # recipients: that key's public key",
    ))]
    Init(InitArgs),
    /// Generate a new age X25519 identity (mode 0600) and print its public recipient.
    #[command(after_long_help = examples!(
        "castsync keygen                          # ~/.config/castsync/keys.txt",
        "castsync keygen -o ci-key.txt           # a key for CI; store its text as CASTSYNC_AGE_KEY",
        "castsync keygen -q -o teammate.txt      # prints only the public key",
    ))]
    Keygen(KeygenArgs),
    /// Create agents/AGENT/secrets.yaml.age with no secrets (and an .env.example), or with
    /// --shared a shared group's shared/GROUP/secrets.yaml.age.
    #[command(after_long_help = examples!(
        "castsync new support-bot",
        "castsync -C agent-secrets new billing-agent",
        "castsync new --shared openai            # a group agents take keys from with `uses:`",
    ))]
    New(AgentArg),
    /// Decrypt an agent's (or a shared group's) manifest into $VISUAL/$EDITOR, validate,
    /// re-encrypt.
    #[command(after_long_help = examples!(
        "castsync edit support-bot",
        "EDITOR=\"code --wait\" castsync edit support-bot",
        "castsync edit --shared openai",
    ))]
    Edit(AgentArg),
    /// Set one key; the value is read from stdin or a hidden prompt, never from argv.
    #[command(after_long_help = examples!(
        "castsync set support-bot OPENAI_API_KEY                 # hidden prompt",
        "printf %s \"$KEY\" | castsync set support-bot OPENAI_API_KEY",
        "castsync set --raw support-bot TLS_CERT < cert.pem      # keep the trailing newline",
        "castsync set --shared openai OPENAI_API_KEY             # every agent using it follows",
    ))]
    Set(SetArgs),
    /// Remove one key from an agent's (or a shared group's) manifest.
    #[command(after_long_help = examples!(
        "castsync unset support-bot OLD_API_KEY",
        "castsync unset --idempotent support-bot OLD_API_KEY    # scripts: absent is fine",
        "castsync unset --shared openai OLD_API_KEY",
    ))]
    Unset(UnsetArgs),
    /// List an agent's (or a shared group's) keys (values only with --reveal).
    #[command(after_long_help = examples!(
        "castsync show support-bot                              # keys, values hidden",
        "castsync show support-bot --reveal --format dotenv > .env",
        "castsync show support-bot --format json | jq -r '.secrets | keys[]'",
        "castsync show --shared openai",
    ))]
    Show(ShowArgs),
    /// Create or merge an agent's manifest from a dotenv file.
    #[command(after_long_help = examples!(
        "castsync import support-bot --from-dotenv .env",
        "castsync import support-bot --from-dotenv - --overwrite < new.env",
    ))]
    Import(ImportArgs),
    /// Re-encrypt manifests (agents' and shared groups') to the recipients the config now
    /// assigns.
    #[command(after_long_help = examples!(
        "castsync rekey                         # after editing recipients in castsync.yaml",
        "castsync rekey --check                 # CI: exit 1 if any file is stale",
        "castsync rekey --check -o json",
        "castsync rekey --shared openai         # one shared group",
    ))]
    Rekey(RekeyArgs),
    /// Decrypt, parse and check every manifest against its schema (offline).
    #[command(after_long_help = examples!(
        "castsync validate",
        "castsync validate support-bot billing-agent",
        "castsync validate -o json | jq '.findings[] | select(.severity == \"error\")'",
    ))]
    Validate(ValidateArgs),
    /// Plan and apply the sets and deletes that make the platform match git.
    #[command(after_long_help = concat!(exit_status!(), "\n\n", examples!(
        "castsync reconcile --dry-run                          # the plan; nothing written",
        "castsync reconcile                                    # asks before deleting on a terminal",
        "castsync reconcile --yes --agent support-bot",
        "castsync reconcile --dry-run --exit-code -o markdown  # CI: exit 2 when there are changes",
        "castsync reconcile --api-url local://dev.json         # the embedded store: no server, no key",
        "castsync reconcile --replace support-bot/OPENAI_API_KEY  # rewrite one value, whatever the state",
        "castsync reconcile --replace-all billing-agent        # rewrite every value of an agent",
        "castsync reconcile --redeploy                         # redeploy each changed agent",
        "castsync reconcile --changed                          # only agents changed since they last converged",
        "castsync reconcile --changed --since HEAD~1           # only agents changed since a revision",
        "castsync reconcile --dry-run --timeout 2m             # CI: give up on a silent platform",
        "castsync reconcile --dry-run --base origin/main --save-plan plan.json   # CI: the reviewed plan",
        "castsync reconcile --plan plan.json                   # apply exactly that plan, if nothing moved",
    )))]
    Reconcile(ReconcileArgs),
    /// Check the setup read-only: repository, identities, recipients, platform, API key,
    /// rate limits, and what each agent's key list means for drift.
    #[command(after_long_help = concat!(
        "Exit status:\n",
        "  0  nothing failed (notes and warnings may be listed)\n",
        "  1  a check failed (each is listed with its fix) or a usage error\n\n",
        examples!(
            "castsync doctor                             # with the real API key in CASTARI_API_KEY",
            "castsync doctor --api-url local://dev.json  # the embedded store: no server, no key",
            "castsync doctor -o json | jq '.checks[] | select(.status == \"fail\")'",
            "castsync doctor --timeout 1m --request-timeout 10s",
        )
    ))]
    Doctor(DoctorArgs),
    /// List what past applies did, one line per change: when, from which commit, result.
    #[command(
        long_about = "List what past applies did, one line per change (and per redeploy): when, from \
which commit, to which platform, the agent, the key, the action and whether it landed.\n\n\
Every apply (reconcile and watch) appends to a history file next to the state file \
(.castsync/state.history.jsonl for .castsync/state.json). It holds no values and no \
fingerprints. At 8 MiB it is rotated to FILE.1, so at most two generations are kept.",
        after_long_help = examples!(
            "castsync history                          # every recorded change, oldest first",
            "castsync history support-bot --since 24h  # one agent, the last day",
            "castsync history -o json | jq '.entries[] | select(.result != \"applied\")'",
            "castsync history --state /var/lib/castsync/acme/state.json   # a daemon's history",
        )
    )]
    History(HistoryArgs),
    /// Run as a daemon that follows a branch and converges on every change.
    #[command(after_long_help = examples!(
        "castsync watch --git-url https://github.com/acme/agent-secrets --branch main",
        "castsync watch --git-url ssh://git@github.com/acme/agent-secrets --ssh-key deploy_key --interval 5m",
        "castsync -C agent-secrets watch --api-url local://dev.json   # follow a working tree",
        "castsync watch --git-url https://github.com/acme/agent-secrets --no-redeploy",
    ))]
    Watch(WatchArgs),
    /// Serve a local emulator of the Castari secrets API (tests, demos, offline CI).
    #[command(after_long_help = examples!(
        "castsync emulator --auto-create-agents",
        "castsync emulator --listen 127.0.0.1:0 --rate-limit 10/6 --data emu.json",
        "castsync emulator --fail-rate 0.2 --fail-mode 429 --seed 7",
        "castsync emulator --wire docs --agents support-bot   # the docs' paged, timestamped lists",
    ))]
    Emulator(EmulatorArgs),
    /// git diff driver: print an encrypted manifest's keys with keyed fingerprints.
    #[command(after_long_help = examples!(
        "git config diff.castsync.textconv \"castsync textconv\"   # once per clone",
        "castsync textconv agents/support-bot/secrets.yaml.age",
    ))]
    Textconv(TextconvArgs),
    /// Key-level redacted diff of manifests between two revisions.
    #[command(after_long_help = concat!(exit_status!(), "\n\n", examples!(
        "castsync diff                          # HEAD against the worktree",
        "castsync diff main HEAD",
        "castsync diff origin/main --exit-code  # exit 2 when manifests differ",
        "castsync diff main HEAD -o json",
    )))]
    Diff(DiffArgs),
    /// git merge driver: merge two branches' versions of a manifest key by key.
    #[command(
        long_about = "git merge driver: merge two branches' versions of an encrypted manifest key by key.\n\n\
git runs it when both branches changed one agent's manifest (set it up once per clone with \
`castsync git-setup`). It decrypts the three versions, takes each key that one side changed \
(or both changed the same way), encrypts the result to the recipients castsync.yaml assigns \
the agent, and writes it over OURS. A key changed differently on both sides, or changed on one \
and deleted on the other, is a conflict: it exits 1 naming the keys (never a value), leaves \
OURS byte for byte as it was, and git stops the merge; settle it with `castsync edit AGENT`.",
        after_long_help = examples!(
            "git config merge.castsync.driver \"castsync merge-driver %O %A %B %P\"   # what git-setup sets",
            "castsync merge-driver base.age ours.age theirs.age agents/support-bot/secrets.yaml.age",
        )
    )]
    MergeDriver(MergeDriverArgs),
    /// Set up this clone's git for manifests: the diff and merge drivers, .gitattributes.
    #[command(
        long_about = "Set up this clone's git for encrypted manifests.\n\n\
git config is per clone and never committed, so every clone needs this once. It sets \
diff.castsync.textconv (key-level diffs), merge.castsync.name and merge.castsync.driver \
(key-by-key merges) in the repository's own git config, and adds the lines that route \
*.yaml.age files to them to .gitattributes when git does not route them yet. Running it \
again changes nothing. A driver you configured differently is kept unless --force.",
        after_long_help = examples!(
            "castsync git-setup                      # in a fresh clone of the secrets repository",
            "castsync -C agent-secrets git-setup",
            "castsync git-setup --force              # replace drivers configured differently",
        )
    )]
    GitSetup(GitSetupArgs),
    /// Print a shell completion script.
    #[command(after_long_help = examples!(
        "castsync completions bash > ~/.local/share/bash-completion/completions/castsync",
        "castsync completions zsh > \"${fpath[1]}/_castsync\"",
    ))]
    Completions(CompletionsArgs),
    /// Print the man page (roff).
    #[command(after_long_help = examples!(
        "castsync man > castsync.1 && man ./castsync.1",
    ))]
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
    /// Agent slug (its directory name under agents/), or with --shared the group name.
    pub agent: String,
    /// Work on the shared group named instead of an agent (shared/GROUP/secrets.yaml.age).
    #[arg(long)]
    pub shared: bool,
}

#[derive(Debug, Args)]
pub struct SetArgs {
    /// Agent slug (its directory name under agents/), or with --shared the group name.
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
}

#[derive(Debug, Args)]
pub struct UnsetArgs {
    /// Agent slug (its directory name under agents/), or with --shared the group name.
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
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Agent slug (its directory name under agents/).
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
    /// Agents to rekey, or with --shared shared groups (default: every agent and group).
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
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Agents to validate (default: all).
    pub agents: Vec<String>,
    /// How to print the findings.
    #[arg(short, long, value_enum, default_value_t = OutputFormat::Text, value_name = "FORMAT")]
    pub output: OutputFormat,
}

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

/// How to reach the platform: shared by `reconcile` and `watch`.
#[derive(Debug, Clone, Args)]
pub struct PlatformArgs {
    /// Platform base URL, or local://PATH for the embedded store (overrides the config's
    /// platform.url; default https://api.castari.com).
    #[arg(long, value_name = "URL", env = "CASTARI_API_URL")]
    pub api_url: Option<String>,
    /// File holding the Castari API key (default: the CASTARI_API_KEY variable).
    #[arg(long, value_name = "FILE")]
    pub api_key_file: Option<PathBuf>,
    /// The Castari API key (cast_…). Read from the environment only: on the command line it
    /// would show in `ps` and shell history, so a value given as a flag is refused.
    #[arg(long = "api-key", env = "CASTARI_API_KEY", hide_env_values = true, value_name = "KEY",
          value_parser = secret_value)]
    pub api_key: Option<SecretString>,
    /// Allow plain http:// to a host that is not loopback (the API key would travel in clear).
    #[arg(long)]
    pub allow_insecure_http: bool,
    /// How long one HTTP request may take, connecting included (at least 1s); a request
    /// that runs out is retried once. A redeploy gets at least 120s.
    #[arg(long, default_value = "30s", value_name = "DURATION", value_parser = duration)]
    pub request_timeout: Duration,
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
    /// Refresh only agents whose manifest, .env.example, bearing settings or used shared
    /// groups changed since they last converged (as the state recorded), or since --since REF; the plan says how
    /// many were left unrefreshed. Without a usable baseline every agent is refreshed.
    /// Not with --plan (a saved plan is applied exactly) or --save-plan (a saved plan covers
    /// every agent of its run).
    #[arg(long, conflicts_with_all = ["plan", "save_plan"])]
    pub changed: bool,
    /// With --changed: compare with this git revision instead of the state.
    #[arg(long, value_name = "REF", requires = "changed")]
    pub since: Option<String>,
    /// How to print the plan (and, after an apply, what landed).
    #[arg(short, long, value_enum, default_value_t = OutputFormat::Text, value_name = "FORMAT")]
    pub output: OutputFormat,
    /// With --dry-run: exit 2 when the plan has changes.
    #[arg(long)]
    pub exit_code: bool,
    /// Apply without asking. On a terminal, a plan that deletes keys is shown first and
    /// applied only after `y`; without a terminal castsync never asks.
    #[arg(short, long)]
    pub yes: bool,
    /// Rewrite this key's value whatever the state says (repeatable), as `terraform apply
    /// -replace`: heals a value changed on a platform that lists no timestamps.
    #[arg(long = "replace", value_name = "AGENT/KEY", value_parser = parse_replace_target)]
    pub replace: Vec<(String, String)>,
    /// Rewrite every value of these agents (of every agent when none is named).
    #[arg(long = "replace-all", value_name = "AGENT", num_args = 0..)]
    pub replace_all: Option<Vec<String>>,
    /// With --dry-run: also write the plan to FILE for `reconcile --plan FILE` (key names,
    /// actions, the git blob ids of the files it was made from, the target and a digest of
    /// each agent's key list; never a value).
    #[arg(long, value_name = "FILE", requires = "dry_run")]
    pub save_plan: Option<PathBuf>,
    /// Apply exactly the changes of a plan saved with --save-plan, and nothing else. Refused
    /// (exit 1, naming what moved) when the config, a manifest or .env.example, the target or
    /// the key list of an agent it changes differs from when it was saved. With --dry-run,
    /// only check that it still applies.
    #[arg(long, value_name = "FILE", conflicts_with_all = [
        "save_plan", "base", "replace", "replace_all", "agents", "no_prune", "redeploy", "no_redeploy",
    ])]
    pub plan: Option<PathBuf>,
    /// Deadline for the whole run (e.g. 90s, 10m): when it passes, requests in flight are
    /// cancelled and what did not finish is reported (exit 1). Default: 5m plus 0.6s per
    /// request the run needs (Castari allows 100 a minute).
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub timeout: Option<Duration>,
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
    pub agent: Option<String>,
    /// Only changes from this long ago until now (e.g. 30m, 24h, 7d; at least 1s).
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub since: Option<Duration>,
    /// How to print the entries.
    #[arg(short, long, value_enum, default_value_t = HistoryFormat::Text, value_name = "FORMAT")]
    pub output: HistoryFormat,
    /// The state file whose history to read (default: .castsync/state.json under the
    /// repository); the history is the file next to it.
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
}

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
    #[arg(long, default_value = "127.0.0.1:9464")]
    pub listen: SocketAddr,
    /// Apply only commits signed by a key in this ssh allowed_signers file.
    #[arg(long, value_name = "FILE")]
    pub verify_signatures: Option<PathBuf>,
    /// Deadline for each reconcile cycle; a cycle that runs out is cancelled, reported on
    /// /readyz and retried with backoff. Default: 5m plus 0.6s per request it needs.
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub timeout: Option<Duration>,
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
    #[arg(long, default_value = "127.0.0.1:8787")]
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
    #[arg(long, value_enum, default_value_t = FailMode::ServerError)]
    pub fail_mode: FailMode,
    /// Delay added to every /api/v1 response, in milliseconds.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub latency_ms: u64,
    /// Seed for fault injection (default: random).
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
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
    /// Replace diff and merge drivers that are configured differently.
    #[arg(long)]
    pub force: bool,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_accept_units_and_refuse_nonsense() {
        assert_eq!(duration("60s").unwrap(), Duration::from_secs(60));
        assert_eq!(duration("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(duration("1h30m").unwrap(), Duration::from_secs(5400));
        let err = duration("often").unwrap_err();
        assert!(err.contains("30s, 10m or 1h"), "{err}");
        assert!(duration("10ms").unwrap_err().contains("minimum is 1s"));
        assert_eq!(duration("365d").unwrap(), Duration::from_secs(365 * 86400));
        for huge in ["366d", "99999999999999d"] {
            let err = duration(huge).unwrap_err();
            assert!(err.contains("the maximum is 365d"), "{huge}: {err}");
        }
    }

    #[test]
    fn the_command_line_definition_is_consistent() {
        use clap::CommandFactory as _;
        Cli::command().debug_assert();
    }
}
