//! One daemon per state directory: a second `watch` is refused, naming the holder (two
//! daemons at different commits would apply in turn).

use super::daemon::eventually;
use super::{STARTUP, git_watch, two_agent_repo};
use crate::support::*;

#[test]
fn a_second_watch_on_the_same_state_directory_exits_1_naming_the_holder() {
    let emu = Emulator::start(&["--agents", "alpha,beta"]);
    let repo = two_agent_repo();
    let first = git_watch(&repo, &emu, &[]);
    eventually(STARTUP, "the first reconcile", || first.readyz().0 == 200);
    let pid = first.pid();
    let mut second = super::daemon::watch_command(&repo);
    second
        .arg("watch")
        .args(["--git-url", &super::remote_url(&repo)])
        .arg("--data-dir")
        .arg(super::data_dir(&repo))
        .args(["--interval", "1h", "--api-url", &emu.url])
        .args(["--listen", "127.0.0.1:0"])
        .stdin(std::process::Stdio::null());
    let out = second.output().expect("run a second watch");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert!(
        stderr.contains(&format!("(pid {pid} on host {})", host.trim())),
        "{stderr}"
    );
    assert!(stderr.contains("only one daemon may apply"), "{stderr}");
    // The first one is untouched.
    assert_eq!(first.readyz().0, 200);
}
