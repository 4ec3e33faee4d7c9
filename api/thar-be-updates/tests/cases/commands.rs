//! Every command in every state: upstream's transitions and exit codes, what each does to the disk, and the
//! status file itself.

use super::support::{TestNode, assert_refused, image, run_tbu, serve_world, step, tools};
use signpost::SetSelect;
use std::collections::BTreeSet;

const NOT_ALLOWED: i32 = 65;

#[track_caller]
fn assert_not_allowed(node: &TestNode, command: &str, state: &str) {
    assert_refused(
        &node.tbu(&[command]),
        NOT_ALLOWED,
        &format!("'{command}' is not allowed in update state {state}"),
    );
    assert_eq!(node.status()["update_state"], state);
}

#[test]
fn refresh_prepare_activate_deactivate_walk_upstreams_state_machine_and_the_disk() {
    if !tools() {
        return;
    }
    let server = serve_world();
    let node = TestNode::new("1.0.0");
    node.configure(step("1.2.0"), &server, "");

    // A symlink planted at status.json is replaced, never written through.
    let victim = node.path("victim");
    std::fs::write(&victim, "precious").unwrap();
    std::fs::create_dir_all(node.status_path().parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(&victim, node.status_path()).unwrap();

    // Idle (the status is created by the first command, even a refused one).
    for command in ["prepare", "activate", "deactivate"] {
        assert_not_allowed(&node, command, "Idle");
    }
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    assert!(
        std::fs::symlink_metadata(node.status_path())
            .unwrap()
            .is_file()
    );
    let status = node.status();
    let keys: BTreeSet<&str> = status
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        BTreeSet::from([
            "update_state",
            "available_updates",
            "chosen_update",
            "active_partition",
            "staging_partition",
            "most_recent_command",
            "update_progress",
        ])
    );
    assert_eq!(status["available_updates"], serde_json::json!([]));
    assert_eq!(status["chosen_update"], serde_json::Value::Null);
    assert_eq!(
        status["active_partition"],
        serde_json::json!({"image": image("1.0.0"), "next_to_boot": true})
    );
    assert_eq!(status["staging_partition"], serde_json::Value::Null);
    assert_eq!(status["most_recent_command"]["cmd_type"], "refresh");
    assert_eq!(status["most_recent_command"]["cmd_status"], "Unknown");
    assert_eq!(status["update_progress"], serde_json::Value::Null);

    // Idle → Available (no thar-be-updates.toml: version-lock "latest").
    let status = node.succeed("refresh");
    assert_eq!(status["update_state"], "Available");
    assert_eq!(status["chosen_update"], image("1.2.0"));
    assert_eq!(
        status["available_updates"],
        serde_json::json!(["1.2.0", "1.1.0", "1.0.0"])
    );
    assert_eq!(status["most_recent_command"]["stderr"], "");
    for command in ["activate", "deactivate"] {
        assert_not_allowed(&node, command, "Available");
    }

    // Available → Staged: set B really holds 1.2.0, valid but not next.
    let status = node.succeed("prepare");
    assert_eq!(status["update_state"], "Staged");
    assert_eq!(
        status["staging_partition"],
        serde_json::json!({"image": image("1.2.0"), "next_to_boot": false})
    );
    assert_eq!(status["active_partition"]["next_to_boot"], true);
    node.assert_b_holds("1.2.0");
    assert_eq!(node.bits_b(), (0, 1, false));
    assert_eq!(node.disk_state().next(), Some(SetSelect::A));
    assert_not_allowed(&node, "deactivate", "Staged");
    // A refresh in Staged keeps the state.
    let status = node.succeed("refresh");
    assert_eq!(status["update_state"], "Staged");
    assert_eq!(status["staging_partition"]["image"], image("1.2.0"));

    // Staged → Ready: set B boots next.
    let status = node.succeed("activate");
    assert_eq!(status["update_state"], "Ready");
    assert_eq!(status["staging_partition"]["next_to_boot"], true);
    assert_eq!(status["active_partition"]["next_to_boot"], false);
    assert_eq!(node.disk_state().next(), Some(SetSelect::B));
    for command in ["prepare", "activate"] {
        assert_not_allowed(&node, command, "Ready");
    }

    // Ready → Staged: the running set boots next again.
    let status = node.succeed("deactivate");
    assert_eq!(status["update_state"], "Staged");
    assert_eq!(status["staging_partition"]["next_to_boot"], false);
    assert_eq!(status["active_partition"]["next_to_boot"], true);
    assert_eq!(node.disk_state().next(), Some(SetSelect::A));

    // And once more: the node boots the staged 1.2.0.
    node.succeed("activate");
    node.boot_expecting(SetSelect::B, "1.2.0");
}

#[test]
fn prepare_without_a_chosen_update_is_66_and_activate_with_nothing_staged_is_67() {
    let sysroot = tempfile::tempdir().unwrap();
    let status_path = sysroot.path().join("run/cache/thar-be-updates/status.json");
    std::fs::create_dir_all(status_path.parent().unwrap()).unwrap();
    let status = |state: &str| {
        serde_json::json!({
            "update_state": state,
            "available_updates": [],
            "chosen_update": null,
            "active_partition": {"image": image("1.0.0"), "next_to_boot": true},
            "staging_partition": null,
            "most_recent_command": {"cmd_type": "refresh", "cmd_status": "Success",
                "timestamp": "2026-12-03T12:00:00Z", "exit_status": 0, "stderr": ""},
            "update_progress": null
        })
        .to_string()
    };
    std::fs::write(&status_path, status("Available")).unwrap();
    assert_refused(
        &run_tbu(sysroot.path(), &["prepare"]),
        66,
        "No update has been chosen to prepare",
    );
    std::fs::write(&status_path, status("Staged")).unwrap();
    assert_refused(
        &run_tbu(sysroot.path(), &["activate"]),
        67,
        "No update has been staged to activate",
    );
    // A refusal writes nothing.
    assert_eq!(
        std::fs::read_to_string(&status_path).unwrap(),
        status("Staged")
    );
}

#[test]
fn usage_errors_exit_2_and_a_malformed_config_or_status_is_an_error_naming_the_file() {
    let sysroot = tempfile::tempdir().unwrap();
    for args in [&[][..], &["reboot"][..], &["refresh", "--now"][..]] {
        let run = run_tbu(sysroot.path(), args);
        assert_eq!(run.code, Some(2), "{args:?}: {run:#?}");
    }

    let config = sysroot.path().join("etc/thar-be-updates.toml");
    std::fs::create_dir_all(config.parent().unwrap()).unwrap();
    std::fs::write(&config, "version-lock = \"someday\"\n").unwrap();
    assert_refused(
        &run_tbu(sysroot.path(), &["refresh"]),
        1,
        &format!(
            "Invalid thar-be-updates config {}: version-lock 'someday'",
            config.display()
        ),
    );
    std::fs::remove_file(&config).unwrap();

    let status = sysroot.path().join("run/cache/thar-be-updates/status.json");
    std::fs::create_dir_all(status.parent().unwrap()).unwrap();
    std::fs::write(&status, "{\"update_state\": ").unwrap();
    assert_refused(
        &run_tbu(sysroot.path(), &["refresh"]),
        1,
        &format!("Corrupt update status {}", status.display()),
    );
}
