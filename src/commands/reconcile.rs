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
use crate::deadline::RunTimeout;
use crate::plan::Replace;
use crate::reconcile::{self, Request};
use crate::render::{self, RenderContext};
use crate::source::Checkout;
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
    let base = match &args.base {
        Some(rev) => {
            let base = Checkout::revision(&repo.root, rev, explicit)?;
            // Before anything is sent: a pull request must not move the API key elsewhere.
            reconcile::check_platform_pinned(&checkout.config, &base.config)?;
            Some(base)
        }
        None => None,
    };
    let platform = target
        .platform(&checkout.config)?
        .open(checkout.agents.clone())?;

    // A dry run reads the state without locking it: it never blocks, or is blocked by, an
    // apply in progress.
    let state = if args.dry_run {
        State::open_read_only(&target.state_path)?
    } else {
        State::open(&target.state_path)?
    };

    let color = use_color(global.color, std::io::stdout().is_terminal());
    let ctx = |revision: Option<String>, warnings: Vec<String>| RenderContext {
        platform: platform.id().to_owned(),
        revision,
        base: args.base.clone(),
        dry_run: args.dry_run,
        color,
        warnings,
    };
    // The plan shown with the question: as -o asks, or as text when stdout carries JSON.
    let shown_ctx = ctx(Some(checkout.label()), Vec::new());
    let output = args.output;
    let mut console = ConsoleOptions::detect(
        args.yes,
        global.quiet > 0,
        use_color(global.color, std::io::stderr().is_terminal()),
        Box::new(move |plan| match output {
            OutputFormat::Markdown => render::plan_markdown(plan, &shown_ctx),
            _ => render::plan_text(plan, &shown_ctx),
        }),
    );
    console.prompt_on_stderr = output == OutputFormat::Json;
    let console = Console::new(console);
    let stop = CancellationToken::new();
    let follower = console.follow_rate_limit(platform.clone(), stop.clone());

    let mut policy = reconcile::policy(
        &checkout.config,
        args.apply.no_prune,
        args.apply.allow_mass_delete,
    );
    policy.replace = Replace {
        keys: args.replace.iter().cloned().collect(),
        agents: args.replace_all.iter().flatten().cloned().collect(),
        all: args.replace_all.as_ref().is_some_and(Vec::is_empty),
    };
    let request = Request {
        checkout,
        base: base.as_ref(),
        identities: &target.identities,
        platform: platform.clone(),
        state: Arc::new(Mutex::new(state)),
        policy,
        redeploy: args.apply.redeploy_override(),
        only: args.agents.iter().cloned().collect::<BTreeSet<_>>(),
        dry_run: args.dry_run,
        concurrency: usize::from(args.apply.concurrency),
        cancel: CancellationToken::new(),
        timeout: RunTimeout::from_flag(args.timeout),
    };
    let outcome = reconcile::reconcile(request, console.clone()).await;
    stop.cancel();
    let _ = follower.await;
    console.finish();
    let outcome = outcome?;

    let ctx = ctx(Some(outcome.revision.clone()), outcome.loaded.warnings());
    let plan = &outcome.plan;
    if outcome.declined {
        eprintln!("Apply cancelled: nothing was changed on the platform.");
        return Ok(Exit::Failure);
    }
    let plan_shown = console.plan_shown() && args.output != OutputFormat::Json;
    match (args.output, &outcome.report) {
        (OutputFormat::Json, None) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&render::plan_json(plan, &ctx))?
            )
        }
        (OutputFormat::Json, Some(report)) => println!(
            "{}",
            serde_json::to_string_pretty(&render::apply_json(report, plan, &ctx))?
        ),
        (OutputFormat::Markdown | OutputFormat::Text, _) if plan_shown => {}
        (OutputFormat::Markdown, _) => print!("{}", render::plan_markdown(plan, &ctx)),
        (OutputFormat::Text, _) => print!("{}", render::plan_text(plan, &ctx)),
    }
    if let (OutputFormat::Text | OutputFormat::Markdown, Some(report)) =
        (args.output, &outcome.report)
        && plan.has_changes()
    {
        if !plan_shown {
            println!();
        }
        print!("{}", render::apply_text(report, plan, color));
    }

    if let Some(timed_out) = &outcome.timed_out {
        let flag = if args.timeout.is_some() {
            "--timeout"
        } else {
            "the default; see --timeout"
        };
        eprintln!("error: {}", timed_out.message(flag));
    }
    Ok(if !outcome.ok() {
        Exit::Failure
    } else if args.dry_run && args.exit_code && plan.has_changes() {
        Exit::Changes
    } else {
        Exit::Success
    })
}
