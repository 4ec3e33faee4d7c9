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
        "updog update --image 1.1.0 killed (SIGKILL) with ROOT at byte",
        "rerun: resuming the root image from a checkpoint: byte",
        "updog update --image 1.1.0 → Update applied: aws-dev 1.1.0",
        "Rebooted into set B (tries left 0): dm-verity OK, os-release says 1.1.0",
        "apiclient set motd=… → apiclient get settings.motd → \"settings survive updates\"",
        "apiclient update check → update_state \"Available\", chosen_update \"1.2.0\"",
        "reboot requested (1 request)",
        "Rebooted into set A: dm-verity OK, os-release says 1.2.0; migrator ran; Health check '50-demo-workload' failed",
        "boot NOT marked",
        "the bootloader fell back to set B, os-release says 1.1.0; migrator 1.2.0 → 1.1.0; boot marked successful; \
         1.2.0 recorded in /var/lib/updog/rolled-back.json",
        "updog check-update → No update available: aws-dev 1.2.0 was rolled back on this node",
        "updog update --image 1.2.0 (named on purpose) → Update applied: aws-dev 1.2.0",
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

/// The workspace's binaries beside this package's (see `demo_runs_the_whole_update_lifecycle`); `None` (after
/// saying why) when they are not built and this is not CI.
fn node_binaries(test: &str) -> Option<std::path::PathBuf> {
    let bin_dir = std::path::Path::new(env!("CARGO_BIN_EXE_repo-fixtures"))
        .parent()
        .expect("target dir")
        .to_owned();
    if let Err(missing) = repo_fixtures::lifecycle::Binaries::in_dir(&bin_dir) {
        assert!(
            std::env::var_os("CI").is_none_or(|v| v.is_empty()),
            "CI must build the workspace's binaries (cargo test --workspace): {missing}"
        );
        eprintln!("SKIPPED {test}: {missing}");
        return None;
    }
    Some(bin_dir)
}

fn node_tools() -> bool {
    ["mke2fs", "veritysetup", "debugfs"]
        .iter()
        .all(|t| repo_fixtures::require::require_tool(t))
}

/// Runs `repo-fixtures ARGS…`, requiring success; returns stdout.
fn repo_fixtures_ok(args: &[&std::ffi::OsStr]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_repo-fixtures"))
        .args(args)
        .output()
        .expect("run repo-fixtures");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "repo-fixtures {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

fn updog_ok(bin_dir: &std::path::Path, sysroot: &std::path::Path, args: &[&str]) -> String {
    let output = Command::new(bin_dir.join("updog"))
        .arg("--sysroot")
        .arg(sysroot)
        .args(args)
        .output()
        .expect("run updog");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "updog {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[test]
fn node_create_status_serve_update_boot_by_hand() {
    if !node_tools() {
        return;
    }
    let Some(bin_dir) = node_binaries("node_create_status_serve_update_boot_by_hand") else {
        return;
    };
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("node");
    let (d, b) = (dir.as_os_str(), bin_dir.as_os_str());

    // A node with room for 24 MiB ROOTs, release 1.0.0 booted once.
    let created = repo_fixtures_ok(&[
        "node".as_ref(),
        "create".as_ref(),
        d,
        "--root-mib".as_ref(),
        "24".as_ref(),
        "--bin-dir".as_ref(),
        b,
    ]);
    assert!(
        created.contains("release 1.0.0 in set A (24 MiB ROOT)"),
        "{created}"
    );
    assert!(created.contains("Bootloader picked set A"), "{created}");
    assert!(
        created.contains("Booted aws-dev 1.0.0: dm-verity OK"),
        "{created}"
    );
    let status = repo_fixtures_ok(&["node".as_ref(), "status".as_ref(), d]);
    for expected in [
        "Set A:      priority 1, tries left 0, successful yes\n",
        "Set B:      priority 0, tries left 0, successful no (will not boot)\n",
        "Booted:     set A\n",
        "os-release: aws-dev 1.0.0\n",
        "Datastore:  1.0.0",
    ] {
        assert!(
            status.contains(expected),
            "missing {expected:?} in:\n{status}"
        );
    }

    // Serve the releases in the background; updog on the node finds them.
    let mut server = Running(
        Command::new(env!("CARGO_BIN_EXE_repo-fixtures"))
            .args([
                "node".as_ref(),
                "serve".as_ref(),
                d,
                "--bin-dir".as_ref(),
                b,
            ])
            .stdout(Stdio::piped())
            .spawn()
            .expect("start repo-fixtures node serve"),
    );
    let mut stdout = BufReader::new(server.0.stdout.take().expect("piped stdout"));
    let mut line = String::new();
    stdout.read_line(&mut line).expect("read the URL line");
    let url = url::Url::parse(line.trim()).expect("the first line is a URL");
    let updog_toml = std::fs::read_to_string(dir.join("sysroot/etc/updog.toml")).unwrap();
    assert!(
        updog_toml.contains(&format!(
            "metadata_base_url = \"{url}chain-1.2.0/metadata/\""
        )),
        "{updog_toml}"
    );
    let sysroot = dir.join("sysroot");
    let check = updog_ok(&bin_dir, &sysroot, &["check-update"]);
    assert_eq!(check.trim(), "aws-dev 1.2.0");
    let update = updog_ok(&bin_dir, &sysroot, &["update"]);
    assert!(update.contains("Update applied: aws-dev 1.2.0"), "{update}");
    // The published ROOT is the node's 24 MiB one.
    let root = tmp
        .path()
        .join("node/repo/chain-1.2.0/targets")
        .read_dir()
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.to_string_lossy()
                .ends_with("aws-dev-x86_64-1.2.0-fixture-root.ext4.lz4")
        })
        .expect("the 1.2.0 ROOT target");
    let decoded = std::io::copy(
        &mut lz4_flex::frame::FrameDecoder::new(std::fs::File::open(root).unwrap()),
        &mut std::io::sink(),
    )
    .unwrap();
    assert_eq!(decoded, 24 << 20);
    drop(server);

    // The reboot: set B, 1.2.0, settings migrated twice over.
    let booted = repo_fixtures_ok(&["node".as_ref(), "boot".as_ref(), d, "--bin-dir".as_ref(), b]);
    assert!(
        booted.contains("Bootloader picked set B (BOOT partition 8: priority 2, tries left 1 → 0"),
        "{booted}"
    );
    assert!(
        booted.contains("Booted aws-dev 1.2.0: dm-verity OK"),
        "{booted}"
    );
    let status = repo_fixtures_ok(&["node".as_ref(), "status".as_ref(), d]);
    for expected in [
        "Set B:      priority 2, tries left 0, successful yes\n",
        "Booted:     set B\n",
        "os-release: aws-dev 1.2.0\n",
        "Datastore:  1.2.0",
    ] {
        assert!(
            status.contains(expected),
            "missing {expected:?} in:\n{status}"
        );
    }
    let settings = repo_fixtures::lifecycle::read_settings(
        &dir.join("sysroot/var/lib/bottlerocket/datastore"),
    )
    .unwrap();
    assert!(settings.contains(&("settings.network.hostname".into(), "\"demo-node\"".into())));
}

#[test]
fn node_create_installs_a_chosen_release_and_refuses_an_existing_node() {
    if !node_tools() {
        return;
    }
    let Some(bin_dir) =
        node_binaries("node_create_installs_a_chosen_release_and_refuses_an_existing_node")
    else {
        return;
    };
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("node");
    let (d, b) = (dir.as_os_str(), bin_dir.as_os_str());
    let create = [
        "node".as_ref(),
        "create".as_ref(),
        d,
        "--version".as_ref(),
        "1.2.0".as_ref(),
        "--bin-dir".as_ref(),
        b,
    ];
    let created = repo_fixtures_ok(&create);
    assert!(created.contains("Booted aws-dev 1.2.0"), "{created}");
    // A 1.2.0 node's settings are in 1.2.0's schema, so its first boot's migrator has nothing to do.
    let settings = repo_fixtures::lifecycle::read_settings(
        &dir.join("sysroot/var/lib/bottlerocket/datastore"),
    )
    .unwrap();
    assert!(settings.contains(&("settings.network.hostname".into(), "\"demo-node\"".into())));

    let again = Command::new(env!("CARGO_BIN_EXE_repo-fixtures"))
        .args(create)
        .output()
        .unwrap();
    assert!(!again.status.success());
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(stderr.contains("already holds a node"), "{stderr}");

    // A node laid out for 8 MiB ROOTs cannot be served 16 MiB ones.
    let serve = Command::new(env!("CARGO_BIN_EXE_repo-fixtures"))
        .args([
            "node".as_ref(),
            "serve".as_ref(),
            d,
            "--root-mib".as_ref(),
            "16".as_ref(),
            "--bin-dir".as_ref(),
            b,
        ])
        .output()
        .unwrap();
    assert!(!serve.status.success());
    let stderr = String::from_utf8_lossy(&serve.stderr);
    assert!(stderr.contains("A 16 MiB ROOT does not fit"), "{stderr}");
}

#[test]
fn node_commands_refuse_a_directory_without_a_node() {
    let tmp = tempfile::tempdir().expect("temp dir");
    for command in ["status", "boot"] {
        let output = Command::new(env!("CARGO_BIN_EXE_repo-fixtures"))
            .args(["node", command])
            .arg(tmp.path())
            .output()
            .unwrap();
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("Not a node directory"),
            "{command}: {stderr}"
        );
        assert!(stderr.contains("fixture-node.json"), "{command}: {stderr}");
    }
}
