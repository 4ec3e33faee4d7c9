//! Attacks on the node API (issue 10): the file system lies, things are killed at the worst moment, two writers
//! at once, hostile bytes. Each test states the invariant it checks; a failing test is a break.

use repo_fixtures::api::ApiServer;
use signpost::SetSelect;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use system_tests::{ApiWorld, binaries, signal_process, version_of};

/// One HTTP/1.1 request over the unix socket (`Connection: close`); returns (status code, body).
fn http(socket: &Path, method: &str, uri: &str, body: &str) -> (u16, String) {
    let mut stream = UnixStream::connect(socket).expect("connect to the API socket");
    stream
        .set_read_timeout(Some(Duration::from_secs(90)))
        .unwrap();
    let request = format!(
        "{method} {uri} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .expect("read the response");
    parse_response(&response)
}

fn parse_response(response: &[u8]) -> (u16, String) {
    let text = String::from_utf8_lossy(response).into_owned();
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (code, body)
}

fn status_json(world: &ApiWorld) -> serde_json::Value {
    let (code, body) = http(&world.socket(), "GET", "/updates/status", "");
    assert_eq!(code, 200, "GET /updates/status: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("status is not JSON ({e}): {body}"))
}

/// Polls the status until `done` holds, at most `budget`.
fn wait_for(
    world: &ApiWorld,
    budget: Duration,
    what: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + budget;
    loop {
        let (code, body) = http(&world.socket(), "GET", "/updates/status", "");
        if code == 200 {
            let status: serde_json::Value = serde_json::from_str(&body).unwrap();
            if done(&status) {
                return status;
            }
            assert!(Instant::now() < deadline, "{what}: still {status}");
        } else {
            assert!(Instant::now() < deadline, "{what}: {code} {body}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn finished(status: &serde_json::Value, cmd: &str) -> bool {
    status["most_recent_command"]["cmd_type"] == cmd
        && status["most_recent_command"]["cmd_status"] != "Unknown"
        && status["update_progress"].is_null()
}

/// POSTs an action and waits until that command has finished; returns the status.
fn action(world: &ApiWorld, name: &str, cmd: &str) -> serde_json::Value {
    let before = http(&world.socket(), "GET", "/updates/status", "");
    let before_ts = if before.0 == 200 {
        serde_json::from_str::<serde_json::Value>(&before.1).unwrap()["most_recent_command"]
            ["timestamp"]
            .clone()
    } else {
        serde_json::Value::Null
    };
    let (code, body) = http(&world.socket(), "POST", &format!("/actions/{name}"), "");
    assert_eq!(code, 204, "POST /actions/{name}: {body}");
    wait_for(world, Duration::from_secs(60), name, |s| {
        finished(s, cmd) && s["most_recent_command"]["timestamp"] != before_ts
    })
}

/// The pids of processes whose command line contains every one of `needles` (only the ones this test started:
/// the needles include the test's own temporary sysroot).
fn pids_with(needles: &[&str]) -> Vec<i64> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i64>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if needles.iter().all(|n| cmdline.contains(n)) {
            pids.push(pid);
        }
    }
    pids
}

/// The world's apiserver's pid.
fn apiserver_pid(world: &ApiWorld) -> i64 {
    let sysroot = world.node.sysroot().display().to_string();
    let apiserver = world.binaries.apiserver.display().to_string();
    let pids = pids_with(&[&apiserver, &sysroot]);
    assert_eq!(pids.len(), 1, "one apiserver on {sysroot}: {pids:?}");
    pids[0]
}

fn status_dir(world: &ApiWorld) -> PathBuf {
    world.node.sysroot().join("run/cache/thar-be-updates")
}

// ───────────────────────────── 3. the file system lies ─────────────────────────────

/// thar-be-updates never reads a symlink at status.json ("a symlink planted at the path is replaced, never written
/// through or read"); the API must not serve what such a link points to either: the status it serves would be a
/// lie planted by whoever made the link (and any file the server can read is served to the client).
#[test]
fn a_symlink_at_status_json_is_not_served_as_the_status() {
    let Some(binaries) = binaries("a_symlink_at_status_json_is_not_served…") else {
        return;
    };
    let world = ApiWorld::new(binaries);
    action(&world, "refresh-updates", "refresh");
    let real = status_json(&world);
    assert_eq!(real["update_state"], "Available", "{real}");

    // A status that says an update is Ready, outside the sysroot.
    let mut fake = real.clone();
    fake["update_state"] = "Ready".into();
    fake["most_recent_command"]["stderr"] = "planted".into();
    let outside = world.dir.path().join("planted-status.json");
    std::fs::write(&outside, fake.to_string()).unwrap();
    let status_path = status_dir(&world).join("status.json");
    std::fs::remove_file(&status_path).unwrap();
    std::os::unix::fs::symlink(&outside, &status_path).unwrap();

    let (code, body) = http(&world.socket(), "GET", "/updates/status", "");
    assert!(
        !body.contains("planted"),
        "GET /updates/status served the target of a symlink planted at status.json ({code}): {body}"
    );
}

/// A status directory that is a symlink to elsewhere: nothing may be written through it (status.json, the
/// command's log), and nothing outside the sysroot.
#[test]
fn a_symlinked_status_directory_is_not_written_through() {
    let Some(binaries) = binaries("a_symlinked_status_directory…") else {
        return;
    };
    let world = ApiWorld::new(binaries);
    let outside = world.dir.path().join("outside-the-sysroot");
    std::fs::create_dir_all(&outside).unwrap();
    let dir = status_dir(&world);
    std::fs::create_dir_all(dir.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(&outside, &dir).unwrap();

    let (code, body) = http(&world.socket(), "POST", "/actions/refresh-updates", "");
    // Give an accepted refresh time to write its status.
    std::thread::sleep(Duration::from_secs(3));
    let written: Vec<_> = std::fs::read_dir(&outside)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(
        written.is_empty(),
        "refresh ({code} {body}) wrote {written:?} through the symlinked status directory into {}",
        outside.display()
    );
}

/// A FIFO planted at `<cmd>.log`: the detached child opens it for writing while holding thar-be-updates' lock. It
/// must be refused at once (as every other file here is), not block: a blocked child holds the lock forever, so
/// every later update action is 423 until someone finds and kills it.
#[test]
fn a_fifo_at_the_command_log_does_not_wedge_the_updater() {
    let Some(binaries) = binaries("a_fifo_at_the_command_log…") else {
        return;
    };
    let world = ApiWorld::new(binaries);
    let dir = status_dir(&world);
    std::fs::create_dir_all(&dir).unwrap();
    let fifo = dir.join("refresh.log");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &fifo,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();

    // The first refresh: answered at once (accepted or refused), never after the 60 s answer timeout.
    let (tx, rx) = std::sync::mpsc::channel();
    let socket = world.socket();
    std::thread::spawn(move || {
        let answer =
            std::panic::catch_unwind(|| http(&socket, "POST", "/actions/refresh-updates", ""));
        let _ = tx.send(answer.ok());
    });
    let first = rx.recv_timeout(Duration::from_secs(10));
    // Whatever the first answer, once the FIFO is gone the updater works again.
    std::fs::remove_file(&fifo).unwrap();
    let (code, body) = http(&world.socket(), "POST", "/actions/prepare-update", "");
    let sysroot = world.node.sysroot().display().to_string();
    let hung = pids_with(&["--detached-child", &sysroot]);
    // Clean up what this test started: unblock a child stuck opening the FIFO (it is gone; kill it).
    for pid in &hung {
        signal_process(*pid, rustix::process::Signal::KILL);
    }
    assert_ne!(
        code, 423,
        "the updater is wedged after a FIFO at refresh.log: {body} (hung detached children: {hung:?}; the first \
         refresh's answer after 10 s: {first:?})"
    );
    assert!(
        first.is_ok(),
        "POST /actions/refresh-updates with a FIFO at refresh.log was not answered within 10 s"
    );
}

// ───────────────────────────── 4. kill at the worst moment ─────────────────────────────

/// The worker of a prepare is SIGKILLed during the download. `update_progress` says "a command runs now, pid N";
/// once N is dead the status must stop saying so (clients and operators read it to know whether to wait).
#[test]
fn a_killed_prepare_worker_is_not_reported_as_still_running() {
    let Some(binaries) = binaries("a_killed_prepare_worker…") else {
        return;
    };
    let world = ApiWorld::new(binaries);
    action(&world, "refresh-updates", "refresh");
    let stall = world.stall_root_images(30);
    let (code, body) = http(&world.socket(), "POST", "/actions/prepare-update", "");
    assert_eq!(code, 204, "{body}");
    let progress = wait_for(&world, Duration::from_secs(30), "write phase", |s| {
        s["update_progress"]["phase"] == "write"
    })["update_progress"]
        .clone();
    let pid = progress["pid"].as_i64().unwrap();
    signal_process(pid, rustix::process::Signal::KILL);
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists() || {
            // A zombie is dead too.
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z "))
        },
        "the worker {pid} survived SIGKILL"
    );
    let status = status_json(&world);
    world.published.server.remove_rule(stall);
    assert!(
        status["update_progress"].is_null(),
        "the status still says a prepare runs in pid {pid}, which is dead: {status}"
    );
}

/// SIGKILL the worker in each phase of each command, then reboot: the running set boots, the settings are intact,
/// the status after the reboot is fresh and a later update works.
#[test]
fn killing_the_worker_in_each_phase_then_rebooting_keeps_the_node_and_a_later_update_works() {
    let Some(binaries) = binaries("killing_the_worker_in_each_phase…") else {
        return;
    };
    let mut world = ApiWorld::new(binaries);
    world.apiclient_ok(&["set", "motd=kept"]);
    let settings = world.settings();
    action(&world, "refresh-updates", "refresh");
    // Twice: the second kill lands on a prepare that follows a recovered one.
    for _ in 0..2 {
        let stall = world.stall_root_images(30);
        let (code, body) = http(&world.socket(), "POST", "/actions/prepare-update", "");
        assert_eq!(code, 204, "{body}");
        let progress = wait_for(&world, Duration::from_secs(30), "write", |s| {
            s["update_progress"]["phase"] == "write"
        })["update_progress"]
            .clone();
        signal_process(
            progress["pid"].as_i64().unwrap(),
            rustix::process::Signal::KILL,
        );
        world.published.server.remove_rule(stall);
        std::thread::sleep(Duration::from_millis(300));
        // The next command recovers the interrupted one.
        let status = action(&world, "refresh-updates", "refresh");
        assert_eq!(status["update_state"], "Available", "{status}");
        assert!(status["staging_partition"].is_null(), "{status}");
        assert_eq!(world.next_set(), SetSelect::A);
    }
    let booted = world.reboot();
    assert_eq!(booted.set, SetSelect::A);
    assert_eq!(version_of(&booted), "1.0.0");
    assert_eq!(world.settings(), settings);
    world.apiclient_ok(&["update", "apply", "--check", "--reboot"]);
    assert_eq!(world.reboot_requests(1), 1);
    let booted = world.reboot();
    assert_eq!(version_of(&booted), "1.2.0");
}

/// apiserver SIGKILLed in the middle of `POST /tx/commit`: a transaction is committed whole or not at all (a half
/// committed transaction is a set of settings nobody asked for: half of a new configuration live).
#[test]
fn a_commit_interrupted_by_sigkill_is_all_or_nothing() {
    let Some(binaries) = binaries("a_commit_interrupted_by_sigkill…") else {
        return;
    };
    let world = ApiWorld::new(binaries);
    // One transaction of many keys, so that its commit takes a while.
    let mut labels = serde_json::Map::new();
    for i in 0..2000 {
        labels.insert(format!("label-{i:05}"), format!("v{i}").into());
    }
    let body = serde_json::json!({"kubernetes": {"node-labels": labels}}).to_string();
    let (code, text) = http(&world.socket(), "PATCH", "/settings?tx=big", &body);
    assert_eq!(code, 204, "{text}");

    let pid = apiserver_pid(&world);
    let socket = world.socket();
    let commit = std::thread::spawn(move || {
        let mut stream = UnixStream::connect(&socket).unwrap();
        stream
            .write_all(b"POST /tx/commit?tx=big HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
            .unwrap();
        let mut sink = Vec::new();
        let _ = stream.read_to_end(&mut sink);
    });
    // Kill it once the commit has begun writing live keys.
    let live = world
        .node
        .sysroot()
        .join("var/lib/bottlerocket/datastore/current/live/settings/kubernetes/node-labels");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !live.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    std::thread::sleep(Duration::from_millis(30));
    signal_process(pid, rustix::process::Signal::KILL);
    commit.join().unwrap();

    let committed = world
        .settings()
        .iter()
        .filter(|(k, _)| k.starts_with("settings.kubernetes.node-labels."))
        .count();
    assert!(
        committed == 0 || committed == 2000,
        "a SIGKILL mid-commit left {committed} of the transaction's 2000 settings live"
    );
}

// ───────────────────────────── 2. two at once ─────────────────────────────

/// apiserver SIGKILLed while a prepare runs: the detached worker carries on, the status keeps progressing and
/// finishes; a restarted apiserver serves it.
#[test]
fn a_prepare_outlives_a_sigkilled_apiserver() {
    let Some(binaries) = binaries("a_prepare_outlives_a_sigkilled_apiserver") else {
        return;
    };
    let world = ApiWorld::new(binaries);
    action(&world, "refresh-updates", "refresh");
    let stall = world.stall_root_images(3);
    let (code, body) = http(&world.socket(), "POST", "/actions/prepare-update", "");
    assert_eq!(code, 204, "{body}");
    wait_for(&world, Duration::from_secs(30), "write", |s| {
        s["update_progress"]["phase"] == "write"
    });
    signal_process(apiserver_pid(&world), rustix::process::Signal::KILL);
    std::thread::sleep(Duration::from_millis(200));
    let _second = ApiServer::start(&world.binaries, &world.node).expect("a second apiserver");
    let status = wait_for(&world, Duration::from_secs(60), "prepare", |s| {
        finished(s, "prepare")
    });
    world.published.server.remove_rule(stall);
    assert_eq!(status["update_state"], "Staged", "{status}");
    assert_eq!(status["most_recent_command"]["cmd_status"], "Success");
}

/// The GPT changed by hand behind the API's back: in Staged, `signpost upgrade-to-inactive` makes the staged set
/// boot next. The API must not be left unable to cancel the update it reports (`update cancel` / deactivate), and
/// its status must say what boots next.
#[test]
fn an_upgrade_marked_by_hand_in_staged_can_still_be_cancelled_through_the_api() {
    let Some(binaries) = binaries("an_upgrade_marked_by_hand_in_staged…") else {
        return;
    };
    let world = ApiWorld::new(binaries);
    action(&world, "refresh-updates", "refresh");
    let staged = action(&world, "prepare-update", "prepare");
    assert_eq!(staged["update_state"], "Staged", "{staged}");
    let run = world.node.signpost(&["upgrade-to-inactive"]);
    let _ = run;
    assert_eq!(world.next_set(), SetSelect::B, "signpost by hand");

    // An operator who saw Staged activates; then changes their mind and cancels. The API reads the disk when it
    // accepts a command: the staged set already boots next, so the status is Ready and activate is refused (409),
    // or it is accepted and finishes.
    let (code, body) = http(&world.socket(), "POST", "/actions/activate-update", "");
    let activated = if code == 409 {
        let status = status_json(&world);
        assert_eq!(
            status["update_state"], "Ready",
            "activate refused ({body}) though the status is not Ready: {status}"
        );
        status
    } else {
        assert_eq!(code, 204, "activate: {body}");
        wait_for(&world, Duration::from_secs(30), "activate", |s| {
            finished(s, "activate")
        })
    };
    let (cancel_code, cancel_body) =
        http(&world.socket(), "POST", "/actions/deactivate-update", "");
    std::thread::sleep(Duration::from_secs(2));
    let status = status_json(&world);
    let next_is_staged = world.next_set() == SetSelect::B;
    assert_eq!(
        status["staging_partition"]["next_to_boot"], next_is_staged,
        "the status says the staged set boots next = {}, the disk says {next_is_staged}; activate gave {code} {body} \
         ({activated}), cancel gave {cancel_code} {cancel_body}: {status}",
        status["staging_partition"]["next_to_boot"]
    );
    assert!(
        !next_is_staged,
        "the update cannot be cancelled through the API: activate {code} {body}, then cancel {cancel_code} \
         {cancel_body}; status {status}"
    );
}

/// The GPT changed by hand in Ready: `signpost cancel-upgrade`. The API's state machine must not be wedged: a
/// later `update apply` (after a refresh) gets the update to boot next again, or the status says it is not Ready.
#[test]
fn an_upgrade_cancelled_by_hand_in_ready_does_not_wedge_the_api() {
    let Some(binaries) = binaries("an_upgrade_cancelled_by_hand_in_ready…") else {
        return;
    };
    let mut world = ApiWorld::new(binaries);
    world.apiclient_ok(&["update", "apply", "--check"]);
    assert_eq!(world.next_set(), SetSelect::B);
    let _ = world.node.signpost(&["cancel-upgrade"]);
    assert_eq!(world.next_set(), SetSelect::A, "signpost by hand");

    // The operator asks the API for the update again.
    let output = world.apiclient(&["update", "apply", "--check"]);
    let status = status_json(&world);
    if world.next_set() == SetSelect::A {
        assert_ne!(
            status["update_state"],
            "Ready",
            "the API says Ready (the staged set boots next) but the disk boots the running set; `update apply` \
             gave {:?} {}: {status}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let booted = world.reboot();
    assert_eq!(booted.set, SetSelect::B, "the update the API applied boots");
    let _ = version_of(&booted);
}

// ───────────────────────────── 5. hostile bytes ─────────────────────────────

/// A client that sends half a request and waits does not keep others from being served; nor do hostile
/// transaction names write outside the datastore's pending directory.
#[test]
fn half_requests_and_hostile_transaction_names() {
    let Some(binaries) = binaries("half_requests_and_hostile_transaction_names") else {
        return;
    };
    let world = ApiWorld::new(binaries);
    let mut idle = Vec::new();
    for _ in 0..50 {
        let mut stream = UnixStream::connect(world.socket()).unwrap();
        stream
            .write_all(
                b"PATCH /settings?tx=x HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"mo",
            )
            .unwrap();
        idle.push(stream);
    }
    let start = Instant::now();
    let (code, _) = http(&world.socket(), "GET", "/os", "");
    assert_eq!(code, 200);
    assert!(start.elapsed() < Duration::from_secs(2));

    // Pipelined: two requests in one write, two answers.
    let mut stream = UnixStream::connect(world.socket()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(
            b"GET /os HTTP/1.1\r\nHost: x\r\n\r\nGET /tx/list HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .unwrap();
    let mut all = Vec::new();
    let _ = stream.read_to_end(&mut all);
    let text = String::from_utf8_lossy(&all);
    assert_eq!(text.matches("HTTP/1.1 200").count(), 2, "{text}");

    let datastore = world.node.sysroot().join("var/lib/bottlerocket/datastore");
    let before = list_tree(world.dir.path());
    for tx in [
        "..",
        "../..",
        "..%2F..%2Fescaped",
        "%2Fabs",
        "a%00b",
        &"x".repeat(5000),
        "%2E%2E",
        ".",
    ] {
        let uri = format!("/settings?tx={tx}");
        let (code, body) = http(&world.socket(), "PATCH", &uri, "{\"motd\": \"tx\"}");
        assert!(code == 204 || code == 400, "PATCH {uri}: {code} {body}");
        let (code, body) = http(&world.socket(), "POST", &format!("/tx/commit?tx={tx}"), "");
        assert!(code == 200 || code == 400, "commit {tx}: {code} {body}");
    }
    let after = list_tree(world.dir.path());
    let outside: Vec<_> = after
        .difference(&before)
        .filter(|p| !p.starts_with(&datastore) && !p.ends_with("apiserver.log"))
        .collect();
    assert!(
        outside.is_empty(),
        "written outside the datastore: {outside:?}"
    );
    drop(idle);
}

fn list_tree(dir: &Path) -> std::collections::BTreeSet<PathBuf> {
    let mut out = std::collections::BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(p.clone());
            }
            out.insert(p);
        }
    }
    out
}

/// A second apiserver on the same sysroot is refused (the socket is live), and the first keeps serving.
#[test]
fn a_second_apiserver_is_refused_and_the_first_keeps_serving() {
    let Some(binaries) = binaries("a_second_apiserver_is_refused…") else {
        return;
    };
    let world = ApiWorld::new(binaries);
    let mut second = std::process::Command::new(&world.binaries.apiserver)
        .arg("--sysroot")
        .arg(world.node.sysroot())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = second.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = second.kill();
            let _ = second.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        status.is_some_and(|s| !s.success()),
        "a second apiserver on a live socket: {status:?}"
    );
    let (code, _) = http(&world.socket(), "GET", "/os", "");
    assert_eq!(code, 200, "the first still serves");
}

/// Many clients at once setting settings: every write succeeds (requests to one server queue for the datastore
/// lock) and the last word is one of theirs, never a mixture of two transactions.
#[test]
fn many_clients_setting_at_once_all_succeed_without_mixing() {
    let Some(binaries) = binaries("many_clients_setting_at_once…") else {
        return;
    };
    let world = ApiWorld::new(binaries);
    let socket = world.socket();
    let threads: Vec<_> = (0..16)
        .map(|i| {
            let socket = socket.clone();
            std::thread::spawn(move || {
                let tx = format!("client{i}");
                let body =
                    format!("{{\"motd\": \"m{i}\", \"ntp\": {{\"time-servers\": [\"s{i}\"]}}}}");
                let a = http(&socket, "PATCH", &format!("/settings?tx={tx}"), &body);
                let b = http(
                    &socket,
                    "POST",
                    &format!("/tx/commit_and_apply?tx={tx}"),
                    "",
                );
                (a, b)
            })
        })
        .collect();
    for t in threads {
        let ((a, ab), (b, bb)) = t.join().unwrap();
        assert_eq!(a, 204, "{ab}");
        assert_eq!(b, 200, "{bb}");
    }
    let (code, body) = http(&world.socket(), "GET", "/settings", "");
    assert_eq!(code, 200);
    let got: serde_json::Value = serde_json::from_str(&body).unwrap();
    let motd = got["motd"]
        .as_str()
        .unwrap()
        .trim_start_matches('m')
        .to_string();
    assert_eq!(got["ntp"]["time-servers"][0], format!("s{motd}"), "{got}");
}

/// `updog update` by hand while the API's prepare downloads: one of them is refused at once, and when both are
/// done the disk and the status agree on what boots next.
#[test]
fn updog_by_hand_during_an_api_prepare() {
    let Some(binaries) = binaries("updog_by_hand_during_an_api_prepare") else {
        return;
    };
    let world = ApiWorld::new(binaries);
    action(&world, "refresh-updates", "refresh");
    let stall = world.stall_root_images(4);
    let (code, body) = http(&world.socket(), "POST", "/actions/prepare-update", "");
    assert_eq!(code, 204, "{body}");
    wait_for(&world, Duration::from_secs(30), "write", |s| {
        s["update_progress"]["phase"] == "write"
    });
    let started = Instant::now();
    let by_hand = std::process::Command::new(&world.binaries.updog)
        .arg("--sysroot")
        .arg(world.node.sysroot())
        .arg("update")
        .output()
        .unwrap();
    assert!(
        !by_hand.status.success(),
        "updog update by hand ran during the API's prepare: {}",
        String::from_utf8_lossy(&by_hand.stderr)
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "refused at once"
    );
    let status = wait_for(&world, Duration::from_secs(60), "prepare", |s| {
        finished(s, "prepare")
    });
    world.published.server.remove_rule(stall);
    assert_eq!(status["update_state"], "Staged", "{status}");
    assert_eq!(world.next_set(), SetSelect::A);
    let status = action(&world, "activate-update", "activate");
    assert_eq!(status["update_state"], "Ready", "{status}");
    assert_eq!(world.next_set(), SetSelect::B);
}

// ───────────────────────────── 1. every state × every action: an unconfirmed boot ─────────────────────────────

/// The node booted the new set and has not marked it successful (the boot's health checks have not run yet): the
/// bootloader would go back to the old set on the next boot. Every update action through the API either is refused
/// or leaves that so, and the status says what boots next.
#[test]
fn update_actions_on_an_unconfirmed_boot_keep_the_node_bootable_and_the_status_true() {
    let Some(binaries) = binaries("update_actions_on_an_unconfirmed_boot…") else {
        return;
    };
    let world = ApiWorld::new(binaries);
    world.apiclient_ok(&["set", "updates.version-lock=1.1.0", "motd=kept"]);
    world.apiclient_ok(&["update", "apply", "--check"]);
    assert_eq!(world.next_set(), SetSelect::B);

    // Boot the new set without mark-successful-boot: stop the world's server as a reboot does, boot, migrate.
    let pid = apiserver_pid(&world);
    signal_process(pid, rustix::process::Signal::TERM);
    let deadline = Instant::now() + Duration::from_secs(10);
    while Path::new(&format!("/proc/{pid}/cmdline")).exists()
        && std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| !c.is_empty())
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    let booted = world.node.boot().expect("boot");
    assert_eq!(booted.set, SetSelect::B);
    assert_eq!(version_of(&booted), "1.1.0");
    repo_fixtures::lifecycle::run_migrator(&world.node, &world.binaries).expect("migrator");
    let _server = ApiServer::start(&world.binaries, &world.node).expect("apiserver");
    let settings = world.settings();
    let next_before = world.next_set();
    let gpt_before = world.node.signpost(&["status"]).stdout;

    // Lock to another release so that a refresh chooses an update, then try every action.
    world.apiclient_ok(&["set", "updates.version-lock=1.2.0"]);
    let status = action(&world, "refresh-updates", "refresh");
    assert_eq!(status["update_state"], "Available", "{status}");
    let status = action(&world, "prepare-update", "prepare");
    assert_eq!(
        status["most_recent_command"]["cmd_status"], "Failed",
        "{status}"
    );
    for name in ["activate-update", "deactivate-update"] {
        let (code, body) = http(&world.socket(), "POST", &format!("/actions/{name}"), "");
        assert!(code == 409 || code == 404, "{name}: {code} {body}");
    }
    assert_eq!(world.next_set(), next_before, "the next boot is unchanged");
    assert_eq!(
        gpt_before,
        world.node.signpost(&["status"]).stdout,
        "the GPT is unchanged"
    );
    let status = status_json(&world);
    let active_is_next = world.next_set() == SetSelect::B;
    assert_eq!(
        status["active_partition"]["next_to_boot"], active_is_next,
        "after a refused prepare on an unconfirmed boot the status says the running set boots next = {}, the disk \
         says {active_is_next}: {status}",
        status["active_partition"]["next_to_boot"]
    );
    // The settings are intact (but for the lock set above).
    let motd = settings.iter().find(|(k, _)| k == "settings.motd");
    assert_eq!(motd.map(|(_, v)| v.as_str()), Some("\"kept\""));
}

/// Symlinks at the rendered config files: `commit_and_apply` must not write through them (nothing outside the
/// sysroot changes).
#[test]
fn rendered_configs_are_not_written_through_symlinks() {
    let Some(binaries) = binaries("rendered_configs_are_not_written_through_symlinks") else {
        return;
    };
    let world = ApiWorld::new(binaries);
    let etc = world.node.sysroot().join("etc");
    let mut victims = Vec::new();
    for name in ["updog.toml", "thar-be-updates.toml"] {
        let path = etc.join(name);
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let victim = world.dir.path().join(format!("victim-{name}"));
        std::fs::write(&victim, &text).unwrap();
        let _ = std::fs::remove_file(&path);
        std::os::unix::fs::symlink(&victim, &path).unwrap();
        victims.push((victim, text));
    }
    let output = world.apiclient(&["set", "updates.seed=77", "updates.version-lock=1.1.0"]);
    for (victim, text) in &victims {
        assert_eq!(
            &std::fs::read_to_string(victim).unwrap(),
            text,
            "{} was written through a symlink (apiclient: {})",
            victim.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// Hostile headers and bodies: a huge header, a chunked body over the limit, a bogus Content-Length; each gets an
/// error and the server keeps serving.
#[test]
fn hostile_headers_and_bodies_get_errors_and_the_server_survives() {
    let Some(binaries) = binaries("hostile_headers_and_bodies…") else {
        return;
    };
    let world = ApiWorld::new(binaries);
    let send = |raw: Vec<u8>| -> String {
        let mut stream = UnixStream::connect(world.socket()).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let _ = stream.write_all(&raw);
        let _ = stream.shutdown(std::net::Shutdown::Write);
        let mut out = Vec::new();
        let _ = stream.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    };
    let huge = format!(
        "GET /os HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(1 << 20)
    );
    let answer = send(huge.into_bytes());
    assert!(
        !answer.starts_with("HTTP/1.1 200"),
        "{}",
        &answer[..answer.len().min(200)]
    );

    let mut chunked =
        b"PATCH /settings HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..20 {
        chunked.extend_from_slice(format!("{:x}\r\n", 100_000).as_bytes());
        chunked.extend(std::iter::repeat_n(b' ', 100_000));
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let answer = send(chunked);
    assert!(
        answer.starts_with("HTTP/1.1 413"),
        "{}",
        &answer[..answer.len().min(200)]
    );

    let answer = send(
        b"PATCH /settings HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n{}"
            .to_vec(),
    );
    assert!(!answer.starts_with("HTTP/1.1 2"), "{answer}");
    for uri in [
        "/settings?keys=motd%00x",
        "/settings?prefix=%00",
        "/?prefix=%FF",
        "/tx?tx=%00",
    ] {
        let mut stream = UnixStream::connect(world.socket()).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream
            .write_all(
                format!("GET {uri} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
            )
            .unwrap();
        let mut out = Vec::new();
        let _ = stream.read_to_end(&mut out);
        let answer = String::from_utf8_lossy(&out);
        assert!(
            answer.starts_with("HTTP/1.1 400") || answer.starts_with("HTTP/1.1 200"),
            "GET {uri}: no answer but {answer:?}; apiserver log tail: {}",
            world
                .server()
                .log_text()
                .lines()
                .rev()
                .take(5)
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    let (code, _) = http(&world.socket(), "GET", "/os", "");
    assert_eq!(code, 200, "the server still serves");
}
