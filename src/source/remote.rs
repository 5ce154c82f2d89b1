//! What the daemon follows: [`origin`] (a followed remote or a working tree, refreshed into
//! snapshots), [`mirror`] (the remote's bare clone, fetched with the daemon's credentials)
//! and [`signatures`] (the gate a commit passes before it is applied). Only `castsync watch`
//! uses them; a command reads its tree through `source` directly.

pub mod mirror;
pub mod origin;
pub mod signatures;
