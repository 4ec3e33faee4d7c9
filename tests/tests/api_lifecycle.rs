//! Whole updates driven through the API, on a simulated node, with the real binaries: apiclient → apiserver →
//! thar-be-updates → updog → the disk; then the simulated reboot (bootloader, dm-verity, migrator, mark).

use signpost::SetSelect;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use system_tests::{ApiWorld, binaries, signal_process, stderr, version_of};

fn setting<'a>(settings: &'a [(String, String)], key: &str) -> Option<&'a str> {
    settings
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

#[test]
fn update_apply_reboot_runs_the_new_release_with_the_settings_set_through_the_api() {
    let Some(binaries) = binaries("update_apply_reboot_runs_the_new_release…") else {
        return;
    };
    let mut world = ApiWorld::new(binaries);

    // Settings changed through the API before the update: one the next release renames, one it keeps.
    world.apiclient_ok(&[
        "set",
        "hostname=api-node",
        "settings.kernel.lockdown=\"none\"",
        "motd=hello from the API",
    ]);
    let got: serde_json::Value =
        serde_json::from_str(&world.apiclient_ok(&["raw", "-u", "/settings"])).unwrap();
    assert_eq!(got["hostname"], "api-node");
    assert_eq!(got["kernel"]["lockdown"], "none");

    let check: serde_json::Value =
        serde_json::from_str(&world.apiclient_ok(&["update", "check"])).unwrap();
    assert_eq!(check["update_state"], "Available", "{check}");
    assert_eq!(check["chosen_update"]["version"], "1.2.0", "{check}");
    assert_eq!(check["most_recent_command"]["cmd_type"], "refresh");
    assert_eq!(check["most_recent_command"]["cmd_status"], "Success");

    world.apiclient_ok(&["update", "apply", "--reboot"]);
    let status = world.status();
    assert_eq!(status["update_state"], "Ready", "{status}");
    assert_eq!(status["staging_partition"]["image"]["version"], "1.2.0");
    assert_eq!(status["staging_partition"]["next_to_boot"], true);
    assert_eq!(status["active_partition"]["next_to_boot"], false);
    assert_eq!(world.next_set(), SetSelect::B);
    assert_eq!(
        world.reboot_requests(1),
        1,
        "apply --reboot asks for one reboot"
    );

    let booted = world.reboot();
    assert_eq!(booted.set, SetSelect::B);
    assert_eq!(version_of(&booted), "1.2.0");
    let os = world.raw_json("/os");
    assert_eq!(os["version_id"], "1.2.0", "{os}");

    // migrator carried the API's settings through both releases' migrations.
    let settings = world.settings();
    assert_eq!(
        setting(&settings, "settings.network.hostname"),
        Some("\"api-node\""),
        "{settings:?}"
    );
    assert_eq!(
        setting(&settings, "settings.hostname"),
        None,
        "{settings:?}"
    );
    assert_eq!(
        setting(&settings, "settings.kernel.lockdown"),
        Some("\"none\""),
        "{settings:?}"
    );
    assert_eq!(
        setting(&settings, "settings.motd"),
        Some("\"hello from the API\""),
        "{settings:?}"
    );

    // A fresh boot has no update status (it lives in /run); a refresh finds nothing newer.
    let after = world.apiclient(&["raw", "-u", "/updates/status"]);
    assert!(!after.status.success());
    assert!(stderr(&after).contains("Status 404"), "{}", stderr(&after));
    let check: serde_json::Value =
        serde_json::from_str(&world.apiclient_ok(&["update", "check"])).unwrap();
    assert_eq!(check["update_state"], "Idle", "{check}");
    assert_eq!(
        check["active_partition"]["image"]["version"], "1.2.0",
        "{check}"
    );
}

#[test]
fn update_cancel_before_the_reboot_keeps_the_node_on_its_release() {
    let Some(binaries) = binaries("update_cancel_before_the_reboot…") else {
        return;
    };
    let mut world = ApiWorld::new(binaries);
    world.apiclient_ok(&["update", "apply", "--check"]);
    assert_eq!(world.status()["update_state"], "Ready");
    assert_eq!(world.next_set(), SetSelect::B);
    assert_eq!(
        world.reboot_requests(0),
        0,
        "apply without --reboot does not reboot"
    );

    world.apiclient_ok(&["update", "cancel"]);
    let status = world.status();
    assert_eq!(status["update_state"], "Staged", "{status}");
    assert_eq!(status["most_recent_command"]["cmd_type"], "deactivate");
    assert_eq!(status["staging_partition"]["next_to_boot"], false);
    assert_eq!(status["active_partition"]["next_to_boot"], true);
    assert_eq!(world.next_set(), SetSelect::A);

    let booted = world.reboot();
    assert_eq!(booted.set, SetSelect::A);
    assert_eq!(version_of(&booted), "1.0.0");
}

#[test]
fn actions_in_the_wrong_state_are_409_and_a_second_update_while_one_runs_is_423() {
    let Some(binaries) = binaries("actions_in_the_wrong_state…") else {
        return;
    };
    let world = ApiWorld::new(binaries);

    // Nothing refreshed yet: Idle.
    for action in ["prepare-update", "activate-update", "deactivate-update"] {
        let uri = format!("/actions/{action}");
        let output = world.apiclient(&["raw", "-u", &uri, "-m", "POST"]);
        assert!(!output.status.success(), "{action} in Idle");
        assert!(
            stderr(&output).starts_with(&format!(
                "Failed POST request to '{uri}': Status 409 when POSTing {uri}: "
            )),
            "{action}: {}",
            stderr(&output)
        );
    }
    world.apiclient_ok(&["update", "check"]);
    for action in ["activate-update", "deactivate-update"] {
        let uri = format!("/actions/{action}");
        let output = world.apiclient(&["raw", "-u", &uri, "-m", "POST"]);
        assert!(
            stderr(&output).contains("Status 409"),
            "{action} in Available: {}",
            stderr(&output)
        );
    }

    // A slow server holds the prepare inside the ROOT download.
    let stall = world.stall_root_images(8);
    let first = Command::new(&world.binaries.apiclient)
        .arg("--socket-path")
        .arg(world.socket())
        .args(["update", "apply"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let progress = loop {
        let status = world.status();
        if !status["update_progress"].is_null() {
            break status["update_progress"].clone();
        }
        assert!(Instant::now() < deadline, "no progress shown: {status}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(progress["cmd_type"], "prepare", "{progress}");

    for args in [
        &["raw", "-u", "/actions/prepare-update", "-m", "POST"][..],
        &["raw", "-u", "/actions/refresh-updates", "-m", "POST"][..],
        &["update", "apply"][..],
    ] {
        let output = world.apiclient(args);
        assert!(!output.status.success(), "{args:?} while a prepare runs");
        assert!(
            stderr(&output).contains("Status 423"),
            "{args:?}: {}",
            stderr(&output)
        );
    }

    let finished = first.wait_with_output().unwrap();
    assert!(
        finished.status.success(),
        "the first apply: {}",
        stderr(&finished)
    );
    assert!(world.published.server.rule_hits(stall).unwrap_or(0) >= 1);
    let status = world.status();
    assert_eq!(status["update_state"], "Ready", "{status}");
    assert!(status["update_progress"].is_null(), "{status}");
}

#[test]
fn a_non_root_client_is_refused() {
    let Some(binaries) = binaries("a_non_root_client_is_refused") else {
        return;
    };
    if !(repo_fixtures::require::require_root() && repo_fixtures::require::require_tool("setpriv"))
    {
        return;
    }
    let world = ApiWorld::new(binaries);
    let socket = world.socket();
    let mode = std::fs::symlink_metadata(&socket)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the socket is born 0600");
    // Only the socket's own mode may stand in the way: the directories are opened up, and the client is a copy
    // anyone may run.
    for dir in socket
        .ancestors()
        .skip(1)
        .take_while(|d| d.starts_with(world.dir.path()))
    {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let client = world.dir.path().join("apiclient");
    std::fs::copy(&world.binaries.apiclient, &client).unwrap();
    std::fs::set_permissions(&client, std::fs::Permissions::from_mode(0o755)).unwrap();
    let as_nobody = |socket: &std::path::Path, args: &[&str]| {
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&client)
            .arg("--socket-path")
            .arg(socket)
            .args(args)
            .output()
            .expect("run setpriv (util-linux)")
    };
    let output = as_nobody(&socket, &["raw", "-u", "/settings"]);
    assert!(!output.status.success());
    let err = stderr(&output);
    assert!(err.contains(&socket.display().to_string()), "{err}");
    assert!(err.to_lowercase().contains("permission denied"), "{err}");

    // Opened up by a careless operator, the socket still refuses: the server checks who connects.
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    let before = world.settings();
    let output = as_nobody(&socket, &["set", "motd=owned"]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("Status 403"),
        "{}",
        stderr(&output)
    );
    assert_eq!(world.settings(), before, "a refused client changed nothing");
}

#[test]
fn a_reboot_in_the_middle_of_a_prepare_keeps_the_node_on_its_release_and_a_later_update_works() {
    let Some(binaries) = binaries("a_reboot_in_the_middle_of_a_prepare…") else {
        return;
    };
    let mut world = ApiWorld::new(binaries);
    world.apiclient_ok(&["update", "check"]);
    let stall = world.stall_root_images(20);
    world.apiclient_ok(&["raw", "-u", "/actions/prepare-update", "-m", "POST"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    let progress = loop {
        let status = world.status();
        if status["update_progress"]["phase"] == "write" {
            break status["update_progress"].clone();
        }
        assert!(Instant::now() < deadline, "no write progress: {status}");
        std::thread::sleep(Duration::from_millis(50));
    };

    // The operator reboots anyway; a reboot kills the download (the worker's pid is in the status).
    world.apiclient_ok(&["reboot"]);
    assert_eq!(world.reboot_requests(1), 1);
    let pid = progress["pid"].as_i64().expect("the worker's pid");
    signal_process(pid, rustix::process::Signal::KILL);
    let booted = world.reboot();
    assert_eq!(booted.set, SetSelect::A);
    assert_eq!(version_of(&booted), "1.0.0");
    let state = signpost::State::load(&world.node.location()).unwrap();
    assert_eq!(
        state.next(),
        Some(SetSelect::A),
        "the half-written set B boots never"
    );

    // After the reboot the status is gone (it lives in /run); the update runs again, from the start.
    world.published.server.remove_rule(stall);
    world.apiclient_ok(&["update", "apply", "--check", "--reboot"]);
    assert_eq!(world.reboot_requests(2), 2);
    let booted = world.reboot();
    assert_eq!(booted.set, SetSelect::B);
    assert_eq!(version_of(&booted), "1.2.0");
}

#[test]
fn a_version_lock_set_through_the_api_steers_the_update() {
    let Some(binaries) = binaries("a_version_lock_set_through_the_api…") else {
        return;
    };
    let mut world = ApiWorld::new(binaries);
    world.apiclient_ok(&["set", "updates.version-lock=1.1.0"]);
    let rendered =
        std::fs::read_to_string(world.node.sysroot().join("etc/thar-be-updates.toml")).unwrap();
    assert!(rendered.contains("version-lock = \"1.1.0\""), "{rendered}");

    let check: serde_json::Value =
        serde_json::from_str(&world.apiclient_ok(&["update", "check"])).unwrap();
    assert_eq!(check["chosen_update"]["version"], "1.1.0", "{check}");
    world.apiclient_ok(&["update", "apply", "--reboot"]);
    assert_eq!(world.reboot_requests(1), 1);
    let booted = world.reboot();
    assert_eq!(version_of(&booted), "1.1.0");

    // Back to the newest release: the lock is lifted through the API too.
    world.apiclient_ok(&["set", "updates.version-lock=latest"]);
    let check: serde_json::Value =
        serde_json::from_str(&world.apiclient_ok(&["update", "check"])).unwrap();
    assert_eq!(check["chosen_update"]["version"], "1.2.0", "{check}");
}
