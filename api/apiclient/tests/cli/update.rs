//! `update check|apply|cancel` and `reboot`: upstream's wait (initial timestamp, the action, polling through 423
//! until our command's new timestamp), its budgets, and how failures read.

use crate::fake_api::{FakeApi, Reply, Script, stderr, stdout};
use serde_json::{Value, json};

const STATUS: &str = "GET /updates/status";

/// A status body after `cmd` finished with `result` at `timestamp`, in `state`.
fn status(state: &str, cmd: &str, result: &str, timestamp: &str) -> Value {
    json!({
        "update_state": state,
        "available_updates": ["1.1.0", "1.0.0"],
        "chosen_update": {"arch": "x86_64", "version": "1.1.0", "variant": "aws-k8s-1.29"},
        "active_partition": {"image": {"arch": "x86_64", "version": "1.0.0", "variant": "aws-k8s-1.29"}, "next_to_boot": true},
        "staging_partition": null,
        "most_recent_command": {"cmd_type": cmd, "cmd_status": result, "timestamp": timestamp,
                                "exit_status": if result == "Success" { 0 } else { 1 },
                                "stderr": if result == "Success" { "" } else { "updog: failed to fetch the repository" }},
        "update_progress": null
    })
}

fn ok(value: &Value) -> Reply {
    Reply::json(value.to_string())
}

fn locked() -> Reply {
    Reply::new(423, "Update lock held")
}

fn actions() -> Script {
    Script::new()
        .route("POST", "/actions/refresh-updates", Reply::no_content())
        .route("POST", "/actions/prepare-update", Reply::no_content())
        .route("POST", "/actions/activate-update", Reply::no_content())
        .route("POST", "/actions/deactivate-update", Reply::no_content())
        .route("POST", "/actions/reboot", Reply::no_content())
}

#[test]
fn update_check_on_a_fresh_node_waits_through_423_and_prints_the_status() {
    let done = status("Available", "refresh", "Success", "2026-12-03T12:00:01Z");
    let api = FakeApi::start(actions().statuses([
        Reply::new(404, "no status yet"),
        locked(),
        locked(),
        ok(&done),
    ]));
    let output = api.apiclient(&["update", "check"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output), format!("{done:#}\n"));
    assert_eq!(
        api.calls(),
        [
            STATUS,
            "POST /actions/refresh-updates",
            STATUS,
            STATUS,
            STATUS
        ]
    );
}

#[test]
fn a_finished_command_of_another_type_keeps_the_wait_going() {
    let before = status("Ready", "activate", "Success", "t0");
    let other = status("Ready", "refresh", "Success", "t1");
    let done = status("Staged", "deactivate", "Success", "t2");
    let api = FakeApi::start(actions().statuses([ok(&before), ok(&other), ok(&done)]));
    let output = api.apiclient(&["update", "cancel"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        api.calls(),
        [STATUS, "POST /actions/deactivate-update", STATUS, STATUS]
    );
}

#[test]
fn a_failed_command_is_an_error_carrying_its_stderr() {
    let api = FakeApi::start(actions().statuses([
        ok(&status("Idle", "refresh", "Success", "t0")),
        ok(&status("Idle", "refresh", "Failed", "t1")),
    ]));
    let output = api.apiclient(&["update", "check"]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(stdout(&output), "");
    assert!(
        stderr(&output).ends_with(
            "Failed to check for updates: refresh attempt failed with status 'Failed' (1): \
             updog: failed to fetch the repository\n"
        ),
        "{}",
        stderr(&output)
    );
}

#[test]
fn an_action_refused_with_423_is_upstreams_error_shape() {
    let api = FakeApi::start(
        Script::new()
            .route(
                "POST",
                "/actions/refresh-updates",
                Reply::new(423, "Update lock held"),
            )
            .statuses([ok(&status("Idle", "refresh", "Success", "t0"))]),
    );
    let output = api.apiclient(&["update", "check"]);
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(
        err.ends_with(
            "Failed to check for updates: Failed to make refresh request: Failed POST request to \
             '/actions/refresh-updates': Status 423 when POSTing /actions/refresh-updates: Update lock held\n"
        ),
        "{err}"
    );
    assert_eq!(
        api.calls(),
        [STATUS, "POST /actions/refresh-updates"],
        "no polling after a refused action"
    );
}

#[test]
fn the_wait_times_out_after_upstreams_attempt_count() {
    // The status never changes: cancel's budget is 50 attempts, of which upstream polls 49.
    let api =
        FakeApi::start(actions().statuses([ok(&status("Ready", "activate", "Success", "t0"))]));
    let output = api.apiclient(&["update", "cancel"]);
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(
        err.contains("Failed to cancel update: Timed out after waiting 50ms after POST to /actions/deactivate-update, unsure of result"),
        "{err}"
    );
    let calls = api.calls();
    assert_eq!(
        calls.iter().filter(|c| *c == STATUS).count(),
        1 + 49,
        "{calls:?}"
    );
}

#[test]
fn five_failed_status_checks_end_the_wait() {
    let api = FakeApi::start(actions().statuses([
        ok(&status("Available", "refresh", "Success", "t0")),
        Reply::new(500, "status unreadable"),
    ]));
    let output = api.apiclient(&["update", "apply"]);
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(
        err.contains(
            "Failed to check status 5 times after POST to /actions/prepare-update, unsure of result"
        ),
        "{err}"
    );
    assert!(
        err.contains("failure #5: status unreadable"),
        "each failure is logged: {err}"
    );
    let calls = api.calls();
    assert_eq!(
        calls.iter().filter(|c| *c == STATUS).count(),
        1 + 5,
        "{calls:?}"
    );
    assert!(!calls.iter().any(|c| c.contains("activate")), "{calls:?}");
}

#[test]
fn an_unreadable_initial_status_stops_before_the_action() {
    let api = FakeApi::start(actions().statuses([Reply::new(500, "broken")]));
    let output = api.apiclient(&["update", "check"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("Unable to check initial update status, got code '500': broken"),
        "{}",
        stderr(&output)
    );
    assert_eq!(api.calls(), [STATUS]);
}

#[test]
fn update_apply_prepares_then_activates_and_does_not_reboot() {
    let api = FakeApi::start(actions().statuses([
        ok(&status("Available", "refresh", "Success", "t0")),
        locked(),
        ok(&status("Staged", "prepare", "Success", "t1")),
        ok(&status("Staged", "prepare", "Success", "t1")),
        ok(&status("Ready", "activate", "Success", "t2")),
    ]));
    let output = api.apiclient(&["update", "apply"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("Update has been applied and will take effect on next reboot."),
        "{}",
        stderr(&output)
    );
    assert_eq!(
        api.calls(),
        [
            STATUS,
            "POST /actions/prepare-update",
            STATUS,
            STATUS,
            STATUS,
            "POST /actions/activate-update",
            STATUS
        ]
    );
}

#[test]
fn update_apply_check_reboot_refreshes_prepares_activates_and_reboots() {
    let refreshed = status("Available", "refresh", "Success", "t1");
    let api = FakeApi::start(actions().statuses([
        Reply::new(404, "no status yet"),
        ok(&refreshed),
        ok(&refreshed),
        ok(&status("Staged", "prepare", "Success", "t2")),
        ok(&status("Staged", "prepare", "Success", "t2")),
        ok(&status("Ready", "activate", "Success", "t3")),
    ]));
    let output = api.apiclient(&["update", "apply", "--check", "--reboot"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        stdout(&output),
        format!("{refreshed:#}\n"),
        "--check prints the status"
    );
    assert_eq!(
        api.calls(),
        [
            STATUS,
            "POST /actions/refresh-updates",
            STATUS,
            STATUS,
            "POST /actions/prepare-update",
            STATUS,
            STATUS,
            "POST /actions/activate-update",
            STATUS,
            "POST /actions/reboot",
        ]
    );
}

#[test]
fn update_apply_check_with_nothing_to_do_exits_0_without_preparing() {
    for (state, message) in [
        ("Idle", "No updates available"),
        ("Ready", "Update already applied"),
    ] {
        let api = FakeApi::start(actions().statuses([
            Reply::new(404, "no status yet"),
            ok(&status(state, "refresh", "Success", "t1")),
        ]));
        let output = api.apiclient(&["update", "apply", "-c", "-r"]);
        assert!(output.status.success(), "{state}: {}", stderr(&output));
        assert!(
            stderr(&output).contains(message),
            "{state}: {}",
            stderr(&output)
        );
        assert_eq!(
            api.calls(),
            [STATUS, "POST /actions/refresh-updates", STATUS],
            "{state}"
        );
    }
}

#[test]
fn a_prepare_in_the_wrong_state_explains_and_shows_the_409() {
    let api = FakeApi::start(
        Script::new()
            .route(
                "POST",
                "/actions/prepare-update",
                Reply::new(409, "prepare is not allowed in state Idle"),
            )
            .statuses([ok(&status("Idle", "refresh", "Success", "t0"))]),
    );
    let output = api.apiclient(&["update", "apply"]);
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    let last = err.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("Failed to apply update: Failed to prepare update.  This could mean"),
        "{err}"
    );
    assert!(
        err.ends_with(
            "Detail: Failed to make prepare request: Failed POST request to '/actions/prepare-update': \
             Status 409 when POSTing /actions/prepare-update: prepare is not allowed in state Idle\n"
        ),
        "{err}"
    );
}

#[test]
fn update_cancel_deactivates_and_reboot_posts_the_reboot_action() {
    let api = FakeApi::start(actions().statuses([
        ok(&status("Ready", "activate", "Success", "t0")),
        ok(&status("Staged", "deactivate", "Success", "t1")),
    ]));
    let output = api.apiclient(&["update", "cancel"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let output = api.apiclient(&["reboot"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        api.calls(),
        [
            STATUS,
            "POST /actions/deactivate-update",
            STATUS,
            "POST /actions/reboot"
        ]
    );
}

#[test]
fn a_failed_reboot_is_upstreams_error_shape() {
    let api = FakeApi::start(Script::new().route(
        "POST",
        "/actions/reboot",
        Reply::new(500, "reboot command failed"),
    ));
    let output = api.apiclient(&["reboot"]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output),
        "Failed POST request to '/actions/reboot': Status 500 when POSTing /actions/reboot: reboot command failed\n"
    );
}
