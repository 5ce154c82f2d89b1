//! The emulator's deliberate limits and failures: the fixed-window rate budget, fault
//! injection, and the request counters the admin routes report.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use super::{RateLimit, lock};

/// Which failure `--fail-rate` injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailMode {
    /// 500 with a JSON `detail`.
    ServerError,
    /// 429 with `Retry-After`.
    TooManyRequests,
    /// The connection is dropped without a response.
    Reset,
    /// A successful reply's body is replaced by garbage.
    Malformed,
    /// Each of the above in turn, at random.
    Mixed,
}

/// The current fixed window. Windows are aligned to multiples of the period in unix time,
/// so `X-RateLimit-Reset` is an exact whole second.
#[derive(Debug, Default)]
pub(crate) struct Window {
    index: u64,
    used: u32,
}

/// What the budget says about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Quota {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// End of the window, unix seconds.
    pub reset: u64,
    /// Whole seconds until the window ends (at least 1).
    pub retry_after: u64,
}

impl Window {
    /// Counts one request against the budget, or refuses it.
    pub fn take(&mut self, rate: RateLimit, now: SystemTime) -> Quota {
        self.check(rate, now, true)
    }

    /// The budget's state without counting a request (for 401s).
    pub fn peek(&mut self, rate: RateLimit, now: SystemTime) -> Quota {
        self.check(rate, now, false)
    }

    fn check(&mut self, rate: RateLimit, now: SystemTime, consume: bool) -> Quota {
        let secs = now
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        let period = rate.period_secs;
        let index = (secs / period as f64) as u64;
        if index != self.index {
            self.index = index;
            self.used = 0;
        }
        let reset = (index + 1) * period;
        let retry_after = ((reset as f64 - secs).ceil() as u64).max(1);
        let allowed = self.used < rate.limit;
        if allowed && consume {
            self.used += 1;
        }
        Quota {
            allowed,
            limit: rate.limit,
            remaining: rate.limit - self.used.min(rate.limit),
            reset,
            retry_after,
        }
    }
}

/// One injected failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// 500 before the store is touched.
    ServerError,
    /// 429 before the store is touched.
    TooManyRequests,
    /// Connection dropped without a response, before the store is touched.
    Reset,
    /// The request is served, then a successful reply's body is replaced by garbage.
    Malformed,
}

/// Fault injection with a deterministic RNG when `--seed` is given.
#[derive(Debug)]
pub(crate) struct Faults {
    rate: f64,
    mode: FailMode,
    rng: Mutex<StdRng>,
}

impl Faults {
    pub fn new(rate: f64, mode: FailMode, seed: Option<u64>) -> Faults {
        let rng = match seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => StdRng::from_os_rng(),
        };
        Faults {
            rate,
            mode,
            rng: Mutex::new(rng),
        }
    }

    /// Draws whether this request fails, and how.
    pub fn draw(&self) -> Option<Fault> {
        if self.rate <= 0.0 {
            return None;
        }
        let mut rng = lock(&self.rng);
        if rng.random::<f64>() >= self.rate {
            return None;
        }
        Some(match self.mode {
            FailMode::ServerError => Fault::ServerError,
            FailMode::TooManyRequests => Fault::TooManyRequests,
            FailMode::Reset => Fault::Reset,
            FailMode::Malformed => Fault::Malformed,
            FailMode::Mixed => match rng.random_range(0..4u8) {
                0 => Fault::ServerError,
                1 => Fault::TooManyRequests,
                2 => Fault::Reset,
                _ => Fault::Malformed,
            },
        })
    }
}

/// Counters of `/api/v1` traffic: requests by method, responses by status (and `reset` for
/// connections dropped on purpose), successful redeploys by agent, requests that came without
/// `Accept: application/json` (the SDK sends it on every request), and user agents.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Stats {
    pub requests: BTreeMap<String, u64>,
    pub responses: BTreeMap<String, u64>,
    pub redeploys: BTreeMap<String, u64>,
    pub missing_accept: u64,
    /// Requests by `User-Agent` (`(none)` when absent).
    pub user_agents: BTreeMap<String, u64>,
}

impl Default for Stats {
    fn default() -> Self {
        let requests = ["GET", "POST", "DELETE"]
            .into_iter()
            .map(|m| (m.to_owned(), 0))
            .collect();
        Stats {
            requests,
            responses: BTreeMap::new(),
            redeploys: BTreeMap::new(),
            missing_accept: 0,
            user_agents: BTreeMap::new(),
        }
    }
}

impl Stats {
    pub fn request(&mut self, method: &str) {
        *self.requests.entry(method.to_owned()).or_default() += 1;
    }

    pub fn response(&mut self, outcome: &str) {
        *self.responses.entry(outcome.to_owned()).or_default() += 1;
    }

    pub fn redeployed(&mut self, agent: &str) {
        *self.redeploys.entry(agent.to_owned()).or_default() += 1;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn at(secs: f64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs_f64(secs)
    }

    #[test]
    fn the_window_allows_n_requests_then_refuses_until_it_resets() {
        let rate = RateLimit {
            limit: 3,
            period_secs: 10,
        };
        let mut w = Window::default();
        let t = 1_700_000_001.5;
        let quotas: Vec<Quota> = (0..4).map(|_| w.take(rate, at(t))).collect();
        assert_eq!(
            quotas.iter().map(|q| q.remaining).collect::<Vec<_>>(),
            [2, 1, 0, 0]
        );
        assert_eq!(
            quotas.iter().map(|q| q.allowed).collect::<Vec<_>>(),
            [true, true, true, false]
        );
        assert_eq!(quotas[3].reset, 1_700_000_010);
        assert_eq!(quotas[3].retry_after, 9);
        assert!(!w.peek(rate, at(t + 1.0)).allowed);
        let next = w.take(rate, at(1_700_000_010.0));
        assert!(next.allowed);
        assert_eq!(next.remaining, 2);
        assert_eq!(next.reset, 1_700_000_020);
    }

    #[test]
    fn seeded_faults_repeat_exactly() {
        let draws = |seed| {
            let f = Faults::new(0.3, FailMode::Mixed, Some(seed));
            (0..200).map(|_| f.draw()).collect::<Vec<_>>()
        };
        assert_eq!(draws(7), draws(7));
        let faults = draws(7).into_iter().flatten().count();
        assert!(
            (30..=90).contains(&faults),
            "{faults} faults out of 200 at 0.3"
        );
        assert!(Faults::new(0.0, FailMode::Reset, Some(1)).draw().is_none());
    }
}

/// A fault pinned by `POST /_emulator/faults`: every `/api/v1` call for `agent` (with
/// `method` and on `route` — `secrets` or `redeploy` — when given) answers `status`, or is
/// served and its reply held back `delay_ms`, until `DELETE /_emulator/faults`. Lets a test
/// fail one agent's list, or its redeploy, or make a write land while its reply is late,
/// while the rest works at full speed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Targeted {
    pub agent: String,
    #[serde(default)]
    pub method: Option<String>,
    #[serde(default)]
    pub route: Option<String>,
    #[serde(default)]
    pub status: Option<u16>,
    #[serde(default)]
    pub delay_ms: Option<u64>,
}

impl Targeted {
    /// A status that is an HTTP status, or a delay (at most an hour); at least one of them.
    pub fn is_valid(&self) -> bool {
        let status_ok = self
            .status
            .is_none_or(|s| axum::http::StatusCode::from_u16(s).is_ok());
        let delay_ok = self.delay_ms.is_none_or(|d| d <= 3_600_000);
        status_ok && delay_ok && (self.status.is_some() || self.delay_ms.is_some())
    }

    /// True when this fault applies to `method` on `path` (`/api/v1/agents/{slug}/…`).
    pub fn matches(&self, method: &str, path: &str) -> bool {
        let mut parts = path
            .strip_prefix("/api/v1/agents/")
            .unwrap_or_default()
            .split('/');
        let (agent, route) = (parts.next(), parts.next());
        agent == Some(self.agent.as_str())
            && self
                .method
                .as_deref()
                .is_none_or(|m| m.eq_ignore_ascii_case(method))
            && self.route.as_deref().is_none_or(|r| Some(r) == route)
    }
}
