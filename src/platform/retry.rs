//! Bounded retries with jittered exponential backoff (backon), stretched to whatever the
//! server asked for with `Retry-After` / `X-RateLimit-Reset`.
//!
//! backon's `adjust` hook sees each error together with the delay it proposes, which is
//! exactly where a server's wait hint belongs: we wait `max(backoff, hint)`, and give up at
//! once when the hint is longer than [`RetryPolicy::max_wait`] (a server asking for an hour
//! is not a blip). Sleeping goes through tokio, so tests run on a paused clock.
//!
//! A timeout gets fewer retries than other transient errors ([`RetryPolicy::timeout_retries`]):
//! each one has already cost a whole request timeout, and a platform that accepted the
//! connection and said nothing twice in a row is not having a blip. Six tries of 30 s would
//! hold one call for three minutes.
//!
//! A refused connection gets fewer retries too ([`RetryPolicy::unreachable_retries`]), at the
//! short first delays: a platform that is being restarted refuses for a moment, but one that
//! is not running (an emulator never started, a wrong port) should be said at once, not
//! after the whole backoff.

use std::future::Future;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};

use crate::platform::PlatformError;

/// How hard to try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (0 = try once).
    pub retries: u32,
    /// First backoff delay; each next one doubles (with jitter) up to `max_delay`.
    pub min_delay: Duration,
    pub max_delay: Duration,
    /// The longest server-requested wait we honour; a longer one ends the retries.
    pub max_wait: Duration,
    /// Of `retries`, how many may follow a timeout ([`PlatformError::Timeout`]).
    pub timeout_retries: u32,
    /// Of `retries`, how many may follow a refused connection
    /// ([`PlatformError::Unreachable`]).
    pub unreachable_retries: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            retries: 5,
            min_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(20),
            max_wait: Duration::from_secs(120),
            timeout_retries: 1,
            unreachable_retries: 2,
        }
    }
}

/// A failed attempt: the error to report if it is the last one, whether another attempt may
/// help, and how long the server asked us to wait.
#[derive(Debug)]
pub struct AttemptError {
    pub error: PlatformError,
    pub retryable: bool,
    pub wait_hint: Option<Duration>,
}

impl AttemptError {
    /// An error that retrying will not fix.
    pub fn terminal(error: PlatformError) -> AttemptError {
        AttemptError {
            error,
            retryable: false,
            wait_hint: None,
        }
    }

    /// An error worth another attempt.
    pub fn transient(error: PlatformError, wait_hint: Option<Duration>) -> AttemptError {
        AttemptError {
            error,
            retryable: true,
            wait_hint,
        }
    }
}

/// Runs `attempt` until it succeeds, fails terminally, or the retries are spent.
pub async fn with_retries<T, F, Fut>(
    policy: &RetryPolicy,
    what: &str,
    attempt: F,
) -> Result<T, AttemptError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, AttemptError>>,
{
    let backoff = ExponentialBuilder::default()
        .with_min_delay(policy.min_delay)
        .with_max_delay(policy.max_delay)
        .with_max_times(policy.retries as usize)
        .with_jitter();
    let max_wait = policy.max_wait;
    let (mut timeouts, mut refused) = (0u32, 0u32);
    let (timeout_retries, unreachable_retries) =
        (policy.timeout_retries, policy.unreachable_retries);
    attempt
        .retry(backoff)
        .when(move |e: &AttemptError| match e.error {
            PlatformError::Timeout { .. } => {
                timeouts += 1;
                e.retryable && timeouts <= timeout_retries
            }
            PlatformError::Unreachable { .. } => {
                refused += 1;
                e.retryable && refused <= unreachable_retries
            }
            _ => e.retryable,
        })
        .adjust(move |e: &AttemptError, proposed: Option<Duration>| {
            let proposed = proposed?;
            match e.wait_hint {
                Some(hint) if hint > max_wait => None,
                Some(hint) => Some(proposed.max(hint)),
                None => Some(proposed),
            }
        })
        .notify(|e: &AttemptError, wait: Duration| {
            tracing::debug!(call = what, wait_ms = wait.as_millis() as u64, error = %e.error, "retrying");
        })
        .await
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tokio::time::Instant;

    use super::*;

    fn transient() -> PlatformError {
        PlatformError::Transient {
            detail: "HTTP 503".into(),
        }
    }

    /// Calls a fake operation that fails `failures` times with `err`, recording when each
    /// attempt started.
    async fn run(
        policy: RetryPolicy,
        failures: usize,
        err: impl Fn() -> AttemptError,
    ) -> (Result<u32, AttemptError>, Vec<Instant>) {
        let starts = Arc::new(Mutex::new(Vec::new()));
        let result = with_retries(&policy, "test", || {
            let starts = Arc::clone(&starts);
            let e = err();
            async move {
                let mut s = starts.lock().unwrap();
                s.push(Instant::now());
                if s.len() <= failures {
                    Err(e)
                } else {
                    Ok(s.len() as u32)
                }
            }
        })
        .await;
        let starts = starts.lock().unwrap().clone();
        (result, starts)
    }

    #[tokio::test(start_paused = true)]
    async fn transient_errors_are_retried_until_success() {
        let (result, starts) = run(RetryPolicy::default(), 3, || {
            AttemptError::transient(transient(), None)
        })
        .await;
        assert_eq!(result.unwrap(), 4);
        assert_eq!(starts.len(), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn retries_are_bounded_and_the_last_error_is_returned() {
        let policy = RetryPolicy {
            retries: 5,
            ..RetryPolicy::default()
        };
        let (result, starts) = run(policy, usize::MAX, || {
            AttemptError::transient(transient(), None)
        })
        .await;
        assert_eq!(result.unwrap_err().error, transient());
        assert_eq!(starts.len(), 6, "one attempt plus five retries");
    }

    #[tokio::test(start_paused = true)]
    async fn backoff_grows_between_attempts() {
        let policy = RetryPolicy {
            retries: 4,
            min_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
            ..RetryPolicy::default()
        };
        let (_, starts) = run(policy, usize::MAX, || {
            AttemptError::transient(transient(), None)
        })
        .await;
        let gaps: Vec<Duration> = starts.windows(2).map(|w| w[1] - w[0]).collect();
        // Jitter adds up to one more base delay: the n-th gap lies in [2^n, 2^(n+1)] seconds.
        for (n, gap) in gaps.iter().enumerate() {
            let base = Duration::from_secs(1 << n);
            assert!(*gap >= base && *gap <= base * 2, "gap {n} was {gap:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_timeout_is_retried_once_other_transient_errors_more() {
        let timeout = || {
            AttemptError::transient(
                PlatformError::Timeout {
                    detail: "no answer within 30s".into(),
                },
                None,
            )
        };
        let (result, starts) = run(RetryPolicy::default(), usize::MAX, timeout).await;
        assert!(matches!(
            result.unwrap_err().error,
            PlatformError::Timeout { .. }
        ));
        assert_eq!(starts.len(), 2, "one attempt plus one retry");

        // A timeout does not use up the retries of other errors.
        let calls = Arc::new(Mutex::new(0usize));
        let mixed = {
            let calls = Arc::clone(&calls);
            move || {
                let mut n = calls.lock().unwrap();
                *n += 1;
                if *n == 1 {
                    timeout()
                } else {
                    AttemptError::transient(transient(), None)
                }
            }
        };
        let (_, starts) = run(RetryPolicy::default(), usize::MAX, mixed).await;
        assert_eq!(starts.len(), 6);
    }

    #[tokio::test(start_paused = true)]
    async fn a_refused_connection_is_retried_twice_and_quickly() {
        let refused = || {
            AttemptError::transient(
                PlatformError::Unreachable {
                    origin: "http://127.0.0.1:1".into(),
                    detail: "connection refused".into(),
                },
                None,
            )
        };
        let (result, starts) = run(RetryPolicy::default(), usize::MAX, refused).await;
        assert!(matches!(
            result.unwrap_err().error,
            PlatformError::Unreachable { .. }
        ));
        assert_eq!(starts.len(), 3, "one attempt plus two retries");
        // The first delays only (250 ms, then 500 ms, each with jitter): about a second.
        let spent = starts[2] - starts[0];
        assert!(spent <= Duration::from_millis(1500), "{spent:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn terminal_errors_are_not_retried() {
        let (result, starts) = run(RetryPolicy::default(), usize::MAX, || {
            AttemptError::terminal(PlatformError::Unauthorized {
                detail: "Invalid API key".into(),
            })
        })
        .await;
        assert!(matches!(
            result.unwrap_err().error,
            PlatformError::Unauthorized { .. }
        ));
        assert_eq!(starts.len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_server_wait_hint_is_honoured() {
        let hint = Duration::from_secs(7);
        let (result, starts) = run(RetryPolicy::default(), 2, || {
            AttemptError::transient(
                PlatformError::RateLimited {
                    detail: "slow down".into(),
                },
                Some(hint),
            )
        })
        .await;
        assert!(result.is_ok());
        for w in starts.windows(2) {
            assert!(w[1] - w[0] >= hint, "waited only {:?}", w[1] - w[0]);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_hint_beyond_the_maximum_ends_the_retries() {
        let (result, starts) = run(RetryPolicy::default(), usize::MAX, || {
            AttemptError::transient(
                PlatformError::RateLimited {
                    detail: "come back in an hour".into(),
                },
                Some(Duration::from_secs(3600)),
            )
        })
        .await;
        assert!(matches!(
            result.unwrap_err().error,
            PlatformError::RateLimited { .. }
        ));
        assert_eq!(starts.len(), 1);
    }
}
