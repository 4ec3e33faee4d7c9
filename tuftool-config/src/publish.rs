//! Atomic publication. Everything is written into a staging directory inside the repository
//! (`OUT/.staging-XXXX`, same file system, so moving is a rename), proven loadable there, and
//! only then moved into place in the order a client reads backwards: target files first, then
//! `N.targets.json` and `N.snapshot.json`, then a new `N.root.json`, and `timestamp.json` last.
//! Until that last rename, clients keep seeing the previous repository whole; a failure before
//! it removes what was moved, so the repository directory is left as it was.

use crate::durable::{fsync_dir, rename_durable};
use crate::error::{self, Result};
use crate::published::{metadata_dir, targets_dir};
use snafu::ResultExt;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

const STAGING_PREFIX: &str = ".staging-";

/// A staging directory with `metadata/` and `targets/`, removed when dropped.
#[derive(Debug)]
pub(crate) struct Staging {
    dir: tempfile::TempDir,
    out: PathBuf,
}

impl Staging {
    /// Creates `out/.staging-XXXX`. The caller holds the repository lock, so staging
    /// directories left by a crashed run are removed first.
    pub(crate) fn new(out: &Path) -> Result<Self> {
        remove_stale(out)?;
        let dir = tempfile::Builder::new()
            .prefix(STAGING_PREFIX)
            .tempdir_in(out)
            .context(error::CreateDirSnafu { path: out })?;
        for sub in [metadata_dir(dir.path()), targets_dir(dir.path())] {
            std::fs::create_dir(&sub).context(error::CreateDirSnafu { path: &sub })?;
        }
        Ok(Self {
            dir,
            out: out.to_path_buf(),
        })
    }

    /// The staged repository root (has `metadata/` and `targets/`).
    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes (and fsyncs) a metadata file into the staging area.
    pub(crate) fn write_metadata(&self, name: &str, bytes: &[u8]) -> Result<()> {
        let path = metadata_dir(self.path()).join(name);
        let mut file = File::create(&path).context(error::WriteFileSnafu { path: &path })?;
        file.write_all(bytes)
            .context(error::WriteFileSnafu { path: &path })?;
        file.sync_all()
            .context(error::WriteFileSnafu { path: &path })
    }

    /// Copies a target file (a real copy, not a link: the repository must not change when the
    /// build directory does) into the staging area as `file_name`, and fsyncs it.
    pub(crate) fn copy_target(&self, source: &Path, file_name: &str) -> Result<()> {
        let path = targets_dir(self.path()).join(file_name);
        std::fs::copy(source, &path).context(error::CopyTargetSnafu {
            from: source,
            to: &path,
        })?;
        File::open(&path)
            .and_then(|f| f.sync_all())
            .context(error::WriteFileSnafu { path: &path })
    }

    /// Moves the staged files into the repository. `metadata_order` lists the staged metadata
    /// files to move, in order; `timestamp.json` is always moved last.
    pub(crate) fn publish(self, metadata_order: &[String]) -> Result<()> {
        let out_targets = targets_dir(&self.out);
        let out_metadata = metadata_dir(&self.out);
        for dir in [&out_targets, &out_metadata] {
            std::fs::create_dir_all(dir).context(error::CreateDirSnafu { path: dir })?;
        }
        let mut moved: Vec<PathBuf> = Vec::new();
        let result = self.move_all(&out_targets, &out_metadata, metadata_order, &mut moved);
        if result.is_err() {
            // The old timestamp.json still points at the old files: take back what was added.
            for path in moved.iter().rev() {
                if let Err(e) = std::fs::remove_file(path) {
                    log::warn!(
                        "Could not remove {} after a failed publish: {e}",
                        path.display()
                    );
                }
            }
        }
        result
    }

    fn move_all(
        &self,
        out_targets: &Path,
        out_metadata: &Path,
        metadata_order: &[String],
        moved: &mut Vec<PathBuf>,
    ) -> Result<()> {
        let staged_targets = targets_dir(self.path());
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&staged_targets).context(error::ReadDirSnafu {
            path: &staged_targets,
        })? {
            names.push(
                entry
                    .context(error::ReadDirSnafu {
                        path: &staged_targets,
                    })?
                    .file_name(),
            );
        }
        names.sort();
        for name in names {
            let to = out_targets.join(&name);
            // `<sha256>.<name>`: a file already there has the same content.
            if to.exists() {
                continue;
            }
            let from = staged_targets.join(&name);
            std::fs::rename(&from, &to).context(error::RenameSnafu {
                from: &from,
                to: &to,
            })?;
            moved.push(to);
        }
        fsync_dir(out_targets)?;

        let staged_metadata = metadata_dir(self.path());
        for name in metadata_order
            .iter()
            .filter(|n| n.as_str() != "timestamp.json")
        {
            let (from, to) = (staged_metadata.join(name), out_metadata.join(name));
            let existed = to.exists();
            std::fs::rename(&from, &to).context(error::RenameSnafu {
                from: &from,
                to: &to,
            })?;
            if !existed {
                moved.push(to);
            }
        }
        fsync_dir(out_metadata)?;
        let (from, to) = (
            staged_metadata.join("timestamp.json"),
            out_metadata.join("timestamp.json"),
        );
        rename_durable(&from, &to)
    }
}

/// Removes staging directories left behind by a crash (only called with the lock held).
fn remove_stale(out: &Path) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(out) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let is_staging = entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with(STAGING_PREFIX));
        if is_staging && entry.path().is_dir() {
            log::info!(
                "Removing stale staging directory {}",
                entry.path().display()
            );
            std::fs::remove_dir_all(entry.path())
                .context(error::RemoveSnafu { path: entry.path() })?;
        }
    }
    Ok(())
}
