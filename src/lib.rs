//! castsync keeps the secrets of Castari agents in git.
//!
//! A team commits one age-encrypted YAML manifest per agent; castsync decrypts them, checks
//! them against each agent's `.env.example`, compares them with the keys the platform lists,
//! and applies the sets and deletes that make the platform match git.
//!
//! The pipeline is `source` (a checkout: tree and config) → `load` → `observe` (list the
//! platform) → `plan` (pure) → `apply`, run by `reconcile` for the CLI and the `daemon`
//! alike, with `platform`, `state` and `target` at the edges, `deadline` bounding each run's
//! platform calls, and `authoring` writing manifests. `incremental` (pure) chooses which
//! agents a run refreshes when only changed ones are asked for, from `source::inputs` and what
//! the state recorded. Every apply appends to the `history`
//! next to the state; `saved_plan` applies a plan saved earlier exactly, or refuses it. No
//! secret value ever reaches a log, an error message, plan output, a plan file, the history
//! or the state file.
//!
//! Outside input is hostile: every file is read through `fsread` (regular files only, inside
//! the repository, size-capped), every YAML text passes `yaml_depth` before it is parsed, and
//! text from the platform or a pull request is printed through `escape`.

// No unsafe code, with one audited exception: `daemon::memory` asks glibc to return freed
// pages between the daemon's cycles.
#![deny(unsafe_code)]
// stdout goes through the commands' writers (a closed pipe ends the command quietly), stderr
// through `say!`: the std print macros panic when their stream is gone.
#![deny(clippy::print_stdout, clippy::print_stderr)]

/// `eprintln!` that cannot panic. A message for the person at the terminal is lost, and the
/// command goes on, when stderr is closed or a pipe nobody reads (`2>&1 | head -1`, a
/// supervisor that went away), where `eprintln!` would panic with exit code 101.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// [`say!`] without the newline (`eprint!` that cannot panic).
#[macro_export]
macro_rules! say_partial {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let mut stderr = std::io::stderr();
        let _ = write!(stderr, $($arg)*);
        let _ = stderr.flush();
    }};
}

// The groups follow ARCHITECTURE.md's layers, top first: a module imports only from its own
// group and the ones below it (tests/architecture.rs checks it).

// Entry points: the binary's edge.
pub mod cli; // the clap definitions; nothing else acts on them
pub mod commands; // one file per subcommand: parse, call the library, render
pub mod completion; // the agent and group names shell completion offers

// Front ends: what runs around reconciles and shows their results.
pub mod daemon; // `castsync watch`: the loop that decides when to reconcile
pub mod render; // plans, reports and findings as text, JSON and Markdown
pub mod audit; // rotation, access and exposure after removal, from git history
pub mod guard; // declared values found outside the manifests, in files and in history
pub mod doctor; // the checks of `castsync doctor`, as findings
pub mod validate; // the checks of `castsync validate`, as findings
pub mod export; // values written out for other programs: dotenv, JSON, shell, a command's environment

// Runs: one run of the pipeline, and the write path of the authoring commands.
pub mod reconcile; // one run of the pipeline, and the one way a plan lands
pub mod request; // what a run is asked to do, built once from resolved options
pub mod target; // where a run lands: platform, state file, identities
pub mod deadline; // one deadline per run, bounding every platform call
pub mod saved_plan; // a plan saved to a file and applied exactly later, or refused
pub mod authoring; // the write path of new, set, unset, import, rekey and edit
pub mod git_setup; // the git diff and merge drivers' configuration

// The pipeline, in the order a reconcile runs it.
pub mod source; // a checkout: a tree (the worktree or a git revision) and its config
pub mod incremental; // which agents a run refreshes when only changed ones are asked for
pub mod load; // each agent's desired secrets, or the findings that say why not
pub mod observe; // each agent's keys as the platform lists them
pub mod plan; // the pure diff of desired, actual and last applied
pub mod apply; // executes a plan: sets, deletes, a verifying list, a redeploy
pub mod state; // the last-applied fingerprints, and what each agent converged from
pub mod history; // the apply history file beside the state

// The edges: the platform and the keys.
pub mod platform; // the Platform trait: the Castari API client and the local store
pub mod emulator; // the Castari API served locally, for tests and trials
pub mod crypto; // age: recipients, identities, plugins, encrypt and decrypt

// The model.
pub mod config; // castsync.yaml
pub mod environment; // staging, production…: names, overlay files, state paths
pub mod schema; // .env.example
pub mod manifest; // the decrypted manifest: parsing and rules
pub mod finding; // one problem with a file, its fix kept apart

// The guards.
pub mod hint; // errors expose their fix as data
pub mod escape; // outside text made safe for a terminal or Markdown
pub mod fsread; // every read of an outside file
pub mod yaml_depth; // a nesting limit before any YAML parser runs
pub mod atomic_write; // the one way to replace a file
pub mod sqlite; // the one way to open an SQLite database of our own
pub mod suggest; // "did you mean"
pub mod secret; // `SecretValue`, the only type that holds a value
pub mod names; // slug and key-name rules
pub mod net; // whether a host is this machine, and which proxy a URL goes through
pub mod redact; // credentials taken out of URLs before one is shown or kept

pub use commands::{Exit, run};
