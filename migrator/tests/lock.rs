//! One migrator at a time (I6): a second one fails at once, naming the holder.

mod support;

use std::time::{Duration, Instant};
use support::*;

#[test]
fn a_second_migrator_fails_fast_naming_the_holder() {
    let node = Node::new(step("1.2.0"), "1.2.0");
    node.create_datastore("1.0.0", &Contents::large());
    let before = snapshot(&node.datastore_dir());

    let held = migrator::lock::DatastoreLock::acquire(&node.datastore_dir()).unwrap();
    let start = Instant::now();
    let output = node.run_migrator();
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "did not fail fast"
    );
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let err = stderr(&output);
    assert!(
        err.contains("against other writers (migrator, settings commits)"),
        "{err}"
    );
    assert!(err.contains("is in use: pid"), "{err}");
    assert!(
        err.contains(&format!("pid {}", std::process::id())),
        "{err}"
    );
    assert!(node.markers().is_empty());
    assert_eq!(snapshot(&node.datastore_dir()), before);

    // A dry run waits for nobody either.
    let output = node.migrator().arg("--dry-run").output().unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));

    drop(held);
    let output = node.run_migrator();
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(node.current_version(), "1.2.0");
}
