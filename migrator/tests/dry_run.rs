//! `--dry-run` runs the migrations into a scratch copy, reports what would change, and changes
//! nothing on the node.

mod support;

use std::collections::BTreeSet;
use support::*;

#[test]
fn dry_run_reports_the_changes_and_touches_nothing() {
    let node = Node::new(step("1.2.0"), "1.2.0");
    let original = node.create_datastore("1.0.0", &Contents::large());
    let before = snapshot(&node.datastore_dir());
    let cache_before = (
        snapshot(&node.metadata_dir()),
        snapshot(&node.migrations_dir()),
    );

    let output = node.migrator().arg("--dry-run").output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let report = stdout(&output);

    // The migrations really ran (into the scratch copy)...
    assert_eq!(
        node.markers(),
        BTreeSet::from([
            "add-motd-default.forward".to_string(),
            "rename-hostname-setting.forward".to_string()
        ])
    );
    // ...and the report says what they would change, and only that (sorted by place and key).
    assert!(
        report.contains("from 1.0.0 to 1.2.0 (forward) with 2 migration(s)"),
        "{report}"
    );
    assert!(
        report.contains(ADD_MOTD) && report.contains(RENAME_HOSTNAME),
        "{report}"
    );
    let changes: Vec<&str> = report
        .lines()
        .filter(|l| l.starts_with("  ") && l.contains(": "))
        .map(str::trim)
        .collect();
    assert_eq!(
        changes,
        [
            "live: - settings.hostname (was \"node-1.example\")",
            "live: + settings.network.hostname = \"node-1.example\"",
            "metadata 'affected-services': - settings.hostname (was [\"hostname\"])",
            "metadata 'affected-services': + settings.network.hostname = [\"hostname\"]",
            "pending 'default': - settings.hostname (was \"pending-name\")",
            "pending 'default': + settings.network.hostname = \"pending-name\"",
        ],
        "{report}"
    );
    assert!(
        report.trim_end().ends_with("Nothing was changed."),
        "{report}"
    );

    // Nothing changed: the datastore directory (links, data, modes), the cache, and no scratch
    // copy is left in TMPDIR.
    assert_eq!(snapshot(&node.datastore_dir()), before);
    assert_eq!(
        (
            snapshot(&node.metadata_dir()),
            snapshot(&node.migrations_dir())
        ),
        cache_before
    );
    assert_eq!(node.current_data(), original);
    assert!(
        names(&node.tmp_dir()).is_empty(),
        "{:?}",
        names(&node.tmp_dir())
    );

    // The real run does what the dry run said.
    let output = node.run_migrator();
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        current_value(
            &node,
            "settings.network.hostname",
            &datastore::Committed::Live
        )
        .as_deref(),
        Some("\"node-1.example\"")
    );
}

#[test]
fn dry_run_at_the_target_version_reports_nothing_to_do() {
    let node = Node::new(step("1.2.0"), "1.0.0");
    node.create_datastore("1.0.0", &Contents::large());
    let before = snapshot(&node.datastore_dir());
    let output = node.migrator().arg("--dry-run").output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("already at version 1.0.0"),
        "{}",
        stdout(&output)
    );
    assert!(node.markers().is_empty());
    assert_eq!(snapshot(&node.datastore_dir()), before);
}

#[test]
fn a_failing_dry_run_reports_the_failure_and_touches_nothing() {
    let node = Node::new(step("1.2.0"), "1.2.0");
    node.create_datastore("1.0.0", &Contents::large());
    let before = snapshot(&node.datastore_dir());
    let output = node
        .migrator()
        .arg("--dry-run")
        .env("FIXTURE_MIGRATION_FAULT", "rename-hostname-setting:crash")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("killed by signal 6"),
        "{}",
        stderr(&output)
    );
    assert_eq!(snapshot(&node.datastore_dir()), before);
    assert!(
        names(&node.tmp_dir()).is_empty(),
        "{:?}",
        names(&node.tmp_dir())
    );
}
