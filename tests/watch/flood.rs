//! No push lost to a webhook flood: deliveries refused unread (every reader busy) still owe a
//! fetch, paid as one coalesced fetch at most every 5 s however many were refused.

use std::io::Write as _;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use super::daemon::{Daemon, eventually};
use super::{STARTUP, converged, git_watch, two_agent_repo};
use crate::support::*;

/// Opens a delivery with a well-formed signature header that promises 1,000 bytes and sends
/// 10: it holds one of the daemon's 4 readers until the 10 s body deadline.
fn slow_delivery(d: &Daemon) -> TcpStream {
    let addr = d.url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).expect("connect to the daemon");
    let signature = format!("sha256={}", "0".repeat(64));
    let head = format!(
        "POST /hooks/git HTTP/1.1\r\nhost: {addr}\r\nx-github-event: push\r\nx-hub-signature-256: {signature}\r\ncontent-length: 1000\r\n\r\n0123456789"
    );
    stream.write_all(head.as_bytes()).expect("send the head");
    stream
}

/// Holds every reader: slow deliveries until a plain one is answered 429.
fn hold_every_reader(d: &Daemon) -> Vec<TcpStream> {
    let slow: Vec<TcpStream> = (0..4).map(|_| slow_delivery(d)).collect();
    eventually(Duration::from_secs(5), "every reader busy", || {
        d.webhook("{}", None) == 429
    });
    slow
}

/// `castsync_fetches_total`, both results.
fn fetches(d: &Daemon) -> u64 {
    let (_, metrics) = d.get("/metrics");
    metrics
        .lines()
        .filter(|l| l.starts_with("castsync_fetches_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[test]
fn a_push_whose_delivery_is_refused_while_slow_bogus_ones_hold_the_readers_is_applied() {
    let emu = Emulator::start(&["--agents", "alpha,beta"]);
    let repo = two_agent_repo();
    let d = git_watch(&repo, &emu, &[]);
    eventually(STARTUP, "the first reconcile", || {
        converged(&emu, "beta", "B2", "b-two")
    });
    // Wait out the gap after any fetch the probes below might owe.
    let _slow = hold_every_reader(&d);
    std::thread::sleep(Duration::from_secs(5));

    repo.agent(
        "beta",
        &[("B1", "b-one"), ("B2", "b-two-pushed-in-a-flood")],
    );
    repo.commit_all("rotate B2 during a flood");
    let pushed = Instant::now();
    // The real delivery, correctly signed, finds every reader busy.
    assert_eq!(d.push(), 429);
    eventually(
        Duration::from_secs(10),
        "the refused push applied (interval is 1 h)",
        || converged(&emu, "beta", "B2", "b-two-pushed-in-a-flood"),
    );
    eprintln!(
        "applied {:?} after its delivery was refused",
        pushed.elapsed()
    );
    let (_, metrics) = d.get("/metrics");
    assert!(
        metrics.contains("castsync_webhook_deliveries_total{result=\"busy\"}"),
        "{metrics}"
    );
    assert!(d.log().contains("trigger=missed-delivery"), "{}", d.log());
}

#[test]
fn a_flood_of_a_thousand_forged_deliveries_costs_at_most_one_fetch_per_five_seconds() {
    let emu = Emulator::start(&["--agents", "alpha,beta"]);
    let repo = two_agent_repo();
    let d = git_watch(&repo, &emu, &[]);
    eventually(STARTUP, "the first reconcile", || d.readyz().0 == 200);
    let before = fetches(&d);
    let _slow = hold_every_reader(&d);
    let started = Instant::now();
    let mut answers = std::collections::BTreeMap::<u16, u32>::new();
    // 1,000 forged deliveries over about 8 s: 8 senders, one every 64 ms each.
    let body = r#"{"ref":"refs/heads/main"}"#;
    let forged = castsync::daemon::WebhookSecret::new(b"a guess".to_vec()).sign(body.as_bytes());
    let codes: Vec<u16> = block_on(async {
        let client = reqwest::Client::new();
        let mut senders = tokio::task::JoinSet::new();
        for _ in 0..8 {
            let (client, url, forged) = (client.clone(), d.url.clone(), forged.clone());
            senders.spawn(async move {
                let mut codes = Vec::new();
                for _ in 0..125 {
                    let status = client
                        .post(format!("{url}/hooks/git"))
                        .header("x-github-event", "push")
                        .header("x-hub-signature-256", &forged)
                        .body(body)
                        .send()
                        .await
                        .map(|r| r.status().as_u16())
                        .unwrap_or(0);
                    codes.push(status);
                    tokio::time::sleep(Duration::from_millis(64)).await;
                }
                codes
            });
        }
        senders.join_all().await.concat()
    });
    for code in codes {
        *answers.entry(code).or_default() += 1;
    }
    let flood = started.elapsed();
    // Let the last owed fetch fire and finish.
    std::thread::sleep(Duration::from_secs(6));
    let window = started.elapsed();
    let during = fetches(&d) - before;
    eprintln!("{answers:?} over {flood:?}: {during} fetches in {window:?}");
    assert_eq!(answers.values().sum::<u32>(), 1000);
    // The slow deliveries hold the readers for the body deadline (10 s); on a loaded machine
    // the flood can outlast it, and the rest are read and refused for their signature (401),
    // which owes nothing. What matters is that many were answered 429, each owing a fetch.
    let busy = answers.get(&429).copied().unwrap_or(0);
    assert!(
        busy >= 100,
        "too few deliveries found the readers busy: {answers:?}"
    );
    assert_eq!(
        busy + answers.get(&401).copied().unwrap_or(0),
        1000,
        "every forged delivery is refused, busy or for its signature: {answers:?}"
    );
    // One fetch may fire at the start of each 5 s gap in the window.
    let most = window.as_secs() / 5 + 1;
    assert!(
        during >= 1 && during <= most,
        "{during} fetches in {window:?} (at most {most})"
    );
}
