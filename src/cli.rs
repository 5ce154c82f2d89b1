//! Command-line definitions (clap derive) and the rules clap applies while parsing: value
//! parsers (durations), the environment variables behind flags, and the refusal of a secret
//! given as a flag. No behaviour lives here: `commands` turns these into actions. Secret
//! values never appear as arguments; they come from stdin, a hidden prompt or the
//! environment.

use std::path::PathBuf;
use std::time::Duration;

use clap::builder::{OsStringValueParser, TypedValueParser as _};
use clap::{Args, Parser, Subcommand, ValueEnum};
use secrecy::SecretString;

// The arguments of each command, grouped as the commands are: the authoring and git-side
// commands, the commands that reach a platform, and the long-running services.
mod authoring;
mod complete;
mod help;
mod hygiene;
mod run;
mod service;

pub use complete::{COMPLETE_VAR, complete_if_asked, registration};
pub use help::{OPTIONS, command, man_command};

pub use authoring::*;
pub use hygiene::*;
pub use run::*;
pub use service::*;

/// Builds a long help's closing "Examples:" section from command lines.
macro_rules! examples {
    ($($line:expr),+ $(,)?) => {
        concat!("Examples:", $("\n  ", $line),+)
    };
}

/// The exit status table, shown in `castsync --help` (docs/config.md: "Exit codes").
macro_rules! exit_status {
    () => {
        "\
Exit status:
  0  success; with --exit-code (reconcile --dry-run, diff): no changes; (audit): nothing
     overdue or exposed
  1  an error: a usage error (unknown flag, bad value), an invalid manifest, an agent that
     failed or was skipped, a platform error, a failed redeploy, a failed doctor check, a
     value found by guard, or an apply declined at the prompt
  2  only with --exit-code (reconcile --dry-run, diff): there are changes; (audit): a value
     is overdue for rotation or readable by a former recipient"
    };
}

/// The exit status table of `castsync --help`.
pub const EXIT_STATUS: &str = exit_status!();

#[derive(Debug, Parser)]
#[command(
    name = "castsync",
    version,
    about = "Keep Castari agents' secrets in git: age-encrypted manifests, planned and applied like terraform",
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
    /// Secrets repository to work in.
    ///
    /// By default, the nearest directory holding castsync.yaml, from the current one up to
    /// the filesystem root.
    #[arg(short = 'C', long = "repo", global = true, value_name = "DIR")]
    pub repo: Option<PathBuf>,
    /// Config file (default: castsync.yaml at the repository root).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// age identity file or OpenSSH private key (repeatable).
    ///
    /// Tried before CASTSYNC_AGE_KEY, CASTSYNC_AGE_KEY_FILE, CASTSYNC_AGE_KEY_CMD and
    /// ~/.config/castsync/keys.txt.
    #[arg(short = 'i', long = "identity", global = true, value_name = "FILE")]
    pub identity: Vec<PathBuf>,
    /// Log line format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, value_name = "FORMAT")]
    pub log_format: LogFormat,
    /// More logging (-v info, -vv debug, -vvv trace).
    ///
    /// Values are never logged, at any level.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Less output (-q: errors only).
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "verbose")]
    pub quiet: u8,
    /// An identity's text, for CI secret stores; from the environment only.
    ///
    /// The text of an age-keygen file or an OpenSSH private key. On the command line it would
    /// show in `ps` and shell history, so a value given as a flag is refused.
    #[arg(long = "age-key", global = true, env = "CASTSYNC_AGE_KEY", hide_env_values = true,
          value_name = "KEY", value_parser = secret_value)]
    pub age_key: Option<SecretString>,
    /// An identity file, tried after -i and CASTSYNC_AGE_KEY.
    ///
    /// Tried before CASTSYNC_AGE_KEY_CMD and ~/.config/castsync/keys.txt. Set but empty, it
    /// is listed among the places searched rather than refused.
    #[arg(
        long = "age-key-file",
        global = true,
        env = "CASTSYNC_AGE_KEY_FILE",
        value_name = "FILE",
        value_parser = OsStringValueParser::new().map(PathBuf::from)
    )]
    pub age_key_file: Option<PathBuf>,
    /// A command that prints an identity (a password manager).
    ///
    /// Run by `sh -c` (e.g. `op read op://vault/castsync/key`), tried after
    /// CASTSYNC_AGE_KEY_FILE, before ~/.config/castsync/keys.txt. Its stdin is closed, its
    /// stderr shown; it may take CASTSYNC_AGE_KEY_CMD_TIMEOUT seconds (default 60) and print
    /// at most 64 KiB.
    #[arg(
        long = "age-key-cmd",
        global = true,
        env = "CASTSYNC_AGE_KEY_CMD",
        value_name = "COMMAND"
    )]
    pub age_key_cmd: Option<String>,
    /// Log filter (e.g. `debug`, `castsync=trace`); overrides -v and -q.
    ///
    /// tracing's EnvFilter syntax.
    #[arg(
        long = "log",
        global = true,
        env = "CASTSYNC_LOG",
        value_name = "FILTER"
    )]
    pub log: Option<String>,
    /// Colour in plans and progress.
    ///
    /// auto: on a terminal, when NO_COLOR is unset or empty; always; or never.
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
    use clap::FromArgMatches as _;
    use clap::parser::ValueSource;
    let mut command = command();
    let matches = command
        .try_get_matches_from_mut(std::env::args_os())
        .map_err(unexpected_value_not_shown)?;
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

/// clap's "unexpected argument 'VALUE' found" for a word that is not a flag: most often a
/// secret typed after `castsync set AGENT KEY`. The shell history has it already; a CI log
/// need not, so the word is not repeated (its length is), whatever the command. An unknown
/// flag (`--tok`, which clap names without its `=value`) keeps clap's message.
fn unexpected_value_not_shown(err: clap::Error) -> clap::Error {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if err.kind() != ErrorKind::UnknownArgument {
        return err;
    }
    let Some(ContextValue::String(word)) = err.get(ContextKind::InvalidArg) else {
        return err;
    };
    let after_separator = std::env::args_os().any(|a| a == "--");
    if word.starts_with('-') && word.len() > 1 && !after_separator {
        return err;
    }
    let length = crate::escape::length_of(word);
    let usage = match err.get(ContextKind::Usage) {
        Some(ContextValue::StyledStr(usage)) => format!("\n\n{usage}"),
        _ => String::new(),
    };
    clap::Error::raw(
        ErrorKind::UnknownArgument,
        format!(
            "unexpected argument ({length}, not shown: a value on the command line shows in `ps`, shell history and CI logs)\n{}{usage}\n\nFor more information, try '--help'.\n",
            crate::hint::line(
                "  ",
                "castsync takes no value on the command line; `castsync set AGENT KEY` reads it from stdin or a hidden prompt: printf %s \"$VALUE\" | castsync set AGENT KEY"
            ),
        ),
    )
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
    /// Set up a secrets repository here.
    ///
    /// Writes castsync.yaml (your public key as the recipient), agents/, .gitignore and
    /// .gitattributes, and creates your identity first when you have none.
    #[command(after_help = examples!(
        "castsync init",
        "castsync -C agent-secrets init",
        "castsync -i ci-key.txt init            # recipients: that key's public key",
    ))]
    Init(InitArgs),
    /// Create your age identity and print its public key.
    ///
    /// A new age X25519 identity, written with mode 0600 (never over an existing file); the
    /// public key it prints is what a teammate adds to `recipients` in castsync.yaml.
    #[command(after_help = examples!(
        "castsync keygen                          # ~/.config/castsync/keys.txt",
        "castsync keygen -o ci-key.txt           # a key for CI; store its text as CASTSYNC_AGE_KEY",
        "castsync keygen -q -o teammate.txt      # prints only the public key",
    ))]
    Keygen(KeygenArgs),
    /// Create an agent's (or a shared group's) empty manifest.
    ///
    /// Writes agents/AGENT/secrets.yaml.age with no secrets and a commented .env.example, or
    /// with --shared a shared group's shared/GROUP/secrets.yaml.age.
    #[command(after_help = examples!(
        "castsync new support-bot",
        "castsync -C agent-secrets new billing-agent",
        "castsync new --shared openai            # a group agents take keys from with `uses:`",
    ))]
    New(NewArgs),
    /// Edit a manifest in your editor.
    ///
    /// Decrypts an agent's (or a shared group's) manifest into a private temporary file,
    /// opens $VISUAL or $EDITOR, validates the result and encrypts it again.
    #[command(after_help = examples!(
        "castsync edit support-bot",
        "EDITOR=\"code --wait\" castsync edit support-bot",
        "castsync edit --shared openai",
    ))]
    Edit(AgentArg),
    /// Set one key from stdin or a hidden prompt.
    ///
    /// The value is read from stdin, or on a terminal from a hidden prompt (asked twice);
    /// never from the command line, where it would show in `ps` and shell history.
    #[command(after_help = examples!(
        "castsync set support-bot OPENAI_API_KEY                 # hidden prompt",
        "printf %s \"$KEY\" | castsync set support-bot OPENAI_API_KEY",
        "castsync set --raw support-bot TLS_CERT < cert.pem      # keep the trailing newline",
        "castsync set --shared openai OPENAI_API_KEY             # every agent using it follows",
    ))]
    Set(SetArgs),
    /// Remove one key from a manifest.
    #[command(after_help = examples!(
        "castsync unset support-bot OLD_API_KEY",
        "castsync unset --idempotent support-bot OLD_API_KEY    # scripts: absent is fine",
        "castsync unset --shared openai OLD_API_KEY",
    ))]
    Unset(UnsetArgs),
    /// List a manifest's keys (values only with --reveal).
    #[command(after_help = examples!(
        "castsync show support-bot                              # keys, values hidden",
        "castsync show support-bot --reveal --format dotenv > .env",
        "castsync show support-bot --format json | jq -r '.secrets | keys[]'",
        "castsync show --shared openai",
    ))]
    Show(ShowArgs),
    /// Create or merge a manifest from a .env file.
    #[command(after_help = examples!(
        "castsync import support-bot --from-dotenv .env",
        "castsync import support-bot --from-dotenv - --overwrite < new.env",
    ))]
    Import(ImportArgs),
    /// Run a command with an agent's secrets in its environment.
    ///
    /// Decrypts the agent's values (its own, its shared groups', the environment's overlay)
    /// and runs CMD with them added to its environment; nothing is written to disk. On Unix
    /// castsync becomes CMD (exec): its exit status and signals are CMD's own. A required key
    /// missing from the manifest stops it before CMD starts.
    #[command(after_help = examples!(
        "castsync run support-bot -- npm start",
        "castsync run --env staging support-bot -- python bot.py",
        "castsync run support-bot --only OPENAI_API_KEY -- ./smoke-test.sh",
    ))]
    Run(RunArgs),
    /// Print or write an agent's secrets as dotenv, JSON or shell.
    ///
    /// The agent's values as its environment sees them, to stdout (not to a terminal without
    /// --reveal) or to a new 0600 file with -o. dotenv output reads back the same in
    /// python-dotenv and node's dotenv.
    #[command(after_help = examples!(
        "castsync export support-bot --format dotenv -o .env      # 0600; never over a file without --force",
        "castsync export --env staging support-bot --format json | jq -r .OPENAI_API_KEY",
        "eval \"$(castsync export support-bot --format shell)\"",
    ))]
    Export(ExportArgs),
    /// Re-encrypt manifests to the recipients castsync.yaml names.
    ///
    /// After someone joins or leaves: re-encrypts the agents' and shared groups' manifests
    /// whose recipients differ from what the config now assigns. --check only lists them.
    #[command(after_help = examples!(
        "castsync rekey                         # after editing recipients in castsync.yaml",
        "castsync rekey --check                 # CI: exit 1 if any file is stale",
        "castsync rekey --check -o json",
        "castsync rekey --shared openai         # one shared group",
    ))]
    Rekey(RekeyArgs),
    /// Check every manifest offline, as reconcile will.
    ///
    /// Reads castsync.yaml, then decrypts, parses and checks every manifest against its
    /// .env.example; one line per problem with its file and fix, exit 1 on any error.
    #[command(after_help = examples!(
        "castsync validate",
        "castsync validate support-bot billing-agent",
        "castsync validate -o json | jq '.findings[] | select(.severity == \"error\")'",
    ))]
    Validate(ValidateArgs),
    /// Plan and apply what makes the platform match git.
    ///
    /// Decrypts and checks every manifest, lists each agent's keys on the platform, prints
    /// the plan (sets and deletes), applies it, verifies it and records what landed.
    #[command(after_help = concat!(exit_status!(), "\n\n", examples!(
        "castsync reconcile --dry-run                   # the plan; nothing written",
        "castsync reconcile                             # asks before deleting on a terminal",
        "castsync reconcile --env staging --agent support-bot   # one environment, one agent",
        "castsync reconcile --dry-run --exit-code       # CI: exit 2 when there are changes",
        "castsync reconcile --dry-run --base origin/main -o markdown   # a pull request's plan",
        "castsync reconcile --changed                   # only the agents that changed",
        "castsync reconcile --api-url local://dev.db    # the embedded store: no server, no key",
        "castsync reconcile --dry-run --save-plan plan.json   # then: reconcile --plan plan.json",
    )))]
    Reconcile(ReconcileArgs),
    /// Check the setup read-only and say what to fix.
    ///
    /// Checks the repository, your identities, recipients, the platform, the API key, rate
    /// limits, and what each agent's key list means for drift.
    #[command(after_help = concat!(
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
    /// Report each value's age, who can read it, and what former readers could read.
    #[command(
        long_about = "Report, from git history, when each key's value last changed (the commit \
and its date), who can read each manifest now (by name), which values are overdue for \
rotation (rotate_after in castsync.yaml, `# rotate: 30d` in .env.example), and, for every \
recipient who lost access, the values they could read that have not changed since.\n\n\
Read-only and offline: it decrypts past versions of each manifest (with your identities) \
and keeps only keyed fingerprints of their values, cached in .castsync/audit-cache.json so \
the next run reads only new commits. It audits HEAD, not uncommitted changes. No value \
is ever printed.",
        after_help = concat!(
            "Exit status:\n",
            "  0  the report was made (and with --exit-code: nothing overdue or exposed)\n",
            "  1  an error, or a manifest that could not be audited\n",
            "  2  only with --exit-code: a value is overdue, or readable by a former recipient\n\n",
            examples!(
                "castsync audit                              # what to rotate, and who can read what",
                "castsync audit -o markdown > audit.md       # for an issue or a job summary",
                "castsync audit --exit-code                  # CI: exit 2 when something needs rotating",
                "castsync audit -o json | jq '.exposures[] | {who: .reader.label, n: (.values | length)}'",
            )
        )
    )]
    Audit(AuditArgs),
    /// Find the manifests' values written anywhere else: files, staged changes, history.
    #[command(
        long_about = "Search for exact occurrences of every value the manifests declare (agents' \
and shared groups', decrypted with your identities) outside the manifests: in the working tree \
(tracked files and untracked ones git does not ignore), in the staged changes (--staged, for a \
pre-commit hook: `castsync git-setup --hooks` installs one), or in every commit reachable from a \
branch, a tag or HEAD (--history). It also flags tracked dotenv files (.env, .env.local…) and \
manifests in plaintext.\n\n\
Each finding names the file and line (or the commit and path) and the agent or group and key \
whose value it is; no value is ever printed. Values shorter than 8 bytes, and values equal to \
their .env.example placeholder, are not searched: the summary counts them.",
        after_help = concat!(
            "Exit status:\n",
            "  0  nothing found\n",
            "  1  a value, a tracked dotenv file or a plaintext manifest was found; or an error\n\n",
            examples!(
                "castsync guard                      # the working tree",
                "castsync guard --staged             # what the next commit records (the pre-commit hook)",
                "castsync guard --history            # every reachable commit: values to rotate",
                "castsync guard -o json | jq '.findings[] | {path, line, key: .declared_by[0].key}'",
            )
        )
    )]
    Guard(GuardArgs),
    /// List what past applies changed.
    #[command(
        long_about = "List what past applies did, one line per change (and per redeploy): when, from \
which commit, to which platform, the agent, the key, the action and whether it landed.\n\n\
Every apply (reconcile and watch) appends to a history file next to the state \
(.castsync/state.history.jsonl for .castsync/state.db). It holds no values and no \
fingerprints. At 8 MiB it is rotated to FILE.1, so at most two generations are kept.",
        after_help = examples!(
            "castsync history                          # every recorded change, oldest first",
            "castsync history support-bot --since 24h  # one agent, the last day",
            "castsync history -o json | jq '.entries[] | select(.result != \"applied\")'",
            "castsync history --state /var/lib/castsync/acme/state.db   # a daemon's history",
        )
    )]
    History(HistoryArgs),
    /// Print the recorded state (what castsync wrote) as JSON.
    #[command(
        long_about = "Look at the state: per platform, agent and key, the keyed fingerprint of the value \
castsync last wrote and verified, and what each agent last converged from.\n\n\
The state lives in an SQLite database (.castsync/state.db; a daemon's in its --data-dir). \
`castsync state export` prints it as the JSON document castsync kept in .castsync/state.json \
before, HMAC key included: keep the output as private as the state itself.",
        after_help = examples!(
            "castsync state export > .castsync/state-export.json   # the whole state, as one JSON document",
            "castsync state export | jq '.platforms | map_values(keys)'   # the agents recorded",
            "castsync state export --state /var/lib/castsync/acme/state.db   # a daemon's state",
        )
    )]
    State(StateArgs),
    /// Run as a daemon that follows a branch.
    ///
    /// Follows a branch of a remote (or a working tree) and reconciles on every change, on
    /// a signed webhook, on SIGHUP and on a timer; serves /healthz, /readyz and /metrics.
    #[command(after_help = examples!(
        "castsync watch --git-url https://github.com/acme/agent-secrets --branch main",
        "castsync watch --git-url ssh://git@github.com/acme/agent-secrets --ssh-key deploy_key",
        "castsync -C agent-secrets watch --api-url local://dev.json   # follow a working tree",
        "castsync watch --git-url https://github.com/acme/agent-secrets --no-redeploy",
    ))]
    Watch(WatchArgs),
    /// Serve the Castari API locally, for tests and demos.
    ///
    /// A local emulator of the Castari secrets API (the SDK's wire format, or the docs'
    /// with --wire docs), with rate limits and fault injection, for tests, demos and offline
    /// CI. Its values are kept in clear: test values only.
    #[command(after_help = examples!(
        "castsync emulator --auto-create-agents",
        "castsync emulator --listen 127.0.0.1:0 --rate-limit 10/6 --data emu.json",
        "castsync emulator --fail-rate 0.2 --fail-mode 429 --seed 7",
        "castsync emulator --wire docs --agents support-bot   # the docs' paged, timestamped lists",
    ))]
    Emulator(EmulatorArgs),
    /// git diff driver: a manifest's keys with fingerprints.
    ///
    /// Prints an encrypted manifest's agent and each key with a short fingerprint keyed by
    /// your identity, never a value; git runs it for `git diff` once `castsync git-setup`
    /// has set it up.
    #[command(after_help = examples!(
        "git config diff.castsync.textconv \"castsync textconv\"   # once per clone",
        "castsync textconv agents/support-bot/secrets.yaml.age",
    ))]
    Textconv(TextconvArgs),
    /// Show which keys changed between revisions, never values.
    #[command(after_help = concat!(exit_status!(), "\n\n", examples!(
        "castsync diff                          # HEAD against the worktree",
        "castsync diff main HEAD",
        "castsync diff origin/main --exit-code  # exit 2 when manifests differ",
        "castsync diff main HEAD -o json",
    )))]
    Diff(DiffArgs),
    /// git merge driver: merge manifests key by key.
    #[command(
        long_about = "git merge driver: merge two branches' versions of an encrypted manifest key by key.\n\n\
git runs it when both branches changed one agent's manifest (set it up once per clone with \
`castsync git-setup`). It decrypts the three versions, takes each key that one side changed \
(or both changed the same way), encrypts the result to the recipients castsync.yaml assigns \
the agent, and writes it over OURS. A key changed differently on both sides, or changed on one \
and deleted on the other, is a conflict: it exits 1 naming the keys (never a value), leaves \
OURS byte for byte as it was, and git stops the merge; settle it with `castsync edit AGENT`.",
        after_help = examples!(
            "git config merge.castsync.driver \"castsync merge-driver %O %A %B %P\"   # what git-setup sets",
            "castsync merge-driver base.age ours.age theirs.age agents/support-bot/secrets.yaml.age",
        )
    )]
    MergeDriver(MergeDriverArgs),
    /// Set up this clone's git diff and merge drivers.
    #[command(
        long_about = "Set up this clone's git for encrypted manifests.\n\n\
git config is per clone and never committed, so every clone needs this once. It sets \
diff.castsync.textconv (key-level diffs), merge.castsync.name and merge.castsync.driver \
(key-by-key merges) in the repository's own git config, and adds the lines that route \
*.yaml.age files to them to .gitattributes when git does not route them yet. Running it \
again changes nothing. A driver you configured differently is kept unless --force.",
        after_help = examples!(
            "castsync git-setup                      # in a fresh clone of the secrets repository",
            "castsync -C agent-secrets git-setup",
            "castsync git-setup --force              # replace drivers configured differently",
        )
    )]
    GitSetup(GitSetupArgs),
    /// Print a shell completion script.
    #[command(after_help = examples!(
        "castsync completions bash > ~/.local/share/bash-completion/completions/castsync",
        "castsync completions zsh > \"${fpath[1]}/_castsync\"",
    ))]
    Completions(CompletionsArgs),
    /// Write the man pages: castsync(1) and one per command.
    ///
    /// With --dir, writes castsync.1 and castsync-COMMAND.1 for every command into DIR;
    /// without it, prints castsync.1 (roff) on stdout.
    #[command(after_help = examples!(
        "castsync man --dir ~/.local/share/man/man1   # then: man castsync-reconcile",
        "sudo castsync man --dir /usr/local/share/man/man1",
        "castsync man > castsync.1 && man ./castsync.1",
    ))]
    Man(ManArgs),
    /// The options every command accepts.
    #[command(hide = true)]
    Options,
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
