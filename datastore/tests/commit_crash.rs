//! A commit SIGKILLed at each of its steps (`DATASTORE_KILL_AT`, obeyed because the crate's own
//! tests build it with its `test-hooks` feature) leaves `live/` exactly the old tree or exactly the
//! new one, never a mix; a fresh store reads it, and the next commit sweeps what the killed one
//! left behind and, if the transaction is still pending, completes it.
//!
//! The test re-runs its own binary as the committing child (`DATASTORE_CRASH_CHILD=<dir>`).

use datastore::killpoint::{COMMIT_STEPS, KILL_AT_ENV};
use datastore::{Committed, Durability, FilesystemDataStore, Key, KeyType};
use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;

const KEYS: usize = 200;
const TEST_NAME: &str = "commit_killed_at_each_step_leaves_the_old_live_tree_or_the_new_one";
const VERSION_DIR: &str = "v1.0.0_0123456789abcdef";

fn data(name: &str) -> Key {
    Key::new(KeyType::Data, name).unwrap()
}

fn changed(i: usize) -> Key {
    data(&format!("settings.group{}.key{i}", i % 7))
}

fn value(kind: &str, i: usize) -> String {
    format!("\"{kind}-{i}-{}\"", "x".repeat(256))
}

/// A datastore whose live tree holds keys the transaction changes, keys it leaves alone and
/// metadata; the transaction "default" changes the first, adds new keys and new metadata.
fn prepare(dir: &Path) -> FilesystemDataStore {
    // The setup need not be durable: it is not what is being crashed.
    let store = FilesystemDataStore::create(dir.join(VERSION_DIR))
        .unwrap()
        .durability(Durability::Deferred);
    let live = Committed::Live;
    let tx = Committed::pending("default");
    let services = Key::new(KeyType::Meta, "affected-services").unwrap();
    for i in 0..KEYS {
        store.set_key(&changed(i), &value("old", i), &live).unwrap();
        store.set_key(&changed(i), &value("new", i), &tx).unwrap();
        let kept = data(&format!("settings.kept.key{i}"));
        store.set_key(&kept, &value("kept", i), &live).unwrap();
        let added = data(&format!("settings.added.key{i}"));
        store.set_key(&added, &value("added", i), &tx).unwrap();
    }
    store
        .set_metadata(&services, &data("settings.kept"), r#"["kept"]"#, &live)
        .unwrap();
    store
        .set_metadata(&services, &data("settings.added"), r#"["added"]"#, &tx)
        .unwrap();
    FilesystemDataStore::new(store.base_path())
}

/// Every file under `root` (relative path → bytes), read without the datastore's code.
fn tree(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            if entry.file_type().unwrap().is_dir() {
                walk(root, &path, out);
            } else {
                let rel = path.strip_prefix(root).unwrap().to_path_buf();
                out.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// The names in the version directory besides `live` and `pending`.
fn leftovers(store: &FilesystemDataStore) -> BTreeSet<String> {
    std::fs::read_dir(store.base_path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "live" && n != "pending")
        .collect()
}

#[test]
fn commit_killed_at_each_step_leaves_the_old_live_tree_or_the_new_one() {
    if let Some(dir) = std::env::var_os("DATASTORE_CRASH_CHILD") {
        let store = FilesystemDataStore::new(Path::new(&dir).join(VERSION_DIR));
        store.commit_transaction("default").unwrap();
        return;
    }

    // The reference: an uninterrupted commit.
    let reference_dir = tempfile::tempdir().unwrap();
    let reference = prepare(reference_dir.path());
    let old = tree(&reference.live_path());
    let committed = reference.commit_transaction("default").unwrap();
    assert_eq!(committed.len(), 2 * KEYS);
    let new = tree(&reference.live_path());
    assert_ne!(old, new);
    assert!(
        leftovers(&reference).is_empty(),
        "{:?}",
        leftovers(&reference)
    );

    let exchanged = COMMIT_STEPS.iter().position(|s| *s == "exchanged").unwrap();
    for (index, step) in COMMIT_STEPS.iter().enumerate() {
        let dir = tempfile::tempdir().unwrap();
        let store = prepare(dir.path());
        assert_eq!(tree(&store.live_path()), old);
        let status = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", TEST_NAME, "--nocapture", "--test-threads=1"])
            .env("DATASTORE_CRASH_CHILD", dir.path())
            .env(KILL_AT_ENV, step)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        assert_eq!(
            status.signal(),
            Some(rustix::process::Signal::KILL.as_raw()),
            "{step}: the commit was not killed there ({status})"
        );

        // live/ is one whole tree: the old one until the exchange, the new one from it on.
        let live = tree(&store.live_path());
        if index < exchanged {
            assert!(live == old, "killed at {step}: live/ is not the old tree");
        } else {
            assert!(live == new, "killed at {step}: live/ is not the new tree");
        }
        // What the killed commit left is outside live/ and pending/, and readers never see it.
        let left = leftovers(&store);
        assert_eq!(
            left.is_empty(),
            *step == "done",
            "killed at {step}, left: {left:?}"
        );
        assert!(
            left.iter().all(|n| n.starts_with("live.new-")),
            "killed at {step}, left: {left:?}"
        );
        let fresh = FilesystemDataStore::new(store.base_path());
        assert_eq!(
            fresh.get_prefix("", &Committed::Live).unwrap().len(),
            if index < exchanged {
                2 * KEYS
            } else {
                3 * KEYS
            }
        );
        // The transaction is pending until it is removed, whole.
        let pending = fresh.list_transactions().unwrap();
        let removed = COMMIT_STEPS
            .iter()
            .position(|s| *s == "transaction-removed");
        assert_eq!(
            pending.is_empty(),
            Some(index) >= removed,
            "killed at {step}: pending {pending:?}"
        );
        if !pending.is_empty() {
            assert_eq!(
                fresh
                    .get_prefix("", &Committed::pending("default"))
                    .unwrap()
                    .len(),
                2 * KEYS
            );
        }

        // The next commit sweeps and completes (committing an already live transaction again
        // changes nothing).
        let again = fresh.commit_transaction("default").unwrap();
        assert_eq!(again.len(), if pending.is_empty() { 0 } else { 2 * KEYS });
        assert!(
            tree(&fresh.live_path()) == new,
            "{step}: not the new tree after a retry"
        );
        assert!(
            leftovers(&fresh).is_empty(),
            "{step}: {:?}",
            leftovers(&fresh)
        );
        assert!(fresh.list_transactions().unwrap().is_empty());
    }
}
