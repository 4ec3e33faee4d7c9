//! migrator SIGKILLed at every step (`MIGRATOR_KILL_AT`, obeyed by the test build's
//! `migrator-kill-points`): `current` always resolves to a complete datastore, the old one or the
//! fully migrated one, never a partial one (I3); the source is never changed; a rerun completes
//! and leaves exactly the current and previous datastores. And the released `migrator` obeys no
//! such hook.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::process::ExitStatusExt;
use support::*;

/// Steps of a 1.0.0 → 1.2.0 run (two migrations) on a node that also holds an orphan datastore
/// for garbage collection to remove (its link, then its directory: two removals).
const STEPS: [&str; 14] = [
    "locked",
    "planned",
    "migration-started-1",
    "migration-done-1",
    "migration-started-2",
    "migration-done-2",
    "synced",
    "flip-patch",
    "flip-minor",
    "flip-major",
    "flip-current",
    "flipped",
    "gc-removed-1",
    "gc-removed-2",
];

const ORPHAN: &str = "v0.9.0_orphanorphanorph";

fn node() -> (Node, std::path::PathBuf) {
    let node = Node::new(step("1.2.0"), "1.2.0");
    let data = node.create_datastore("1.0.0", &Contents::large());
    let orphan = node.datastore_dir().join(ORPHAN);
    std::fs::create_dir_all(orphan.join("live")).unwrap();
    std::os::unix::fs::symlink(ORPHAN, node.datastore_dir().join("v0.9.0")).unwrap();
    (node, data)
}

/// Entry names with the random suffix of data directories replaced by their version.
fn shape(names: &BTreeSet<String>) -> BTreeSet<String> {
    names
        .iter()
        .map(|n| match n.split_once('_') {
            Some((version, _)) if n.starts_with('v') => format!("{version}_*"),
            _ => n.clone(),
        })
        .collect()
}

#[test]
fn killed_at_every_step_current_stays_complete_and_a_rerun_completes() {
    // The reference: an uninterrupted run.
    let (reference, _) = node();
    let output = reference.run_migrator();
    assert!(output.status.success(), "{}", stderr(&output));
    let migrated: BTreeMap<String, Vec<u8>> = reference.current_tree();
    let final_shape = shape(&reference.entries());
    assert_eq!(
        final_shape,
        [
            "current", "v1", "v1.0", "v1.0.0", "v1.0.0_*", "v1.2", "v1.2.0", "v1.2.0_*"
        ]
        .map(String::from)
        .into()
    );

    for step in STEPS {
        let (node, original_dir) = node();
        let original = tree(&original_dir);
        let output = node
            .migrator_with_kill_points()
            .env("MIGRATOR_KILL_AT", step)
            .output()
            .unwrap();
        assert_eq!(
            output.status.signal(),
            Some(9),
            "{step}: migrator was not killed there: {:?} {}",
            output.status,
            stderr(&output)
        );

        // I3: current resolves to a complete datastore, the old or the new one.
        let now = node.current_tree();
        let version = node.current_version();
        match version.as_str() {
            "1.0.0" => {
                assert_eq!(node.current_data(), original_dir, "{step}");
                assert_eq!(now, original, "{step}: old datastore changed");
            }
            "1.2.0" => assert_eq!(now, migrated, "{step}: new datastore incomplete"),
            other => panic!("{step}: current resolves to version {other}"),
        }
        // The flip is the one rename of `v1`: before it current is old, after it new.
        let switched = STEPS.iter().position(|s| *s == "flip-major").unwrap();
        let index = STEPS.iter().position(|s| *s == step).unwrap();
        assert_eq!(version == "1.2.0", index >= switched, "{step}: {version}");
        // The source is never changed, whatever happened.
        assert_eq!(tree(&original_dir), original, "{step}");

        // A rerun completes.
        let output = node.run_migrator();
        assert!(
            output.status.success(),
            "{step}: rerun: {}",
            stderr(&output)
        );
        assert_eq!(node.current_version(), "1.2.0", "{step}");
        assert_eq!(node.current_tree(), migrated, "{step}");
        assert_eq!(
            shape(&node.entries()),
            final_shape,
            "{step}: {:?}",
            node.entries()
        );
        assert!(
            original_dir.is_dir(),
            "{step}: the previous datastore must be kept"
        );
    }
}

#[test]
fn the_documented_steps_are_the_ones_a_run_passes() {
    for step in migrator::killpoint::STEPS {
        let concrete = step.replace('N', "1");
        assert!(
            STEPS.contains(&concrete.as_str()),
            "{step} is not exercised"
        );
    }
}

#[test]
fn the_released_migrator_ignores_migrator_kill_at() {
    // `migrator` is built from the same library in every build; its main passes no kill points,
    // so the variable changes nothing (the feature only adds the other binary). A step before,
    // during and after the migrations (the one where the switch happens).
    let (reference, _) = node();
    let output = reference.run_migrator();
    assert!(output.status.success(), "{}", stderr(&output));
    let migrated = reference.current_tree();
    for step in ["locked", "migration-started-1", "flip-major"] {
        let (node, _) = node();
        let output = node
            .migrator()
            .env("MIGRATOR_KILL_AT", step)
            .output()
            .unwrap();
        let err = stderr(&output);
        assert!(output.status.success(), "{step}: {:?} {err}", output.status);
        assert!(!err.contains("MIGRATOR_KILL_AT"), "{step}: {err}");
        assert_eq!(node.current_version(), "1.2.0", "{step}");
        assert_eq!(node.current_tree(), migrated, "{step}");
    }
}
