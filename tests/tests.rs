//! One integration-test binary: every test runs the real `castsync` binary (and, where a
//! platform is needed, the real `castsync emulator` on a loopback port).

mod support;

mod authoring;
mod bad_vectors;
mod completions;
mod crypto_interop;
mod discovery;
mod doctor;
mod emulator;
mod examples;
mod incremental;
mod keygen;
mod platform_client;
mod readme;
mod reconcile;
mod redeploy;
mod textconv;
mod validate;
mod watch;
mod wire;
mod workflows;
