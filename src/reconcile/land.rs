//! The one way a plan lands, whichever way it was made (planned afresh by
//! [`super::reconcile`], or read from a file by `saved_plan`): confirm → record the intent
//! (forget what the agents with work converged from) → apply (sets, deletes, the verifying
//! list, redeploys; the verified writes recorded per agent) → record what the agents without
//! work converged from → the [`Outcome`].
//!
//! It never decides what to write: the plan did. It never writes after a "no" from
//! [`Observer::confirm`], nor at all in a dry run.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{Observer, Outcome};
use crate::apply::{self, Recording};
use crate::deadline::{Bounded, Deadline, TimedOut};
use crate::load::Loaded;
use crate::plan::Plan;
use crate::platform::Platform;
use crate::platform::types::{Listing, PlatformError};
use crate::request::Request;
use crate::source::inputs::RunInputs;

/// One run's deadline, and the platform bounded by it: every call of the run goes through
/// [`Run::platform`].
#[derive(Clone)]
pub struct Run {
    pub deadline: Arc<Deadline>,
    pub platform: Arc<dyn Platform>,
}

impl Run {
    /// Starts the run's clock (see [`crate::deadline`]).
    pub fn start(req: &Request<'_>) -> Run {
        let deadline = Deadline::start(req.settings.timeout);
        let platform = Bounded::wrap(req.platform.clone(), deadline.clone());
        Run { deadline, platform }
    }
}

/// A plan ready to land, and what it was made from.
pub struct Planned {
    /// The agents loaded for it; the values of every key it sets come from here.
    pub loaded: Loaded,
    pub plan: Plan,
    /// The key lists (or list errors) the plan was checked against.
    pub observed: BTreeMap<String, Result<Listing, PlatformError>>,
    /// The run's inputs now: what each agent that converges is recorded as converged from.
    pub inputs: RunInputs,
}

/// Lands `planned` (see the module doc).
pub async fn land(
    req: &Request<'_>,
    run: Run,
    planned: Planned,
    observer: Arc<dyn Observer>,
) -> Outcome {
    let Planned {
        loaded,
        plan,
        observed,
        inputs,
    } = planned;
    let revision = req.checkout.label();
    let platform_id = req.platform.id();
    let declined = !req.dry_run && plan.has_changes() && {
        // The person reading the plan is not the platform being slow.
        let _paused = run.deadline.pause();
        !observer.confirm(&plan, &loaded.warnings())
    };
    let (report, state_warning) = if req.dry_run || declined {
        (None, None)
    } else {
        if plan.has_changes() {
            run.deadline.allow_requests(apply::request_count(&plan));
        }
        let recording = Recording {
            inputs: &inputs,
            loaded: &loaded,
            revision: &revision,
            platform: platform_id,
        };
        let (report, warning) = apply::apply_recorded(
            &plan,
            recording,
            run.platform,
            req.state.clone(),
            req.settings.concurrency,
            &req.cancel,
            observer,
        )
        .await;
        (Some(report), warning)
    };
    let timed_out = TimedOut::find(&plan, report.as_ref());
    Outcome {
        loaded,
        plan,
        report,
        revision,
        declined,
        observed,
        timed_out,
        state_warning,
    }
}
