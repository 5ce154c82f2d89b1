//! `castsync reconcile`: run one reconcile and report it as text, JSON or Markdown. On a
//! terminal a plan that deletes keys is confirmed first (unless --yes) and the apply shows a
//! progress bar; without one it never asks and logs one line per agent (`progress`).

use std::collections::BTreeSet;
use std::io::IsTerminal;
use std::sync::Arc;

use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use super::progress::{Console, ConsoleOptions};
use crate::cli::{GlobalArgs, OutputFormat, ReconcileArgs};
use crate::commands::{Exit, Repo, use_color};
use crate::environment::Environment;
use crate::plan::Replace;
use crate::reconcile;
use crate::render::{self, RenderContext};
use crate::request::{ChangedSince, Request};
use crate::saved_plan::{self, run};
use crate::source::{Checkout, CheckoutError, GitRevision, Tree as _};
use crate::state::State;

pub async fn run(global: &GlobalArgs, args: &ReconcileArgs) -> anyhow::Result<Exit> {
    let repo = Repo::open(global)?;
    let target = repo.target(&args.platform, args.apply.state.as_deref())?;
    let explicit = global.config.as_deref();
    let at_ref = match &args.git_ref {
        Some(rev) => Some(Checkout::revision(&repo.root, rev, explicit)?),
        None => None,
    };
    let checkout = at_ref.as_ref().unwrap_or(&repo.checkout);
    let envs = checkout.config.environments_in_run(&args.envs)?;
    if envs.len() > 1 {
        one_platform_per_run(&target, args)?;
    }
    let base = match &args.base {
        Some(rev) => {
            let base = Checkout::revision(&repo.root, rev, explicit)?;
            // Before anything is sent: a pull request must not move the API key elsewhere.
            for env in &envs {
                reconcile::check_platform_pinned(&checkout.config, &base.config, env)?;
            }
            Some(base)
        }
        None => None,
    };
    let since = match &args.since {
        Some(rev) => Some(since_checkout(&repo.root, rev, explicit)?),
        None => None,
    };
    // A plan file that cannot be used fails before anything is opened or sent.
    let saved = args.plan.as_deref().map(run::read).transpose()?;
    let run = Run {
        global,
        args,
        target: &target,
        checkout,
        base: base.as_ref(),
        since: since.as_ref(),
        saved: saved.as_ref(),
    };
    if envs.len() == 1 {
        return run.environment(&envs[0]).await;
    }
    // Each environment is its own run: one that cannot start (its API key is not set here,
    // say) is reported and the others still run.
    let mut exit = Exit::Success;
    for env in &envs {
        let this = match run.environment(env).await {
            Ok(this) => this,
            Err(e) => {
                super::print_error(&e.context(format!("environment {env} was not reconciled")));
                Exit::Failure
            }
        };
        exit = exit.worse(this);
    }
    Ok(exit)
}

/// A run over several environments takes each one's platform from castsync.yaml: a flag
/// naming one platform, or a saved plan (made for one environment), needs `--env`.
fn one_platform_per_run(
    target: &crate::target::Target,
    args: &ReconcileArgs,
) -> anyhow::Result<()> {
    let flag = match (target.platform_flag(), &args.plan, &args.save_plan) {
        (Some(flag), _, _) => flag,
        (None, Some(_), _) => "--plan",
        (None, None, Some(_)) => "--save-plan",
        (None, None, None) => return Ok(()),
    };
    Err(anyhow::Error::new(crate::hint::WithHint::new(
        format!(
            "{flag} names one platform, and this run covers every environment castsync.yaml declares"
        ),
        "pass --env ENV to run one environment (its platform, its API key variable, its state)"
            .to_owned(),
    )))
}

/// What every environment of one `castsync reconcile` shares.
struct Run<'a> {
    global: &'a GlobalArgs,
    args: &'a ReconcileArgs,
    target: &'a crate::target::Target,
    checkout: &'a Checkout,
    base: Option<&'a Checkout>,
    since: Option<&'a Result<Checkout, String>>,
    saved: Option<&'a saved_plan::SavedPlan>,
}

impl Run<'_> {
    /// Reconciles one environment: its platform, its state (and history), its overlays.
    async fn environment(&self, env: &Environment) -> anyhow::Result<Exit> {
        let (args, checkout) = (self.args, self.checkout);
        let platform = self
            .target
            .platform_in(&checkout.config, env)?
            .open(checkout.agents.clone())?;
        let state_path = self.target.state_path_in(env);
        // A dry run reads the state without locking it: it never blocks, or is blocked by,
        // an apply in progress.
        let state = if args.dry_run {
            State::open_read_only(&state_path)?
        } else {
            State::open(&state_path)?
        };
        let color = use_color(self.global.color, std::io::stdout().is_terminal());
        let ctx = RenderContext {
            platform: platform.id().to_owned(),
            revision: Some(checkout.label()),
            base: args.base.clone(),
            dry_run: args.dry_run,
            color,
            warnings: Vec::new(),
            environment: env.name().map(str::to_owned),
        };
        let console = self.console(ctx.clone());
        let stop = CancellationToken::new();
        let follower = console.follow_rate_limit(platform.clone(), stop.clone());

        // Read before the run, so a file that changes meanwhile makes the saved plan refuse
        // rather than record blobs newer than the plan.
        let explicit = self.global.config.as_deref();
        let save_inputs = match &args.save_plan {
            Some(_) if args.agents.is_empty() => {
                Some(run::inputs(checkout, explicit, env, &checkout.agents)?)
            }
            Some(_) => Some(run::inputs(checkout, explicit, env, &args.agents)?),
            None => None,
        };
        let state = Arc::new(Mutex::new(state));
        let request = self.request(env, platform.clone(), state);
        let outcome = match (self.saved, args.plan.as_deref()) {
            (Some(saved), Some(path)) => {
                let file = run::PlanFile {
                    saved,
                    path,
                    explicit_config: explicit,
                };
                run::apply_saved(request, file, console.clone())
                    .await
                    .map_err(anyhow::Error::from)
            }
            _ => reconcile::reconcile(request, console.clone())
                .await
                .map_err(anyhow::Error::from),
        };
        stop.cancel();
        let _ = follower.await;
        console.finish();
        let outcome = outcome?;
        if let Some(warning) = &outcome.state_warning {
            eprintln!("warning: {warning}");
        }
        self.say_saved_plan(&outcome);
        let plan_not_saved = match (&args.save_plan, &save_inputs) {
            (Some(file), Some(inputs)) => !self.save_plan(file, inputs, &outcome, platform.id())?,
            _ => false,
        };
        let ctx = RenderContext {
            revision: Some(outcome.revision.clone()),
            warnings: outcome.loaded.warnings(),
            ..ctx
        };
        self.report(&outcome, &ctx, console.plan_shown(), plan_not_saved)
    }

    /// The request for `env`, from the flags.
    fn request<'r>(
        &'r self,
        env: &Environment,
        platform: Arc<dyn crate::platform::Platform>,
        state: Arc<Mutex<State>>,
    ) -> Request<'r> {
        let args = self.args;
        let settings = super::apply_settings(&args.apply, args.timeout);
        Request {
            base: self.base,
            replace: Replace {
                keys: args.replace.iter().cloned().collect(),
                agents: args.replace_all.iter().flatten().cloned().collect(),
                all: args.replace_all.as_ref().is_some_and(Vec::is_empty),
            },
            only: args.agents.iter().cloned().collect::<BTreeSet<_>>(),
            changed: match (self.since, args.changed) {
                (Some(since), _) => {
                    Some(ChangedSince::Revision(since.as_ref().map_err(Clone::clone)))
                }
                (None, true) => Some(ChangedSince::State),
                (None, false) => None,
            },
            dry_run: args.dry_run,
            environment: env.clone(),
            ..settings.request(self.checkout, &self.target.identities, platform, state)
        }
    }

    /// The console that confirms and follows the apply: the plan shown before the apply as
    /// -o asks, or as text (with a question) when stdout carries JSON.
    fn console(&self, shown_ctx: RenderContext) -> Arc<Console> {
        let output = self.args.output;
        let mut console = ConsoleOptions::detect(
            self.args.yes,
            self.global.quiet > 0,
            use_color(self.global.color, std::io::stderr().is_terminal()),
            Box::new(move |plan, warnings| {
                let ctx = RenderContext {
                    warnings: warnings.to_vec(),
                    ..shown_ctx.clone()
                };
                match output {
                    OutputFormat::Markdown => render::plan_markdown(plan, &ctx),
                    _ => render::plan_text(plan, &ctx),
                }
            }),
        );
        console.prompt_on_stderr = output == OutputFormat::Json;
        Console::new(console)
    }

    /// With --plan, what became of the saved plan.
    fn say_saved_plan(&self, outcome: &reconcile::Outcome) {
        let (Some(saved), Some(file)) = (self.saved, &self.args.plan) else {
            return;
        };
        if self.global.quiet > 0 {
            return;
        }
        let made = format!(
            "{} (made from {} at {})",
            file.display(),
            crate::escape::terminal(&saved.revision),
            crate::escape::terminal(&saved.created_at),
        );
        if self.args.dry_run {
            eprintln!(
                "The saved plan {made} matches the tree and the platform: `castsync reconcile --plan` would apply it."
            );
        } else if outcome.report.is_some() {
            eprintln!(
                "The saved plan {made} matched the tree and the platform: exactly its changes were applied."
            );
        }
    }

    /// With --save-plan, writes the plan; false when it could not be saved (said on stderr).
    fn save_plan(
        &self,
        file: &std::path::Path,
        inputs: &saved_plan::Inputs,
        outcome: &reconcile::Outcome,
        platform: &str,
    ) -> anyhow::Result<bool> {
        let origin = saved_plan::Origin {
            inputs,
            observed: &outcome.observed,
            platform,
            revision: &outcome.revision,
            all_agents: self.args.agents.is_empty(),
            created_at: &crate::history::now(),
        };
        match saved_plan::save(&outcome.plan, &origin) {
            Ok(saved) => {
                run::write(file, &saved)?;
                if self.global.quiet == 0 {
                    eprintln!(
                        "Saved the plan to {}: apply exactly it with `castsync reconcile --plan {}`.",
                        file.display(),
                        file.display()
                    );
                }
                Ok(true)
            }
            Err(e) => {
                super::print_error(&anyhow::Error::new(e));
                Ok(false)
            }
        }
    }

    /// Prints the plan (and what landed) as -o asks; the exit code.
    fn report(
        &self,
        outcome: &reconcile::Outcome,
        ctx: &RenderContext,
        shown: bool,
        plan_not_saved: bool,
    ) -> anyhow::Result<Exit> {
        let (args, plan) = (self.args, &outcome.plan);
        if outcome.declined {
            eprintln!("Apply cancelled: nothing was changed on the platform.");
            return Ok(Exit::Failure);
        }
        let plan_shown = shown && args.output != OutputFormat::Json;
        match (args.output, &outcome.report) {
            (OutputFormat::Json, None) => {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&render::plan_json(plan, ctx))?
                )
            }
            (OutputFormat::Json, Some(report)) => println!(
                "{}",
                serde_json::to_string_pretty(&render::apply_json(report, plan, ctx))?
            ),
            (OutputFormat::Markdown | OutputFormat::Text, _) if plan_shown => {}
            (OutputFormat::Markdown, _) => print!("{}", render::plan_markdown(plan, ctx)),
            (OutputFormat::Text, _) => print!("{}", render::plan_text(plan, ctx)),
        }
        if let (OutputFormat::Text | OutputFormat::Markdown, Some(report)) =
            (args.output, &outcome.report)
            && plan.has_changes()
        {
            if !plan_shown {
                println!();
            }
            print!("{}", render::apply_text(report, plan, ctx.color));
        }
        if let Some(timed_out) = &outcome.timed_out {
            let flag = if args.timeout.is_some() {
                "--timeout"
            } else {
                "the default; see --timeout"
            };
            super::print_error(&anyhow::Error::new(crate::hint::WithHint::new(
                timed_out.message(flag),
                timed_out.hint().unwrap_or_default(),
            )));
        }
        Ok(if !outcome.ok() || plan_not_saved {
            Exit::Failure
        } else if args.dry_run && args.exit_code && plan.has_changes() {
            Exit::Changes
        } else {
            Exit::Success
        })
    }
}

/// The `--since` revision: its checkout, or (when the revision exists but its
/// `castsync.yaml` cannot be used) why every agent must be refreshed. A revision that does
/// not resolve is an error: a mistyped `--since` must not pass as a full reconcile.
fn since_checkout(
    root: &std::path::Path,
    rev: &str,
    explicit: Option<&std::path::Path>,
) -> anyhow::Result<Result<Checkout, String>> {
    let tree = GitRevision::open(root, rev)?;
    let label = tree.revision();
    Ok(match Checkout::open(Box::new(tree), explicit) {
        Ok(checkout) => Ok(checkout),
        Err(CheckoutError::Config(e)) => Err(format!(
            "the config at --since {rev} ({}) cannot be read: {e}",
            &label[..label.len().min(7)]
        )),
        Err(e) => return Err(e.into()),
    })
}
