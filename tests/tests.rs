//! One integration-test binary: every test runs the real `castsync` binary (and, where a
//! platform is needed, the real `castsync emulator` on a loopback port).

/// The `Test` builder, `SecretsRepo`, the emulator and the outside tools the tests use.
mod support;

/// ARCHITECTURE.md's checkable invariants: layers, no import cycle, `cli` at the edge.
mod architecture;
/// `castsync audit`: key ages and exposure over a real git history.
mod audit;
/// init, new, set, unset, show, import and rekey through the binary.
mod authoring;
/// The bad inputs of `tests/data/bad/`, each with the message it expects.
mod bad_vectors;
/// No output shows a value, whatever YAML form it takes.
mod canary_forms;
/// Exit codes, help text and `-o json` outputs against their schemas.
mod cli;
/// `castsync completions` and `castsync man`.
mod completions;
/// Credentials in URLs, variables and files never reach a log or an error.
mod credentials;
/// Files castsync writes open with the reference `age`, and the reverse.
mod crypto_interop;
/// A platform that never answers holds no run, doctor or daemon cycle for long.
mod deadline;
/// Finding `castsync.yaml` from the current directory, and `-C DIR`.
mod discovery;
/// Every ```sh block of README.md and docs/ runs as written.
mod doc_pages;
/// A newcomer's first reconcile: its output in the order things happen.
mod first_hour;
/// `castsync guard` and the pre-commit hook: declared values found outside the manifests.
mod guard;
/// `castsync doctor`: read-only checks, each problem with its fix.
mod doctor;
/// castsync reads dotenv files as python-dotenv does, on a corpus of edge cases.
mod dotenv_compat;
/// `castsync emulator` over raw HTTP: both wire profiles, limits, faults, admin routes.
mod emulator;
/// Environments: two emulators as staging and production, overlays, access isolation,
/// watch --env and diff between environments.
mod environments;
/// The CI and deployment examples pass their validators.
mod examples;
/// The failures of the adversarial review, each reproduced through the binary.
mod hardening;
/// Snapshots of every `--help`.
mod help;
/// An error's fix printed once, as a `hint:` line or a JSON field.
mod hints;
/// `castsync history` and the history file every apply appends to.
mod history;
/// `reconcile --changed`: only agents whose inputs changed are listed.
mod incremental;
/// `castsync keygen`: a private file and exactly the recipient on stdout.
mod keygen;
/// The embedded `local://` store: several processes on one store, the emulator on it.
mod local_store;
/// `castsync merge-driver` and `git-setup` through the real `git`.
mod merge_driver;
/// The Castari client against the emulator: paging, faults, rate budget, typed errors.
mod platform_client;
/// age plugins and `CASTSYNC_AGE_KEY_CMD`.
mod plugin;
/// `castsync reconcile` against the emulator, in both wire profiles.
mod reconcile;
/// `redeploy: on-change`: one redeploy per changed agent after its changes land.
mod redeploy;
/// `scripts/install.sh`, the Action and the package contents.
mod release;
/// `castsync run` and `castsync export`: a command's environment, exit codes and signals;
/// exports read back by python-dotenv, node's dotenv, jq and sh.
mod run_export;
/// `--save-plan` and `--plan`: a reviewed plan applies exactly, or is refused.
mod saved_plan;
/// Shared groups end to end: `uses:`, validate, reconcile, authoring, diff.
mod shared;
/// The state's database: killed at random moments, migrated from a state file, exported.
mod state;
/// What a person at a terminal sees: the prompt, `--yes`, no question without a TTY.
mod terminal;
/// `castsync textconv` and `castsync diff`: key names and fingerprints, never values.
mod textconv;
/// TLS and proxy failures end the run, against a real TLS server and proxy.
mod tls;
/// `castsync validate` on real repositories built from the bad inputs.
mod validate;
/// `castsync watch` against a temp git remote and the emulator.
mod watch;
/// `castsync reconcile` against the SDK's wire shapes and the docs' variant.
mod wire;
/// The GitHub Actions examples' shell steps, run as GitHub would.
mod workflows;
