//! Crash-safe file operations: every file this crate publishes is written to a temporary name in
//! the same directory, fsynced, renamed into place, and the directory fsynced, so a crash leaves
//! either the old file or the new one, never a torn one.

use crate::error::{self, Result};
use nodeio::atomic::parent_dir;
use nodeio::{AtomicWrite, AtomicWriteError};
use snafu::ResultExt;
use std::fs::{File, OpenOptions};
use std::path::Path;

/// What to do when the destination of [`write_file_atomic`] already exists; `Refuse` (for private
/// keys, which must never be lost) fails with [`error::Error::FileExists`].
pub(crate) use nodeio::Existing;

/// Writes `bytes` to `path` atomically with exactly the given permission bits, creating the
/// directory if needed.
pub(crate) fn write_file_atomic(
    path: &Path,
    bytes: &[u8],
    mode: u32,
    existing: Existing,
) -> Result<()> {
    let dir = parent_dir(path);
    std::fs::create_dir_all(&dir).context(error::CreateDirSnafu { path: &dir })?;
    AtomicWrite::new(path)
        .mode(mode)
        .existing(existing)
        .write(bytes)
        .map_err(|source| match source {
            AtomicWriteError::Exists { path } => error::Error::FileExists { path },
            source => error::Error::AtomicWrite { source },
        })
}

/// Fsyncs a directory so that renames and creations inside it survive a crash.
pub(crate) fn fsync_dir(dir: &Path) -> Result<()> {
    nodeio::sync_dir(dir).context(error::SyncDirSnafu { path: dir })
}

/// Renames `from` to `to` (same file system), then fsyncs the destination directory.
pub(crate) fn rename_durable(from: &Path, to: &Path) -> Result<()> {
    std::fs::rename(from, to).context(error::RenameSnafu { from, to })?;
    fsync_dir(&parent_dir(to))
}

/// An exclusive lock on a repository directory, held for the whole of a build, refresh or
/// rotation: two publishers writing one repository at once could interleave their renames.
#[derive(Debug)]
pub(crate) struct RepoLock {
    _file: File,
}

/// The lock file inside the repository directory (a dot file: not meant to be served).
pub(crate) const LOCK_FILE: &str = ".tuftool-config.lock";

impl RepoLock {
    pub(crate) fn acquire(repo_dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(repo_dir).context(error::CreateDirSnafu { path: repo_dir })?;
        let path = repo_dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .context(error::WriteFileSnafu { path: &path })?;
        match file.try_lock() {
            Ok(()) => Ok(Self { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => error::RepoLockedSnafu { path }.fail(),
            Err(std::fs::TryLockError::Error(source)) => {
                Err(error::Error::WriteFile { path, source })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn atomic_write_sets_mode_and_refuses_to_clobber() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.pem");
        write_file_atomic(&path, b"one", 0o600, Existing::Refuse).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let err = write_file_atomic(&path, b"two", 0o600, Existing::Refuse).unwrap_err();
        assert!(matches!(err, error::Error::FileExists { .. }), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), b"one");
        write_file_atomic(&path, b"three", 0o644, Existing::Replace).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"three");
        // No temporary files are left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_second_lock_on_the_same_repository_fails_fast() {
        let dir = tempfile::tempdir().unwrap();
        let _held = RepoLock::acquire(dir.path()).unwrap();
        let err = RepoLock::acquire(dir.path()).unwrap_err();
        assert!(matches!(err, error::Error::RepoLocked { .. }), "{err}");
    }
}
