//! The socket's security and life cycle: born 0600, a non-root user refused by the kernel (EACCES) and, with the
//! socket opened up, by the peer check (403); a stale socket replaced, anything else at the path refused; SIGTERM
//! exits cleanly and removes the socket.

use crate::support::*;
use repo_fixtures::require;
use rustix::process::Signal;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::process::Command;

/// `curl -v` over the socket as user nobody (uid 65534): its exit status and verbose stderr.
fn curl_as_nobody(node: &TestNode, method: &str, uri: &str) -> (Option<i32>, String, String) {
    let output = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "curl",
            "-v",
            "-sS",
            "-X",
            method,
        ])
        .arg("--unix-socket")
        .arg(node.socket())
        .arg(format!("http://localhost{uri}"))
        .output()
        .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn a_non_root_user_cannot_connect_and_is_forbidden_if_the_socket_is_opened_up() {
    if !require::require_root()
        || !require::require_tool("setpriv")
        || !require::require_tool("curl")
    {
        return;
    }
    let node = TestNode::new();
    let server = node.start();
    let mode = std::fs::metadata(node.socket())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o600);

    let (code, _, stderr) = curl_as_nobody(&node, "GET", "/settings");
    assert_eq!(code, Some(7), "curl could not connect: {stderr}");
    assert!(stderr.contains("Permission denied"), "{stderr}");

    // With the socket opened to everyone, the server itself refuses the peer.
    std::fs::set_permissions(node.socket(), std::fs::Permissions::from_mode(0o666)).unwrap();
    let (code, stdout, stderr) = curl_as_nobody(&node, "GET", "/settings");
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("< HTTP/1.1 403"), "{stderr}");
    assert!(stdout.contains("peer uid 65534"), "{stdout}");
    // Also for the update actions: nothing is run for a refused peer.
    let (_, _, stderr) = curl_as_nobody(&node, "POST", "/actions/reboot");
    assert!(stderr.contains("< HTTP/1.1 403"), "{stderr}");
    assert!(!node.sysroot().join("reboot-calls").exists());
    // Root still gets in.
    assert_eq!(server.get("/settings").status, 200);
}

#[test]
fn a_stale_socket_is_replaced() {
    let node = TestNode::new();
    let mut first = node.start();
    // SIGKILL: no chance to clean up, the socket file stays with nobody listening.
    let (status, _) = first.stop_with(Signal::KILL);
    assert!(!status.success());
    assert!(
        std::fs::symlink_metadata(node.socket())
            .unwrap()
            .file_type()
            .is_socket()
    );
    let second = node.start();
    assert_eq!(second.get("/settings").status, 200);
}

#[test]
fn a_live_server_a_file_or_a_link_at_the_socket_path_is_refused() {
    let node = TestNode::new();
    let server = node.start();
    let (status, stderr) = node.spawn(&[]).wait_exit();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("a server is already listening on it"),
        "{stderr}"
    );
    assert_eq!(
        server.get("/settings").status,
        200,
        "the first server still serves"
    );
    drop(server);

    std::fs::write(node.socket(), "not a socket").unwrap();
    let (status, stderr) = node.spawn(&[]).wait_exit();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("it is a regular file, not a socket"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(node.socket()).unwrap(),
        "not a socket"
    );

    std::fs::remove_file(node.socket()).unwrap();
    std::os::unix::fs::symlink("/dev/null", node.socket()).unwrap();
    let (status, stderr) = node.spawn(&[]).wait_exit();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("it is a symbolic link"), "{stderr}");
}

#[test]
fn sigterm_and_sigint_exit_cleanly_and_remove_the_socket() {
    for signal in [Signal::TERM, Signal::INT] {
        let node = TestNode::new();
        let mut server = node.start();
        let (status, stderr) = server.stop_with(signal);
        assert!(status.success(), "{signal:?}: {status} {stderr}");
        assert!(!node.socket().exists(), "{signal:?} left the socket");
    }
}
