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
use crate::plan::Replace;
use crate::reconcile;
use crate::render::{self, RenderContext};
use crate::request::{ChangedSince, Request};
use crate::saved_plan::{self, run};
use crate::source::{Checkout, CheckoutError, GitRevision, Tree as _};
use crate::state::State;

pub async fn run(global: &GlobalArgs, args: &ReconcileArgs) -> anyhow::Result<Exit> {
    let mut repo = Repo::open(global)?;
    // A plugin that never answers must not outlast the run.
    repo.identity_env.age_plugin_timeout = args.timeout;
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
    let since = match &args.since {
        Some(rev) => Some(since_checkout(&repo.root, rev, explicit)?),
        None => None,
    };
    // A plan file that cannot be used fails before anything is opened or sent.
    let saved = args.plan.as_deref().map(run::read).transpose()?;
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
    // The plan shown before the apply: as -o asks, or as text (with a question) when
    // stdout carries JSON.
    let shown_ctx = ctx(Some(checkout.label()), Vec::new());
    let output = args.output;
    let mut console = ConsoleOptions::detect(
        args.yes,
        global.quiet > 0,
        use_color(global.color, std::io::stderr().is_terminal()),
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
    let console = Console::new(console);
    let stop = CancellationToken::new();
    let follower = console.follow_rate_limit(platform.clone(), stop.clone());

    // Read before the run, so a file that changes meanwhile makes the saved plan refuse
    // rather than record blobs newer than the plan.
    let save_inputs = match &args.save_plan {
        Some(_) if args.agents.is_empty() => {
            Some(run::inputs(checkout, explicit, &checkout.agents)?)
        }
        Some(_) => Some(run::inputs(checkout, explicit, &args.agents)?),
        None => None,
    };
    let state = Arc::new(Mutex::new(state));
    let settings = super::apply_settings(&args.apply, args.timeout);
    let request = Request {
        base: base.as_ref(),
        replace: Replace {
            keys: args.replace.iter().cloned().collect(),
            agents: args.replace_all.iter().flatten().cloned().collect(),
            all: args.replace_all.as_ref().is_some_and(Vec::is_empty),
        },
        only: args.agents.iter().cloned().collect::<BTreeSet<_>>(),
        changed: match (&since, args.changed) {
            (Some(since), _) => Some(ChangedSince::Revision(since.as_ref().map_err(Clone::clone))),
            (None, true) => Some(ChangedSince::State),
            (None, false) => None,
        },
        dry_run: args.dry_run,
        ..settings.request(checkout, &target.identities, platform.clone(), state)
    };
    let outcome = match (&saved, args.plan.as_deref()) {
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
    if let (Some(saved), Some(file)) = (&saved, &args.plan)
        && global.quiet == 0
    {
        let made = format!(
            "{} (made from {} at {})",
            file.display(),
            crate::escape::terminal(&saved.revision),
            crate::escape::terminal(&saved.created_at),
        );
        if args.dry_run {
            eprintln!(
                "The saved plan {made} matches the tree and the platform: `castsync reconcile --plan` would apply it."
            );
        } else if outcome.report.is_some() {
            eprintln!(
                "The saved plan {made} matched the tree and the platform: exactly its changes were applied."
            );
        }
    }
    let mut plan_not_saved = false;
    if let (Some(file), Some(inputs)) = (&args.save_plan, &save_inputs) {
        let origin = saved_plan::Origin {
            inputs,
            observed: &outcome.observed,
            platform: platform.id(),
            revision: &outcome.revision,
            all_agents: args.agents.is_empty(),
            created_at: &crate::history::now(),
        };
        match saved_plan::save(&outcome.plan, &origin) {
            Ok(saved) => {
                run::write(file, &saved)?;
                if global.quiet == 0 {
                    eprintln!(
                        "Saved the plan to {}: apply exactly it with `castsync reconcile --plan {}`.",
                        file.display(),
                        file.display()
                    );
                }
            }
            Err(e) => {
                super::print_error(&anyhow::Error::new(e));
                plan_not_saved = true;
            }
        }
    }

    let ctx = ctx(Some(outcome.revision.clone()), outcome.loaded.warnings());
    let plan = &outcome.plan;
    if outcome.declined {
        eprintln!("Apply cancelled: nothing was changed on the platform.");
        return Ok(Exit::Failure);
    }
    let plan_shown = console.plan_shown() && args.output != OutputFormat::Json;
    match (args.output, &outcome.report) {
        (OutputFormat::Json, None) => super::print_out(format_args!(
            "{}\n",
            serde_json::to_string_pretty(&render::plan_json(plan, &ctx))?
        ))?,
        (OutputFormat::Json, Some(report)) => super::print_out(format_args!(
            "{}\n",
            serde_json::to_string_pretty(&render::apply_json(report, plan, &ctx))?
        ))?,
        (OutputFormat::Markdown | OutputFormat::Text, _) if plan_shown => {}
        (OutputFormat::Markdown, _) => super::print_out(render::plan_markdown(plan, &ctx))?,
        (OutputFormat::Text, _) => super::print_out(render::plan_text(plan, &ctx))?,
    }
    if let (OutputFormat::Text | OutputFormat::Markdown, Some(report)) =
        (args.output, &outcome.report)
        && plan.has_changes()
    {
        if !plan_shown {
            super::print_out("\n")?;
        }
        super::print_out(render::apply_text(report, plan, color))?;
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
