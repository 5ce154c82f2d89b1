//! The client-side rate limiter: one per client, shared by every concurrent request, so that
//! a run inside the platform's budget never receives a 429.
//!
//! The platform announces its budget on its responses (`X-RateLimit-Limit`, `-Remaining`,
//! `-Reset` in unix seconds; from the API docs, which give 100 CRUD requests a minute per key;
//! that every response carries them is an assumption, tolerated below). The limiter keeps, for the current window, the lowest
//! `Remaining` seen (the server's count only goes down within a window) and a *debt*: every
//! request that the server may have counted since that observation — the ones in flight when
//! it arrived, the ones sent after it, and the ones that ended without telling us anything.
//! A request may start while `lowest remaining - debt > 0`. When the window is spent it waits
//! for `Reset`, then sends a single probe to learn the new budget before opening up again.
//! Before any header has been seen it also sends one request at a time; a server that never
//! sends the headers (no limit announced) is not throttled at all.
//!
//! A probe holds the others back for at most [`PROBE_PATIENCE`]: a platform that accepts
//! connections and never answers would otherwise make every caller wait a whole request
//! timeout in turn (four agents, four timeouts, one after another). After that the waiting
//! requests go too — as many as the callers run at once (`--concurrency`); a slow platform
//! whose budget is already spent answers them 429 with `Retry-After`, which is honoured.
//!
//! All waiting uses tokio's clock, so tests drive it with `tokio::time::pause()`.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::header::HeaderMap;
use tokio::sync::Notify;
use tokio::time::Instant;

/// Extra wait after the announced reset before probing the new window: covers the rounding
/// of `Reset` to whole seconds on the server and the instant between our clock reading and
/// the server's.
pub const RESET_MARGIN: Duration = Duration::from_millis(250);

/// How long a probe (the one request sent while the budget is unknown) may hold the others
/// back. A healthy platform answers well within it, so a healthy run still learns the budget
/// before it sends a second request.
pub const PROBE_PATIENCE: Duration = Duration::from_secs(2);

/// Values below this in `X-RateLimit-Reset` are read as "seconds from now" rather than a unix
/// time (some APIs send a delta).
const MIN_UNIX_TIME: u64 = 1_000_000_000;

/// What one response said about the budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateObservation {
    pub limit: Option<u64>,
    pub remaining: u64,
    /// When the window ends, in unix seconds.
    pub reset_unix: u64,
}

impl RateObservation {
    /// Reads the `X-RateLimit-*` headers; None when `Remaining` or `Reset` is missing or
    /// unreadable.
    pub fn from_headers(headers: &HeaderMap, now: SystemTime) -> Option<RateObservation> {
        let num =
            |name: &str| -> Option<u64> { headers.get(name)?.to_str().ok()?.trim().parse().ok() };
        let remaining = num("x-ratelimit-remaining")?;
        let reset = num("x-ratelimit-reset")?;
        let reset_unix = if reset < MIN_UNIX_TIME {
            unix_secs(now).saturating_add(reset)
        } else {
            reset
        };
        Some(RateObservation {
            limit: num("x-ratelimit-limit"),
            remaining,
            reset_unix,
        })
    }
}

/// Seconds since the unix epoch (0 for a clock set before 1970).
pub fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[derive(Debug)]
enum Budget {
    /// No response seen yet: one request at a time.
    Unknown,
    /// The server announces no limit.
    Unlimited,
    /// A window we know about.
    Window {
        reset_unix: u64,
        /// When it ends on tokio's clock (margin included).
        ends: Instant,
        /// Lowest `Remaining` seen in this window.
        lowest: u64,
        /// Requests the server may have counted since `lowest` was observed.
        debt: u64,
    },
}

#[derive(Debug)]
struct State {
    budget: Budget,
    in_flight: u64,
    /// When the probe in flight was sent, while the budget is unknown.
    probe_sent: Option<Instant>,
    last_limit: Option<u64>,
    last_remaining: Option<u64>,
}

/// The shared limiter. Cheap to clone through `Arc`.
#[derive(Debug)]
pub struct RateLimiter {
    state: Mutex<State>,
    changed: Notify,
}

enum Decision {
    Go,
    /// Wait until a request completes.
    WaitForCompletion,
    /// Wait until this instant (or a completion, whichever comes first).
    WaitUntil(Instant),
}

impl Default for RateLimiter {
    fn default() -> Self {
        RateLimiter::new()
    }
}

impl RateLimiter {
    pub fn new() -> RateLimiter {
        RateLimiter {
            state: Mutex::new(State {
                budget: Budget::Unknown,
                in_flight: 0,
                probe_sent: None,
                last_limit: None,
                last_remaining: None,
            }),
            changed: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lock only means another task panicked mid-update; the counters are
        // still usable, and refusing every later request would be worse.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The last `X-RateLimit-Limit` and `-Remaining` seen, for metrics.
    pub fn last_seen(&self) -> (Option<u64>, Option<u64>) {
        let s = self.lock();
        (s.last_limit, s.last_remaining)
    }

    /// How long the budget is spent for: a request starting now would wait this long for the
    /// next window. None when it could go at once (or wait only for a request in flight).
    pub fn wait_left(&self) -> Option<Duration> {
        let s = self.lock();
        match &s.budget {
            Budget::Window {
                lowest, debt, ends, ..
            } if lowest.saturating_sub(*debt) == 0 => {
                let left = ends.saturating_duration_since(Instant::now());
                (!left.is_zero()).then_some(left)
            }
            _ => None,
        }
    }

    /// Waits until a request may be sent within the budget.
    pub async fn acquire(self: &Arc<Self>) -> Permit {
        loop {
            // No wait exceeds Duration::MAX, so this returns on the first pass.
            if let Ok(permit) = self.acquire_within(Duration::MAX).await {
                return permit;
            }
        }
    }

    /// Like [`RateLimiter::acquire`], but gives up at once, returning the wait, when the
    /// budget is spent for longer than `max_wait` (a platform saying "come back in an hour"
    /// should not look like a hang).
    pub async fn acquire_within(self: &Arc<Self>, max_wait: Duration) -> Result<Permit, Duration> {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let decision = {
                let mut s = self.lock();
                let decision = s.decide(Instant::now());
                if let Decision::Go = decision {
                    if matches!(s.budget, Budget::Unknown) && s.in_flight == 0 {
                        s.probe_sent = Some(Instant::now());
                    }
                    s.in_flight += 1;
                    if let Budget::Window { debt, .. } = &mut s.budget {
                        *debt += 1;
                    }
                    return Ok(Permit {
                        limiter: Arc::clone(self),
                        done: false,
                    });
                }
                decision
            };
            match decision {
                Decision::WaitUntil(at) => {
                    let wait = at.saturating_duration_since(Instant::now());
                    if wait > max_wait {
                        return Err(wait);
                    }
                    tracing::debug!(
                        wait_ms = wait.as_millis() as u64,
                        "waiting for the rate budget"
                    );
                    tokio::select! {
                        _ = &mut notified => {}
                        _ = tokio::time::sleep_until(at) => {}
                    }
                }
                Decision::WaitForCompletion | Decision::Go => notified.await,
            }
        }
    }

    fn finish(&self, completion: Completion, now: SystemTime) {
        {
            let mut s = self.lock();
            s.observe(completion, now);
            s.in_flight = s.in_flight.saturating_sub(1);
        }
        self.changed.notify_waiters();
    }
}

impl State {
    fn decide(&mut self, now: Instant) -> Decision {
        if let Budget::Window { ends, .. } = self.budget
            && now >= ends
        {
            // The window is over; the next one is unknown until a probe comes back. Stale
            // responses from the old window are told apart by their reset time, and requests
            // still in flight from it are no probe.
            self.budget = Budget::Unknown;
            self.probe_sent = None;
        }
        match &self.budget {
            Budget::Unlimited => Decision::Go,
            Budget::Unknown if self.in_flight == 0 => Decision::Go,
            Budget::Unknown => match self.probe_sent {
                Some(sent) if now >= sent + PROBE_PATIENCE => Decision::Go,
                Some(sent) => Decision::WaitUntil(sent + PROBE_PATIENCE),
                None => Decision::WaitForCompletion,
            },
            Budget::Window {
                lowest, debt, ends, ..
            } => {
                if lowest.saturating_sub(*debt) > 0 {
                    Decision::Go
                } else {
                    Decision::WaitUntil(*ends)
                }
            }
        }
    }

    fn observe(&mut self, completion: Completion, now: SystemTime) {
        let others = self.in_flight.saturating_sub(1);
        let obs = match completion {
            Completion::Headers(obs) => obs,
            Completion::NoHeaders | Completion::NoResponse => {
                match &mut self.budget {
                    // A first answer without rate headers: the server announces no limit.
                    Budget::Unknown if completion == Completion::NoHeaders => {
                        self.budget = Budget::Unlimited
                    }
                    // Headers missing on one answer (a proxy's error page) or no answer at
                    // all: the server may still have counted the request.
                    Budget::Window { debt, .. } => *debt += 1,
                    Budget::Unknown | Budget::Unlimited => {}
                }
                return;
            }
        };
        self.last_limit = obs.limit.or(self.last_limit);
        self.last_remaining = Some(obs.remaining);
        let fresh = |reset_unix: u64| -> Budget {
            Budget::Window {
                reset_unix,
                ends: window_end(reset_unix, now),
                lowest: obs.remaining,
                debt: others,
            }
        };
        match &mut self.budget {
            Budget::Unknown | Budget::Unlimited => self.budget = fresh(obs.reset_unix),
            Budget::Window {
                reset_unix,
                lowest,
                debt,
                ..
            } => {
                if obs.reset_unix > *reset_unix {
                    self.budget = fresh(obs.reset_unix);
                } else if obs.reset_unix == *reset_unix && obs.remaining < *lowest {
                    *lowest = obs.remaining;
                    *debt = others;
                }
                // Otherwise a stale answer from earlier in this window or an older one:
                // what we know already is newer.
            }
        }
    }
}

fn window_end(reset_unix: u64, now: SystemTime) -> Instant {
    let reset = UNIX_EPOCH + Duration::from_secs(reset_unix);
    let left = reset.duration_since(now).unwrap_or(Duration::ZERO);
    Instant::now() + left + RESET_MARGIN
}

/// How a request ended, as far as the budget is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completion {
    /// A response carrying the rate headers.
    Headers(RateObservation),
    /// A response without them.
    NoHeaders,
    /// No response (connection error, timeout, cancellation).
    NoResponse,
}

impl Completion {
    /// Reads a response's headers.
    pub fn from_headers(headers: &HeaderMap, now: SystemTime) -> Completion {
        RateObservation::from_headers(headers, now)
            .map_or(Completion::NoHeaders, Completion::Headers)
    }
}

/// The right to send one request. Report how it ended with [`Permit::complete`]; a permit
/// dropped without it (a cancelled request) counts as a request the server may have seen.
#[derive(Debug)]
pub struct Permit {
    limiter: Arc<RateLimiter>,
    done: bool,
}

impl Permit {
    pub fn complete(mut self, completion: Completion, now: SystemTime) {
        self.done = true;
        self.limiter.finish(completion, now);
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if !self.done {
            self.limiter
                .finish(Completion::NoResponse, SystemTime::now());
        }
    }
}

#[cfg(test)]
mod tests;
