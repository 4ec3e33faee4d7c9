//! Crash-safe file replacement: readers see the old file or the new one, never a torn write.

use snafu::{ResultExt, Snafu};
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

/// A step of an atomic write failed; every variant names the file being written.
#[derive(Debug, Snafu)]
#[snafu(visibility(pub(crate)))]
pub enum Error {
    #[snafu(display("Failed to create a temporary file in '{}' to write '{}': {source}", dir.display(), path.display()))]
    CreateTemp {
        dir: PathBuf,
        path: PathBuf,
        source: std::io::Error,
    },

    #[snafu(display("Failed to write '{}' (via temporary file '{}'): {source}", path.display(), temp.display()))]
    WriteTemp {
        path: PathBuf,
        temp: PathBuf,
        source: std::io::Error,
    },

    #[snafu(display("Failed to rename the temporary file into place as '{}': {source}", path.display()))]
    Rename {
        path: PathBuf,
        source: std::io::Error,
    },

    #[snafu(display("Failed to sync directory '{}' after replacing '{}': {source}", dir.display(), path.display()))]
    SyncDir {
        dir: PathBuf,
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Replaces `path` with `contents` atomically: a temporary file in the same directory is
/// written and fsynced, renamed over `path`, and the directory is fsynced so the rename itself
/// survives a crash. A symlink at `path` is followed (its target is replaced), as a plain
/// write would. An existing file's permissions are kept; a new file gets 0644.
pub fn write_atomically(path: &Path, contents: &[u8]) -> Result<(), Error> {
    let is_symlink = fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
    let destination = if is_symlink {
        fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
    } else {
        path.to_path_buf()
    };
    let dir = match destination.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = destination
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();

    let mut temp = tempfile::Builder::new()
        .prefix(&format!(".{file_name}."))
        .suffix(".tmp")
        .tempfile_in(&dir)
        .context(CreateTempSnafu {
            dir: &dir,
            path: &destination,
        })?;
    let temp_path = temp.path().to_path_buf();
    let write_context = || WriteTempSnafu {
        path: &destination,
        temp: &temp_path,
    };
    let permissions = match fs::metadata(&destination) {
        Ok(metadata) => Some(metadata.permissions()),
        Err(_) => new_file_permissions(),
    };
    if let Some(permissions) = permissions {
        temp.as_file()
            .set_permissions(permissions)
            .context(write_context())?;
    }
    temp.write_all(contents).context(write_context())?;
    temp.as_file().sync_all().context(write_context())?;
    // If the rename fails, the temporary file is removed when `temp` drops.
    temp.persist(&destination)
        .map_err(|e| e.error)
        .context(RenameSnafu { path: &destination })?;
    File::open(&dir)
        .and_then(|d| d.sync_all())
        .context(SyncDirSnafu {
            dir: &dir,
            path: &destination,
        })?;
    Ok(())
}

/// tempfile creates 0600 files; a manifest is published, so a new one is made 0644 like a
/// plain write under the usual umask.
#[cfg(unix)]
fn new_file_permissions() -> Option<fs::Permissions> {
    use std::os::unix::fs::PermissionsExt;
    Some(fs::Permissions::from_mode(0o644))
}

#[cfg(not(unix))]
fn new_file_permissions() -> Option<fs::Permissions> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_files_in(dir: &Path) -> Vec<String> {
        fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.ends_with(".tmp"))
            .collect()
    }

    #[test]
    fn creates_a_new_file_with_the_contents_and_no_leftovers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("manifest.json");
        write_atomically(&path, b"{}").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"{}");
        assert!(temp_files_in(dir.path()).is_empty());
    }

    #[cfg(unix)]
    #[test]
    fn new_files_are_world_readable_and_existing_modes_are_kept() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("manifest.json");
        write_atomically(&path, b"1").unwrap();
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o644
        );
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        write_atomically(&path, b"2").unwrap();
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o640
        );
        assert_eq!(fs::read(&path).unwrap(), b"2");
    }

    #[test]
    fn replaces_an_existing_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.json");
        fs::write(&path, "old contents that are longer").unwrap();
        write_atomically(&path, b"new").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
    }

    #[cfg(unix)]
    #[test]
    fn a_symlink_is_followed_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.json");
        let link = dir.path().join("link.json");
        fs::write(&real, "old").unwrap();
        std::os::unix::fs::symlink(&real, &link).unwrap();
        write_atomically(&link, b"new").unwrap();
        assert!(
            fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(fs::read(&real).unwrap(), b"new");
    }

    #[test]
    fn a_missing_directory_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing").join("manifest.json");
        let err = write_atomically(&path, b"{}").unwrap_err();
        assert!(matches!(err, Error::CreateTemp { .. }), "{err}");
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
    }
}
