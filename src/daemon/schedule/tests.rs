use super::*;

const MIN: Duration = Duration::from_secs(60);

fn schedule(interval: Duration, resync: Duration) -> Schedule {
    Schedule::new(Timing::new(interval, resync), Some(7))
}

fn cycle(wake: Option<Wake>) -> Batch {
    match wake {
        Some(Wake::Cycle(b)) => b,
        other => panic!("expected a cycle, got {other:?}"),
    }
}

#[test]
fn jitter_stays_within_ten_percent_of_the_base() {
    let mut rng = StdRng::seed_from_u64(1);
    let base = Duration::from_secs(60);
    let (mut lo, mut hi) = (base, base);
    for _ in 0..10_000 {
        let d = jitter(base, &mut rng);
        assert!(
            d >= Duration::from_secs(54) && d <= Duration::from_secs(66),
            "{d:?}"
        );
        lo = lo.min(d);
        hi = hi.max(d);
    }
    // It really spreads: both ends of the range are reached closely.
    assert!(lo < Duration::from_secs(55) && hi > Duration::from_secs(65));
}

#[tokio::test(start_paused = true)]
async fn the_poll_interval_fires_once_per_jittered_interval() {
    let mut s = schedule(MIN, 100 * MIN);
    let triggers = Triggers::new();
    let shutdown = CancellationToken::new();
    let start = Instant::now();
    for _ in 0..5 {
        let batch = cycle(s.next(&triggers, &shutdown).await);
        assert_eq!(batch.label(), "interval");
        s.polled();
    }
    let elapsed = start.elapsed();
    assert!(elapsed >= 5 * Duration::from_secs(54) && elapsed <= 5 * Duration::from_secs(66));
}

#[tokio::test(start_paused = true)]
async fn a_burst_of_ten_webhooks_in_a_second_becomes_one_cycle() {
    let mut s = schedule(MIN, 100 * MIN);
    let triggers = Triggers::new();
    let shutdown = CancellationToken::new();
    let sender = triggers.clone();
    tokio::spawn(async move {
        for _ in 0..10 {
            sender.fire(Reason::Webhook);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let start = Instant::now();
    let batch = cycle(s.next(&triggers, &shutdown).await);
    assert_eq!(batch.label(), "webhook");
    // The batch waited for the burst to end (plus the quiet window), not the interval.
    assert!(start.elapsed() >= Duration::from_millis(900));
    assert!(start.elapsed() < Duration::from_secs(2));
    s.polled();
    // Nothing else is pending: the next wake is the interval, a minute later.
    let batch = cycle(s.next(&triggers, &shutdown).await);
    assert_eq!(batch.label(), "interval");
    assert!(start.elapsed() >= Duration::from_secs(54));
}

#[tokio::test(start_paused = true)]
async fn triggers_that_arrive_during_a_cycle_make_exactly_one_more() {
    let mut s = schedule(MIN, 100 * MIN);
    let triggers = Triggers::new();
    let shutdown = CancellationToken::new();
    triggers.fire(Reason::Startup);
    assert_eq!(cycle(s.next(&triggers, &shutdown).await).label(), "startup");
    // The "cycle" runs for 3 s, during which three webhooks and a SIGHUP arrive.
    for _ in 0..3 {
        triggers.fire(Reason::Webhook);
        tokio::time::advance(Duration::from_secs(1)).await;
    }
    triggers.fire(Reason::Hangup);
    s.polled();
    let batch = cycle(s.next(&triggers, &shutdown).await);
    assert_eq!(batch.label(), "webhook+sighup");
    assert!(!triggers.has_pending());
}

#[tokio::test(start_paused = true)]
async fn fetch_failures_back_off_exponentially_up_to_the_cap_and_reset_on_success() {
    let mut s = schedule(MIN, 100 * MIN);
    let triggers = Triggers::new();
    let shutdown = CancellationToken::new();
    let mut delays = Vec::new();
    for _ in 0..9 {
        let delay = s.failed();
        delays.push(delay);
        let before = Instant::now();
        let batch = cycle(s.next(&triggers, &shutdown).await);
        assert!(
            batch.contains(Reason::Retry) || batch.contains(Reason::Interval),
            "{batch:?}"
        );
        if !batch.contains(Reason::Interval) {
            // The timer wheel rounds up to the next millisecond.
            let waited = before.elapsed();
            assert!(waited >= delay && waited <= delay + Duration::from_millis(1));
        }
        s.polled();
    }
    let secs: Vec<u64> = delays
        .iter()
        .map(|d| d.as_secs_f64().round() as u64)
        .collect();
    // 1, 2, 4, 8, 16, 32, then capped at the interval (60 s), each ±10%.
    for (got, want) in secs.iter().zip([1u64, 2, 4, 8, 16, 32, 60, 60, 60]) {
        let (lo, hi) = (
            (want as f64 * 0.9).floor() as u64,
            (want as f64 * 1.1).ceil() as u64,
        );
        assert!((lo..=hi).contains(got), "delays {secs:?}");
    }
    s.succeeded();
    let d = s.failed();
    assert!(d <= Duration::from_millis(1100), "{d:?}");
}

#[tokio::test(start_paused = true)]
async fn a_long_interval_caps_the_backoff_at_five_minutes() {
    let mut s = schedule(60 * MIN, 600 * MIN);
    let mut last = Duration::ZERO;
    for _ in 0..15 {
        last = s.failed();
    }
    assert!(last <= Duration::from_secs(330) && last >= Duration::from_secs(270));
}

#[tokio::test(start_paused = true)]
async fn a_due_resync_is_paced_in_batches_within_half_the_rate_budget() {
    let mut s = schedule(100 * MIN, 10 * MIN);
    let triggers = Triggers::new();
    let shutdown = CancellationToken::new();
    let start = Instant::now();
    assert_eq!(s.next(&triggers, &shutdown).await, Some(Wake::ResyncDue));
    assert!(start.elapsed() >= Duration::from_secs(540));
    let agents: Vec<String> = (0..10).map(|i| format!("agent-{i}")).collect();
    s.start_resync(agents.clone());

    let budget = RateBudget::default();
    let mut seen = Vec::new();
    let mut times = Vec::new();
    while s.resync_in_progress() {
        match s.next(&triggers, &shutdown).await {
            Some(Wake::ResyncBatch(batch)) => {
                times.push(Instant::now());
                s.batch_done(batch.len(), budget);
                seen.push(batch);
            }
            other => panic!("expected a resync batch, got {other:?}"),
        }
    }
    assert_eq!(seen.iter().map(Vec::len).collect::<Vec<_>>(), [4, 4, 2]);
    assert_eq!(seen.concat(), agents);
    // 100 requests a minute, half for resyncs: 4 lists need 4.8 s.
    for pair in times.windows(2) {
        assert_eq!(pair[1] - pair[0], Duration::from_millis(4800));
    }
}

#[tokio::test(start_paused = true)]
async fn change_driven_work_goes_before_a_pending_resync_batch() {
    let mut s = schedule(100 * MIN, 10 * MIN);
    let triggers = Triggers::new();
    let shutdown = CancellationToken::new();
    s.start_resync((0..8).map(|i| format!("a{i}")).collect());
    let Some(Wake::ResyncBatch(first)) = s.next(&triggers, &shutdown).await else {
        panic!("expected the first batch");
    };
    s.batch_done(first.len(), RateBudget::default());
    // A webhook arrives while the next batch waits for its share of the budget.
    triggers.fire(Reason::Webhook);
    tokio::time::advance(Duration::from_secs(10)).await;
    // Both are due now; the change goes first.
    assert_eq!(cycle(s.next(&triggers, &shutdown).await).label(), "webhook");
    assert!(matches!(
        s.next(&triggers, &shutdown).await,
        Some(Wake::ResyncBatch(b)) if b.len() == 4
    ));
}

#[tokio::test(start_paused = true)]
async fn a_full_reconcile_counts_as_a_resync() {
    let mut s = schedule(100 * MIN, 10 * MIN);
    s.start_resync(vec!["a".into(), "b".into()]);
    s.resynced();
    assert!(!s.resync_in_progress());
    let triggers = Triggers::new();
    let start = Instant::now();
    assert_eq!(
        s.next(&triggers, &CancellationToken::new()).await,
        Some(Wake::ResyncDue)
    );
    assert!(start.elapsed() >= Duration::from_secs(540));
}

#[tokio::test(start_paused = true)]
async fn shutdown_ends_the_wait_at_once() {
    let mut s = schedule(MIN, 10 * MIN);
    let triggers = Triggers::new();
    let shutdown = CancellationToken::new();
    let stopper = shutdown.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(5)).await;
        stopper.cancel();
    });
    let start = Instant::now();
    assert_eq!(s.next(&triggers, &shutdown).await, None);
    assert_eq!(start.elapsed(), Duration::from_secs(5));
}

#[test]
fn the_resync_gap_follows_the_budget() {
    let b = RateBudget {
        limit: 1000,
        window: Duration::from_secs(60),
    };
    assert_eq!(b.resync_gap(5), Duration::from_millis(600));
    assert_eq!(
        RateBudget::default().resync_gap(1),
        Duration::from_millis(1200)
    );
}

/// On a real clock (not paused), "ready now" must not be compared against a later reading.
#[tokio::test]
async fn the_startup_trigger_is_taken_at_once_on_a_real_clock() {
    let mut s = schedule(MIN, 10 * MIN);
    let triggers = Triggers::new();
    triggers.fire(Reason::Startup);
    let wake = tokio::time::timeout(
        Duration::from_secs(5),
        s.next(&triggers, &CancellationToken::new()),
    )
    .await
    .expect("the startup cycle is due at once");
    assert_eq!(cycle(wake).label(), "startup");
}
