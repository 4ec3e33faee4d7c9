//! One migrator at a time (invariant I6): an exclusive `flock` on the datastore directory itself.
//! Locking the directory writes nothing (a dry run changes no byte on disk), the lock dies with
//! the process (a SIGKILLed migrator never leaves a stale lock), and the holder is named from
//! `/proc/locks` rather than from a pid file that could be stale.

use crate::error::{self, Result};
use snafu::ResultExt;
use std::fs::{File, TryLockError};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The held lock; released when dropped (or when the process dies).
#[derive(Debug)]
pub struct DatastoreLock {
    _dir: File,
    path: PathBuf,
}

impl DatastoreLock {
    /// Takes the lock on `dir` or fails at once, naming the process holding it.
    pub fn acquire(dir: &Path) -> Result<Self> {
        let file = File::open(dir).context(error::LockOpenSnafu { path: dir })?;
        match file.try_lock() {
            Ok(()) => Ok(Self {
                _dir: file,
                path: dir.to_owned(),
            }),
            Err(TryLockError::WouldBlock) => error::LockedSnafu {
                path: dir,
                holder: describe_holder(&file),
            }
            .fail(),
            Err(TryLockError::Error(source)) => {
                Err(source).context(error::LockFailedSnafu { path: dir })
            }
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// "pid N: <command line>" of the process holding a flock on the file, from `/proc/locks`.
fn describe_holder(file: &File) -> String {
    let Ok(metadata) = file.metadata() else {
        return "holder unknown".into();
    };
    let (major, minor) = (
        rustix::fs::major(metadata.dev()),
        rustix::fs::minor(metadata.dev()),
    );
    let wanted = format!("{major:02x}:{minor:02x}:{}", metadata.ino());
    let locks = std::fs::read_to_string("/proc/locks").unwrap_or_default();
    let pid = locks.lines().find_map(|line| {
        // "1: FLOCK  ADVISORY  WRITE 1234 00:2d:5678 0 EOF"; waiters carry "->" and hold nothing.
        let fields: Vec<&str> = line.split_whitespace().collect();
        (fields.get(1) == Some(&"FLOCK") && fields.get(5) == Some(&wanted.as_str()))
            .then(|| fields.get(4).map(|p| p.to_string()))
            .flatten()
    });
    match pid {
        Some(pid) => {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|raw| {
                    String::from_utf8_lossy(&raw)
                        .split('\0')
                        .filter(|s| !s.is_empty())
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .unwrap_or_default();
            if cmdline.is_empty() {
                format!("pid {pid}")
            } else {
                format!("pid {pid}: {cmdline}")
            }
        }
        None => "holder unknown".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_fails_naming_the_holder_and_frees_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let held = DatastoreLock::acquire(dir.path()).unwrap();
        let err = DatastoreLock::acquire(dir.path()).unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains(&format!("pid {}", std::process::id())),
            "{message}"
        );
        assert!(
            message.contains(&dir.path().display().to_string()),
            "{message}"
        );
        drop(held);
        // Another test thread forking at the wrong moment holds a copy of the descriptor until
        // its child execs (close-on-exec); give such a copy a moment to go.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        while DatastoreLock::acquire(dir.path()).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "lock not released on drop"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        // Nothing was written into the directory.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
