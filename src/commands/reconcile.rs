//! `castsync reconcile`: source → desired → plan → (apply).

use std::collections::BTreeSet;
use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use crate::apply::{self, ApplyOptions};
use crate::cli::{GlobalArgs, OutputFormat, ReconcileArgs};
use crate::commands::{Exit, Repo};
use crate::plan::{self, LastApplied, NoBaseline, RevisionBaseline};
use crate::render::{self, RenderContext};
use crate::source::{GitRevision, Tree, Worktree, load};
use crate::state::State;

pub async fn run(global: &GlobalArgs, args: &ReconcileArgs) -> anyhow::Result<Exit> {
    let repo = Repo::open(global)?;
    let identities = repo.identities()?;

    // Source: the worktree, or a revision read from git objects.
    let tree: Box<dyn Tree> = match &args.git_ref {
        Some(rev) => Box::new(GitRevision::open(&repo.root, rev)?),
        None => Box::new(Worktree::new(&repo.root)),
    };
    let filter: BTreeSet<String> = args.agents.iter().cloned().collect();
    let loaded = load::load_all(tree.as_ref(), &repo.config, &identities, &filter)?;

    let baseline: Box<dyn LastApplied + Send + Sync> = match &args.base {
        Some(rev) => {
            let base_tree = GitRevision::open(&repo.root, rev)?;
            let base = load::load_all(&base_tree, &repo.config, &identities, &filter)?;
            Box::new(RevisionBaseline(base.ok_secrets()))
        }
        None => Box::new(NoBaseline),
    };

    let platform = repo.platform(&args.platform, loaded.agents.keys().cloned().collect())?;
    let platform_id = platform.id().to_owned();
    let state_path = args
        .apply
        .state
        .clone()
        .unwrap_or_else(|| repo.root.join(".castsync/state.json"));
    // A dry run reads the state without locking it, so it never blocks (or is blocked by) a
    // running apply.
    let state = if args.dry_run {
        State::open_read_only(&state_path)?
    } else {
        State::open(&state_path)?
    };

    let concurrency = usize::from(args.apply.concurrency);
    let listable = loaded
        .agents
        .iter()
        .filter(|(_, r)| r.is_ok())
        .map(|(a, _)| a.clone());
    let actual = apply::list_agents(platform.clone(), listable, concurrency).await;

    let policy = repo.policy(&args.apply);
    let desired = loaded.desired_or_reasons();
    let plan = {
        let state_view = state.view(&platform_id);
        let last: &dyn LastApplied = if args.base.is_some() {
            baseline.as_ref()
        } else {
            &state_view
        };
        plan::plan(&desired, &actual, last, &policy)
    };

    let color = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let ctx = RenderContext {
        platform: platform_id.clone(),
        revision: Some(tree.revision()),
        base: args.base.clone(),
        dry_run: args.dry_run,
        color,
        warnings: loaded.warnings.clone(),
    };
    match args.output {
        OutputFormat::Text => print!("{}", render::plan_text(&plan, &ctx)),
        OutputFormat::Markdown => print!("{}", render::plan_markdown(&plan, &ctx)),
        OutputFormat::Json if args.dry_run => {
            println!("{}", serde_json::to_string_pretty(&render::plan_json(&plan, &ctx))?)
        }
        OutputFormat::Json => {}
    }

    if args.dry_run {
        return Ok(if plan.has_skips() {
            Exit::Failure
        } else if args.exit_code && plan.has_changes() {
            Exit::Changes
        } else {
            Exit::Success
        });
    }
    if !plan.has_changes() {
        if args.output == OutputFormat::Json {
            let report = apply::ApplyReport::default();
            println!("{}", serde_json::to_string_pretty(&render::apply_json(&report, &plan, &ctx))?);
        }
        return Ok(if plan.has_skips() { Exit::Failure } else { Exit::Success });
    }

    let state = Arc::new(Mutex::new(state));
    let values = loaded.ok_secrets();
    let done = AtomicUsize::new(0);
    let total = plan.agents.iter().filter(|a| a.has_changes()).count();
    let started = Instant::now();
    let progress = std::io::stderr().is_terminal();
    let on_done = |_: &apply::AgentResult| {
        let n = done.fetch_add(1, Ordering::Relaxed) + 1;
        if progress && started.elapsed() > Duration::from_secs(3) {
            eprint!("\r  applied {n}/{total} agents ({}s)", started.elapsed().as_secs());
            if n == total {
                eprintln!();
            }
        }
    };
    let options = ApplyOptions {
        concurrency,
        revision: Some(tree.revision()),
    };
    let cancel = CancellationToken::new();
    let report = apply::apply(
        &plan,
        &values,
        platform,
        state.clone(),
        &options,
        &cancel,
        &on_done,
    )
    .await;
    match args.output {
        OutputFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&render::apply_json(&report, &plan, &ctx))?
        ),
        _ => print!("{}", render::apply_text(&report, &plan, color)),
    }
    Ok(if report.ok() && !plan.has_skips() {
        Exit::Success
    } else {
        Exit::Failure
    })
}
