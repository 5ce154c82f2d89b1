//! When the daemon works: the poll interval (with jitter), the retry backoff, the pacing of
//! drift resyncs, and the choice between them. Pure timing over `tokio::time`, no I/O, so
//! every rule is tested with a paused clock.
//!
//! Change-driven work always goes first: a resync batch runs only when no trigger is
//! pending, and resync batches are spaced so they use at most half of the platform's rate
//! budget, leaving the rest for changes.

use std::collections::VecDeque;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

use super::triggers::{Batch, Reason, Triggers};

/// The daemon's timing settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Timing {
    /// `--interval`: how often the source is polled (±10% jitter).
    pub interval: Duration,
    /// `--resync`: how often every agent is listed again to find drift (±10% jitter).
    pub resync: Duration,
    /// Outside triggers wait until none arrived for this long…
    pub quiet: Duration,
    /// …but never longer than this after the first one.
    pub max_delay: Duration,
    /// The first retry delay after a failure; it doubles up to `backoff_max`.
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// Agents listed per resync batch.
    pub resync_batch: usize,
}

impl Timing {
    /// Defaults for the given interval and resync period.
    pub fn new(interval: Duration, resync: Duration) -> Timing {
        Timing {
            interval,
            resync,
            quiet: Duration::from_millis(200),
            max_delay: Duration::from_secs(2),
            backoff_min: Duration::from_secs(1),
            // A failing remote is retried at least once per interval, and at least every
            // five minutes when the interval is long.
            backoff_max: interval.clamp(Duration::from_secs(1), Duration::from_secs(300)),
            resync_batch: 4,
        }
    }
}

/// The platform's request budget: `limit` requests per `window`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateBudget {
    pub limit: u64,
    pub window: Duration,
}

impl Default for RateBudget {
    /// Castari's documented budget: 100 requests per minute per key.
    fn default() -> Self {
        RateBudget {
            limit: 100,
            window: Duration::from_secs(60),
        }
    }
}

impl RateBudget {
    /// The pause after a resync batch of `agents` list requests, so that resyncs use at
    /// most half of the budget.
    pub fn resync_gap(&self, agents: usize) -> Duration {
        let share = (self.limit / 2).max(1);
        let per_request = self.window.as_secs_f64() / share as f64;
        Duration::from_secs_f64(per_request * agents as f64)
    }
}

/// What the loop should do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wake {
    /// Fetch (or re-read) the source and reconcile if needed.
    Cycle(Batch),
    /// A resync is due: the loop should call [`Schedule::start_resync`] with the agents.
    ResyncDue,
    /// List and reconcile these agents (one paced resync batch).
    ResyncBatch(Vec<String>),
}

#[derive(Debug)]
struct ResyncRun {
    remaining: VecDeque<String>,
    next_batch: Instant,
    started: Instant,
}

/// The daemon's clock: owned by the loop, fed with what happened.
#[derive(Debug)]
pub struct Schedule {
    timing: Timing,
    next_poll: Instant,
    next_resync: Instant,
    retry_at: Option<Instant>,
    failures: u32,
    resync: Option<ResyncRun>,
    rng: StdRng,
}

/// `base` ± 10%, uniformly.
pub fn jitter(base: Duration, rng: &mut impl Rng) -> Duration {
    base.mul_f64(rng.random_range(0.9..=1.1))
}

impl Schedule {
    /// A schedule starting now; `seed` makes the jitter reproducible in tests.
    pub fn new(timing: Timing, seed: Option<u64>) -> Schedule {
        let mut rng = match seed {
            Some(s) => StdRng::seed_from_u64(s),
            None => StdRng::from_os_rng(),
        };
        let now = Instant::now();
        let next_poll = now + jitter(timing.interval, &mut rng);
        let next_resync = now + jitter(timing.resync, &mut rng);
        Schedule {
            timing,
            next_poll,
            next_resync,
            retry_at: None,
            failures: 0,
            resync: None,
            rng,
        }
    }

    /// The source was just fetched: the next poll is one (jittered) interval from now.
    pub fn polled(&mut self) {
        self.next_poll = Instant::now() + jitter(self.timing.interval, &mut self.rng);
    }

    /// A cycle failed in a retryable way: a [`Reason::Retry`] fires after the returned delay
    /// (1 s, 2 s, 4 s… up to `backoff_max`, ±10%).
    pub fn failed(&mut self) -> Duration {
        let exp = self.failures.min(20);
        self.failures = self.failures.saturating_add(1);
        let base = self
            .timing
            .backoff_min
            .saturating_mul(1u32 << exp)
            .min(self.timing.backoff_max);
        let delay = jitter(base, &mut self.rng);
        self.retry_at = Some(Instant::now() + delay);
        delay
    }

    /// A cycle succeeded: the backoff starts over and no retry is pending.
    pub fn succeeded(&mut self) {
        self.failures = 0;
        self.retry_at = None;
    }

    /// Every agent was just listed (a full reconcile): the next resync is one period away,
    /// and a resync in progress is done.
    pub fn resynced(&mut self) {
        self.resync = None;
        self.next_resync = Instant::now() + jitter(self.timing.resync, &mut self.rng);
    }

    /// Begins a paced resync over `agents`; the first batch is due at once.
    pub fn start_resync(&mut self, agents: Vec<String>) {
        let now = Instant::now();
        if agents.is_empty() {
            self.resync = None;
            self.next_resync = now + jitter(self.timing.resync, &mut self.rng);
            return;
        }
        self.resync = Some(ResyncRun {
            remaining: agents.into(),
            next_batch: now,
            started: now,
        });
    }

    /// A resync batch of `listed` agents finished: the next one waits its share of `budget`.
    /// When the run is complete, the next resync is one period after the run started.
    pub fn batch_done(&mut self, listed: usize, budget: RateBudget) {
        let now = Instant::now();
        let Some(run) = &mut self.resync else { return };
        if run.remaining.is_empty() {
            let started = run.started;
            self.resync = None;
            self.next_resync = (started + jitter(self.timing.resync, &mut self.rng))
                .max(now + Duration::from_secs(1));
        } else {
            run.next_batch = now + budget.resync_gap(listed);
        }
    }

    /// How long until the next poll and the next resync (batch), from now.
    pub fn due_in(&self) -> (Duration, Duration) {
        let now = Instant::now();
        let resync_at = match &self.resync {
            Some(run) => run.next_batch,
            None => self.next_resync,
        };
        (
            self.next_poll.saturating_duration_since(now),
            resync_at.saturating_duration_since(now),
        )
    }

    /// A resync has batches left.
    pub fn resync_in_progress(&self) -> bool {
        self.resync.is_some()
    }

    /// Waits for the next piece of work, or returns `None` when `shutdown` fires.
    pub async fn next(
        &mut self,
        triggers: &Triggers,
        shutdown: &CancellationToken,
    ) -> Option<Wake> {
        loop {
            if shutdown.is_cancelled() {
                return None;
            }
            let now = Instant::now();
            if now >= self.next_poll {
                triggers.fire(Reason::Interval);
                // Until the cycle runs and calls `polled`, do not fire again.
                self.next_poll = now + self.timing.interval;
            }
            if let Some(at) = self.retry_at
                && now >= at
            {
                self.retry_at = None;
                triggers.fire(Reason::Retry);
            }
            let ready = triggers.ready_at(now, self.timing.quiet, self.timing.max_delay);
            if ready.is_some_and(|at| at <= now) {
                // Any cycle is a new attempt: it supersedes a pending retry.
                self.retry_at = None;
                return Some(Wake::Cycle(triggers.take()));
            }
            // Resync work only when no change is waiting.
            if !triggers.has_pending() {
                match &mut self.resync {
                    Some(run) if now >= run.next_batch => {
                        let n = self.timing.resync_batch.max(1).min(run.remaining.len());
                        let batch: Vec<String> = run.remaining.drain(..n).collect();
                        return Some(Wake::ResyncBatch(batch));
                    }
                    None if now >= self.next_resync => return Some(Wake::ResyncDue),
                    _ => {}
                }
            }
            let resync_at = match &self.resync {
                Some(run) => run.next_batch,
                None => self.next_resync,
            };
            let mut deadline = self.next_poll.min(resync_at);
            if let Some(at) = ready {
                deadline = deadline.min(at);
            }
            if let Some(at) = self.retry_at {
                deadline = deadline.min(at);
            }
            tokio::select! {
                _ = shutdown.cancelled() => return None,
                _ = tokio::time::sleep_until(deadline) => {}
                _ = triggers.notified() => {}
            }
        }
    }
}

#[cfg(test)]
mod tests;
