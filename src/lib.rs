//! castsync keeps the secrets of Castari agents in git.
//!
//! A team commits one age-encrypted YAML manifest per agent; castsync decrypts them, checks
//! them against each agent's `.env.example`, compares them with the keys the platform lists,
//! and applies the sets and deletes that make the platform match git.
//!
//! The pipeline is `source` → `plan` (pure) → `apply`, with `platform` and `state` at the
//! edges. No secret value ever reaches a log, an error message, plan output or the state file.

#![forbid(unsafe_code)]

pub mod apply;
pub mod cli;
pub mod commands;
pub mod config;
pub mod crypto;
pub mod daemon;
pub mod emulator;
pub mod escape;
pub mod finding;
pub mod fsread;
pub mod manifest;
pub mod names;
pub mod plan;
pub mod platform;
pub mod reconcile;
pub mod render;
pub mod schema;
pub mod secret;
pub mod source;
pub mod state;
pub mod suggest;
pub mod yaml_depth;

pub use commands::{Exit, run};
