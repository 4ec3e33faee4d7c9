//! Crash-safe file replacement: a reader (or a reboot) sees the old file or the new one, never a torn one.
//!
//! The bytes go to a temporary file in the destination's directory (`.tmp-<16 alphanumerics>`, created
//! exclusively and without following links), which is fsynced, renamed over the destination, and the directory is
//! fsynced so that the rename itself survives a power cut. A symlink at the destination is replaced by the new
//! file, never written through: a link planted where a file is written cannot redirect the write.

use crate::sync::sync_dir;
use rustix::fs::{Mode, OFlags};
use snafu::{ResultExt, Snafu};
use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The prefix of every temporary file this module creates. Listings that must skip in-flight writes (the
/// datastore's) skip names with this prefix.
pub const TEMP_PREFIX: &str = ".tmp-";

/// The permission bits of a new file when the caller sets none and no file exists yet.
const DEFAULT_MODE: u32 = 0o644;

/// A step of an atomic write failed; every variant names the file being written.
#[derive(Debug, Snafu)]
#[snafu(visibility(pub(crate)))]
pub enum AtomicWriteError {
    #[snafu(display("Failed to create a temporary file in {} to write {}: {source}", dir.display(), path.display()))]
    CreateTemp {
        dir: PathBuf,
        path: PathBuf,
        source: std::io::Error,
    },

    #[snafu(display("Failed to write {} (through temporary file {}): {source}", path.display(), temp.display()))]
    WriteTemp {
        path: PathBuf,
        temp: PathBuf,
        source: std::io::Error,
    },

    #[snafu(display("Failed to rename the temporary file into place as {}: {source}", path.display()))]
    Rename {
        path: PathBuf,
        source: std::io::Error,
    },

    #[snafu(display("Refusing to replace {}: it already exists", path.display()))]
    Exists { path: PathBuf },

    #[snafu(display("Failed to fsync directory {} after writing {}: {source}", dir.display(), path.display()))]
    SyncDir {
        dir: PathBuf,
        path: PathBuf,
        source: std::io::Error,
    },
}

/// How much durability a write buys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// The file is fsynced before its rename and its directory after it: a write that returned survives a power
    /// cut.
    #[default]
    EachWrite,
    /// Still atomic (temporary file + rename) but not fsynced: the caller makes a whole tree durable at once with
    /// [`crate::sync_tree`] before anything points at it (a datastore copy being built by a migration).
    Deferred,
}

/// What to do when the destination exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Existing {
    /// Replace it atomically.
    #[default]
    Replace,
    /// Refuse with [`AtomicWriteError::Exists`] (decided by the rename itself, so no race can clobber a file that
    /// appeared meanwhile): for files that must never be lost, such as private keys.
    Refuse,
}

/// An atomic write of one file; `AtomicWrite::new(path).mode(0o600).write(bytes)`.
#[derive(Debug, Clone)]
#[must_use = "an AtomicWrite does nothing until `write` is called"]
pub struct AtomicWrite<'a> {
    path: &'a Path,
    mode: Option<u32>,
    existing: Existing,
    durability: Durability,
}

impl<'a> AtomicWrite<'a> {
    /// Writes `path`; by default replacing it, fsynced, keeping an existing regular file's permission bits (a new
    /// file gets 0644).
    pub fn new(path: &'a Path) -> Self {
        Self {
            path,
            mode: None,
            existing: Existing::Replace,
            durability: Durability::EachWrite,
        }
    }

    /// Exactly these permission bits, whatever the umask.
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = Some(mode);
        self
    }

    pub fn existing(mut self, existing: Existing) -> Self {
        self.existing = existing;
        self
    }

    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Writes `contents`. On any failure the destination is as it was and no temporary file is left.
    pub fn write(&self, contents: &[u8]) -> Result<(), AtomicWriteError> {
        let path = self.path;
        let dir = parent_dir(path);
        let mode = self.mode.unwrap_or_else(|| existing_mode(path));
        let (mut file, temp) = create_temp(&dir).context(CreateTempSnafu { dir: &dir, path })?;
        let written = (|| {
            // The mode given at creation is narrowed by the umask; set it exactly.
            file.set_permissions(fs::Permissions::from_mode(mode))?;
            file.write_all(contents)?;
            if self.durability == Durability::EachWrite {
                file.sync_all()?;
            }
            Ok(())
        })();
        drop(file);
        if let Err(source) = written {
            remove_temp(&temp);
            return Err(source).context(WriteTempSnafu { path, temp: &temp });
        }
        let renamed = match self.existing {
            Existing::Replace => fs::rename(&temp, path),
            Existing::Refuse => rustix::fs::renameat_with(
                rustix::fs::CWD,
                &temp,
                rustix::fs::CWD,
                path,
                rustix::fs::RenameFlags::NOREPLACE,
            )
            .map_err(std::io::Error::from),
        };
        if let Err(source) = renamed {
            remove_temp(&temp);
            if self.existing == Existing::Refuse
                && source.kind() == std::io::ErrorKind::AlreadyExists
            {
                return ExistsSnafu { path }.fail();
            }
            return Err(source).context(RenameSnafu { path });
        }
        if self.durability == Durability::EachWrite {
            sync_dir(&dir).context(SyncDirSnafu { dir: &dir, path })?;
        }
        Ok(())
    }
}

/// Replaces `path` with `contents` atomically and durably (see [`AtomicWrite`] for the options).
pub fn write_atomically(path: &Path, contents: &[u8]) -> Result<(), AtomicWriteError> {
    AtomicWrite::new(path).write(contents)
}

/// 16 random alphanumerics (upstream's "rando"): temporary and datastore copy names.
pub fn random_suffix() -> String {
    std::iter::repeat_with(fastrand::alphanumeric)
        .take(16)
        .collect()
}

/// The directory `path` is in (`.` for a bare file name).
pub fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// The permission bits of the regular file at `path` (not followed through a link), else the default.
fn existing_mode(path: &Path) -> u32 {
    match fs::symlink_metadata(path) {
        Ok(metadata) if metadata.is_file() => metadata.mode() & 0o7777,
        _ => DEFAULT_MODE,
    }
}

/// A new temporary file in `dir`: created exclusively, never through a link, private until renamed.
fn create_temp(dir: &Path) -> std::io::Result<(File, PathBuf)> {
    loop {
        let temp = dir.join(format!("{TEMP_PREFIX}{}", random_suffix()));
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        match rustix::fs::open(&temp, flags, Mode::from_raw_mode(0o600)) {
            Ok(fd) => return Ok((File::from(fd), temp)),
            Err(rustix::io::Errno::EXIST) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

fn remove_temp(temp: &Path) {
    if let Err(e) = fs::remove_file(temp) {
        log::warn!("Failed to remove temporary file {}: {e}", temp.display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn replaces_the_file_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("motd");
        for durability in [Durability::EachWrite, Durability::Deferred] {
            AtomicWrite::new(&path)
                .durability(durability)
                .write(b"one")
                .unwrap();
            AtomicWrite::new(&path)
                .durability(durability)
                .write(b"two")
                .unwrap();
            assert_eq!(fs::read(&path).unwrap(), b"two");
        }
        assert_eq!(names(dir.path()), ["motd"]);
    }

    #[test]
    fn a_symlink_at_the_destination_is_replaced_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        fs::write(&victim, "precious").unwrap();
        let path = dir.path().join("status.json");
        symlink(&victim, &path).unwrap();
        write_atomically(&path, b"new").unwrap();
        assert_eq!(fs::read(&victim).unwrap(), b"precious");
        assert!(fs::symlink_metadata(&path).unwrap().is_file());
        assert_eq!(fs::read(&path).unwrap(), b"new");
    }

    #[test]
    fn mode_is_exact_and_an_existing_files_mode_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key.pem");
        AtomicWrite::new(&key).mode(0o600).write(b"secret").unwrap();
        assert_eq!(fs::metadata(&key).unwrap().mode() & 0o777, 0o600);
        write_atomically(&key, b"rotated").unwrap();
        assert_eq!(fs::metadata(&key).unwrap().mode() & 0o777, 0o600);
        let fresh = dir.path().join("fresh");
        write_atomically(&fresh, b"x").unwrap();
        assert_eq!(fs::metadata(&fresh).unwrap().mode() & 0o777, 0o644);
    }

    #[test]
    fn refuse_keeps_an_existing_file_and_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("root.pem");
        fs::write(&key, "old key").unwrap();
        let err = AtomicWrite::new(&key)
            .existing(Existing::Refuse)
            .write(b"new key")
            .unwrap_err();
        assert!(matches!(err, AtomicWriteError::Exists { .. }), "{err}");
        assert_eq!(
            err.to_string(),
            format!("Refusing to replace {}: it already exists", key.display())
        );
        assert_eq!(fs::read(&key).unwrap(), b"old key");
        assert_eq!(names(dir.path()), ["root.pem"]);
        let new = dir.path().join("new.pem");
        AtomicWrite::new(&new)
            .existing(Existing::Refuse)
            .write(b"k")
            .unwrap();
        assert_eq!(fs::read(&new).unwrap(), b"k");
    }

    #[test]
    fn a_missing_directory_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing").join("motd");
        let err = write_atomically(&path, b"1").unwrap_err();
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
    }

    #[test]
    fn random_suffixes_are_16_alphanumerics() {
        let s = random_suffix();
        assert_eq!(s.len(), 16);
        assert!(s.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(s, random_suffix());
    }
}
