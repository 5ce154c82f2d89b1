//! castsync keeps the secrets of Castari agents in git.
//!
//! A team commits one age-encrypted YAML manifest per agent; castsync decrypts them, checks
//! them against each agent's `.env.example`, compares them with the keys the platform lists,
//! and applies the sets and deletes that make the platform match git.
//!
//! The pipeline is `source` (a checkout: tree and config) → load → `observe` (list the
//! platform) → `plan` (pure) → `apply`, run by `reconcile` for the CLI and the `daemon`
//! alike, with `platform`, `state` and `target` at the edges and `authoring` writing
//! manifests. No secret value ever reaches a log, an error message, plan output or the
//! state file.

#![forbid(unsafe_code)]

pub mod apply;
pub mod atomic_write;
pub mod authoring;
pub mod cli;
pub mod commands;
pub mod config;
pub mod crypto;
pub mod daemon;
pub mod emulator;
pub mod finding;
pub mod incremental;
pub mod manifest;
pub mod names;
pub mod observe;
pub mod plan;
pub mod platform;
pub mod reconcile;
pub mod render;
pub mod schema;
pub mod secret;
pub mod source;
pub mod state;
pub mod suggest;
pub mod target;

pub use commands::{Exit, run};
