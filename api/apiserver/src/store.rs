//! The settings datastore (`<sysroot>/var/lib/bottlerocket/datastore/current`) and its one-writer rule.
//!
//! Every datastore operation runs under an in-process mutex, so concurrent requests queue instead of failing (two
//! threads of one process would otherwise refuse each other's file lock). Every write also takes the datastore's
//! machine-wide lock, [`nodeio::Lock::datastore`] on the datastore directory, the lock migrator takes: a write while
//! migrator runs answers 423 naming the holder. Reads take the mutex only, so that a transaction being committed is
//! never read half-removed.

use crate::error::{self, RequestError};
use crate::settings::{self, SettingsPatch};
use datastore::{Committed, FilesystemDataStore, Key, KeyType};
use snafu::ResultExt;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// The datastore directory under a sysroot (holding `current` and the version links).
pub const DATASTORE_DIR: &str = "var/lib/bottlerocket/datastore";

/// Which settings a read returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// Every setting.
    All,
    /// Keys whose names start with this string (`settings.updates`).
    Prefix(String),
    /// Exactly these keys (absent ones are left out).
    Keys(Vec<Key>),
}

/// The settings store of one node.
#[derive(Debug)]
pub struct SettingsStore {
    dir: PathBuf,
    serial: Mutex<()>,
}

/// Proof that the caller may write: the in-process turn and the machine-wide datastore lock.
///
/// Fields drop in declaration order: the file lock must go before the turn, or the next request in this process
/// would find the lock still held (by us) and answer 423.
struct WriteTurn<'a> {
    _lock: nodeio::Lock,
    _serial: MutexGuard<'a, ()>,
}

impl SettingsStore {
    #[must_use]
    pub fn new(sysroot: &Path) -> Self {
        Self {
            dir: sysroot.join(DATASTORE_DIR),
            serial: Mutex::new(()),
        }
    }

    fn store(&self) -> FilesystemDataStore {
        FilesystemDataStore::new(self.dir.join("current"))
    }

    fn read_turn(&self) -> MutexGuard<'_, ()> {
        // The mutex guards no data, so a panic in another request leaves nothing inconsistent behind it.
        self.serial.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn write_turn(&self) -> Result<WriteTurn<'_>, RequestError> {
        let serial = self.read_turn();
        let lock = nodeio::Lock::datastore(&self.dir).map_err(|source| match source {
            nodeio::LockError::Held { .. } => RequestError::DatastoreBusy { source },
            source => RequestError::DatastoreLock { source },
        })?;
        Ok(WriteTurn {
            _lock: lock,
            _serial: serial,
        })
    }

    /// Checks a transaction name as the datastore will (non-empty, short enough once encoded).
    pub fn check_transaction(tx: &str) -> Result<Committed, RequestError> {
        let committed = Committed::pending(tx);
        FilesystemDataStore::new("/")
            .committed_path(&committed)
            .context(error::BadTransactionSnafu { name: tx })?;
        Ok(committed)
    }

    /// The selected settings of live or of a pending transaction, with their raw values.
    pub fn get(
        &self,
        selection: &Selection,
        committed: &Committed,
    ) -> Result<BTreeMap<Key, String>, RequestError> {
        let _turn = self.read_turn();
        let store = self.store();
        let action = || format!("read settings from {committed}");
        match selection {
            Selection::All => store
                .get_prefix(&format!("{}.", settings::SETTINGS), committed)
                .with_context(|_| error::DatastoreSnafu { action: action() }),
            Selection::Prefix(prefix) => store
                .get_prefix(prefix, committed)
                .with_context(|_| error::DatastoreSnafu { action: action() }),
            Selection::Keys(keys) => {
                let mut found = BTreeMap::new();
                for key in keys {
                    if let Some(value) = store
                        .get_key(key, committed)
                        .with_context(|_| error::DatastoreSnafu { action: action() })?
                    {
                        found.insert(key.clone(), value);
                    }
                }
                Ok(found)
            }
        }
    }

    /// Writes a checked patch into pending transaction `tx`. A key that would hold a value where live or the
    /// transaction has keys below it (or the reverse) is refused first, so a later commit cannot fail half-way.
    pub fn patch(&self, tx: &Committed, patch: &SettingsPatch) -> Result<(), RequestError> {
        let _turn = self.write_turn()?;
        let store = self.store();
        let mut existing = BTreeSet::new();
        for committed in [&Committed::Live, tx] {
            existing.extend(
                store
                    .list_populated_keys(&format!("{}.", settings::SETTINGS), committed)
                    .with_context(|_| error::DatastoreSnafu {
                        action: format!("list settings of {committed}"),
                    })?,
            );
        }
        for (key, _) in &patch.values {
            check_shape(key, &existing)?;
        }
        for (key, value) in &patch.values {
            store
                .set_key(key, value, tx)
                .with_context(|_| error::DatastoreSnafu {
                    action: format!("write '{key}' into {tx}"),
                })?;
        }
        Ok(())
    }

    /// Commits transaction `tx` into live; returns the committed keys.
    pub fn commit(&self, tx: &str) -> Result<BTreeSet<Key>, RequestError> {
        let turn = self.write_turn()?;
        self.commit_in_turn(&turn, tx)
    }

    fn commit_in_turn(
        &self,
        _turn: &WriteTurn<'_>,
        tx: &str,
    ) -> Result<BTreeSet<Key>, RequestError> {
        self.store()
            .commit_transaction(tx)
            .with_context(|_| error::DatastoreSnafu {
                action: format!("commit transaction '{tx}'"),
            })
    }

    /// Commits transaction `tx`, then hands every live setting to `apply` while still holding the write turn (so
    /// two applies never interleave an older snapshot over a newer one); returns the committed keys.
    pub fn commit_then<T>(
        &self,
        tx: &str,
        apply: impl FnOnce(&BTreeMap<Key, String>) -> Result<T, RequestError>,
    ) -> Result<BTreeSet<Key>, RequestError> {
        let turn = self.write_turn()?;
        let committed = self.commit_in_turn(&turn, tx)?;
        let live = self
            .store()
            .get_prefix(&format!("{}.", settings::SETTINGS), &Committed::Live)
            .context(error::DatastoreSnafu {
                action: "read the live settings to apply them",
            })?;
        apply(&live)?;
        Ok(committed)
    }

    /// Drops transaction `tx`; returns the keys it held.
    pub fn delete(&self, tx: &str) -> Result<BTreeSet<Key>, RequestError> {
        let _turn = self.write_turn()?;
        self.store()
            .delete_transaction(tx)
            .with_context(|_| error::DatastoreSnafu {
                action: format!("delete transaction '{tx}'"),
            })
    }

    /// The pending transactions' names.
    pub fn transactions(&self) -> Result<BTreeSet<String>, RequestError> {
        let _turn = self.read_turn();
        self.store()
            .list_transactions()
            .context(error::DatastoreSnafu {
                action: "list transactions",
            })
    }
}

/// A key may not sit above or below an existing key: one path is a file or a directory, not both.
fn check_shape(key: &Key, existing: &BTreeSet<Key>) -> Result<(), RequestError> {
    for other in existing {
        if other == key {
            continue;
        }
        let reason = if other.starts_with_segments(key.segments()) {
            "it would hold a value where settings exist below it"
        } else if key.starts_with_segments(other.segments()) {
            "it would go below a setting that holds a value"
        } else {
            continue;
        };
        return error::KeyConflictSnafu {
            key: key.name(),
            existing: other.name(),
            reason,
        }
        .fail();
    }
    Ok(())
}

/// A key named in a query (`settings.motd`, or `motd` under settings).
pub fn query_key(name: &str) -> Result<Key, RequestError> {
    let full = under_settings(name);
    Key::new(KeyType::Data, &full).map_err(|e| RequestError::BadQuery {
        reason: format!("key '{name}': {e}"),
    })
}

/// A name under `settings.` unless it already is.
#[must_use]
pub fn under_settings(name: &str) -> String {
    if name == settings::SETTINGS || name.starts_with(&format!("{}.", settings::SETTINGS)) {
        name.to_string()
    } else {
        format!("{}.{name}", settings::SETTINGS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> Key {
        Key::new(KeyType::Data, name).unwrap()
    }

    #[test]
    fn a_value_above_or_below_an_existing_value_is_refused() {
        let existing: BTreeSet<Key> = [key("settings.a.b"), key("settings.c")].into();
        check_shape(&key("settings.a.c"), &existing).unwrap();
        check_shape(&key("settings.a.b"), &existing).unwrap();
        check_shape(&key("settings.cc"), &existing).unwrap();
        let err = check_shape(&key("settings.a"), &existing).unwrap_err();
        assert!(err.to_string().contains("'settings.a.b'"), "{err}");
        let err = check_shape(&key("settings.c.d"), &existing).unwrap_err();
        assert!(err.to_string().contains("below a setting"), "{err}");
    }

    #[test]
    fn query_names_are_taken_under_settings() {
        assert_eq!(under_settings("motd"), "settings.motd");
        assert_eq!(under_settings("settings.motd"), "settings.motd");
        assert_eq!(under_settings("settings"), "settings");
        assert_eq!(under_settings("settingsx"), "settings.settingsx");
        assert!(query_key("a..b").is_err());
    }
}
