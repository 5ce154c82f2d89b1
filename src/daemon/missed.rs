//! Deliveries the webhook could not read — answered 429 because every reader was busy, 413
//! for size or 408 for time — may have announced a real push, and GitHub never sends a
//! delivery again. Each one owes a fetch: this module pays those debts as one coalesced
//! [`Reason::MissedDelivery`] trigger, at most one per [`MIN_GAP`].
//!
//! Without it, anyone who knows the webhook URL could hold rotations back until the next poll
//! (an hour with `--interval 1h`) by keeping the readers busy with slow bogus deliveries. With
//! it, such a flood costs at most one fetch per [`MIN_GAP`], and a real push refused in the
//! middle of it is fetched within that gap. The owed fetch does not wait for the readers to
//! free up: a fetch needs no reader, and a flood may hold them for as long as it lasts.

use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;
use tokio::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

use super::triggers::{Reason, Triggers};

/// The least time between two fetches owed to refused deliveries.
pub const MIN_GAP: Duration = Duration::from_secs(5);

#[derive(Debug, Default)]
struct Debt {
    /// A delivery was refused since the last owed fetch fired.
    owed: bool,
    /// When the last owed fetch fired.
    last: Option<Instant>,
}

/// A cloneable handle: the webhook calls [`Missed::owe`], [`Missed::run`] pays.
#[derive(Debug, Clone, Default)]
pub struct Missed {
    debt: Arc<Mutex<Debt>>,
    wake: Arc<Notify>,
}

impl Missed {
    pub fn new() -> Missed {
        Missed::default()
    }

    fn lock(&self) -> MutexGuard<'_, Debt> {
        // Two plain fields; a poisoned lock still holds usable values.
        self.debt.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A delivery was refused without being read: a fetch is owed. Never blocks.
    pub fn owe(&self) {
        self.lock().owed = true;
        self.wake.notify_one();
    }

    #[cfg(test)]
    pub fn is_owed(&self) -> bool {
        self.lock().owed
    }

    /// Fires one [`Reason::MissedDelivery`] for each spell of refused deliveries, at most one
    /// per `gap`, until `shutdown`.
    pub async fn run(self, triggers: Triggers, gap: Duration, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.wake.notified() => {}
            }
            let due = {
                let debt = self.lock();
                if !debt.owed {
                    continue;
                }
                debt.last.map(|last| last + gap)
            };
            if let Some(due) = due {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep_until(due) => {}
                }
            }
            {
                let mut debt = self.lock();
                // Every refusal up to now is paid by this one fetch.
                debt.owed = false;
                debt.last = Some(Instant::now());
            }
            tracing::info!("a webhook delivery was refused unread; fetch scheduled");
            triggers.fire(Reason::MissedDelivery);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts the missed-delivery batches the hub hands out, as the loop would take them.
    fn take_fired(triggers: &Triggers) -> bool {
        let fired = triggers.has_pending();
        if fired {
            assert!(triggers.take().contains(Reason::MissedDelivery));
        }
        fired
    }

    fn start() -> (Missed, Triggers, CancellationToken) {
        let missed = Missed::new();
        let triggers = Triggers::new();
        let shutdown = CancellationToken::new();
        tokio::spawn(
            missed
                .clone()
                .run(triggers.clone(), MIN_GAP, shutdown.clone()),
        );
        (missed, triggers, shutdown)
    }

    #[tokio::test(start_paused = true)]
    async fn one_refused_delivery_fires_a_fetch_at_once() {
        let (missed, triggers, _s) = start();
        tokio::task::yield_now().await;
        assert!(!take_fired(&triggers));
        missed.owe();
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert!(take_fired(&triggers));
        // Nothing more is owed: nothing more fires.
        tokio::time::sleep(MIN_GAP * 3).await;
        assert!(!take_fired(&triggers));
    }

    #[tokio::test(start_paused = true)]
    async fn a_flood_costs_at_most_one_fetch_per_gap_and_the_last_refusal_is_paid() {
        let (missed, triggers, _s) = start();
        let start = Instant::now();
        let mut fired = Vec::new();
        // 1,000 refusals over 12 s, one every 12 ms, then quiet; fires are seen to the ms.
        for ms in 0..20_000 {
            if ms % 12 == 0 && ms < 12_000 {
                missed.owe();
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
            if take_fired(&triggers) {
                fired.push(start.elapsed());
            }
        }
        // At 0, 5, 10 s, and once more after the flood for the refusals since the last.
        assert_eq!(fired.len(), 4, "{fired:?}");
        for pair in fired.windows(2) {
            assert!(pair[1] - pair[0] >= MIN_GAP, "{fired:?}");
        }
        assert!(fired[0] < Duration::from_millis(20), "{fired:?}");
        tokio::time::sleep(MIN_GAP * 3).await;
        assert!(!take_fired(&triggers));
    }

    #[tokio::test(start_paused = true)]
    async fn a_refusal_soon_after_a_fetch_waits_for_the_gap_not_for_the_next_poll() {
        let (missed, triggers, _s) = start();
        missed.owe();
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert!(take_fired(&triggers));
        tokio::time::sleep(Duration::from_secs(1)).await;
        missed.owe();
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(!take_fired(&triggers), "fired inside the gap");
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert!(take_fired(&triggers));
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_stops_it_with_a_debt_pending() {
        let (missed, triggers, shutdown) = start();
        missed.owe();
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert!(take_fired(&triggers));
        missed.owe();
        shutdown.cancel();
        tokio::time::sleep(MIN_GAP * 2).await;
        assert!(!take_fired(&triggers));
    }
}
