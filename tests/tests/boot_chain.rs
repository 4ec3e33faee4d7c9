//! The boot chain with health checks, on simulated nodes with the real binaries: bootloader → dm-verity → migrator
//! → `updog mark-successful-boot` (the checks in `/etc/updog/health.d`, then the mark). A failing or timed-out check
//! leaves the boot unmarked; a release whose checks fail falls back on the next boot, is recorded as rolled back, and
//! is never taken again unless named with `--image`.

use repo_fixtures::lifecycle::{self, Binaries, Published};
use repo_fixtures::node::Node;
use signpost::{SetSelect, State};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};
use system_tests::{binaries, stderr, version_of};

/// The chain published once, and nodes installed from it (release 1.0.0 in set A, not booted).
struct World {
    binaries: Binaries,
    published: Published,
    dir: tempfile::TempDir,
}

impl World {
    fn new(binaries: Binaries) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let published = lifecycle::publish(dir.path(), &binaries, 0).expect("publish the chain");
        Self {
            binaries,
            published,
            dir,
        }
    }

    fn node(&self, name: &str) -> Node {
        lifecycle::install_node(&self.dir.path().join(name), &self.published, &self.binaries)
            .expect("install the node")
    }

    fn updog(&self, node: &Node, args: &[&str]) -> Output {
        Command::new(&self.binaries.updog)
            .arg("--sysroot")
            .arg(node.sysroot())
            .args(args)
            .output()
            .expect("run updog")
    }

    fn updog_ok(&self, node: &Node, args: &[&str]) -> String {
        let output = self.updog(node, args);
        assert!(
            output.status.success(),
            "updog {args:?} failed ({}): {}",
            output.status,
            stderr(&output)
        );
        String::from_utf8(output.stdout).expect("UTF-8")
    }
}

/// Installs a health check script `name` on the node.
fn health_check(node: &Node, name: &str, body: &str) -> PathBuf {
    let dir = node.sysroot().join("etc/updog/health.d");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn confirmed(node: &Node) -> bool {
    State::load(&node.location())
        .expect("read the GPT")
        .is_boot_confirmed()
}

fn record(node: &Node, name: &str) -> Option<serde_json::Value> {
    let path = node.sysroot().join("var/lib/updog").join(name);
    std::fs::read(&path)
        .ok()
        .map(|bytes| serde_json::from_slice(&bytes).expect("a JSON record"))
}

fn append(path: &Path, text: &str) {
    let mut all = std::fs::read_to_string(path).unwrap();
    all.push_str(text);
    std::fs::write(path, all).unwrap();
}

#[test]
fn health_checks_decide_whether_a_boot_is_marked() {
    let Some(binaries) = binaries("health_checks_decide_whether_a_boot_is_marked") else {
        return;
    };
    let world = World::new(binaries);
    let node = world.node("node");
    lifecycle::boot_and_settle(&node, &world.binaries).unwrap();
    // The installed set is marked already: the checks are tried on an upgrade's trial boot, which starts unmarked.
    world.updog_ok(&node, &["update"]);

    // A failing check: unmarked, the message names it and quotes its reason.
    health_check(&node, "10-ok", "exit 0");
    let failing = health_check(
        &node,
        "20-kubelet",
        "echo 'kubelet is not running' >&2; exit 2",
    );
    let chain = lifecycle::boot_chain(&node, &world.binaries).unwrap();
    assert_eq!(chain.booted.set, SetSelect::B);
    let message = chain.failed.expect("the chain fails").to_string();
    assert!(
        message.contains("Health check '20-kubelet' failed (exit status: 2)")
            && message.contains("kubelet is not running"),
        "{message}"
    );
    assert!(!confirmed(&node), "a failed check leaves the boot unmarked");

    // A check past updog.toml's timeout: killed, unmarked, named.
    std::fs::remove_file(&failing).unwrap();
    append(
        &node.sysroot().join("etc/updog.toml"),
        "health_check_timeout_seconds = 0.5\n",
    );
    let hanging = health_check(&node, "30-hang", "echo starting; sleep 60");
    let started = Instant::now();
    let message = lifecycle::mark_successful_boot(&node, &world.binaries)
        .unwrap_err()
        .to_string();
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    assert!(
        message.contains("Health check '30-hang' timed out after 0.500 s"),
        "{message}"
    );
    assert!(!confirmed(&node));
    assert!(record(&node, "pending-upgrade.json").is_some());

    // Passing checks (a non-executable file is skipped): marked, the upgrade confirmed.
    std::fs::remove_file(&hanging).unwrap();
    std::fs::write(node.sysroot().join("etc/updog/health.d/README"), "notes").unwrap();
    let seen = node.sysroot().join("seen-sysroot");
    health_check(
        &node,
        "40-sysroot",
        &format!(
            "echo \"$UPDOG_SYSROOT\" > {}; echo all good",
            seen.display()
        ),
    );
    let log = lifecycle::mark_successful_boot(&node, &world.binaries).unwrap();
    assert!(confirmed(&node));
    assert!(log.contains("README: not executable"), "{log}");
    assert!(log.contains("all good"), "{log}");
    assert_eq!(
        std::fs::read_to_string(&seen).unwrap().trim(),
        node.sysroot().display().to_string()
    );
    assert!(record(&node, "pending-upgrade.json").is_none());
    assert!(record(&node, "rolled-back.json").is_none());
}

#[test]
fn a_broken_release_falls_back_is_recorded_and_is_skipped_unless_named() {
    let Some(binaries) = binaries("a_broken_release_falls_back_is_recorded_and_is_skipped…")
    else {
        return;
    };
    let world = World::new(binaries);
    let node = world.node("node");
    let booted = lifecycle::boot_and_settle(&node, &world.binaries).unwrap();
    assert_eq!(version_of(&booted), "1.0.0");

    // A check that fails only on 1.2.0, as a release that boots but breaks the workload.
    health_check(
        &node,
        "10-workload",
        ". \"$UPDOG_SYSROOT/usr/lib/os-release\"\n\
         if [ \"$VERSION_ID\" = 1.2.0 ]; then echo \"workload fails on $VERSION_ID\" >&2; exit 1; fi",
    );
    let out = world.updog_ok(&node, &["update"]);
    assert_eq!(out, "Update applied: aws-dev 1.2.0\n");
    let pending = record(&node, "pending-upgrade.json").expect("a pending upgrade");
    assert_eq!(pending["version"], "1.2.0");

    // Marking again before the reboot is no fallback: the pending upgrade stays, nothing is recorded.
    world.updog_ok(&node, &["mark-successful-boot"]);
    assert!(record(&node, "pending-upgrade.json").is_some());
    assert!(record(&node, "rolled-back.json").is_none());

    // The new release boots, migrates, and fails its check: unmarked.
    let chain = lifecycle::boot_chain(&node, &world.binaries).unwrap();
    assert_eq!(chain.booted.set, SetSelect::B);
    assert_eq!(version_of(&chain.booted), "1.2.0");
    let message = chain.failed.expect("the check fails").to_string();
    assert!(
        message.contains("Health check '10-workload' failed")
            && message.contains("workload fails on 1.2.0"),
        "{message}"
    );
    assert!(!confirmed(&node));
    assert!(record(&node, "rolled-back.json").is_none());

    // The next boot falls back to 1.0.0 by itself; its chain records 1.2.0 as rolled back and marks the boot.
    let booted = lifecycle::boot_and_settle(&node, &world.binaries).unwrap();
    assert_eq!(booted.set, SetSelect::A);
    assert_eq!(version_of(&booted), "1.0.0");
    assert!(confirmed(&node));
    assert!(record(&node, "pending-upgrade.json").is_none());
    let rolled_back = record(&node, "rolled-back.json").expect("the rollback recorded");
    let versions = rolled_back["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 1, "{rolled_back}");
    assert_eq!(versions[0]["version"], "1.2.0");
    assert_eq!(
        versions[0]["boot_partuuid"],
        chain.booted.boot_partuuid.to_string()
    );

    // check-update skips it (and says so); named, it is offered.
    let output = world.updog(&node, &["check-update"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(String::from_utf8_lossy(&output.stdout), "aws-dev 1.1.0\n");
    assert!(
        stderr(&output).contains("Skipping aws-dev 1.2.0: rolled back on this node"),
        "{}",
        stderr(&output)
    );
    assert_eq!(
        world.updog_ok(&node, &["check-update", "--image", "1.2.0"]),
        "aws-dev 1.2.0\n"
    );

    // update takes the next good one, which passes its checks.
    assert_eq!(
        world.updog_ok(&node, &["update"]),
        "Update applied: aws-dev 1.1.0\n"
    );
    let booted = lifecycle::boot_and_settle(&node, &world.binaries).unwrap();
    assert_eq!(version_of(&booted), "1.1.0");
    assert!(confirmed(&node));
    assert!(record(&node, "pending-upgrade.json").is_none());

    // On 1.1.0 the only newer release is the rolled-back one: nothing to take, with the reason.
    let output = world.updog(&node, &["check-update"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).starts_with(
            "No update available: aws-dev 1.2.0 was rolled back on this node (its boot from BOOT partition"
        ),
        "{}",
        stderr(&output)
    );
    assert!(stderr(&output).contains("use --image 1.2.0 to take it anyway"));
    let output = world.updog(&node, &["check-update", "--all", "--json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let list: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let listed: Vec<_> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["version"].as_str().unwrap().to_string())
        .collect();
    assert!(!listed.contains(&"1.2.0".to_string()), "{listed:?}");
    assert!(listed.contains(&"1.1.0".to_string()), "{listed:?}");
    assert!(
        stderr(&output).contains("Skipping aws-dev 1.2.0: rolled back on this node"),
        "{}",
        stderr(&output)
    );
    let output = world.updog(&node, &["update"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("No update required: aws-dev 1.2.0 was rolled back on this node"),
        "{}",
        stderr(&output)
    );
    assert_eq!(
        world.updog_ok(&node, &["check-update", "--image", "1.2.0"]),
        "aws-dev 1.2.0\n"
    );
}

#[test]
fn update_revert_is_not_a_rollback() {
    let Some(binaries) = binaries("update_revert_is_not_a_rollback") else {
        return;
    };
    let world = World::new(binaries);
    let node = world.node("node");
    lifecycle::boot_and_settle(&node, &world.binaries).unwrap();
    world.updog_ok(&node, &["update"]);
    assert!(record(&node, "pending-upgrade.json").is_some());
    world.updog_ok(&node, &["update-revert"]);
    assert!(record(&node, "pending-upgrade.json").is_none());
    let booted = lifecycle::boot_and_settle(&node, &world.binaries).unwrap();
    assert_eq!(booted.set, SetSelect::A);
    assert!(record(&node, "rolled-back.json").is_none());
    // update-apply makes it pending again, from update-image's record of the set.
    world.updog_ok(&node, &["update-apply"]);
    let pending = record(&node, "pending-upgrade.json").expect("pending again");
    assert_eq!(pending["version"], "1.2.0");
    assert_eq!(world.updog_ok(&node, &["check-update"]), "aws-dev 1.2.0\n");
}
