//! castsync keeps the secrets of Castari agents in git.
//!
//! A team commits one age-encrypted YAML manifest per agent; castsync decrypts them, checks
//! them against each agent's `.env.example`, compares them with the keys the platform lists,
//! and applies the sets and deletes that make the platform match git.
//!
//! The pipeline is `source` (a checkout: tree and config) → load → `observe` (list the
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

pub mod apply;
pub mod atomic_write;
pub mod authoring;
pub mod cli;
pub mod commands;
pub mod completion;
pub mod config;
pub mod crypto;
pub mod daemon;
pub mod deadline;
pub mod emulator;
pub mod escape;
pub mod finding;
pub mod fsread;
pub mod git_setup;
pub mod hint;
pub mod history;
pub mod incremental;
pub mod manifest;
pub mod names;
pub mod net;
pub mod observe;
pub mod plan;
pub mod platform;
pub mod reconcile;
pub mod redact;
pub mod render;
pub mod saved_plan;
pub mod schema;
pub mod secret;
pub mod source;
pub mod state;
pub mod suggest;
pub mod target;
pub mod yaml_depth;

pub use commands::{Exit, run};
