//! The `repo-fixtures` binary.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use support::get;

/// Kills the server child even when an assertion fails first.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        // Errors mean the child is already gone.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn serve_prints_the_base_url_and_serves_the_directory() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir(dir.path().join("metadata")).expect("mkdir");
    std::fs::write(dir.path().join("metadata/timestamp.json"), b"{}").expect("write");
    let mut child = Running(
        Command::new(env!("CARGO_BIN_EXE_repo-fixtures"))
            .arg("serve")
            .arg(dir.path())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start repo-fixtures serve"),
    );
    let stdout = child.0.stdout.take().expect("piped stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read the URL line");
    let url = url::Url::parse(line.trim()).expect("the first line is a URL");
    assert_eq!(url.host_str(), Some("127.0.0.1"));
    assert_eq!(url.path(), "/");
    let port = url.port().expect("the URL has a port");

    let response = get(([127, 0, 0, 1], port).into(), "/metadata/timestamp.json");
    assert_eq!((response.status, response.body), (200, b"{}".to_vec()));
    assert_eq!(
        child.0.try_wait().expect("check the child"),
        None,
        "still serving"
    );
}

#[test]
fn serve_fails_clearly_for_a_missing_directory() {
    let output = Command::new(env!("CARGO_BIN_EXE_repo-fixtures"))
        .args(["serve", "/nonexistent/repo-fixtures-dir"])
        .output()
        .expect("run repo-fixtures");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("/nonexistent/repo-fixtures-dir"),
        "{stderr}"
    );
    assert!(stderr.contains("not a directory"), "{stderr}");
}
