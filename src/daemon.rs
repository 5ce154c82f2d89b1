//! `castsync watch`: the long-running mode (DESIGN §9).
mod controller;
mod engine;
mod git;
mod http;
mod metrics;
mod schedule;
mod signatures;
mod status;
mod triggers;
mod watcher;
mod webhook;
