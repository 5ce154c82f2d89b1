//! `castsync reconcile`: run one reconcile and report it as text, JSON or Markdown.

use std::collections::BTreeSet;
use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use crate::apply::AgentResult;
use crate::cli::{GlobalArgs, OutputFormat, ReconcileArgs};
use crate::commands::{Exit, Repo};
use crate::plan::Replace;
use crate::reconcile::{self, ChangedSince, Request};
use crate::render::{self, RenderContext};
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
    let base = match &args.base {
        Some(rev) => Some(Checkout::revision(&repo.root, rev, explicit)?),
        None => None,
    };
    let since = match &args.since {
        Some(rev) => Some(since_checkout(&repo.root, rev, explicit)?),
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

    let total = AtomicUsize::new(0);
    let started = Instant::now();
    let progress = std::io::stderr().is_terminal();
    let on_done = |_: &AgentResult| {
        let n = total.fetch_add(1, Ordering::Relaxed) + 1;
        if progress && started.elapsed() > Duration::from_secs(3) {
            eprint!(
                "\r  applied {n} agent(s) in {}s",
                started.elapsed().as_secs()
            );
        }
    };
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
        no_prune: args.apply.no_prune,
        only: args.agents.iter().cloned().collect::<BTreeSet<_>>(),
        changed: match (&since, args.changed) {
            (Some(since), _) => Some(ChangedSince::Revision(since.as_ref().map_err(Clone::clone))),
            (None, true) => Some(ChangedSince::State),
            (None, false) => None,
        },
        dry_run: args.dry_run,
        concurrency: usize::from(args.apply.concurrency),
        cancel: CancellationToken::new(),
    };
    let outcome = reconcile::reconcile(request, &on_done).await?;
    if let Some(warning) = &outcome.state_warning {
        eprintln!("warning: {warning}");
    }
    if progress && total.load(Ordering::Relaxed) > 0 && started.elapsed() > Duration::from_secs(3) {
        eprintln!();
    }

    let color = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let ctx = RenderContext {
        platform: platform.id().to_owned(),
        revision: Some(outcome.revision.clone()),
        base: args.base.clone(),
        dry_run: args.dry_run,
        color,
        warnings: outcome.loaded.warnings(),
    };
    let plan = &outcome.plan;
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
        (OutputFormat::Markdown, _) => print!("{}", render::plan_markdown(plan, &ctx)),
        (OutputFormat::Text, _) => print!("{}", render::plan_text(plan, &ctx)),
    }
    if let (OutputFormat::Text | OutputFormat::Markdown, Some(report)) =
        (args.output, &outcome.report)
        && plan.has_changes()
    {
        println!();
        print!("{}", render::apply_text(report, plan, color));
    }

    Ok(if !outcome.ok() {
        Exit::Failure
    } else if args.dry_run && args.exit_code && plan.has_changes() {
        Exit::Changes
    } else {
        Exit::Success
    })
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
