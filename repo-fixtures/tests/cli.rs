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
fn demo_runs_the_whole_update_lifecycle() {
    // The real updog and migrator binaries sit beside this package's binary when the workspace's binaries are
    // built, as `cargo test --workspace` does (and CI runs).
    let bin_dir = std::path::Path::new(env!("CARGO_BIN_EXE_repo-fixtures"))
        .parent()
        .expect("target dir")
        .to_owned();
    if let Err(missing) = repo_fixtures::lifecycle::Binaries::in_dir(&bin_dir) {
        assert!(
            std::env::var_os("CI").is_none_or(|v| v.is_empty()),
            "CI must build the workspace's binaries (cargo test --workspace): {missing}"
        );
        eprintln!("SKIPPED demo_runs_the_whole_update_lifecycle: {missing}");
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let output = Command::new(env!("CARGO_BIN_EXE_repo-fixtures"))
        .args(["demo", "--dir"])
        .arg(dir.path())
        .arg("--bin-dir")
        .arg(&bin_dir)
        .output()
        .expect("run repo-fixtures demo");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for expected in [
        "os-release says 1.0.0; marked successful",
        "updog check-update → aws-dev 1.2.0",
        "updog update --image 1.1.0 → Update applied: aws-dev 1.1.0",
        "Rebooted into set B (tries left 0): dm-verity OK, os-release says 1.1.0",
        "apiclient set motd=… → apiclient get settings.motd → \"settings survive updates\"",
        "apiclient update check → update_state \"Available\", chosen_update \"1.2.0\"",
        "reboot requested (1 request)",
        "Rebooted into set A: dm-verity OK, os-release says 1.2.0; migrator ran, boot marked successful",
        "settings.network.hostname=\"demo-node\"",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
    // The node really is on 1.2.0 (back in set A, through the API), marked successful, with its settings renamed by
    // the migration and the motd set through the API kept.
    let os_release =
        std::fs::read_to_string(dir.path().join("node/sysroot/usr/lib/os-release")).unwrap();
    assert!(os_release.contains("VERSION_ID=1.2.0"), "{os_release}");
    let settings = repo_fixtures::lifecycle::read_settings(
        &dir.path()
            .join("node/sysroot/var/lib/bottlerocket/datastore"),
    )
    .unwrap();
    assert!(settings.contains(&("settings.network.hostname".into(), "\"demo-node\"".into())));
    assert!(!settings.iter().any(|(k, _)| k == "settings.hostname"));
    assert!(settings.contains(&(
        "settings.motd".into(),
        "\"settings survive updates\"".into()
    )));
}
