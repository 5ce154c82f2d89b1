//! One function per subcommand. This is the binary's edge: commands may use `anyhow` for
//! context; the modules they call use typed errors.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;

use crate::cli::{Cli, Command, GlobalArgs, LogFormat, PlatformArgs};
use crate::config::Config;
use crate::crypto::Identities;
use crate::platform::{self, Platform, PlatformOptions};

mod agent_files;
mod completions;
mod doctor;
mod edit;
mod import;
mod init;
mod keygen;
mod new;
mod reconcile;
mod rekey;
mod set;
mod show;
mod textconv;
mod validate;
mod watch;

/// The secrets repository a command works on: where it is and its config.
pub struct Repo {
    pub root: PathBuf,
    pub config: Config,
    identity_files: Vec<PathBuf>,
}

impl Repo {
    /// The repository at `-C DIR` (default: the current directory) with its config.
    pub fn open(global: &GlobalArgs) -> anyhow::Result<Repo> {
        let root = Self::locate(global)?;
        let config = Config::load(&root, global.config.as_deref())?;
        Ok(Repo {
            root,
            config,
            identity_files: global.identity.clone(),
        })
    }

    /// The repository root alone (`-C DIR` or the current directory), canonical, without
    /// reading its config: for `init`, which creates it, and `validate`, which reports on it.
    pub fn locate(global: &GlobalArgs) -> anyhow::Result<PathBuf> {
        let root = match &global.repo {
            Some(dir) => dir.clone(),
            None => std::env::current_dir().context("cannot determine the current directory")?,
        };
        if !root.is_dir() {
            anyhow::bail!(
                "{} is not a directory\n  hint: -C/--repo names the secrets repository (the folder holding castsync.yaml)",
                root.display()
            );
        }
        // Absolute, so a `local://` store and the state file are keyed the same from any
        // working directory.
        root.canonicalize()
            .with_context(|| format!("cannot resolve {}", root.display()))
    }

    /// A repository whose config was loaded elsewhere (`validate` reports config errors
    /// itself rather than failing on them).
    pub fn with_config(root: PathBuf, config: Config, global: &GlobalArgs) -> Repo {
        Repo {
            root,
            config,
            identity_files: global.identity.clone(),
        }
    }

    /// The platform named by `--api-url`, `CASTARI_API_URL`, the config, or the default. A
    /// relative `local://PATH` is relative to the repository root, so `-C` works from anywhere.
    pub fn platform(
        &self,
        args: &PlatformArgs,
        declared_agents: Vec<String>,
    ) -> anyhow::Result<Arc<dyn Platform>> {
        let mut url =
            platform::resolve_url(args.api_url.as_deref(), self.config.platform.url.as_deref());
        if let Some(path) = url.strip_prefix(platform::LOCAL_SCHEME)
            && Path::new(path).is_relative()
        {
            url = format!(
                "{}{}",
                platform::LOCAL_SCHEME,
                self.root.join(path).display()
            );
        }
        let api_key = if url.starts_with(platform::LOCAL_SCHEME) {
            None
        } else {
            platform::read_api_key(args.api_key_file.as_deref())?
        };
        Ok(platform::open(PlatformOptions {
            url,
            api_key,
            allow_insecure_http: args.allow_insecure_http,
            declared_agents,
            ..PlatformOptions::default()
        })?)
    }

    /// The user's identities (the search chain of DESIGN §5).
    pub fn identities(&self) -> anyhow::Result<Identities> {
        Ok(Identities::discover(&self.identity_files)?)
    }
}

/// How a command ended, as the process exit code (DESIGN §8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: success.
    Success,
    /// 1: an error, an invalid manifest, or an agent that failed or was skipped.
    Failure,
    /// 2: with `--exit-code`, a dry run that found changes.
    Changes,
}

impl From<Exit> for std::process::ExitCode {
    fn from(exit: Exit) -> Self {
        std::process::ExitCode::from(match exit {
            Exit::Success => 0,
            Exit::Failure => 1,
            Exit::Changes => 2,
        })
    }
}

/// Runs one parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<Exit> {
    let g = &cli.global;
    match cli.command {
        Command::Init(_) => init::run(g),
        Command::Keygen(args) => keygen::run(&args, g),
        Command::New(args) => new::run(g, &args.agent),
        Command::Edit(args) => edit::run(g, &args.agent).await,
        Command::Set(args) => set::set(g, &args),
        Command::Unset(args) => set::unset(g, &args),
        Command::Show(args) => show::run(g, &args),
        Command::Import(args) => import::run(g, &args),
        Command::Rekey(args) => rekey::run(g, &args),
        Command::Validate(args) => validate::run(g, &args),
        Command::Emulator(args) => Ok(crate::emulator::run(args).await?),
        Command::Reconcile(args) => reconcile::run(g, &args).await,
        Command::Doctor(args) => doctor::run(g, &args).await,
        Command::Watch(args) => watch::run(g, &args).await,
        Command::Textconv(args) => textconv::textconv(g, &args),
        Command::Diff(args) => textconv::diff(g, &args),
        Command::Completions(args) => completions::run(&args),
        Command::Man => completions::man(),
    }
}

/// Prints an error and its causes on stderr, one per line, in rage's style.
pub fn print_error(err: &anyhow::Error) {
    eprintln!("error: {err}");
    for cause in err.chain().skip(1) {
        eprintln!("  caused by: {cause}");
    }
}

/// Logs go to stderr. `-v` info, `-vv` debug, `-vvv` trace, `-q` errors only; the
/// `CASTSYNC_LOG` variable (an EnvFilter directive) overrides both.
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
    let filter = EnvFilter::try_from_env("CASTSYNC_LOG").unwrap_or_else(|_| EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let result = match global.log_format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => {
            let builder = builder.with_ansi(
                std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
            );
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
