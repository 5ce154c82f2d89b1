//! `castsync reconcile`: run one reconcile and report it as text, JSON or Markdown. On a
//! terminal a plan that deletes keys is confirmed first (unless --yes) and the apply shows a
//! progress bar; without one it never asks and logs one line per agent (`render::progress`).

use std::collections::BTreeSet;
use std::io::IsTerminal;
use std::path::Path;
use std::sync::Arc;

use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use crate::cli::{GlobalArgs, OutputFormat, ReconcileArgs};
use crate::commands::{Exit, Repo, use_color};
use crate::deadline::TimedOut;
use crate::environment::Environment;
use crate::plan::Replace;
use crate::reconcile::{self, Outcome};
use crate::render::progress::{Console, ConsoleOptions};
use crate::render::{self, Format, RenderContext};
use crate::request::{ChangedSince, Request};
use crate::saved_plan::{self, SavedPlan, run};
use crate::source::Checkout;
use crate::state::State;
use crate::target::Target;

pub async fn run(global: &GlobalArgs, args: &ReconcileArgs) -> anyhow::Result<Exit> {
    let mut repo = Repo::open(global)?;
    // A plugin that never answers must not outlast the run.
    repo.identity_env.age_plugin_timeout = args.timeout;
    let target = repo.target(&args.platform, args.apply.state.as_deref())?;
    let explicit = global.config.as_deref();
    let revisions = Revisions::open(&repo, args, explicit)?;
    let checkout = revisions.at_ref.as_ref().unwrap_or(&repo.checkout);
    let envs = checkout.config.environments_in_run(&args.envs)?;
    if envs.len() > 1 {
        one_platform_per_run(&target, args)?;
    }
    if let Some(base) = &revisions.base {
        // Before anything is sent: a pull request must not move an API key elsewhere.
        for env in &envs {
            reconcile::check_platform_pinned(&checkout.config, &base.config, env)?;
        }
    }
    // A plan file that cannot be used fails before anything is opened or sent.
    let saved = args.plan.as_deref().map(run::read).transpose()?;
    let run = Run {
        global,
        args,
        target: &target,
        checkout,
        revisions: &revisions,
        saved: saved.as_ref(),
    };
    if let [env] = &envs[..] {
        return run.environment(env).await;
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
fn one_platform_per_run(target: &Target, args: &ReconcileArgs) -> anyhow::Result<()> {
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
        "pass --env ENV to run one environment (its platform, its API key variable, its state)",
    )))
}

/// What every environment of one `castsync reconcile` shares.
struct Run<'a> {
    global: &'a GlobalArgs,
    args: &'a ReconcileArgs,
    target: &'a Target,
    checkout: &'a Checkout,
    revisions: &'a Revisions,
    saved: Option<&'a SavedPlan>,
}

impl Run<'_> {
    /// Reconciles one environment: its platform, its state (and history), its overlays.
    async fn environment(&self, env: &Environment) -> anyhow::Result<Exit> {
        let (global, args, checkout) = (self.global, self.args, self.checkout);
        let explicit = global.config.as_deref();
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

        let color = use_color(global.color, std::io::stdout().is_terminal());
        let ctx = |revision: Option<String>, warnings: Vec<String>| RenderContext {
            platform: platform.id().to_owned(),
            revision,
            base: args.base.clone(),
            dry_run: args.dry_run,
            color,
            warnings,
            environment: env.name().map(str::to_owned),
        };
        // The plan shown before the apply: as -o asks, or as text (with a question) when
        // stdout carries JSON.
        let console = console(global, args, ctx(Some(checkout.label()), Vec::new()));
        let stop = CancellationToken::new();
        let follower = console.follow_rate_limit(platform.clone(), stop.clone());

        // Read before the run, so a file that changes meanwhile makes the saved plan refuse
        // rather than record blobs newer than the plan.
        let save_inputs = match (&args.save_plan, args.agents.is_empty()) {
            (Some(_), true) => Some(run::inputs(checkout, explicit, env, &checkout.agents)?),
            (Some(_), false) => Some(run::inputs(checkout, explicit, env, &args.agents)?),
            (None, _) => None,
        };
        let state = Arc::new(Mutex::new(state));
        let request = Request {
            base: self.revisions.base.as_ref(),
            replace: replace(args),
            only: args.agents.iter().cloned().collect::<BTreeSet<_>>(),
            changed: self.revisions.changed_since(args.changed),
            dry_run: args.dry_run,
            environment: env.clone(),
            ..super::apply_settings(&args.apply, args.timeout).request(
                checkout,
                &self.target.identities,
                platform.clone(),
                state,
            )
        };
        let file = self.saved.zip(args.plan.as_deref());
        let outcome = reconcile_or_apply(request, file, explicit, console.clone()).await;
        stop.cancel();
        let _ = follower.await;
        console.finish();
        let outcome = outcome?;
        if let Some(warning) = &outcome.state_warning {
            crate::say!("warning: {warning}");
        }
        if let (Some(saved), Some(file)) = (self.saved, &args.plan)
            && global.quiet == 0
            && let Some(said) = render::outcome::saved_plan_used(
                file,
                saved,
                args.dry_run,
                outcome.report.is_some(),
            )
        {
            crate::say!("{said}");
        }
        let plan_not_saved = match (&args.save_plan, &save_inputs) {
            (Some(file), Some(inputs)) => {
                !save_plan(global, args, file, inputs, &outcome, platform.id())?
            }
            _ => false,
        };

        let ctx = ctx(Some(outcome.revision.clone()), outcome.loaded.warnings());
        if outcome.declined {
            crate::say!("Apply cancelled: nothing was changed on the platform.");
            return Ok(Exit::Failure);
        }
        let plan_shown = console.plan_shown() && args.output != OutputFormat::Json;
        let format = super::render_format(args.output);
        super::print_out(render::outcome::outcome(format, &outcome, &ctx, plan_shown))?;
        if let Some(timed_out) = &outcome.timed_out {
            say_timed_out(timed_out, args.timeout.is_some());
        }
        Ok(if !outcome.ok() || plan_not_saved {
            Exit::Failure
        } else if args.dry_run && args.exit_code && outcome.plan.has_changes() {
            Exit::Changes
        } else {
            Exit::Success
        })
    }
}

/// Reconciles, or applies the saved plan (read from `file`) when there is one.
async fn reconcile_or_apply(
    request: Request<'_>,
    file: Option<(&SavedPlan, &Path)>,
    explicit_config: Option<&Path>,
    console: Arc<Console>,
) -> anyhow::Result<Outcome> {
    Ok(match file {
        Some((saved, path)) => {
            let file = run::PlanFile {
                saved,
                path,
                explicit_config,
            };
            run::apply_saved(request, file, console).await?
        }
        None => reconcile::reconcile(request, console).await?,
    })
}

/// The console that asks before a plan that deletes, and draws the apply's progress;
/// `shown_ctx` renders the plan shown with the question.
fn console(global: &GlobalArgs, args: &ReconcileArgs, shown_ctx: RenderContext) -> Arc<Console> {
    let output = super::render_format(args.output);
    let mut console = ConsoleOptions::detect(
        args.yes,
        global.quiet > 0,
        use_color(global.color, std::io::stderr().is_terminal()),
        Box::new(move |plan, warnings| {
            let ctx = RenderContext {
                warnings: warnings.to_vec(),
                ..shown_ctx.clone()
            };
            // JSON goes to stdout after the run: the plan asked about is shown as text.
            let shown = match output {
                Format::Markdown => Format::Markdown,
                _ => Format::Text,
            };
            render::outcome::plan_in(shown, plan, &ctx)
        }),
    );
    console.prompt_on_stderr = output == Format::Json;
    Console::new(console)
}

/// Says on stderr that the run's deadline passed, and what it cut off.
fn say_timed_out(timed_out: &TimedOut, flag_given: bool) {
    let flag = if flag_given {
        "--timeout"
    } else {
        "the default; see --timeout"
    };
    super::print_error(&anyhow::Error::new(crate::hint::WithHint::new(
        timed_out.message(flag),
        timed_out.hint().unwrap_or_default(),
    )));
}

/// The revisions besides the worktree a run reads: `--ref` (the manifests), `--base` (what
/// counts as last applied) and `--since` (what `--changed` compares with).
struct Revisions {
    at_ref: Option<Checkout>,
    base: Option<Checkout>,
    since: Option<Result<Checkout, String>>,
}

impl Revisions {
    fn open(repo: &Repo, args: &ReconcileArgs, explicit: Option<&Path>) -> anyhow::Result<Self> {
        let revision = |rev: &str| Checkout::revision(&repo.root, rev, explicit);
        let at_ref = args.git_ref.as_deref().map(revision).transpose()?;
        let base = args.base.as_deref().map(revision).transpose()?;
        let since = match &args.since {
            Some(rev) => Some(Checkout::since(&repo.root, rev, explicit)?),
            None => None,
        };
        Ok(Revisions {
            at_ref,
            base,
            since,
        })
    }
}

impl Revisions {
    /// What `--changed` compares with: the `--since` revision, else the state.
    fn changed_since(&self, changed: bool) -> Option<ChangedSince<'_>> {
        match (&self.since, changed) {
            (Some(since), _) => Some(ChangedSince::Revision(since.as_ref().map_err(Clone::clone))),
            (None, true) => Some(ChangedSince::State),
            (None, false) => None,
        }
    }
}

/// `--replace AGENT/KEY` and `--replace-all [AGENT…]`.
fn replace(args: &ReconcileArgs) -> Replace {
    Replace {
        keys: args.replace.iter().cloned().collect(),
        agents: args.replace_all.iter().flatten().cloned().collect(),
        all: args.replace_all.as_ref().is_some_and(Vec::is_empty),
    }
}

/// `--save-plan FILE`: writes the plan with what it was made from. False (and the reason
/// printed) when the plan cannot be saved, e.g. because it skips an agent.
fn save_plan(
    global: &GlobalArgs,
    args: &ReconcileArgs,
    file: &Path,
    inputs: &saved_plan::Inputs,
    outcome: &Outcome,
    platform: &str,
) -> anyhow::Result<bool> {
    let origin = saved_plan::Origin {
        inputs,
        observed: &outcome.observed,
        platform,
        revision: &outcome.revision,
        all_agents: args.agents.is_empty(),
        created_at: &crate::history::now(),
    };
    match saved_plan::save(&outcome.plan, &origin) {
        Ok(saved) => {
            run::write(file, &saved)?;
            if global.quiet == 0 {
                crate::say!(
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
