//! What `castsync reconcile` shows a person while it works: the plan before the first write
//! (so in a log that mixes stdout and stderr it comes before the apply's progress), on a
//! terminal `Apply? [y/N]` after a plan that deletes keys, then a progress bar with requests
//! done, the rate-limit wait and an ETA; without a terminal, never a question and one line
//! per agent finished (and per long rate-limit wait), so CI logs show progress too.
//!
//! It sees key names and counts only, never a value. It must never ask when stdin or stdout
//! is not a terminal: CI and the daemon run unattended.

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio_util::sync::CancellationToken;

use crate::apply::{AgentResult, Progress, Redeployed};
use crate::plan::Plan;
use crate::platform::Platform;
use crate::reconcile::Observer;

/// Rate-limit waits shorter than this are not worth a line in a log.
const LOG_WAIT_MIN: Duration = Duration::from_secs(1);
/// How often the rate-limit wait is looked at.
const TICK: Duration = Duration::from_millis(250);

/// Renders the plan shown before the apply (text or Markdown, as `-o` asks), with the
/// warnings found while loading.
pub type ShowPlan = Box<dyn Fn(&Plan, &[String]) -> String + Send + Sync>;

/// How the console behaves, decided once from the terminals and flags.
pub struct ConsoleOptions {
    /// Ask before applying a plan that deletes (stdin and stdout are terminals, no --yes).
    pub ask: bool,
    /// Draw a progress bar on stderr (a terminal, not -q).
    pub bar: bool,
    /// One line per agent on stderr (no terminal, not -q).
    pub lines: bool,
    /// Colour the bar.
    pub color: bool,
    /// The plan as shown before the apply.
    pub show_plan: ShowPlan,
    /// stdout carries JSON: the plan goes into it at the end, and a question (with the plan
    /// it asks about) goes to stderr.
    pub prompt_on_stderr: bool,
}

impl ConsoleOptions {
    /// From the terminals: `yes` is --yes, `quiet` -q, `color` the --color decision for
    /// stderr.
    pub fn detect(yes: bool, quiet: bool, color: bool, show_plan: ShowPlan) -> ConsoleOptions {
        let stderr_tty = std::io::stderr().is_terminal();
        ConsoleOptions {
            ask: !yes && std::io::stdin().is_terminal() && std::io::stdout().is_terminal(),
            bar: stderr_tty && !quiet,
            lines: !stderr_tty && !quiet,
            color,
            show_plan,
            prompt_on_stderr: false,
        }
    }
}

/// The CLI's [`Observer`].
pub struct Console {
    opts: ConsoleOptions,
    bar: Mutex<Option<ProgressBar>>,
    plan_shown: AtomicBool,
    agents_total: AtomicUsize,
    agents_done: AtomicUsize,
    requests_total: AtomicUsize,
    /// Requests that ended, for the bar.
    requests_done: AtomicUsize,
    /// The requests of the agents that finished, for their lines: agents run side by side,
    /// so more requests may have ended than the finished agents account for.
    requests_of_done_agents: AtomicUsize,
    /// When the last logged rate-limit wait ends (to log each wait once).
    logged_wait_end: Mutex<Option<Instant>>,
}

impl Console {
    pub fn new(opts: ConsoleOptions) -> Arc<Console> {
        Arc::new(Console {
            opts,
            bar: Mutex::new(None),
            plan_shown: AtomicBool::new(false),
            agents_total: AtomicUsize::new(0),
            agents_done: AtomicUsize::new(0),
            requests_total: AtomicUsize::new(0),
            requests_done: AtomicUsize::new(0),
            requests_of_done_agents: AtomicUsize::new(0),
            logged_wait_end: Mutex::new(None),
        })
    }

    /// Whether the plan was already printed before the apply (so it is not printed twice).
    pub fn plan_shown(&self) -> bool {
        self.plan_shown.load(Ordering::Relaxed)
    }

    /// Follows the platform's rate-limit wait until `stop` is cancelled: the bar's message
    /// on a terminal, one line per wait in a log.
    pub fn follow_rate_limit(
        self: &Arc<Self>,
        platform: Arc<dyn Platform>,
        stop: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let console = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(TICK) => {}
                }
                console.rate_wait(platform.rate_wait());
            }
        })
    }

    fn rate_wait(&self, wait: Option<Duration>) {
        // Whole seconds, rounded up: "waiting 0 s" would be a lie.
        let text = wait.map(|w| {
            let secs = w.as_secs() + u64::from(w.subsec_nanos() > 0);
            format!("waiting {secs} s for the rate limit")
        });
        if let Some(bar) = self.bar().as_ref() {
            bar.set_message(text.clone().unwrap_or_default());
        }
        let (Some(wait), Some(text)) = (wait, text) else {
            return;
        };
        if !self.opts.lines || wait < LOG_WAIT_MIN {
            return;
        }
        // Waits follow each other with only a few requests between them: a wait is a new
        // one when it ends at least a second after the one last logged.
        let end = Instant::now() + wait;
        let mut logged = self
            .logged_wait_end
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if logged.is_none_or(|last| end > last + Duration::from_secs(1)) {
            *logged = Some(end);
            crate::say!("{text}");
        }
    }

    /// Clears the bar (before the plan or the final report is printed).
    pub fn finish(&self) {
        if let Some(bar) = self.bar().take() {
            bar.finish_and_clear();
        }
    }

    fn bar(&self) -> MutexGuard<'_, Option<ProgressBar>> {
        // A poisoned lock only means a panic elsewhere mid-update; the bar is still usable.
        self.bar.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn style(&self, what: &str) -> ProgressStyle {
        let template = if self.opts.color {
            format!("{{bar:30.cyan/blue}} {{pos}}/{{len}} {what} · ETA {{eta}} {{msg:.yellow}}")
        } else {
            format!("{{bar:30}} {{pos}}/{{len}} {what} · ETA {{eta}} {{msg}}")
        };
        // The templates are fixed strings that parse; the fallback only guards a future edit.
        ProgressStyle::with_template(&template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ")
    }
}

impl Console {
    /// The bar, counting `what` up to `len` from 0 (created on first use).
    fn reset_bar(&self, len: usize, what: &str) {
        if !self.opts.bar {
            return;
        }
        let mut slot = self.bar();
        let bar = slot.get_or_insert_with(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        bar.set_style(self.style(what));
        bar.set_length(len as u64);
        bar.reset();
    }
}

impl Progress for Console {
    fn listing(&self, agents: usize) {
        self.reset_bar(agents, "agents listed");
    }

    fn listed(&self) {
        if let Some(bar) = self.bar().as_ref() {
            bar.inc(1);
        }
    }

    fn started(&self, agents: usize, requests: usize) {
        self.agents_total.store(agents, Ordering::Relaxed);
        self.requests_total.store(requests, Ordering::Relaxed);
        self.reset_bar(requests, "requests");
    }

    fn request_done(&self) {
        self.requests_done.fetch_add(1, Ordering::Relaxed);
        if let Some(bar) = self.bar().as_ref() {
            bar.inc(1);
        }
    }

    fn agent_done(&self, result: &AgentResult, requests: usize) {
        let done = self.agents_done.fetch_add(1, Ordering::Relaxed) + 1;
        let requests_done = self
            .requests_of_done_agents
            .fetch_add(requests, Ordering::Relaxed)
            + requests;
        if !self.opts.lines {
            return;
        }
        let applied = result.applied.len();
        let mut outcome = format!("{applied} change(s) applied");
        if !result.failed.is_empty() || result.error.is_some() {
            outcome.push_str(&format!(", {} failed", result.failed.len().max(1)));
        }
        outcome.push_str(match &result.redeploy {
            None => "",
            Some(Redeployed::Done) => ", redeployed",
            Some(Redeployed::Failed(_)) => ", redeploy failed",
            Some(Redeployed::Postponed) => ", redeploy postponed to the next run",
        });
        crate::say!(
            "{}: {outcome} ({done}/{} agents, {}/{} requests)",
            result.agent,
            self.agents_total.load(Ordering::Relaxed),
            requests_done,
            self.requests_total.load(Ordering::Relaxed),
        );
    }
}

impl Observer for Console {
    fn confirm(&self, plan: &Plan, warnings: &[String]) -> bool {
        let ask = self.opts.ask && plan.totals().delete > 0;
        if !ask && self.opts.prompt_on_stderr {
            // JSON on stdout: the plan is part of the one document printed at the end.
            return true;
        }
        // The listing bar goes before the plan (and the question) are written.
        self.finish();
        let shown = (self.opts.show_plan)(plan, warnings);
        if !ask {
            let mut out = std::io::stdout().lock();
            let written = write!(out, "{shown}").and_then(|()| out.flush());
            self.plan_shown.store(written.is_ok(), Ordering::Relaxed);
            return true;
        }
        let question = "Apply? [y/N] ";
        let written = if self.opts.prompt_on_stderr {
            let mut err = std::io::stderr().lock();
            write!(err, "{shown}\n{question}").and_then(|()| err.flush())
        } else {
            let mut out = std::io::stdout().lock();
            write!(out, "{shown}\n{question}").and_then(|()| out.flush())
        };
        self.plan_shown.store(true, Ordering::Relaxed);
        if written.is_err() {
            return false;
        }
        let mut answer = String::new();
        // End of input or an unreadable terminal is a no.
        if std::io::stdin().lock().read_line(&mut answer).is_err() {
            return false;
        }
        matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
    }
}
