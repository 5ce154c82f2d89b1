use std::collections::HashMap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::time::timeout;

use super::*;

/// A unix time on a window boundary for periods of 1, 2, 5 and 10 s.
const BASE: u64 = 1_800_000_000;

fn sys(at: Instant, start: Instant) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(BASE) + (at - start)
}

fn headers(remaining: u64, reset_unix: u64) -> Completion {
    Completion::Headers(RateObservation {
        limit: Some(10),
        remaining,
        reset_unix,
    })
}

/// True when `acquire` is still waiting after an hour of (paused, auto-advancing) time.
async fn blocked(l: &Arc<RateLimiter>) -> bool {
    timeout(Duration::from_secs(3600), l.acquire())
        .await
        .is_err()
}

/// True when `acquire` is still waiting just before the probe's patience runs out.
async fn held_back_by_the_probe(l: &Arc<RateLimiter>) -> bool {
    timeout(PROBE_PATIENCE - Duration::from_millis(1), l.acquire())
        .await
        .is_err()
}

#[tokio::test(start_paused = true)]
async fn before_any_header_one_request_goes_at_a_time() {
    let l = Arc::new(RateLimiter::new());
    let start = Instant::now();
    let first = l.acquire().await;
    assert!(
        held_back_by_the_probe(&l).await,
        "a second request waits for the first answer"
    );
    first.complete(headers(5, BASE + 86_400), sys(Instant::now(), start));
    assert!(!blocked(&l).await);
}

#[tokio::test(start_paused = true)]
async fn a_probe_without_an_answer_holds_the_others_back_only_for_a_while() {
    let l = Arc::new(RateLimiter::new());
    let start = Instant::now();
    let silent = l.acquire().await;
    let mut others = Vec::new();
    for _ in 0..3 {
        others.push(l.acquire().await);
    }
    assert_eq!(
        Instant::now() - start,
        PROBE_PATIENCE,
        "the others went together once the probe's patience ran out"
    );
    // They all end without an answer: the budget is still unknown, so the next request is
    // a new probe, which goes at once and holds the others back again.
    drop(others);
    drop(silent);
    let again = Instant::now();
    let _probe = l.acquire().await;
    assert_eq!(Instant::now(), again);
    assert!(held_back_by_the_probe(&l).await);
}

#[tokio::test(start_paused = true)]
async fn a_server_without_rate_headers_is_not_throttled() {
    let l = Arc::new(RateLimiter::new());
    l.acquire()
        .await
        .complete(Completion::NoHeaders, SystemTime::now());
    let mut permits = Vec::new();
    for _ in 0..50 {
        permits.push(
            timeout(Duration::from_secs(1), l.acquire())
                .await
                .expect("no wait"),
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_spent_window_waits_for_the_reset_then_sends_one_probe() {
    let l = Arc::new(RateLimiter::new());
    let start = Instant::now();
    let reset = BASE + 10;
    l.acquire()
        .await
        .complete(headers(2, reset), sys(start, start));
    let a = l.acquire().await;
    let b = l.acquire().await;
    a.complete(headers(1, reset), sys(Instant::now(), start));
    b.complete(headers(0, reset), sys(Instant::now(), start));

    let probe = l.acquire().await;
    assert!(
        Instant::now() >= start + Duration::from_secs(10),
        "sent before the window reset"
    );
    assert!(
        held_back_by_the_probe(&l).await,
        "only the probe goes until the new budget is known"
    );
    probe.complete(headers(9, reset + 10), sys(Instant::now(), start));
    assert!(!blocked(&l).await);
}

#[tokio::test(start_paused = true)]
async fn requests_in_flight_count_against_the_budget() {
    let l = Arc::new(RateLimiter::new());
    let start = Instant::now();
    l.acquire()
        .await
        .complete(headers(3, BASE + 86_400), sys(start, start));
    let held: Vec<Permit> = vec![l.acquire().await, l.acquire().await, l.acquire().await];
    assert!(
        blocked(&l).await,
        "three in flight use up a budget of three"
    );
    drop(held);
}

#[tokio::test(start_paused = true)]
async fn a_budget_spent_for_longer_than_the_caller_accepts_fails_at_once() {
    let l = Arc::new(RateLimiter::new());
    let start = Instant::now();
    l.acquire()
        .await
        .complete(headers(0, BASE + 3600), sys(start, start));
    let wait = l
        .acquire_within(Duration::from_secs(120))
        .await
        .unwrap_err();
    assert!(wait > Duration::from_secs(3500), "{wait:?}");
    assert_eq!(Instant::now(), start, "no time passed");
    assert!(l.acquire_within(Duration::from_secs(7200)).await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_request_is_assumed_to_have_been_counted() {
    let l = Arc::new(RateLimiter::new());
    let start = Instant::now();
    l.acquire()
        .await
        .complete(headers(1, BASE + 86_400), sys(start, start));
    drop(l.acquire().await);
    assert!(blocked(&l).await);
}

#[tokio::test(start_paused = true)]
async fn late_answers_never_raise_the_budget() {
    let l = Arc::new(RateLimiter::new());
    let start = Instant::now();
    let reset = BASE + 86_400;
    l.acquire()
        .await
        .complete(headers(5, reset), sys(start, start));
    let early = l.acquire().await;
    let late = l.acquire().await;
    // The server saw `early` first (remaining 4) and `late` second (3), but the answers
    // arrive in the other order.
    late.complete(headers(3, reset), sys(start, start));
    early.complete(headers(4, reset), sys(start, start));
    let mut granted = Vec::new();
    while let Ok(p) = timeout(Duration::from_secs(1), l.acquire()).await {
        granted.push(p);
    }
    assert!(
        (1..=3).contains(&granted.len()),
        "{} granted with 3 left",
        granted.len()
    );
}

/// A fixed-window server on tokio's clock: counts each request when it arrives.
struct FakeServer {
    limit: u64,
    period: u64,
    start: Instant,
    used: HashMap<u64, u64>,
    refused: u64,
}

impl FakeServer {
    fn handle(&mut self) -> RateObservation {
        let secs = BASE as f64 + (Instant::now() - self.start).as_secs_f64();
        let window = (secs / self.period as f64) as u64;
        let used = self.used.entry(window).or_default();
        *used += 1;
        if *used > self.limit {
            self.refused += 1;
        }
        RateObservation {
            limit: Some(self.limit),
            remaining: self.limit.saturating_sub(*used),
            reset_unix: (window + 1) * self.period,
        }
    }
}

#[tokio::test(start_paused = true)]
async fn concurrent_clients_with_random_latency_never_exceed_the_budget() {
    let start = Instant::now();
    let server = Arc::new(Mutex::new(FakeServer {
        limit: 20,
        period: 2,
        start,
        used: HashMap::new(),
        refused: 0,
    }));
    let l = Arc::new(RateLimiter::new());
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..8u64 {
        let (l, server) = (Arc::clone(&l), Arc::clone(&server));
        tasks.spawn(async move {
            let mut rng = StdRng::seed_from_u64(worker);
            for _ in 0..25 {
                let permit = l.acquire().await;
                tokio::time::sleep(Duration::from_millis(rng.random_range(0..300))).await;
                let obs = server.lock().unwrap().handle();
                tokio::time::sleep(Duration::from_millis(rng.random_range(0..300))).await;
                permit.complete(Completion::Headers(obs), sys(Instant::now(), start));
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    let server = server.lock().unwrap();
    assert_eq!(server.used.values().sum::<u64>(), 200);
    assert_eq!(
        server.refused, 0,
        "requests past the budget: {:?}",
        server.used
    );
}
