//! `castsync watch`: the long-running mode (DESIGN §9).
mod controller;
mod engine;
mod metrics;
mod schedule;
mod signatures;
mod status;
mod triggers;
mod webhook;
