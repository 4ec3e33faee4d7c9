//! updata's file replacement: nodeio's atomic write (temporary file in the same directory, fsync,
//! rename, directory fsync; an existing file keeps its permissions, a new one is 0644), through a
//! symlink at the destination.
//!
//! Following the link is updata's choice, not nodeio's default: updata is a publisher tool run by
//! an operator in their own checkout, where a `manifest.json` that links to a shared copy is the
//! operator's doing, and a plain write (`>`) would go through it too. Replacing the link with a
//! regular file would silently fork the operator's copy. The node's writers, which may meet a link
//! planted by someone else, use nodeio's default and replace the link instead.

use std::fs;
use std::path::{Path, PathBuf};

/// A step of the write failed; every variant names the file being written.
pub use nodeio::AtomicWriteError as Error;

/// Replaces `path` with `contents` atomically and durably. A symlink at `path` is followed (its
/// target is replaced, the link is kept); a dangling one is replaced by the file.
pub fn write_atomically(path: &Path, contents: &[u8]) -> Result<(), Error> {
    nodeio::write_atomically(&destination(path), contents)
}

/// The file a write to `path` replaces: the resolved target of a symlink at `path`, else `path`.
fn destination(path: &Path) -> PathBuf {
    let is_symlink = fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
    if is_symlink {
        fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
    } else {
        path.to_path_buf()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn names_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn creates_a_new_file_with_the_contents_and_no_leftovers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("manifest.json");
        write_atomically(&path, b"{}").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"{}");
        assert_eq!(names_in(dir.path()), ["manifest.json"]);
    }

    #[test]
    fn new_files_are_world_readable_and_existing_modes_are_kept() {
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
        assert_eq!(names_in(dir.path()), ["link.json", "real.json"]);
    }

    #[test]
    fn a_dangling_symlink_is_replaced_by_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("manifest.json");
        std::os::unix::fs::symlink(dir.path().join("gone.json"), &link).unwrap();
        write_atomically(&link, b"{}").unwrap();
        assert!(fs::symlink_metadata(&link).unwrap().is_file());
        assert_eq!(fs::read(&link).unwrap(), b"{}");
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
