//! `raw` (and the default form without a subcommand): what is sent, what is printed, how failures read.

use crate::fake_api::{FakeApi, Reply, Script, run_apiclient, stderr, stdout};

#[test]
fn raw_get_prints_the_body_as_received_and_sends_host_localhost() {
    let api =
        FakeApi::start(Script::new().route("GET", "/settings", Reply::json(r#"{"motd":"hi"}"#)));
    let output = api.apiclient(&["raw", "-u", "/settings"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output), "{\"motd\":\"hi\"}\n");
    let requests = api.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].method, "GET");
    assert_eq!(requests[0].uri, "/settings");
    assert_eq!(requests[0].body, "");
    assert_eq!(requests[0].host.as_deref(), Some("localhost"));
}

#[test]
fn without_a_subcommand_apiclient_is_raw() {
    let api = FakeApi::start(
        Script::new()
            .route("POST", "/actions/reboot", Reply::no_content())
            .route("GET", "/os", Reply::json(r#"{"version_id":"1.0.0"}"#)),
    );
    let output = api.apiclient(&["-u", "/actions/reboot", "-m", "POST"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output), "", "a 204 prints nothing");
    let output = api.apiclient(&["-u", "/os"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output), "{\"version_id\":\"1.0.0\"}\n");
    assert_eq!(api.calls(), ["POST /actions/reboot", "GET /os"]);
}

#[test]
fn global_flags_work_after_the_subcommand() {
    let api = FakeApi::start(Script::new().route("GET", "/os", Reply::json("{}")));
    let socket = api.socket().to_str().unwrap();
    let output = run_apiclient(
        &[
            "raw",
            "-u",
            "/os",
            "--socket-path",
            socket,
            "--log-level",
            "debug",
        ],
        None,
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output), "{}\n");
    assert_eq!(api.calls(), ["GET /os"]);
}

#[test]
fn raw_sends_the_method_and_data_given() {
    let api = FakeApi::start(
        Script::new()
            .route("PATCH", "/settings", Reply::no_content())
            .route("POST", "/tx/commit", Reply::json(r#"["settings.motd"]"#)),
    );
    let data = r#"{"motd": "über"}"#;
    let output = api.apiclient(&["raw", "-u", "/settings?tx=mine", "-X", "PATCH", "-d", data]);
    assert!(output.status.success(), "{}", stderr(&output));
    let output = api.apiclient(&["raw", "--uri", "/tx/commit?tx=mine", "--method", "POST"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output), "[\"settings.motd\"]\n");
    let requests = api.requests();
    assert_eq!(
        api.calls(),
        ["PATCH /settings?tx=mine", "POST /tx/commit?tx=mine"]
    );
    assert_eq!(requests[0].body, data);
    assert_eq!(requests[1].body, "");
}

#[test]
fn a_failed_status_is_upstreams_error_line_on_stderr_and_exit_1() {
    let api = FakeApi::start(Script::new().route(
        "POST",
        "/actions/refresh-updates",
        Reply::new(423, "Update lock held by another update command"),
    ));
    let output = api.apiclient(&["-u", "/actions/refresh-updates", "-m", "POST"]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(stdout(&output), "");
    assert_eq!(
        stderr(&output),
        "Failed POST request to '/actions/refresh-updates': Status 423 when POSTing \
         /actions/refresh-updates: Update lock held by another update command\n"
    );
}

#[test]
fn verbose_raw_prints_status_and_headers_on_stderr_and_only_the_body_on_stdout() {
    let api =
        FakeApi::start(Script::new().route("GET", "/os", Reply::json(r#"{"arch":"x86_64"}"#)));
    let output = api.apiclient(&["-v", "-u", "/os"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output), "{\"arch\":\"x86_64\"}\n");
    let err = stderr(&output);
    assert!(err.lines().any(|l| l == "200 OK"), "{err}");
    assert!(
        err.lines().any(|l| l == "content-type: application/json"),
        "{err}"
    );
}

#[test]
fn a_missing_socket_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("nothing-here.sock");
    let output = run_apiclient(&["-s", socket.to_str().unwrap(), "-u", "/settings"], None);
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(
        err.starts_with(&format!(
            "Failed GET request to '/settings': cannot connect to the API socket {}: ",
            socket.display()
        )),
        "{err}"
    );
    assert!(err.contains("No such file or directory"), "{err}");
}

#[test]
fn the_default_socket_is_run_api_sock_under_the_sysroot() {
    let dir = tempfile::tempdir().unwrap();
    let output = run_apiclient(&["--sysroot", dir.path().to_str().unwrap(), "reboot"], None);
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    let socket = dir.path().join("run/api.sock");
    assert!(
        err.contains(&format!(
            "cannot connect to the API socket {}:",
            socket.display()
        )),
        "{err}"
    );
}

#[test]
fn a_socket_path_with_no_server_is_an_error_naming_it() {
    // A regular file where the socket should be: connecting is refused.
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("api.sock");
    std::fs::write(&socket, "").unwrap();
    let output = run_apiclient(&["-s", socket.to_str().unwrap(), "update", "check"], None);
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(
        err.contains(&format!(
            "cannot connect to the API socket {}: ",
            socket.display()
        )),
        "{err}"
    );
}

#[test]
fn a_socket_this_user_may_not_use_is_an_error_naming_it() {
    use repo_fixtures::require::{require_root, require_tool};
    if !(require_root() && require_tool("setpriv")) {
        return;
    }
    // The server's directory is root's, mode 0700: uid 65534 cannot reach the socket.
    let api = FakeApi::start(Script::new().route("GET", "/os", Reply::json("{}")));
    let socket = api.socket().to_str().unwrap();
    let output = std::process::Command::new("setpriv")
        .args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_apiclient"))
        .args(["-s", socket, "-u", "/os"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let err = stderr(&output);
    assert!(
        err.starts_with(&format!(
            "Failed GET request to '/os': cannot connect to the API socket {socket}: Permission denied"
        )),
        "{err}"
    );
    assert_eq!(api.calls(), Vec::<String>::new());
}

#[test]
fn usage_errors_exit_2_and_send_nothing() {
    let api = FakeApi::start(Script::new());
    for args in [
        &["raw"][..],
        &["-m", "POST"],
        &["-u", "/x", "reboot"],
        &["get", "/a", "/b"],
        &["set"],
    ] {
        let output = api.apiclient(args);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?}: {}",
            stderr(&output)
        );
    }
    assert_eq!(api.calls(), Vec::<String>::new());
}
