//! castsync keeps the secrets of Castari agents in git.
//!
//! A team commits one age-encrypted YAML manifest per agent; castsync decrypts them, checks
//! them against each agent's `.env.example`, compares them with the keys the platform lists,
//! and applies the sets and deletes that make the platform match git.
//!
//! The pipeline is `source` → `plan` (pure) → `apply`, with `platform` and `state` at the
//! edges. No secret value ever reaches a log, an error message, plan output or the state file.

#![forbid(unsafe_code)]

pub mod cli;
pub mod commands;
pub mod emulator;
pub mod names;
pub mod platform;
pub mod secret;

pub use commands::{Exit, run};
