//! The trigger hub: everything that asks for a reconcile (a webhook, SIGHUP, a file event,
//! the poll interval, a retry) fires here, and the daemon loop takes them as one batch.
//!
//! Firing never blocks and never starts work by itself: a burst of triggers while the loop
//! is busy, or within the quiet window, becomes one batch, so ten webhooks in a second cause
//! one fetch and one reconcile. After shutdown begins the hub is closed and drops triggers.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;
use tokio::time::{Duration, Instant};

/// Why the daemon looks at its source again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reason {
    /// The first cycle after start.
    Startup,
    /// The poll interval elapsed.
    Interval,
    /// A verified `POST /hooks/git`.
    Webhook,
    /// SIGHUP: reconcile now, even when the source did not change.
    Hangup,
    /// A file changed in the watched working tree.
    FileChange,
    /// The last cycle failed in a way worth retrying (fetch, platform).
    Retry,
    /// Webhook deliveries were refused unread (busy, too large, too slow): one of them may
    /// have announced a push (`daemon::missed`).
    MissedDelivery,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Startup => "startup",
            Reason::Interval => "interval",
            Reason::Webhook => "webhook",
            Reason::Hangup => "sighup",
            Reason::FileChange => "file-change",
            Reason::Retry => "retry",
            Reason::MissedDelivery => "missed-delivery",
        }
    }

    /// Triggers the daemon makes itself run at once; outside ones wait for the quiet window.
    fn is_internal(self) -> bool {
        matches!(self, Reason::Startup | Reason::Interval | Reason::Retry)
    }
}

/// The reasons gathered into one cycle.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    pub reasons: BTreeSet<Reason>,
}

impl Batch {
    pub fn contains(&self, reason: Reason) -> bool {
        self.reasons.contains(&reason)
    }

    /// The reasons as one label, e.g. `interval+webhook`.
    pub fn label(&self) -> String {
        let names: Vec<&str> = self.reasons.iter().map(|r| r.as_str()).collect();
        names.join("+")
    }
}

#[derive(Debug, Default)]
struct Pending {
    reasons: BTreeSet<Reason>,
    /// When the first and the latest outside trigger of this batch arrived.
    first: Option<Instant>,
    last: Option<Instant>,
    /// An internal trigger is pending: the batch is ready now.
    urgent: bool,
    closed: bool,
}

/// A cloneable handle to the hub, given to every trigger source.
#[derive(Debug, Clone, Default)]
pub struct Triggers {
    pending: Arc<Mutex<Pending>>,
    wake: Arc<Notify>,
}

impl Triggers {
    pub fn new() -> Triggers {
        Triggers::default()
    }

    fn lock(&self) -> MutexGuard<'_, Pending> {
        // A poisoned lock only means a trigger source panicked mid-insert; the set is
        // still a valid set of reasons.
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Asks for a cycle. Returns false when the hub is closed (shutting down).
    pub fn fire(&self, reason: Reason) -> bool {
        {
            let mut p = self.lock();
            if p.closed {
                return false;
            }
            p.reasons.insert(reason);
            if reason.is_internal() {
                p.urgent = true;
            } else {
                let now = Instant::now();
                p.first.get_or_insert(now);
                p.last = Some(now);
            }
        }
        self.wake.notify_one();
        true
    }

    /// Stops accepting triggers (shutdown); pending ones are dropped.
    pub fn close(&self) {
        let mut p = self.lock();
        p.closed = true;
        *p = Pending {
            closed: true,
            ..Pending::default()
        };
        drop(p);
        self.wake.notify_one();
    }

    #[cfg(test)]
    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// When the pending batch becomes ready: at once for internal triggers, else after
    /// `quiet` without a new trigger, but no later than `max_delay` after the first.
    /// `now` is the caller's clock reading, so "ready now" compares equal to it.
    pub(crate) fn ready_at(
        &self,
        now: Instant,
        quiet: Duration,
        max_delay: Duration,
    ) -> Option<Instant> {
        let p = self.lock();
        if p.reasons.is_empty() {
            return None;
        }
        if p.urgent {
            return Some(now);
        }
        match (p.first, p.last) {
            (Some(first), Some(last)) => Some((last + quiet).min(first + max_delay)),
            _ => Some(now),
        }
    }

    pub(crate) fn has_pending(&self) -> bool {
        !self.lock().reasons.is_empty()
    }

    /// Takes the pending batch, leaving the hub empty.
    pub(crate) fn take(&self) -> Batch {
        let mut p = self.lock();
        let reasons = std::mem::take(&mut p.reasons);
        p.first = None;
        p.last = None;
        p.urgent = false;
        Batch { reasons }
    }

    /// Resolves when something was fired (or the hub closed) since the last call.
    pub(crate) async fn notified(&self) {
        self.wake.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const QUIET: Duration = Duration::from_millis(200);
    const MAX: Duration = Duration::from_secs(2);

    #[tokio::test(start_paused = true)]
    async fn outside_triggers_wait_for_the_quiet_window() {
        let t = Triggers::new();
        let start = Instant::now();
        assert!(t.fire(Reason::Webhook));
        assert_eq!(t.ready_at(Instant::now(), QUIET, MAX), Some(start + QUIET));
        tokio::time::advance(Duration::from_millis(150)).await;
        t.fire(Reason::Webhook);
        assert_eq!(
            t.ready_at(Instant::now(), QUIET, MAX),
            Some(start + Duration::from_millis(150) + QUIET)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_stream_of_triggers_is_not_delayed_past_the_maximum() {
        let t = Triggers::new();
        let start = Instant::now();
        for _ in 0..30 {
            t.fire(Reason::FileChange);
            tokio::time::advance(Duration::from_millis(100)).await;
        }
        assert_eq!(t.ready_at(Instant::now(), QUIET, MAX), Some(start + MAX));
    }

    #[tokio::test(start_paused = true)]
    async fn internal_triggers_are_ready_at_once_and_batches_merge_reasons() {
        let t = Triggers::new();
        t.fire(Reason::Webhook);
        t.fire(Reason::Interval);
        assert_eq!(t.ready_at(Instant::now(), QUIET, MAX), Some(Instant::now()));
        let batch = t.take();
        assert_eq!(batch.label(), "interval+webhook");
        assert!(!t.has_pending());
        assert_eq!(t.ready_at(Instant::now(), QUIET, MAX), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_closed_hub_drops_triggers() {
        let t = Triggers::new();
        t.fire(Reason::Webhook);
        t.close();
        assert!(t.is_closed());
        assert!(!t.fire(Reason::Hangup));
        assert!(!t.has_pending());
    }
}
