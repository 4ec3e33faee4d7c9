//! Every way a migration can fail leaves `current` resolving to the untouched old datastore, with
//! no copy left behind; a migration that signed metadata does not vouch for is never run; an
//! expired but correctly signed cache still migrates (offline boot after a long shutdown).

mod support;

use repo_fixtures::attacks::{self, good_signers};
use repo_fixtures::chain::FixtureRepo;
use repo_fixtures::keys::FixtureKey;
use repo_fixtures::tuf_edit::{self, PublishedRoles};
use std::collections::BTreeSet;
use support::*;

/// A node at 1.0.0 (large datastore) booting 1.2.0 from `repo`'s cache.
fn node_booting_1_2(repo: &FixtureRepo) -> (Node, std::path::PathBuf) {
    let node = Node::new(repo, "1.2.0");
    let data = node.create_datastore("1.0.0", &Contents::large());
    (node, data)
}

/// The old chain is untouched: `current` resolves to the original data, unchanged, and the
/// datastore directory holds exactly what it held before.
fn assert_untouched(node: &Node, original_dir: &std::path::Path, before: &Snapshot) {
    assert_eq!(node.current_version(), "1.0.0");
    assert_eq!(node.current_data(), original_dir);
    assert_eq!(
        &snapshot(&node.datastore_dir()),
        before,
        "datastore directory changed"
    );
}

type Snapshot = std::collections::BTreeMap<String, (String, u32, Vec<u8>)>;

#[test]
fn a_migration_failing_or_crashing_leaves_the_old_datastore_in_place() {
    for (fault, ran) in [
        ("add-motd-default:exit", vec!["add-motd-default.forward"]),
        ("add-motd-default:crash", vec!["add-motd-default.forward"]),
        (
            "rename-hostname-setting:exit",
            vec![
                "add-motd-default.forward",
                "rename-hostname-setting.forward",
            ],
        ),
        (
            "rename-hostname-setting:crash",
            vec![
                "add-motd-default.forward",
                "rename-hostname-setting.forward",
            ],
        ),
    ] {
        let (node, original) = node_booting_1_2(step("1.2.0"));
        let before = snapshot(&node.datastore_dir());
        let output = node
            .migrator()
            .env("FIXTURE_MIGRATION_FAULT", fault)
            .output()
            .unwrap();
        assert_eq!(
            output.status.code(),
            Some(1),
            "{fault}: {}",
            stderr(&output)
        );
        let err = stderr(&output);
        let (name, mode) = fault.split_once(':').unwrap();
        assert!(
            err.contains("Error: Migration 'migrate_v1.")
                && err.contains(&format!("_{name}' failed (")),
            "{fault}: {err}"
        );
        match mode {
            "exit" => {
                assert!(err.contains("exit code 1"), "{fault}: {err}");
                assert!(
                    err.contains("fails on purpose"),
                    "{fault}: stderr not logged: {err}"
                );
            }
            _ => assert!(err.contains("killed by signal 6"), "{fault}: {err}"),
        }
        assert_eq!(
            node.markers(),
            ran.iter().map(ToString::to_string).collect::<BTreeSet<_>>(),
            "{fault}"
        );
        // Intermediate and partial copies are gone; the old chain is as it was.
        assert_untouched(&node, &original, &before);

        // Without the fault the same node migrates.
        let output = node.run_migrator();
        assert!(output.status.success(), "{fault}: {}", stderr(&output));
        assert_eq!(node.current_version(), "1.2.0");
    }
}

/// Runs migrator on a node whose cache was tampered with; it must fail before running anything.
fn assert_refused(node: &Node, original: &std::path::Path, expect_in_error: &str) {
    let before = snapshot(&node.datastore_dir());
    let output = node.run_migrator();
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let err = stderr(&output);
    assert!(
        err.contains(expect_in_error),
        "expected '{expect_in_error}' in: {err}"
    );
    assert!(
        node.markers().is_empty(),
        "a migration ran: {:?}",
        node.markers()
    );
    assert_untouched(node, original, &before);
}

#[test]
fn a_missing_migration_target_runs_nothing() {
    let (node, original) = node_booting_1_2(step("1.2.0"));
    std::fs::remove_file(node.cached_target(RENAME_HOSTNAME)).unwrap();
    assert_refused(&node, &original, RENAME_HOSTNAME);
}

#[test]
fn a_migration_with_a_wrong_hash_runs_nothing() {
    let (node, original) = node_booting_1_2(step("1.2.0"));
    let path = node.cached_target(ADD_MOTD);
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    assert_refused(&node, &original, ADD_MOTD);
}

#[test]
fn a_migration_not_listed_in_signed_targets_runs_nothing() {
    // manifest.json (signed) still names the migration and its file is in the cache, but the
    // targets role, correctly re-signed, no longer lists it.
    let dir = tempfile::tempdir().unwrap();
    let repo = FixtureRepo {
        dir: dir.path().join("unlisted"),
    };
    repo_fixtures::chain::copy_dir(&step("1.2.0").dir, &repo.dir).unwrap();
    runtime().block_on(async {
        let mut roles = PublishedRoles::load(&repo.metadata_dir()).unwrap();
        let name = tough::TargetName::new(RENAME_HOSTNAME).unwrap();
        assert!(roles.targets.signed.targets.remove(&name).is_some());
        roles.targets = tuf_edit::sign_role(
            roles.targets.signed.clone(),
            &[FixtureKey::Targets1, FixtureKey::Targets2],
        )
        .await
        .unwrap();
        roles.publish_from_targets(&good_signers()).await.unwrap();
    });
    let (node, original) = node_booting_1_2(&repo);
    assert!(node.cached_target(RENAME_HOSTNAME).is_file());
    assert_refused(
        &node,
        &original,
        "not listed in the signed targets metadata",
    );
}

fn attack_repo(name: &str, out: &std::path::Path) -> FixtureRepo {
    let attack = attacks::find(name).unwrap();
    runtime()
        .block_on(attacks::build_attack(
            attack,
            chain_steps(),
            &out.join(name),
        ))
        .unwrap()
}

#[test]
fn bad_signatures_and_unmet_thresholds_run_nothing() {
    let dir = tempfile::tempdir().unwrap();
    for attack in [
        "bad-signature",
        "threshold-not-met",
        "root-rotation-too-few-old-keys",
    ] {
        let repo = attack_repo(attack, dir.path());
        let (node, original) = node_booting_1_2(&repo);
        assert_refused(&node, &original, "Failed to load the local TUF repository");
    }
}

#[test]
fn a_tampered_manifest_runs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let repo = attack_repo("target-hash-mismatch", dir.path());
    let (node, original) = node_booting_1_2(&repo);
    assert_refused(&node, &original, "manifest.json");
}

#[test]
fn expired_but_signed_metadata_still_migrates_offline() {
    let dir = tempfile::tempdir().unwrap();
    for attack in [
        "expired-timestamp",
        "expired-snapshot",
        "expired-targets",
        "expired-root",
    ] {
        let repo = attack_repo(attack, dir.path());
        let (node, _original) = node_booting_1_2(&repo);
        let output = node.run_migrator();
        assert!(output.status.success(), "{attack}: {}", stderr(&output));
        assert_eq!(node.current_version(), "1.2.0", "{attack}");
        assert_eq!(node.markers().len(), 2, "{attack}");
    }
}

#[test]
fn no_migration_path_is_an_error_that_changes_nothing() {
    // The 1.1.0 cache knows no way to 1.2.0.
    let node = Node::new(step("1.1.0"), "1.2.0");
    let original = node.create_datastore("1.0.0", &Contents::large());
    assert_refused(&node, &original, "No migration path from 1.0.0 to 1.2.0");
}

/// A `current` link that exists but does not resolve is not a first boot: migrator fails naming
/// the link, what is wrong and the datastore copies still there, and changes nothing.
fn assert_broken_chain_refused(node: &Node, expected: &[String]) {
    let before = snapshot(&node.datastore_dir());
    for dry_run in [false, true] {
        let mut command = node.migrator();
        if dry_run {
            command.arg("--dry-run");
        }
        let output = command.output().unwrap();
        let err = stderr(&output);
        assert_eq!(output.status.code(), Some(1), "dry run {dry_run}: {err}");
        assert!(
            !err.contains("Data store does not exist"),
            "taken for a first boot: {err}"
        );
        for expected in expected {
            assert!(
                err.contains(expected.as_str()),
                "{expected:?} not in: {err}"
            );
        }
        assert!(node.markers().is_empty(), "a migration ran: {err}");
        assert_eq!(
            snapshot(&node.datastore_dir()),
            before,
            "datastore directory changed"
        );
    }
}

#[test]
fn a_dangling_current_is_an_error_naming_the_missing_target_and_the_copies() {
    // The data directory is gone from under its patch link (renamed by hand, restored from a
    // backup under another name...): a complete copy is still there.
    let (node, original) = node_booting_1_2(step("1.2.0"));
    let name = original.file_name().unwrap().to_str().unwrap().to_string();
    let kept = node.datastore_dir().join("v1.0.0_AbCdEfGhIjKlMnOp");
    std::fs::rename(&original, &kept).unwrap();
    let link = node.datastore_dir().join("current");
    assert_broken_chain_refused(
        &node,
        &[
            format!(
                "Error: Datastore link {} exists but is broken",
                link.display()
            ),
            format!("current -> v1 -> v1.0 -> v1.0.0 -> {name} dangles"),
            format!(
                "{} does not exist",
                node.datastore_dir().join(&name).display()
            ),
            "v1.0.0_AbCdEfGhIjKlMnOp (version 1.0.0)".to_string(),
        ],
    );

    // A link missing in the middle of the chain.
    std::fs::rename(&kept, &original).unwrap();
    std::fs::remove_file(node.datastore_dir().join("v1")).unwrap();
    assert_broken_chain_refused(
        &node,
        &[
            format!(
                "current -> v1 dangles: {} does not exist",
                node.datastore_dir().join("v1").display()
            ),
            format!("{name} (version 1.0.0)"),
        ],
    );
}

#[test]
fn a_looping_current_is_an_error_naming_the_loop_and_the_copies() {
    let (node, original) = node_booting_1_2(step("1.2.0"));
    let name = original.file_name().unwrap().to_str().unwrap().to_string();
    let dir = node.datastore_dir();
    migrator::chain::replace_link(&dir, "v1", "current").unwrap();
    assert_broken_chain_refused(
        &node,
        &[
            "current -> v1 -> current is a loop".to_string(),
            format!("{name} (version 1.0.0)"),
        ],
    );
    migrator::chain::replace_link(&dir, "current", "current").unwrap();
    assert_broken_chain_refused(
        &node,
        &[
            "current -> current is a loop".to_string(),
            format!("{name} (version 1.0.0)"),
        ],
    );
}

#[test]
fn a_datastore_entry_no_key_encodes_to_fails_the_migration_naming_it() {
    use std::os::unix::ffi::OsStrExt;
    type Make = fn(&std::path::Path);
    let cases: [(&[u8], &str, Make); 6] = [
        (b"link", "a symbolic link", |p| {
            std::os::unix::fs::symlink("hostname", p).unwrap();
        }),
        (b"fifo", "a FIFO", |p| {
            rustix::fs::mknodat(
                rustix::fs::CWD,
                p,
                rustix::fs::FileType::Fifo,
                rustix::fs::Mode::from_raw_mode(0o600),
                0,
            )
            .unwrap();
        }),
        (b"bad\xffname", "its name is not UTF-8", |p| {
            std::fs::write(p, "1").unwrap();
        }),
        (b"a%ZZ", "'a%ZZ' is not percent-encoded", |p| {
            std::fs::write(p, "1").unwrap();
        }),
        (b"a%2", "'a%2' is not percent-encoded", |p| {
            std::fs::write(p, "1").unwrap();
        }),
        (b"dir.with-dot", "a directory name holding a '.'", |p| {
            std::fs::create_dir(p).unwrap();
        }),
    ];
    for (name, why, make) in cases {
        let (node, original) = node_booting_1_2(step("1.2.0"));
        let bad = original
            .join("live/settings")
            .join(std::ffi::OsStr::from_bytes(name));
        make(&bad);
        let before = snapshot(&node.datastore_dir());
        let output = node.run_migrator();
        let err = stderr(&output);
        assert_eq!(output.status.code(), Some(1), "{why}: {err}");
        assert!(
            err.contains("Error: Migration 'migrate_v1.1.0_add-motd-default' failed (exit code 1)")
                && err.contains(&format!("Datastore entry {}", bad.display()))
                && err.contains(why),
            "{why}: {err}"
        );
        assert_untouched(&node, &original, &before);
    }
}

/// A node at 1.0.0 booting 1.2.0, and the migrator command with `fault` and a pid file.
fn node_with_fault(
    fault: &str,
) -> (
    Node,
    std::path::PathBuf,
    std::process::Command,
    std::path::PathBuf,
) {
    let (node, original) = node_booting_1_2(step("1.2.0"));
    let pids = node.sysroot().join("pids");
    let mut command = node.migrator();
    command
        .env("FIXTURE_MIGRATION_FAULT", fault)
        .env("FIXTURE_MIGRATION_PIDS", &pids);
    (node, original, command, pids)
}

/// Bounds every migrator run of these tests: far above what they take, far below "forever".
const HANG_BOUND: std::time::Duration = std::time::Duration::from_secs(120);

#[test]
fn a_hanging_migration_is_killed_at_its_timeout_with_everything_it_started() {
    let (node, original, mut command, pids) = node_with_fault("rename-hostname-setting:hang");
    let before = snapshot(&node.datastore_dir());
    let output = output_within(command.args(["--migration-timeout", "5"]), HANG_BOUND);
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(
        err.contains(
            "Error: Migration 'migrate_v1.2.0_rename-hostname-setting' did not finish within 5 s (the migration timeout, --migration-timeout)"
        ) && err.contains("hangs on purpose"),
        "{err}"
    );
    assert_eq!(
        node.markers(),
        [
            "add-motd-default.forward",
            "rename-hostname-setting.forward"
        ]
        .map(String::from)
        .into()
    );
    // The partial copy and the first migration's intermediate are gone; the chain is as it was.
    assert_untouched(&node, &original, &before);
    // Nothing the migration started is left running: not it, not its child.
    let recorded = recorded_pids(&pids);
    assert!(
        recorded.iter().any(|(role, _)| role == "child"),
        "{recorded:?}"
    );
    for (role, pid) in &recorded {
        assert!(!is_running(*pid), "the migration's {role} {pid} survived");
    }
    assert_eq!(
        running_with_env(&pids.display().to_string()),
        Vec::<u32>::new()
    );

    // Without the fault the same node migrates.
    let output = output_within(&mut node.migrator(), HANG_BOUND);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(node.current_version(), "1.2.0");
}

#[test]
fn a_migration_leaving_a_child_holding_its_pipes_succeeds_and_the_child_is_killed() {
    // The migration did its work and exited 0: its result is used; the stray child dies with
    // the migration's process group instead of holding migrator (and the boot) on its pipes.
    let (node, _original, mut command, pids) =
        node_with_fault("add-motd-default:fork-holding-pipes");
    let output = output_within(&mut command, HANG_BOUND);
    let err = stderr(&output);
    assert!(output.status.success(), "{err}");
    assert!(err.contains("leaves a child holding its pipes"), "{err}");
    assert_eq!(node.current_version(), "1.2.0");
    let recorded = recorded_pids(&pids);
    assert_eq!(
        recorded
            .iter()
            .map(|(role, _)| role.as_str())
            .collect::<Vec<_>>(),
        ["migration", "child"]
    );
    for (role, pid) in &recorded {
        assert!(!is_running(*pid), "the migration's {role} {pid} survived");
    }
    assert_eq!(
        running_with_env(&pids.display().to_string()),
        Vec::<u32>::new()
    );
}

#[test]
fn a_child_that_left_the_migrations_group_cannot_hold_migrator_on_the_pipes() {
    // A child in a process group of its own is out of reach of the group kill (documented); it
    // still holds the migration's stdout and stderr, and migrator must not wait for it.
    let (node, _original, mut command, pids) =
        node_with_fault("add-motd-default:escape-holding-pipes");
    let output = output_within(&mut command, HANG_BOUND);
    let escaped: Vec<u32> = recorded_pids(&pids)
        .into_iter()
        .filter(|(role, _)| role == "child")
        .map(|(_, pid)| pid)
        .collect();
    for pid in &escaped {
        if is_running(*pid) {
            rustix::process::kill_process(
                rustix::process::Pid::from_raw(i32::try_from(*pid).unwrap()).unwrap(),
                rustix::process::Signal::KILL,
            )
            .unwrap();
        }
    }
    let err = stderr(&output);
    assert!(output.status.success(), "{err}");
    assert!(
        err.contains("leaves a child in a group of its own"),
        "{err}"
    );
    assert_eq!(escaped.len(), 1);
    assert_eq!(node.current_version(), "1.2.0");
}
