//! infra/emulator tears down what it started, even a process that ignores SIGTERM.

use busline_tests::workspace_root;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::{Duration, Instant};

fn alive(pid: u32) -> bool {
    // A zombie (exited, not yet reaped by us) counts as gone.
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| !stat.contains(") Z "))
}

/// `infra/emulator stop <name>` on the state folder `state`, with a 1 s grace period.
fn stop(name: &str, state: &std::path::Path) -> std::process::Output {
    Command::new(workspace_root().join("infra/emulator"))
        .args(["stop", name, "--state", state.to_str().expect("utf-8")])
        .env("BUSLINE_EMULATOR_GRACE_S", "1")
        .output()
        .expect("infra/emulator runs")
}

#[test]
fn stop_kills_a_process_that_ignores_sigterm_after_the_grace_period() {
    let state = tempfile::tempdir().expect("tempdir");
    // Stands in for a hung emulator: its own process group, deaf to SIGTERM.
    let mut stubborn = Command::new("bash")
        .args(["-c", "trap '' TERM; while true; do sleep 0.1; done"])
        .process_group(0)
        .spawn()
        .expect("spawn");
    let pid = stubborn.id();
    std::fs::write(
        state.path().join("state.json"),
        format!("{{\"pid\": {pid}, \"port\": 1}}"),
    )
    .expect("state");

    let started = Instant::now();
    let stop = stop("localstack", state.path());
    let took = started.elapsed();
    let _ = stubborn.wait();

    assert!(
        stop.status.success(),
        "{}",
        String::from_utf8_lossy(&stop.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&stop.stdout).trim(),
        "localstack: stopped"
    );
    assert!(!alive(pid), "the stubborn process survived");
    assert!(
        took >= Duration::from_secs(1),
        "SIGKILL came only after the grace period ({took:?})"
    );
    assert!(
        !state.path().join("state.json").exists(),
        "the state is cleared"
    );
}

#[test]
fn stop_of_an_emulator_that_is_not_running_says_so() {
    let state = tempfile::tempdir().expect("tempdir");
    let stop = stop("ministack", state.path());
    assert!(stop.status.success());
    assert_eq!(
        String::from_utf8_lossy(&stop.stdout).trim(),
        "ministack: not running"
    );
}
