//! A commit SIGKILLed at any instant never leaves a half-written value in `live/`, and committing
//! again completes it.
//!
//! The test re-runs its own binary as the committing child (`DATASTORE_CRASH_CHILD=<dir>`), kills
//! it after a delay spread over the whole commit, and checks every live value.

use datastore::{Committed, Durability, FilesystemDataStore, Key, KeyType};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const KEYS: usize = 200;
const TEST_NAME: &str = "commit_killed_at_any_point_leaves_every_live_value_whole";

fn key(i: usize) -> Key {
    Key::new(KeyType::Data, format!("settings.group{}.key{i}", i % 7)).unwrap()
}

fn value(kind: &str, i: usize) -> String {
    // Large enough that a torn write would be visible as a truncated JSON string.
    format!("\"{kind}-{i}-{}\"", "x".repeat(1024))
}

fn prepare(dir: &Path) -> FilesystemDataStore {
    // The setup need not be durable: it is not what is being crashed.
    let store = FilesystemDataStore::create(dir.join("v1.0.0_0123456789abcdef"))
        .unwrap()
        .durability(Durability::Deferred);
    let tx = Committed::pending("default");
    for i in 0..KEYS {
        store
            .set_key(&key(i), &value("old", i), &Committed::Live)
            .unwrap();
        store.set_key(&key(i), &value("new", i), &tx).unwrap();
    }
    FilesystemDataStore::new(store.base_path())
}

/// How many live values already hold the new value (read while the child commits).
fn count_new(store: &FilesystemDataStore) -> usize {
    (0..KEYS)
        .filter(|&i| {
            store
                .get_key(&key(i), &Committed::Live)
                .ok()
                .flatten()
                .is_some_and(|v| v == value("new", i))
        })
        .count()
}

fn run_child(dir: &Path) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", TEST_NAME, "--nocapture", "--test-threads=1"])
        .env("DATASTORE_CRASH_CHILD", dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn commit_killed_at_any_point_leaves_every_live_value_whole() {
    if let Some(dir) = std::env::var_os("DATASTORE_CRASH_CHILD") {
        let store = FilesystemDataStore::new(Path::new(&dir).join("v1.0.0_0123456789abcdef"));
        store.commit_transaction("default").unwrap();
        return;
    }

    // Kill the child once it has made a given number of values live: from before the first to
    // after the last (then the kill lands in the removal of the transaction, or after it).
    let rounds = 12;
    let mut interrupted = 0;
    for round in 0..=rounds {
        let dir = tempfile::tempdir().unwrap();
        let store = prepare(dir.path());
        let target = KEYS * round / rounds;
        let mut child = run_child(dir.path());
        let deadline = Instant::now() + Duration::from_secs(60);
        while count_new(&store) < target && Instant::now() < deadline {
            if child.try_wait().unwrap().is_some() {
                break;
            }
        }
        child.kill().unwrap(); // SIGKILL
        let status = child.wait().unwrap();
        if !status.success() {
            interrupted += 1;
        }

        // Every live value is whole: the old one or the new one.
        let mut new = 0;
        for i in 0..KEYS {
            let live = store.get_key(&key(i), &Committed::Live).unwrap().unwrap();
            assert!(
                live == value("old", i) || live == value("new", i),
                "round {round}: key {i} holds a torn value of {} bytes",
                live.len()
            );
            new += usize::from(live == value("new", i));
        }
        // Until the transaction is gone it is still complete, and committing again finishes.
        let pending = store.list_transactions().unwrap();
        if pending.is_empty() {
            assert_eq!(
                new, KEYS,
                "round {round}: transaction gone before all keys were live"
            );
        } else {
            assert_eq!(
                store
                    .get_prefix("", &Committed::pending("default"))
                    .unwrap()
                    .len(),
                KEYS
            );
            store.commit_transaction("default").unwrap();
        }
        for i in 0..KEYS {
            assert_eq!(
                store.get_key(&key(i), &Committed::Live).unwrap().unwrap(),
                value("new", i)
            );
        }
        assert!(store.list_transactions().unwrap().is_empty());
    }
    // The delays must really have cut commits short, or the test proves nothing.
    assert!(
        interrupted >= rounds - 1,
        "only {interrupted} of {rounds} commits were interrupted"
    );
}
