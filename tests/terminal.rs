//! What a person at a terminal sees from `castsync reconcile`, on a real pseudo-terminal: the
//! plan and `Apply? [y/N]` before anything is deleted, `--yes` to skip it, never a question
//! without a terminal; and progress (a bar on a terminal, one line per agent in a log) while an
//! apply waits for the platform's rate limit (the emulator's, scaled down to seconds).

use std::time::Duration;

use crate::support::pty::Pty;
use crate::support::*;

const CANARY: &str = "canary-terminal-51c0-never-print";
const PROMPT: &str = "Apply? [y/N]";
const DEADLINE: Duration = Duration::from_secs(30);

/// alpha holds A1 and A2 on the platform; the manifest now declares A1 only, so the plan
/// deletes A2.
fn deleting_plan(emu: &Emulator) -> SecretsRepo {
    let repo = SecretsRepo::new("");
    repo.agent("alpha", &[("A1", "a-one"), ("A2", CANARY)]);
    repo.test_reconcile(&emu.url).run().success();
    repo.agent("alpha", &[("A1", "a-one")]);
    repo
}

/// `castsync -C ROOT -i KEY reconcile --api-url URL ARGS` as a plain command, for the pty.
fn reconcile_on_pty(repo: &SecretsRepo, emu: &Emulator, args: &[&str]) -> Pty {
    let mut cmd = castsync_std(&repo.home);
    cmd.arg("-C")
        .arg(&repo.root)
        .arg("-i")
        .arg(&repo.key_file)
        .env("CASTARI_API_KEY", "cast_test")
        .args(["reconcile", "--api-url", &emu.url])
        .args(args);
    Pty::spawn(cmd)
}

#[test]
fn on_a_terminal_a_deleting_plan_asks_first_and_n_changes_nothing() {
    let emu = Emulator::start(&["--agents", "alpha"]);
    let repo = deleting_plan(&emu);
    emu.reset_stats();

    let mut pty = reconcile_on_pty(&repo, &emu, &[]);
    pty.expect(PROMPT, DEADLINE);
    let shown = pty.output();
    assert!(
        shown.contains("- A2"),
        "the plan comes before the question:\n{shown}"
    );
    assert!(shown.contains("1 to delete"), "{shown}");
    pty.send("n\n");
    let (status, output) = pty.finish(DEADLINE);
    assert_eq!(status.code(), Some(1), "{output}");
    assert!(output.contains("nothing was changed"), "{output}");
    assert_eq!(emu.requests("DELETE"), 0, "{output}");
    assert_eq!(emu.requests("POST"), 0, "{output}");
    assert_eq!(emu.value("alpha", "A2").as_deref(), Some(CANARY));
    assert_no_canary("the terminal", &output, &[CANARY]);

    // Answering y applies.
    let mut pty = reconcile_on_pty(&repo, &emu, &[]);
    pty.expect(PROMPT, DEADLINE);
    pty.send("y\n");
    let (status, output) = pty.finish(DEADLINE);
    assert_eq!(status.code(), Some(0), "{output}");
    assert_eq!(emu.value("alpha", "A2"), None);
    assert_eq!(
        output.matches("- A2").count(),
        1,
        "the change once, in the plan; the apply adds only its summary:\n{output}"
    );
    assert!(
        output.contains("Apply complete: 0 created, 0 updated, 1 deleted."),
        "{output}"
    );
}

#[test]
fn yes_skips_the_question_on_a_terminal() {
    let emu = Emulator::start(&["--agents", "alpha"]);
    let repo = deleting_plan(&emu);
    let pty = reconcile_on_pty(&repo, &emu, &["--yes"]);
    let (status, output) = pty.finish(DEADLINE);
    assert_eq!(status.code(), Some(0), "{output}");
    assert!(!output.contains(PROMPT), "{output}");
    assert_eq!(emu.value("alpha", "A2"), None);
    assert_eq!(emu.value("alpha", "A1").as_deref(), Some("a-one"));
}

#[test]
fn a_plan_without_deletes_is_applied_on_a_terminal_without_asking() {
    let emu = Emulator::start(&["--agents", "alpha"]);
    let repo = SecretsRepo::new("");
    repo.agent("alpha", &[("A1", "a-one")]);
    let pty = reconcile_on_pty(&repo, &emu, &[]);
    let (status, output) = pty.finish(DEADLINE);
    assert_eq!(status.code(), Some(0), "{output}");
    assert!(!output.contains(PROMPT), "{output}");
    assert_eq!(emu.value("alpha", "A1").as_deref(), Some("a-one"));
}

#[test]
fn without_a_terminal_a_deleting_plan_is_applied_without_asking() {
    let emu = Emulator::start(&["--agents", "alpha"]);
    let repo = deleting_plan(&emu);
    repo.test_reconcile(&emu.url)
        .run()
        .success()
        .stdout_lacks(PROMPT)
        .stderr_lacks(PROMPT)
        .stderr_has("alpha: 1 change(s) applied (1/1 agents, 2/2 requests)");
    assert_eq!(emu.value("alpha", "A2"), None);

    // -q: no progress lines.
    repo.agent("alpha", &[("A1", "a-one-v2")]);
    repo.test_reconcile(&emu.url)
        .arg("-q")
        .run()
        .success()
        .stderr_lacks("alpha:");
    assert_eq!(emu.value("alpha", "A1").as_deref(), Some("a-one-v2"));
}

/// Three agents of two keys at 4 requests per 2 s: 3 lists, 6 sets and 3 verifying lists
/// need three windows, so the middle one is spent at once and the client waits about 2 s.
fn rate_limited() -> (Emulator, SecretsRepo) {
    let emu = Emulator::start(&["--agents", "alpha,beta,gamma", "--rate-limit", "4/2"]);
    let repo = SecretsRepo::new("");
    repo.agent("alpha", &[("A1", "a-one"), ("A2", CANARY)]);
    repo.agent("beta", &[("B1", "b-one"), ("B2", "b-two")]);
    repo.agent("gamma", &[("G1", "g-one"), ("G2", "g-two")]);
    (emu, repo)
}

#[test]
fn without_a_terminal_each_finished_agent_is_one_log_line_and_rate_limit_waits_are_said() {
    let (emu, repo) = rate_limited();
    let run = repo
        .test_reconcile(&emu.url)
        .run()
        .success()
        .stderr_has("3/3 agents, 9/9 requests)")
        .no_canary(&[CANARY]);
    let stderr = run.stderr();
    for agent in ["alpha", "beta", "gamma"] {
        let lines: Vec<&str> = stderr
            .lines()
            .filter(|l| l.starts_with(&format!("{agent}: ")))
            .collect();
        assert_eq!(lines.len(), 1, "{agent}:\n{stderr}");
        assert!(lines[0].contains("2 change(s) applied ("), "{stderr}");
        assert!(lines[0].contains(" agents, "), "{stderr}");
        assert!(lines[0].ends_with("/9 requests)"), "{stderr}");
    }
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with("waiting ") && l.ends_with(" s for the rate limit")),
        "{stderr}"
    );
    assert_eq!(emu.value("gamma", "G2").as_deref(), Some("g-two"));
}

#[test]
fn on_a_terminal_a_progress_bar_shows_requests_the_rate_limit_wait_and_an_eta() {
    let (emu, repo) = rate_limited();
    let pty = reconcile_on_pty(&repo, &emu, &[]);
    let (status, output) = pty.finish(DEADLINE);
    assert_eq!(status.code(), Some(0), "{output}");
    assert!(output.contains("/9 requests"), "{output}");
    assert!(output.contains("ETA"), "{output}");
    assert!(output.contains("s for the rate limit"), "{output}");
    // On a terminal the bar replaces the log lines.
    assert!(!output.contains("agents, "), "{output}");
    // NO_COLOR (set by the test environment): no colour codes in the bar or the plan.
    assert!(!output.contains("\u{1b}[3"), "{output:?}");
    assert_eq!(emu.value("beta", "B2").as_deref(), Some("b-two"));
    assert_no_canary("the terminal", &output, &[CANARY]);
}

#[test]
fn progress_counts_redeploys_including_one_owed_by_an_earlier_run() {
    let emu = Emulator::start(&["--agents", "alpha,beta"]);
    let repo = SecretsRepo::new("redeploy: on-change");
    repo.agent("alpha", &[("A1", "a-one")]);
    repo.agent("beta", &[("B1", "b-one"), ("B2", CANARY)]);
    // alpha: 1 set, 1 verifying list, 1 redeploy; beta: 2 sets, 1 list, 1 redeploy.
    repo.test_reconcile(&emu.url)
        .run()
        .success()
        .stderr_has("1 change(s) applied, redeployed (")
        .stderr_has("2/2 agents, 7/7 requests)")
        .no_canary(&[CANARY]);
    assert_eq!(emu.redeploys("alpha"), 1);
    assert_eq!(emu.redeploys("beta"), 1);

    // A failed redeploy is owed; the next run's only request for alpha is that redeploy.
    repo.agent("alpha", &[("A1", "a-one-v2")]);
    emu.pin_fault("alpha", Some("POST"), Some("redeploy"), 403);
    repo.test_reconcile(&emu.url)
        .run()
        .failure()
        .stderr_has("alpha: 1 change(s) applied, redeploy failed (1/1 agents, 3/3 requests)")
        .no_canary(&[CANARY]);
    emu.clear_faults();
    repo.test_reconcile(&emu.url)
        .run()
        .success()
        .stderr_has("alpha: 0 change(s) applied, redeployed (1/1 agents, 1/1 requests)")
        .no_canary(&[CANARY]);
    assert_eq!(emu.redeploys("alpha"), 2);
}
