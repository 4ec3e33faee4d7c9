//! Making what was written durable: a directory's entries, or a whole tree at once.

use snafu::{ResultExt, Snafu};
use std::fs::{self, File};
use std::path::{Path, PathBuf};

/// An fsync (or the listing before it) failed; names the path.
#[derive(Debug, Snafu)]
#[snafu(display("Failed to {action} {}: {source}", path.display()))]
pub struct SyncError {
    action: &'static str,
    path: PathBuf,
    source: std::io::Error,
}

impl SyncError {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// fsyncs a directory, so that the entries created, renamed or removed in it are durable.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// fsyncs every regular file and directory under `root`, and `root` itself, deepest first. Symlinks are not
/// followed (a link's target is not part of the tree).
pub fn sync_tree(root: &Path) -> Result<(), SyncError> {
    let list = |path: &Path| SyncSnafu {
        action: "list",
        path: path.to_path_buf(),
    };
    for entry in fs::read_dir(root).with_context(|_| list(root))? {
        let entry = entry.with_context(|_| list(root))?;
        let path = entry.path();
        let kind = entry.file_type().with_context(|_| list(&path))?;
        if kind.is_dir() {
            sync_tree(&path)?;
        } else if kind.is_file() {
            File::open(&path)
                .and_then(|file| file.sync_all())
                .context(SyncSnafu {
                    action: "fsync",
                    path: &path,
                })?;
        }
    }
    sync_dir(root).context(SyncSnafu {
        action: "fsync directory",
        path: root,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tree_with_links_syncs_and_a_missing_root_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let deep = dir.path().join("a/b/c");
        fs::create_dir_all(&deep).unwrap();
        fs::write(deep.join("value"), "1").unwrap();
        std::os::unix::fs::symlink("/nonexistent", dir.path().join("a/dangling")).unwrap();
        sync_tree(dir.path()).unwrap();

        let missing = dir.path().join("missing");
        let err = sync_tree(&missing).unwrap_err();
        assert_eq!(err.path(), missing);
        assert!(
            err.to_string()
                .starts_with(&format!("Failed to list {}", missing.display())),
            "{err}"
        );
    }
}
