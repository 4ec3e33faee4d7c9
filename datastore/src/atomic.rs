//! Crash-safe writes: a value is written to a temporary file in its own directory and renamed
//! over the key's file, so a reader (or a reboot) sees the old value or the new one, never a
//! torn one.

use crate::error::{self, Result};
use snafu::ResultExt;
use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

/// How much durability each write buys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// Each write is fsynced before its rename, and its directory after it: a write that
    /// returned survives a power cut. What the live datastore of a running node needs.
    #[default]
    EachWrite,
    /// Writes are still atomic (temp + rename) but not fsynced; the caller makes the whole tree
    /// durable at once with [`sync_tree`] before anything points at it. What a migration
    /// building a fresh datastore copy needs (hundreds of fsyncs would buy nothing: the copy is
    /// not used until migrator syncs it and flips the links).
    Deferred,
}

/// The prefix of temporary files. Encoded key segments never start with a dot (it is encoded as
/// `%2E`), so listings skip these files without ambiguity.
pub(crate) const TEMP_PREFIX: &str = ".tmp-";

/// Replaces `path` with `contents` atomically; `key` names the key for errors.
pub(crate) fn write_atomically(
    path: &Path,
    contents: &[u8],
    key: &str,
    durability: Durability,
) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let temp = dir.join(format!("{TEMP_PREFIX}{}", random_suffix()));
    let write = || -> std::io::Result<()> {
        let mut file = File::create_new(&temp)?;
        file.write_all(contents)?;
        if durability == Durability::EachWrite {
            file.sync_all()?;
        }
        Ok(())
    };
    if let Err(source) = write() {
        let _ignored = fs::remove_file(&temp);
        return Err(source).context(error::WriteKeySnafu { key, path });
    }
    if let Err(source) = fs::rename(&temp, path) {
        let _ignored = fs::remove_file(&temp);
        return Err(source).context(error::WriteKeySnafu { key, path });
    }
    if durability == Durability::EachWrite {
        sync_dir(dir)?;
    }
    Ok(())
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
    File::open(dir)
        .and_then(|d| d.sync_all())
        .context(error::IoSnafu {
            action: "fsync directory",
            path: dir,
        })
}

/// fsyncs every regular file and directory under `root` (and `root` itself), deepest first, so a
/// datastore copy written with [`Durability::Deferred`] is complete on disk. Symlinks are not
/// followed.
pub fn sync_tree(root: &Path) -> Result<()> {
    let entries = fs::read_dir(root).context(error::ListSnafu { path: root })?;
    for entry in entries {
        let entry = entry.context(error::ListSnafu { path: root })?;
        let path = entry.path();
        let kind = entry
            .file_type()
            .context(error::ListSnafu { path: &path })?;
        if kind.is_dir() {
            sync_tree(&path)?;
        } else if kind.is_file() {
            File::open(&path)
                .and_then(|f| f.sync_all())
                .context(error::IoSnafu {
                    action: "fsync",
                    path: &path,
                })?;
        }
    }
    sync_dir(root)
}

/// 16 random alphanumerics (upstream's "rando"): temporary and copy names.
pub fn random_suffix() -> String {
    std::iter::repeat_with(fastrand::alphanumeric)
        .take(16)
        .collect()
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
        assert!(err.to_string().contains("'settings.motd'"), "{err}");
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

    #[test]
    fn random_suffixes_are_16_alphanumerics() {
        let s = random_suffix();
        assert_eq!(s.len(), 16);
        assert!(s.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(s, random_suffix());
    }
}
