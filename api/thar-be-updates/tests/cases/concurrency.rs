//! Fork-and-return: the parent returns while the detached child prepares; the status shows its progress; a second
//! command meanwhile is refused with 64 naming the holder; a child killed mid-prepare is recorded as Failed by the
//! next command, leaves nothing staged, and frees the lock.

use super::support::{TestNode, assert_refused, serve_world, step, tools};
use repo_fixtures::chain;
use repo_fixtures::http::{AfterStall, Fault, PathMatch, Rule};
use std::time::{Duration, Instant};

fn alive(pid: u32) -> bool {
    // A zombie (dead, not yet reaped by whoever adopted it) holds no lock and runs no code.
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit(')')
            .next()
            .is_some_and(|rest| !rest.trim_start().starts_with('Z'))
    })
}

#[test]
fn a_prepare_runs_on_detached_shows_progress_refuses_others_with_64_and_a_kill_is_recorded() {
    if !tools() {
        return;
    }
    let server = serve_world();
    let root = chain::image_names(super::support::VARIANT, super::support::ARCH, "1.2.0").root;
    // The first download of 1.2.0's root image stalls after 10 000 bytes for far longer than the test runs.
    server.add_rule(
        Rule::new(
            PathMatch::suffix(root.clone()),
            Fault::StallAfter {
                bytes: 10_000,
                duration: Duration::from_secs(600),
                then: AfterStall::Close,
            },
        )
        .first(1),
    );
    let node = TestNode::new("1.0.0");
    node.configure(step("1.2.0"), &server, "stall_timeout_seconds = 600\n");
    let refreshed = node.succeed("refresh");

    // The parent returns (exit 0, its output at EOF) although the prepare cannot finish while the server stalls.
    let run = node.tbu(&["prepare"]);
    assert_eq!(
        (run.code, run.stdout.as_str(), run.stderr.as_str()),
        (Some(0), "", ""),
        "{run:#?}"
    );

    // The detached child's progress shows in the status; the last finished command is still the refresh.
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        let status = node.status();
        let progress = &status["update_progress"];
        if progress["phase"] == "write" && progress["image"] == "root" {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "no progress: {status:#}\nlog: {}",
            node.log("prepare")
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let progress = &status["update_progress"];
    assert_eq!(progress["cmd_type"], "prepare");
    assert!(
        progress["bytes_total"].as_u64().unwrap() > 10_000,
        "{progress:#}"
    );
    assert!(progress["bytes_done"].as_u64().is_some(), "{progress:#}");
    assert!(progress["started"].is_string(), "{progress:#}");
    assert_eq!(
        status["most_recent_command"],
        refreshed["most_recent_command"]
    );
    assert_eq!(status["update_state"], "Available");
    let pid = u32::try_from(progress["pid"].as_u64().unwrap()).unwrap();
    assert!(alive(pid), "the child runs on");

    // Every command meanwhile is refused with 64, naming the running child.
    for command in ["refresh", "prepare", "activate", "deactivate"] {
        assert_refused(
            &node.tbu(&[command]),
            64,
            &format!("thar-be-updates (an update command is running) is in use: pid {pid} ("),
        );
    }

    // SIGKILL mid-image: the next command records the prepare as Failed and finds nothing staged.
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(i32::try_from(pid).unwrap()).unwrap(),
        rustix::process::Signal::KILL,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while alive(pid) {
        assert!(Instant::now() < deadline, "pid {pid} survived SIGKILL");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_refused(
        &node.tbu(&["activate"]),
        65,
        "'activate' is not allowed in update state Available",
    );
    let status = node.status();
    let recent = &status["most_recent_command"];
    assert_eq!(recent["cmd_type"], "prepare");
    assert_eq!(recent["cmd_status"], "Failed");
    assert_ne!(recent["exit_status"], 0);
    assert!(
        recent["stderr"].as_str().unwrap().starts_with(&format!(
            "interrupted: thar-be-updates prepare (pid {pid}, started "
        )),
        "{status:#}"
    );
    assert_eq!(status["update_progress"], serde_json::Value::Null);
    assert_eq!(status["staging_partition"], serde_json::Value::Null);
    assert_eq!(status["update_state"], "Available");
    // The half-written set cannot boot.
    assert_eq!(node.bits_b(), (0, 0, false));

    // The lock is free: the next prepare runs (the stall was for the first download only) and stages 1.2.0.
    let status = node.succeed("prepare");
    assert_eq!(status["update_state"], "Staged");
    node.assert_b_holds("1.2.0");
}

#[test]
fn a_failed_prepare_leaves_available_with_nothing_staged() {
    if !tools() {
        return;
    }
    let server = serve_world();
    let node = TestNode::new("1.0.0");
    node.configure(step("1.2.0"), &server, "");
    node.succeed("refresh");
    node.succeed("prepare");
    node.assert_b_holds("1.2.0");

    // The repository now fails the root image: a second prepare clears set B and fails.
    let root = chain::image_names(super::support::VARIANT, super::support::ARCH, "1.2.0").root;
    server.add_rule(Rule::new(PathMatch::suffix(root), Fault::Status(404)));
    let status = node.complete("prepare");
    let recent = &status["most_recent_command"];
    assert_eq!(recent["cmd_status"], "Failed", "{status:#}");
    assert_eq!(recent["exit_status"], 1);
    assert!(
        recent["stderr"]
            .as_str()
            .unwrap()
            .starts_with("updog update-image failed: "),
        "{status:#}"
    );
    assert_eq!(status["update_state"], "Available");
    assert_eq!(status["staging_partition"], serde_json::Value::Null);
    assert_eq!(status["update_progress"], serde_json::Value::Null);
    assert_eq!(node.bits_b(), (0, 0, false));
}
