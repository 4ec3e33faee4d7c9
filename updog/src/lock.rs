//! One updog at a time on a node's state (invariant I6, docs/architecture.md): the trusted-metadata store, the migration and metadata
//! caches. An exclusive lock on `/run/abupdate/updog.lock` under the sysroot, taken without waiting, through
//! [`nodeio::Lock`]: no symlink, hard link or foreign file at that path is followed or written, the directory must
//! be private, and a second run names the holder's pid and command line.
//!
//! Writing the OS disk needs a second lock, the disk's own ([`signpost::DiskLock`]), which every writer of the disk
//! shares whatever sysroot names it; this one only keeps two updogs from writing updog's own files at once.

use std::path::Path;

pub use nodeio::LockError;

/// What the lock protects, as a refusal names it.
const RESOURCE: &str = "updog's state (trusted TUF metadata and caches)";

/// The held lock; released when dropped (or when the process exits).
#[derive(Debug)]
pub struct UpdogLock {
    lock: nodeio::Lock,
}

impl UpdogLock {
    /// Takes the lock at `path`, or fails at once with [`LockError::Held`] naming the holder.
    pub fn acquire(path: &Path) -> Result<Self, LockError> {
        Ok(Self {
            lock: nodeio::Lock::at(path, RESOURCE)?,
        })
    }

    pub fn path(&self) -> &Path {
        self.lock.path()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_fails_fast_naming_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run/abupdate/updog.lock");
        let held = UpdogLock::acquire(&path).unwrap();
        let error = UpdogLock::acquire(&path).unwrap_err();
        assert!(
            error.to_string().starts_with(&format!(
                "updog's state (trusted TUF metadata and caches) is in use: pid {} (",
                std::process::id()
            )),
            "{error}"
        );
        drop(held);
        let again = UpdogLock::acquire(&path).unwrap();
        assert_eq!(again.path(), path);
    }
}
