//! The Kubernetes update operator (brupop) drives a node only through `apiclient raw`; this replays its agent's
//! exact sequence and checks what it parses at each step.

use signpost::SetSelect;
use std::time::Duration;
use system_tests::{ApiWorld, binaries, version_of};

fn command_succeeded(status: &serde_json::Value, cmd_type: &str) -> bool {
    status["most_recent_command"]["cmd_type"] == cmd_type
        && status["most_recent_command"]["cmd_status"] == "Success"
}

#[test]
fn the_update_operators_agent_sequence_through_apiclient_raw() {
    let Some(binaries) = binaries("the_update_operators_agent_sequence…") else {
        return;
    };
    let mut world = ApiWorld::new(binaries);

    // The agent reads the OS version it reports on its node's custom resource.
    let os = world.raw_json("/os");
    assert_eq!(os["version_id"], "1.0.0", "{os}");
    for field in ["arch", "build_id", "pretty_name", "variant_id"] {
        assert!(os[field].is_string(), "/os lacks {field}: {os}");
    }

    // refresh, then the status it parses: update_state, chosen_update, most_recent_command.
    world.apiclient_ok(&["raw", "-u", "/actions/refresh-updates", "-m", "POST"]);
    let status = world.poll_status(Duration::from_secs(30), "refresh", |s| {
        command_succeeded(s, "refresh")
    });
    assert_eq!(status["update_state"], "Available", "{status}");
    assert_eq!(status["chosen_update"]["version"], "1.2.0", "{status}");
    assert!(
        status["chosen_update"]["arch"].is_string()
            && status["chosen_update"]["variant"].is_string()
    );
    assert!(
        status["available_updates"]
            .as_array()
            .is_some_and(|a| a.iter().any(|v| v == "1.2.0")),
        "{status}"
    );
    assert!(status["most_recent_command"]["timestamp"].is_string());
    assert!(status["most_recent_command"]["exit_status"].is_number());
    assert!(status["most_recent_command"]["stderr"].is_string());
    assert_eq!(status["active_partition"]["image"]["version"], "1.0.0");

    world.apiclient_ok(&["raw", "-u", "/actions/prepare-update", "-m", "POST"]);
    let status = world.poll_status(Duration::from_secs(120), "prepare", |s| {
        s["update_state"] == "Staged"
    });
    assert!(command_succeeded(&status, "prepare"), "{status}");
    assert_eq!(status["staging_partition"]["image"]["version"], "1.2.0");

    world.apiclient_ok(&["raw", "-u", "/actions/activate-update", "-m", "POST"]);
    let status = world.poll_status(Duration::from_secs(30), "activate", |s| {
        s["update_state"] == "Ready"
    });
    assert!(command_succeeded(&status, "activate"), "{status}");
    assert_eq!(world.next_set(), SetSelect::B);

    world.apiclient_ok(&["raw", "-u", "/actions/reboot", "-m", "POST"]);
    assert_eq!(world.reboot_requests(1), 1);
    let booted = world.reboot();
    assert_eq!(version_of(&booted), "1.2.0");
    assert_eq!(world.raw_json("/os")["version_id"], "1.2.0");
}
