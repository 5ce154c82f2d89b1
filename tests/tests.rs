//! One integration-test binary: every test runs the real `castsync` binary (and, where a
//! platform is needed, the real `castsync emulator` on a loopback port).

mod support;

mod architecture;
mod audit;
mod authoring;
mod bad_vectors;
mod canary_forms;
mod cli;
mod completions;
mod credentials;
mod crypto_interop;
mod deadline;
mod discovery;
mod doc_pages;
mod first_hour;
mod guard;
mod doctor;
mod dotenv_compat;
mod emulator;
mod examples;
mod hardening;
mod help;
mod hints;
mod history;
mod incremental;
mod keygen;
mod local_store;
mod merge_driver;
mod platform_client;
mod plugin;
mod reconcile;
mod redeploy;
mod release;
mod saved_plan;
mod shared;
mod terminal;
mod textconv;
mod tls;
mod validate;
mod watch;
mod wire;
mod workflows;
