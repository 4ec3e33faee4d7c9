//! The update actions through a stand-in thar-be-updates (the real one is tested end to end elsewhere): arguments,
//! upstream's exit code → HTTP status mapping with its stderr as the body, a detached child that does not hold the
//! request open, the status file, and the reboot command.

use crate::support::*;
use std::time::{Duration, Instant};

const ACTIONS: [(&str, &str); 4] = [
    ("/actions/refresh-updates", "refresh"),
    ("/actions/prepare-update", "prepare"),
    ("/actions/activate-update", "activate"),
    ("/actions/deactivate-update", "deactivate"),
];

#[test]
fn each_action_runs_its_command_and_maps_the_exit_code_as_upstream() {
    let node = TestNode::new();
    let server = node.start();
    let calls = node.sysroot().join("tbu-calls");
    for (uri, command) in ACTIONS {
        for (code, status) in [
            (0, 204),
            (64, 423),
            (65, 409),
            (66, 404),
            (67, 404),
            (1, 500),
            (2, 500),
            (70, 500),
        ] {
            std::fs::write(node.sysroot().join("tbu-exit"), code.to_string()).unwrap();
            std::fs::remove_file(&calls).ok();
            let reply = server.request("POST", uri, b"");
            assert_eq!(reply.status, status, "{uri} exit {code}: {}", reply.text());
            assert_eq!(
                std::fs::read_to_string(&calls).unwrap(),
                format!("--sysroot {} {command}\n", node.sysroot().display())
            );
            if code == 0 {
                assert!(reply.body.is_empty(), "{}", reply.text());
            } else {
                let text = reply.text();
                assert!(
                    text.contains(&format!("thar-be-updates {command} exited with {code}"))
                        && text.contains(&format!("tbu says: {command} refused")),
                    "{uri} exit {code}: {text}"
                );
            }
        }
    }
}

#[test]
fn a_thar_be_updates_killed_by_a_signal_is_a_500() {
    let node = TestNode::new();
    let server = node.start();
    std::fs::write(node.sysroot().join("tbu-mode"), "signal").unwrap();
    let killed = server.request("POST", "/actions/refresh-updates", b"");
    assert_eq!(killed.status, 500, "{}", killed.text());
    assert!(
        killed.text().contains("was killed by signal 9"),
        "{}",
        killed.text()
    );
}

#[test]
fn a_missing_program_answers_500_naming_it() {
    let node = TestNode::new();
    let missing = node.sysroot().join("no-such-tbu");
    let server = node.spawn(&["--thar-be-updates", missing.to_str().unwrap()]);
    wait_for_socket(&server);
    let reply = server.request("POST", "/actions/prepare-update", b"");
    assert_eq!(reply.status, 500, "{}", reply.text());
    assert!(
        reply
            .text()
            .contains(&format!("Failed to run {} prepare", missing.display())),
        "{}",
        reply.text()
    );
}

fn wait_for_socket(server: &Server) {
    let start = Instant::now();
    while try_request(&server.socket, "GET", "/os", b"").is_err() {
        assert!(start.elapsed() < BOUND, "apiserver did not come up");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_detached_child_keeping_stderr_open_does_not_hold_the_request() {
    let node = TestNode::new();
    let server = node.start();
    std::fs::write(node.sysroot().join("tbu-mode"), "detach").unwrap();
    // The stand-in leaves `sleep 120` running with its stderr; reading stderr through a pipe would wait for it.
    let (sender, receiver) = std::sync::mpsc::channel();
    let socket = server.socket.clone();
    std::thread::spawn(move || {
        let _ = sender.send(try_request(&socket, "POST", "/actions/prepare-update", b""));
    });
    let reply = receiver.recv_timeout(BOUND);
    let child: i32 = std::fs::read_to_string(node.sysroot().join("tbu-child"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(child).unwrap(),
        rustix::process::Signal::KILL,
    )
    .ok();
    let reply = reply
        .expect("the request returned while the detached child still ran")
        .unwrap();
    assert_eq!(reply.status, 204, "{}", reply.text());
}

#[test]
fn status_is_404_before_the_first_command_and_the_file_after() {
    let node = TestNode::new();
    let server = node.start();
    let missing = server.get("/updates/status");
    assert_eq!(missing.status, 404, "{}", missing.text());
    assert!(missing.text().contains("status.json"), "{}", missing.text());

    let status = br#"{"update_state":"Available","available_updates":["1.1.0"],"chosen_update":{"arch":"x86_64","version":"1.1.0","variant":"aws-k8s-1.29"},"active_partition":null,"staging_partition":null,"most_recent_command":{"cmd_type":"refresh","cmd_status":"Success","timestamp":"2026-12-03T12:00:00Z","exit_status":0,"stderr":""}}"#;
    let dir = node.sysroot().join("run/cache/thar-be-updates");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("status.json"), status).unwrap();
    let reply = server.get("/updates/status");
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.body, status);
}

#[test]
fn reboot_starts_the_configured_command() {
    let node = TestNode::new();
    let server = node.start();
    let reply = server.request("POST", "/actions/reboot", b"");
    assert_eq!(reply.status, 204, "{}", reply.text());
    let calls = node.sysroot().join("reboot-calls");
    let start = Instant::now();
    while std::fs::read_to_string(&calls).unwrap_or_default() != "rebooted\n" {
        assert!(start.elapsed() < BOUND, "the reboot command never ran");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_reboot_command_that_cannot_start_is_a_500_naming_it() {
    let node = TestNode::new();
    std::fs::write(
        node.sysroot().join("etc/apiserver.toml"),
        "reboot_command = [\"/no/such/reboot\", \"now\"]\n",
    )
    .unwrap();
    let server = node.start();
    let reply = server.request("POST", "/actions/reboot", b"");
    assert_eq!(reply.status, 500, "{}", reply.text());
    assert!(reply.text().contains("/no/such/reboot"), "{}", reply.text());
}

#[test]
fn a_thar_be_updates_that_never_answers_is_killed_and_a_500_after_the_timeout() {
    let node = TestNode::new();
    let hung = node.write_script(
        "hung-tbu",
        "#!/bin/sh\necho started > \"$(dirname \"$0\")/hung-started\"\nexec sleep 600\n",
    );
    std::fs::write(
        node.sysroot().join("etc/apiserver.toml"),
        format!(
            "thar_be_updates = \"{}\"\nupdate_answer_timeout_seconds = 1\n",
            hung.display()
        ),
    )
    .unwrap();
    let server = node.start();
    let reply = server.request("POST", "/actions/prepare-update", b"");
    assert_eq!(reply.status, 500, "{}", reply.text());
    assert!(
        reply
            .text()
            .contains("prepare did not answer within 1s; it was killed"),
        "{}",
        reply.text()
    );
    assert!(node.sysroot().join("hung-started").exists());
    // The server still answers: the hung program held no thread.
    assert_eq!(server.get("/settings").status, 200);
}

/// A status whose `update_progress` names a running command.
fn status_running_in(pid: u32) -> String {
    format!(
        r#"{{"update_state":"Available","available_updates":["1.1.0"],"chosen_update":{{"arch":"x86_64","version":"1.1.0","variant":"aws-k8s-1.29"}},"active_partition":null,"staging_partition":null,"most_recent_command":{{"cmd_type":"refresh","cmd_status":"Success","timestamp":"2026-12-03T12:00:00Z","exit_status":0,"stderr":""}},"update_progress":{{"cmd_type":"prepare","started":"2026-12-03T12:00:01Z","pid":{pid}}}}}"#
    )
}

#[test]
fn a_status_naming_a_dead_worker_is_recovered_through_thar_be_updates_before_it_is_served() {
    let node = TestNode::new();
    let root = node.sysroot();
    // A stand-in whose `recover` writes recovered.json as the status (unless tbu-exit says otherwise).
    let program = node.write_script(
        "recovering-tbu",
        &format!(
            "#!/bin/sh\nroot={root}\necho \"$@\" >> \"$root/tbu-calls\"\n\
             code=\"$(cat \"$root/tbu-exit\" 2>/dev/null || echo 0)\"\n\
             if [ \"$3\" = recover ] && [ \"$code\" = 0 ]; then\n\
             cp \"$root/recovered.json\" \"$root/run/cache/thar-be-updates/status.json\"\nfi\n\
             exit \"$code\"\n",
            root = root.display()
        ),
    );
    std::fs::write(
        root.join("etc/apiserver.toml"),
        format!("thar_be_updates = \"{}\"\n", program.display()),
    )
    .unwrap();
    let recovered = r#"{"update_state":"Available","update_progress":null}"#;
    std::fs::write(root.join("recovered.json"), recovered).unwrap();
    let dir = root.join("run/cache/thar-be-updates");
    std::fs::create_dir_all(&dir).unwrap();
    let calls = root.join("tbu-calls");
    let server = node.start();

    // A worker that was killed: its pid is no process any more.
    let mut gone = std::process::Command::new("true").spawn().unwrap();
    let dead = gone.id();
    gone.wait().unwrap();
    std::fs::write(dir.join("status.json"), status_running_in(dead)).unwrap();
    let reply = server.get("/updates/status");
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.text(), recovered);
    assert_eq!(
        std::fs::read_to_string(&calls).unwrap(),
        format!("--sysroot {} recover\n", root.display())
    );

    // A live process that is not thar-be-updates (this test) is no worker either.
    std::fs::remove_file(&calls).unwrap();
    std::fs::write(
        dir.join("status.json"),
        status_running_in(std::process::id()),
    )
    .unwrap();
    assert_eq!(server.get("/updates/status").text(), recovered);
    assert!(
        std::fs::read_to_string(&calls)
            .unwrap()
            .ends_with(" recover\n")
    );

    // recover finds the lock held (64): a command runs and owns the status, which is served as it is.
    std::fs::remove_file(&calls).unwrap();
    std::fs::write(root.join("tbu-exit"), "64").unwrap();
    let running = status_running_in(dead);
    std::fs::write(dir.join("status.json"), &running).unwrap();
    let reply = server.get("/updates/status");
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.text(), running);
    assert!(
        std::fs::read_to_string(&calls)
            .unwrap()
            .ends_with(" recover\n")
    );

    // A live worker: served as it is, no recovery.
    std::fs::remove_file(&calls).unwrap();
    let mut worker = {
        use std::os::unix::process::CommandExt;
        std::process::Command::new("sleep")
            .arg0(&program)
            .arg("30")
            .spawn()
            .unwrap()
    };
    let running = status_running_in(worker.id());
    std::fs::write(dir.join("status.json"), &running).unwrap();
    let reply = server.get("/updates/status");
    worker.kill().unwrap();
    worker.wait().unwrap();
    assert_eq!(reply.text(), running);
    assert!(!calls.exists(), "recover ran for a live worker");
}

#[test]
fn a_symlink_at_status_json_is_a_500_naming_it_and_its_target_is_not_served() {
    let node = TestNode::new();
    let server = node.start();
    let dir = node.sysroot().join("run/cache/thar-be-updates");
    std::fs::create_dir_all(&dir).unwrap();
    let planted = node.sysroot().join("planted.json");
    std::fs::write(&planted, r#"{"update_state":"Ready","planted":true}"#).unwrap();
    let status = dir.join("status.json");
    std::os::unix::fs::symlink(&planted, &status).unwrap();
    let reply = server.get("/updates/status");
    assert_eq!(reply.status, 500, "{}", reply.text());
    assert!(!reply.text().contains("planted"), "{}", reply.text());
    assert!(
        reply.text().contains(&format!(
            "{}: a symlink, not a regular file",
            status.display()
        )),
        "{}",
        reply.text()
    );
}
