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

#[test]
fn build_writes_a_named_fixture_with_its_trusted_root() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("chain");
    let status = Command::new(env!("CARGO_BIN_EXE_repo-fixtures"))
        .args(["build", "chain"])
        .arg(&out)
        .status()
        .expect("run repo-fixtures build");
    assert!(status.success());
    for file in [
        "root.json",
        "metadata/1.root.json",
        "metadata/timestamp.json",
        "metadata/3.snapshot.json",
    ] {
        assert!(out.join(file).is_file(), "{file} missing");
    }
    // 36 images, 2 migrations, and the manifest.json of each of the 3 chain steps (consistent snapshots keep
    // the files of earlier states, so a client mid-update still finds them).
    assert_eq!(std::fs::read_dir(out.join("targets")).unwrap().count(), 41);
}

#[test]
fn build_refuses_an_unknown_fixture_by_name() {
    let dir = tempfile::tempdir().expect("temp dir");
    let output = Command::new(env!("CARGO_BIN_EXE_repo-fixtures"))
        .args(["build", "no-such-fixture"])
        .arg(dir.path().join("x"))
        .output()
        .expect("run repo-fixtures build");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no-such-fixture"), "{stderr}");
    assert!(!dir.path().join("x").exists());
}

#[test]
fn demo_builds_serves_and_checks_the_good_repository() {
    let dir = tempfile::tempdir().expect("temp dir");
    let output = Command::new(env!("CARGO_BIN_EXE_repo-fixtures"))
        .args(["demo", "--once", "--dir"])
        .arg(dir.path())
        .output()
        .expect("run repo-fixtures demo");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("manifest.json verified: 12 updates, 2 migrations"),
        "{stdout}"
    );
    assert!(
        stdout.contains("metadata_base_url  http://127.0.0.1:"),
        "{stdout}"
    );
    assert!(
        dir.path()
            .join("rollback-root/metadata/2.root.json")
            .is_file()
    );
}
