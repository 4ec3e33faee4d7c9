//! The datastore's writes, on nodeio's: a value is written to a temporary file (`.tmp-<rand>`) in
//! its own directory and renamed over the key's file, so a reader (or a reboot) sees the old
//! value or the new one, never a torn one. This module adds the datastore's context to nodeio's
//! errors (the key, the datastore tree) and creates the key directories.

use crate::error::{self, Result};
use nodeio::{AtomicWrite, Durability, Existing};
use snafu::ResultExt;
use std::fs;
use std::path::Path;

/// Replaces `path` with `contents` atomically; `key` names the key for errors.
pub(crate) fn write_atomically(
    path: &Path,
    contents: &[u8],
    key: &str,
    durability: Durability,
) -> Result<()> {
    AtomicWrite::new(path)
        .durability(durability)
        .write(contents)
        .context(error::WriteKeySnafu { key })
}

/// Writes `contents` as a new file at `path` (a fresh inode; an existing entry there is an
/// error), with permission bits `mode` (else nodeio's default), without any fsync: for a tree
/// that the caller fsyncs as a whole before anything points at it (a commit's next live tree).
pub(crate) fn write_new_file(
    path: &Path,
    contents: &[u8],
    key: &str,
    mode: Option<u32>,
) -> Result<()> {
    let mut write = AtomicWrite::new(path)
        .durability(Durability::Deferred)
        .existing(Existing::Refuse);
    if let Some(mode) = mode {
        write = write.mode(mode);
    }
    write.write(contents).context(error::WriteKeySnafu { key })
}

/// Creates `dir` and its missing ancestors up to `base`; with [`Durability::EachWrite`] each new
/// directory's parent is fsynced so the new entry survives a crash.
pub(crate) fn create_dirs(base: &Path, dir: &Path, durability: Durability) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut missing = Vec::new();
    for ancestor in dir.ancestors() {
        if ancestor.is_dir() || ancestor == base.parent().unwrap_or(base) {
            break;
        }
        missing.push(ancestor);
    }
    for new_dir in missing.iter().rev() {
        match fs::create_dir(new_dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && new_dir.is_dir() => {}
            Err(source) => {
                return Err(source).context(error::IoSnafu {
                    action: "create directory",
                    path: *new_dir,
                });
            }
        }
        if durability == Durability::EachWrite
            && let Some(parent) = new_dir.parent()
        {
            sync_dir(parent)?;
        }
    }
    Ok(())
}

/// fsyncs a directory, so the entries created, renamed or removed in it are durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    nodeio::sync_dir(dir).context(error::IoSnafu {
        action: "fsync directory",
        path: dir,
    })
}

/// fsyncs every regular file and directory under `root` (and `root` itself), deepest first, so a
/// datastore copy written with [`Durability::Deferred`] is complete on disk. Symlinks are not
/// followed.
pub fn sync_tree(root: &Path) -> Result<()> {
    nodeio::sync_tree(root).context(error::SyncTreeSnafu { root })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("motd");
        for durability in [Durability::EachWrite, Durability::Deferred] {
            write_atomically(&path, b"\"one\"", "settings.motd", durability).unwrap();
            write_atomically(&path, b"\"two\"", "settings.motd", durability).unwrap();
            assert_eq!(fs::read(&path).unwrap(), b"\"two\"");
        }
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["motd"]);
    }

    #[test]
    fn failed_write_names_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing-dir").join("motd");
        let err =
            write_atomically(&path, b"1", "settings.motd", Durability::EachWrite).unwrap_err();
        let message = err.to_string();
        assert!(message.contains("'settings.motd'"), "{message}");
        assert!(message.contains(&path.display().to_string()), "{message}");
    }

    #[test]
    fn a_failed_tree_sync_names_the_tree_and_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("v1.0.0_missing");
        let message = sync_tree(&missing).unwrap_err().to_string();
        assert!(
            message.starts_with(&format!(
                "Failed to make datastore tree {} durable: Failed to list {}",
                missing.display(),
                missing.display()
            )),
            "{message}"
        );
    }

    #[test]
    fn create_dirs_makes_the_chain() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("live");
        fs::create_dir(&base).unwrap();
        let deep = base.join("a").join("b").join("c");
        create_dirs(&base, &deep, Durability::EachWrite).unwrap();
        assert!(deep.is_dir());
        sync_tree(&base).unwrap();
    }
}
