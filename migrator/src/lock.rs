//! One writer of a datastore at a time (invariant I6): [`nodeio::Lock::datastore`], keyed by the datastore
//! directory's device and inode (so every path naming it, through `current` or not, meets the same lock), in the
//! machine-wide lock directory. Nothing is written into the datastore (a dry run changes no byte of it), the lock
//! dies with the process (a SIGKILLed migrator never leaves a stale lock), and a refused run names the holder. The
//! API's settings commits take the same lock.

use crate::error::{self, Result};
use snafu::ResultExt;
use std::path::{Path, PathBuf};

/// The held lock; released when dropped (or when the process dies).
#[derive(Debug)]
pub struct DatastoreLock {
    _lock: nodeio::Lock,
    path: PathBuf,
}

impl DatastoreLock {
    /// Takes the lock of the datastore directory `dir` or fails at once, naming the process holding it.
    pub fn acquire(dir: &Path) -> Result<Self> {
        let lock = nodeio::Lock::datastore(dir).context(error::LockSnafu { path: dir })?;
        Ok(Self {
            _lock: lock,
            path: dir.to_owned(),
        })
    }

    /// The datastore directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_fails_naming_the_holder_and_frees_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let held = DatastoreLock::acquire(dir.path()).unwrap();
        let message = DatastoreLock::acquire(dir.path()).unwrap_err().to_string();
        assert!(
            message.contains(&format!("pid {}", std::process::id())),
            "{message}"
        );
        assert!(
            message.contains(&dir.path().display().to_string()),
            "{message}"
        );
        assert!(
            message.contains("against other writers (migrator, settings commits)"),
            "{message}"
        );
        drop(held);
        let _again = DatastoreLock::acquire(dir.path()).unwrap();
        // Nothing was written into the directory.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
