//! `castsync watch`: resolve the flags into a [`DaemonConfig`] and run the daemon.

use std::time::Duration;

use crate::cli::{GlobalArgs, WatchArgs};
use crate::commands::{Exit, Repo};
use crate::daemon::{self, DaemonConfig, Follow};
use crate::hint::WithHint;
use crate::target::{Target, TargetOptions};

/// How long the reconcile in flight may take to stop after SIGTERM: the process is gone
/// within 10 s.
const GRACE: Duration = Duration::from_secs(9);

pub async fn run(global: &GlobalArgs, args: &WatchArgs) -> anyhow::Result<Exit> {
    let (interval, resync) = (args.interval, args.resync);
    let options = TargetOptions {
        identity_files: global.identity.clone(),
        identity_env: Some(crate::crypto::Env {
            // A plugin that never answers must not outlast a cycle.
            age_plugin_timeout: args.timeout,
            ..super::identity_env(global)
        }),
        state_file: args.apply.state.clone(),
        platform: super::platform_choice(&args.platform),
    };
    let (follow, target) = match &args.git_url {
        Some(url) => {
            let data_dir = match &args.data_dir {
                Some(d) => d.clone(),
                None => daemon::default_data_dir().ok_or_else(|| {
                    WithHint::new(
                        "cannot find a data dir: neither XDG_STATE_HOME nor HOME is set",
                        "pass --data-dir DIR",
                    )
                })?,
            };
            let url = daemon::normalize_url(url);
            let dir = data_dir.join(daemon::remote_dir_name(&url));
            let target = Target::for_mirror(options, &dir)?;
            let follow = Follow::Remote {
                url,
                branch: args.branch.clone(),
                dir,
                ssh_key: args.ssh_key.clone(),
                verify_signatures: args.verify_signatures.clone(),
                allow_rollback: args.allow_rollback,
                allow_insecure_http: args.platform.allow_insecure_http,
            };
            (follow, target)
        }
        None => {
            if args.verify_signatures.is_some() {
                anyhow::bail!(
                    "--verify-signatures needs --git-url: a working tree has no commit to verify"
                );
            }
            if args.ssh_key.is_some() {
                anyhow::bail!("--ssh-key needs --git-url");
            }
            let root = Repo::locate(global)?;
            let target = Target::for_repository(options, &root)?;
            (Follow::Local { root }, target)
        }
    };
    let target = match &args.env {
        Some(name) => {
            if let Some(problem) = crate::environment::name_problem(name) {
                anyhow::bail!("--env: {problem}");
            }
            target.in_environment(crate::environment::Environment::named(name.clone()))
        }
        None => target,
    };
    let config = DaemonConfig {
        follow,
        explicit_config: global.config.clone(),
        target,
        apply: super::apply_settings(&args.apply, args.timeout),
        interval,
        resync,
        listen: args.listen,
        webhook_secret_file: args.webhook_secret_file.clone(),
        grace: GRACE,
    };
    daemon::run(config).await?;
    Ok(Exit::Success)
}
