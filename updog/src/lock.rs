//! One updog at a time (DESIGN.md I6): an exclusive lock on `/run/lock/updog.lock`, taken
//! without waiting. The holder writes its pid into the file so that a second run can say who
//! holds it. The lock is the kernel's (`flock`), not the file's existence: a crashed holder's
//! lock is released by the kernel, and the stale pid in the file is simply overwritten.

use snafu::{ResultExt, Snafu};
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

#[derive(Debug, Snafu)]
#[snafu(visibility(pub(crate)))]
pub enum LockError {
    #[snafu(display(
        "Another updog is running ({}); lock {} is held. Wait for it to finish.",
        holder.map_or_else(|| "holder unknown".to_string(), |pid| format!("pid {pid}")),
        path.display()
    ))]
    Held { path: PathBuf, holder: Option<u32> },

    #[snafu(display("Failed to create the lock directory {}: {source}", path.display()))]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },

    #[snafu(display("Failed to open lock file {}: {source}", path.display()))]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },

    #[snafu(display("Failed to lock {}: {source}", path.display()))]
    Lock {
        path: PathBuf,
        source: std::io::Error,
    },

    #[snafu(display("Failed to write the holder's pid into lock file {}: {source}", path.display()))]
    WritePid {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The held lock; released when dropped (or when the process exits).
#[derive(Debug)]
pub struct UpdogLock {
    _file: File,
    path: PathBuf,
}

impl UpdogLock {
    /// Takes the lock at `path` (creating its directory and the file), or fails at once with
    /// [`LockError::Held`] naming the holder's pid.
    pub fn acquire(path: &Path) -> Result<Self, LockError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).context(CreateDirSnafu { path: dir })?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .context(OpenSnafu { path })?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return HeldSnafu {
                    path,
                    holder: read_pid(&mut file),
                }
                .fail();
            }
            Err(TryLockError::Error(source)) => return Err(source).context(LockSnafu { path }),
        }
        // Only the holder writes, so a reader sees the old pid or the new one, never a mix
        // (the pid is written in one short write after truncation).
        file.set_len(0)
            .and_then(|()| file.seek(SeekFrom::Start(0)))
            .and_then(|_| file.write_all(format!("{}\n", std::process::id()).as_bytes()))
            .context(WritePidSnafu { path })?;
        Ok(Self {
            _file: file,
            path: path.to_owned(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn read_pid(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.seek(SeekFrom::Start(0)).ok()?;
    file.read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_fails_fast_naming_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run/lock/updog.lock");
        let held = UpdogLock::acquire(&path).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            format!("{}\n", std::process::id())
        );

        let error = UpdogLock::acquire(&path).unwrap_err();
        assert!(
            matches!(error, LockError::Held { holder: Some(pid), .. } if pid == std::process::id()),
            "{error:?}"
        );
        assert_eq!(
            error.to_string(),
            format!(
                "Another updog is running (pid {}); lock {} is held. Wait for it to finish.",
                std::process::id(),
                path.display()
            )
        );

        drop(held);
        let again = UpdogLock::acquire(&path).unwrap();
        assert_eq!(again.path(), path);
    }

    #[test]
    fn a_stale_pid_from_a_dead_holder_does_not_block() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("updog.lock");
        std::fs::write(&path, "999999\n").unwrap();
        let _lock = UpdogLock::acquire(&path).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            format!("{}\n", std::process::id())
        );
    }
}
