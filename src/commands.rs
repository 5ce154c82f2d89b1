//! One function per subcommand. This is the binary's edge: commands may use `anyhow` for
//! context; the modules they call use typed errors.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use crate::cli::{ApplyArgs, Cli, ColorChoice, Command, GlobalArgs, LogFormat, PlatformArgs};
use crate::config::Config;
use crate::crypto::{Env, Identities};
use crate::deadline::RunTimeout;
use crate::request::ApplySettings;
use crate::source::{self, Checkout};
use crate::target::{PlatformChoice, Target, TargetOptions};

mod audit;
mod compare;
mod completions;
mod doctor;
mod edit;
mod emulator;
mod exec;
mod export;
mod git_setup;
mod guard;
mod history;
mod import;
mod init;
mod keygen;
mod merge_driver;
mod new;
mod reconcile;
mod rekey;
mod report;
mod set;
mod show;
mod state;
mod textconv;
mod validate;
mod watch;

/// The secrets repository a command works on: where it is, and its worktree checkout (the
/// config and the agents on disk).
pub struct Repo {
    pub root: PathBuf,
    pub checkout: Checkout,
    identity_files: Vec<PathBuf>,
    identity_env: Env,
}

impl Repo {
    /// The repository at `-C DIR`, else the nearest one from the current directory up,
    /// with its config.
    pub fn open(global: &GlobalArgs) -> anyhow::Result<Repo> {
        let root = Self::locate(global)?;
        let checkout = Checkout::worktree(&root, global.config.as_deref())?;
        Ok(Self::with_checkout(root, checkout, global))
    }

    /// The repository root alone, without reading its config: for `validate`, which
    /// reports a broken config as a finding, and `watch`.
    pub fn locate(global: &GlobalArgs) -> anyhow::Result<PathBuf> {
        Ok(source::find_root(
            global.repo.as_deref(),
            global.config.as_deref(),
        )?)
    }

    /// A repository whose worktree was opened elsewhere.
    pub fn with_checkout(root: PathBuf, checkout: Checkout, global: &GlobalArgs) -> Repo {
        Repo {
            root,
            checkout,
            identity_files: global.identity.clone(),
            identity_env: identity_env(global),
        }
    }

    /// The worktree's config.
    pub fn config(&self) -> &Config {
        &self.checkout.config
    }

    /// Who each recipient is, for reports: the names in the config, then those of the
    /// committed config (HEAD), so that someone just removed from the file is still named.
    pub fn recipient_names(&self) -> crate::config::Names {
        source::recipient_names(&self.root, self.config())
    }

    /// The user's identities (the search chain of docs/security.md, "Identities").
    pub fn identities(&self) -> anyhow::Result<Identities> {
        Ok(Identities::discover_with(
            &self.identity_files,
            &self.identity_env,
        )?)
    }

    /// The target (identities, state file, platform) that `reconcile` writes to.
    pub fn target(&self, platform: &PlatformArgs, state: Option<&Path>) -> anyhow::Result<Target> {
        let options = TargetOptions {
            identity_files: self.identity_files.clone(),
            identity_env: Some(self.identity_env.clone()),
            state_file: state.map(Path::to_path_buf),
            platform: platform_choice(platform),
        };
        Ok(Target::for_repository(options, &self.root)?)
    }
}

/// The identity search chain's environment: `CASTSYNC_AGE_KEY` and `CASTSYNC_AGE_KEY_FILE` as
/// clap read them (so `--help` documents them and `--age-key-file` works), HOME and
/// XDG_CONFIG_HOME from the process.
pub fn identity_env(global: &GlobalArgs) -> Env {
    Env {
        age_key: global.age_key.clone(),
        age_key_file: global.age_key_file.clone(),
        age_key_cmd: global.age_key_cmd.clone(),
        ..Env::from_process()
    }
}

/// The identities of `-i` and the environment, without a repository.
pub fn discover_identities(global: &GlobalArgs) -> Result<Identities, crate::crypto::CryptoError> {
    Identities::discover_with(&global.identity, &identity_env(global))
}

/// Whether to colour what goes to a stream that `is_terminal` describes: `--color`, then
/// NO_COLOR (set and not empty: no colour; https://no-color.org).
pub fn use_color(choice: ColorChoice, is_terminal: bool) -> bool {
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            is_terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        }
    }
}

/// The `--api-url`, `--api-key-file`, `--allow-insecure-http` and `--request-timeout` flags.
pub fn platform_choice(args: &PlatformArgs) -> PlatformChoice {
    PlatformChoice {
        api_url: args.api_url.clone(),
        api_key_file: args.api_key_file.clone(),
        allow_insecure_http: args.allow_insecure_http,
        request_timeout: Some(args.request_timeout),
    }
}

/// The flags `reconcile` and `watch` share, and `--timeout`, resolved once.
pub fn apply_settings(args: &ApplyArgs, timeout: Option<std::time::Duration>) -> ApplySettings {
    ApplySettings {
        no_prune: args.no_prune,
        allow_mass_delete: args.allow_mass_delete,
        concurrency: usize::from(args.concurrency),
        redeploy: args.redeploy_override(),
        timeout: RunTimeout::from_flag(timeout),
    }
}

/// `-o text|json|markdown` as the renderers name it.
pub fn render_format(output: crate::cli::OutputFormat) -> crate::render::Format {
    use crate::cli::OutputFormat;
    use crate::render::Format;
    match output {
        OutputFormat::Text => Format::Text,
        OutputFormat::Json => Format::Json,
        OutputFormat::Markdown => Format::Markdown,
    }
}

/// How a command ended, as the process exit code (docs/config.md, "Exit codes").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: success.
    Success,
    /// 1: an error, an invalid manifest, or an agent that failed or was skipped.
    Failure,
    /// 2: with `--exit-code`, a dry run that found changes (or an audit that found values
    /// to rotate).
    Changes,
    /// `castsync run`'s command could not start: 127 (not found) or 126, as `env(1)`.
    Code(u8),
}

impl Exit {
    /// The worse of two outcomes (a failure beats changes, which beat success): what a
    /// command that runs several environments exits with.
    pub fn worse(self, other: Exit) -> Exit {
        let rank = |e: Exit| match e {
            Exit::Success => 0,
            Exit::Changes => 1,
            Exit::Failure | Exit::Code(_) => 2,
        };
        if rank(other) > rank(self) {
            other
        } else {
            self
        }
    }
}

impl From<Exit> for std::process::ExitCode {
    fn from(exit: Exit) -> Self {
        std::process::ExitCode::from(match exit {
            Exit::Success => 0,
            Exit::Failure => 1,
            Exit::Changes => 2,
            Exit::Code(code) => code,
        })
    }
}

/// Runs one parsed command line. When it asked for JSON (`-o json`) and fails before it has
/// its result, the failure goes to stdout as JSON too (`schemas/error.schema.json`), so a
/// script reading stdout always gets a document; `main` prints it for people on stderr.
pub async fn run(cli: Cli) -> anyhow::Result<Exit> {
    let json = wants_json(&cli.command);
    let result = dispatch(cli).await;
    if let (Err(err), true) = (&result, json) {
        report::print_json_error(err);
    }
    result
}

/// Whether the command prints JSON on stdout.
fn wants_json(command: &Command) -> bool {
    use crate::cli::{DoctorFormat, HistoryFormat, OutputFormat};
    match command {
        Command::Reconcile(a) => a.output == OutputFormat::Json,
        Command::Validate(a) => a.output == OutputFormat::Json,
        Command::Diff(a) => a.output == OutputFormat::Json,
        Command::Rekey(a) => a.output == Some(OutputFormat::Json),
        Command::Doctor(a) => a.output == DoctorFormat::Json,
        Command::History(a) => a.output == HistoryFormat::Json,
        Command::Audit(a) => a.output == OutputFormat::Json,
        Command::Guard(a) => a.output == OutputFormat::Json,
        _ => false,
    }
}

async fn dispatch(cli: Cli) -> anyhow::Result<Exit> {
    let g = &cli.global;
    match cli.command {
        Command::Init(_) => init::run(g),
        Command::Keygen(args) => keygen::run(&args, g),
        Command::New(args) => new::run(g, &args),
        Command::Edit(args) => edit::run(g, &args).await,
        Command::Set(args) => set::set(g, &args),
        Command::Unset(args) => set::unset(g, &args),
        Command::Show(args) => show::run(g, &args),
        Command::Import(args) => import::run(g, &args),
        Command::Run(args) => exec::run(g, &args),
        Command::Export(args) => export::run(g, &args),
        Command::Rekey(args) => rekey::run(g, &args),
        Command::Validate(args) => validate::run(g, &args),
        Command::Emulator(args) => emulator::run(args).await,
        Command::Reconcile(args) => reconcile::run(g, &args).await,
        Command::Doctor(args) => doctor::run(g, &args).await,
        Command::Audit(args) => audit::run(g, &args),
        Command::Guard(args) => guard::run(g, &args),
        Command::History(args) => history::run(g, &args),
        Command::State(args) => state::run(g, &args),
        Command::Watch(args) => watch::run(g, &args).await,
        Command::Textconv(args) => textconv::textconv(g, &args),
        Command::Diff(args) => textconv::diff(g, &args),
        Command::MergeDriver(args) => merge_driver::run(g, &args),
        Command::GitSetup(args) => git_setup::run(g, &args),
        Command::Completions(args) => completions::run(&args),
        Command::Man(args) => completions::man(&args),
        Command::Options => completions::options(),
    }
}

/// The files `set`, `unset`, `show`, `new` and `edit` work on: an agent's, or with
/// `--shared` a shared group's.
pub fn manifest_files<'r>(
    repo: &'r Repo,
    name: &str,
    shared: bool,
    env: Option<&str>,
) -> anyhow::Result<crate::authoring::AgentFiles<'r>> {
    let kind = if shared {
        crate::manifest::Kind::Group
    } else {
        crate::manifest::Kind::Agent
    };
    let env = repo.config().one_environment("", env, false)?;
    Ok(crate::authoring::AgentFiles::of_kind(&repo.root, repo.config(), kind, name)?.in_env(&env))
}

pub use report::{error_text, hint_of, print_error, print_out, write_out};

/// Prints an authoring operation's notes (warnings) on stderr, one per line.
pub fn print_notes(notes: &[String]) {
    for note in notes {
        crate::say!("{note}");
    }
}

/// Logs go to stderr. `-v` info, `-vv` debug, `-vvv` trace, `-q` errors only; `--log` /
/// the `CASTSYNC_LOG` variable (an EnvFilter directive) overrides both.
/// `timestamps`: the long-running commands (watch, emulator) stamp each text line; a
/// one-shot command's warnings read better without.
pub fn init_tracing(global: &GlobalArgs, timestamps: bool) {
    use tracing_subscriber::EnvFilter;
    let level = match (global.quiet, global.verbose) {
        (q, _) if q > 0 => "error",
        (_, 0) => "warn",
        (_, 1) => "info",
        (_, 2) => "debug",
        _ => "trace",
    };
    let filter = global
        .log
        .as_deref()
        .filter(|directives| !directives.trim().is_empty())
        .and_then(|directives| EnvFilter::try_new(directives).ok())
        .unwrap_or_else(|| EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let result = match global.log_format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => {
            let builder =
                builder.with_ansi(use_color(global.color, std::io::stderr().is_terminal()));
            if timestamps {
                builder.try_init()
            } else {
                builder.without_time().try_init()
            }
        }
    };
    // A second init (tests that call run twice in one process) keeps the first subscriber.
    let _ = result;
}
