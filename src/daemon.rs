//! `castsync watch`: the long-running mode (DESIGN §9).
mod schedule;
mod signatures;
mod triggers;
