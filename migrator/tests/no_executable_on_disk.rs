//! Migrations run from a sealed memfd: the running program is `/memfd:<name>`, it cannot be
//! written, and no executable file appears anywhere on the node or in its TMPDIR.

mod support;

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use support::*;

/// Regular files with an execute bit under `dir`.
fn executables(dir: &Path) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        if meta.is_dir() {
            out.extend(executables(&path));
        } else if meta.is_file() && meta.permissions().mode() & 0o111 != 0 {
            out.insert(path);
        }
    }
    out
}

#[test]
fn migrations_run_from_sealed_memory_and_nothing_executable_is_written() {
    let node = Node::new(step("1.2.0"), "1.1.0");
    node.create_datastore("1.0.0", &Contents::large());
    let before = executables(node.sysroot());
    let probe = node.sysroot().join("probe");
    let output = node
        .migrator()
        .env("FIXTURE_MIGRATION_PROBE", &probe)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(node.current_version(), "1.1.0");

    let report = std::fs::read_to_string(&probe).unwrap();
    let mut lines = report.lines();
    let exe = lines.next().unwrap();
    assert!(
        exe.starts_with("/memfd:migrate_v1.1.0_add-motd-default"),
        "the migration ran from {exe}"
    );
    let writable = lines.next().unwrap();
    assert!(writable.starts_with("not writable"), "{writable}");

    assert_eq!(executables(node.sysroot()), before);
    assert!(names(&node.tmp_dir()).is_empty());
}
