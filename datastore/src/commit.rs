//! A transaction's commit, all or nothing: the next live tree is built beside the current one and
//! swapped in by one `renameat2(RENAME_EXCHANGE)`, so `live/` is always a real directory holding
//! either every value of the transaction or none (upstream's layout is kept: readers and migrator
//! open `live/...` paths fresh and never learn that a swap happened).
//!
//! ```text
//! <base>/live/                 the committed tree; nothing in it is touched before the exchange
//! <base>/live.new-<rand>/      1. built: each unchanged file hard-linked from live/ (same inode,
//!                                 already durable, no data copied); the transaction's values
//!                                 written as new files (a linked inode is never written)
//!                              2. fsynced: the new files, then every directory of the tree
//!        renameat2(live.new-<rand>, live, RENAME_EXCHANGE)   3. the one atomic step
//!        fsync <base>                                         4. the exchange is durable
//! <base>/live.new-<rand>/      now the old tree: renamed live.old-<rand> and removed (after the
//!                              caller removed the transaction)
//! ```
//!
//! Killed before step 3, `live/` is the old tree and `live.new-*` is garbage; after it, `live/`
//! is the new tree and `live.new-*` or `live.old-*` is garbage. [`sweep`] removes both, and the
//! store calls it where it sweeps transaction trash (before each commit or delete). A commit
//! needs the datastore's lock (one writer, invariant I6): two commits building beside the same
//! `live/` would each swap in a tree without the other's values.

use crate::atomic;
use crate::error::{self, Result};
use crate::killpoint::checkpoint;
use log::warn;
use nodeio::Durability;
use snafu::ResultExt;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The name prefix of a live tree being built (or, just after the exchange, the replaced one).
const NEW_PREFIX: &str = "live.new-";
/// The name prefix of a replaced live tree on its way out.
const OLD_PREFIX: &str = "live.old-";

/// A value the commit writes: `label` names it in errors (a key, or `key.metadata`).
#[derive(Debug, Clone)]
pub(crate) struct NewFile {
    pub(crate) label: String,
    pub(crate) value: String,
}

/// Swaps in a copy of `live` (a directory in `base`) in which each path of `files` (relative to
/// `live`) holds its new value, all at once. `durability` as for every other write: with
/// [`Durability::Deferred`] nothing is fsynced (the caller syncs the whole tree later).
///
/// Returns the replaced tree, for the caller to [`OldLive::remove`] once it has removed the
/// transaction. On an error before the exchange, `live` is untouched and the partial tree removed.
pub(crate) fn swap_in(
    base: &Path,
    live: &Path,
    files: &BTreeMap<PathBuf, NewFile>,
    durability: Durability,
) -> Result<OldLive> {
    let suffix = nodeio::random_suffix();
    let next = base.join(format!("{NEW_PREFIX}{suffix}"));
    let mut builder = Builder {
        live,
        next: &next,
        dirs: Vec::new(),
        written: Vec::new(),
    };
    if let Err(e) = builder.build(files, durability) {
        if next.exists()
            && let Err(cleanup) = fs::remove_dir_all(&next)
        {
            warn!(
                "Failed to remove the unfinished live tree {}: {cleanup}",
                next.display()
            );
        }
        return Err(e);
    }

    if live.is_dir() {
        rustix::fs::renameat_with(
            rustix::fs::CWD,
            &next,
            rustix::fs::CWD,
            live,
            rustix::fs::RenameFlags::EXCHANGE,
        )
        .map_err(io::Error::from)
        .context(error::IoSnafu {
            action: format!(
                "exchange (renameat2 RENAME_EXCHANGE) {} with",
                next.display()
            ),
            path: live,
        })?;
    } else {
        // No live tree yet (a datastore made by hand): the new one appears in one rename.
        rustix::fs::renameat_with(
            rustix::fs::CWD,
            &next,
            rustix::fs::CWD,
            live,
            rustix::fs::RenameFlags::NOREPLACE,
        )
        .map_err(io::Error::from)
        .context(error::IoSnafu {
            action: format!("rename {} to", next.display()),
            path: live,
        })?;
    }
    checkpoint("exchanged");
    if durability == Durability::EachWrite {
        atomic::sync_dir(base)?;
    }
    checkpoint("durable");
    Ok(OldLive {
        at: next.exists().then_some(next),
        gone: base.join(format!("{OLD_PREFIX}{suffix}")),
    })
}

/// The tree `live/` held before [`swap_in`], now under its `live.new-*` name.
#[derive(Debug)]
pub(crate) struct OldLive {
    at: Option<PathBuf>,
    gone: PathBuf,
}

impl OldLive {
    /// Removes the old tree: renamed `live.old-*` first, so a leftover says what it is. A failure
    /// only warns: the tree is invisible to readers, and the next commit sweeps it.
    pub(crate) fn remove(self) {
        let Some(at) = self.at else { return };
        let removed = fs::rename(&at, &self.gone).and_then(|()| fs::remove_dir_all(&self.gone));
        if let Err(e) = removed {
            warn!(
                "Failed to remove the replaced live tree {} ({}): {e}",
                at.display(),
                self.gone.display()
            );
        }
    }
}

/// Removes the live trees an interrupted commit left in `base` (`live.new-*`, `live.old-*`);
/// failures only warn (they are invisible to readers).
pub(crate) fn sweep(base: &Path) {
    let Ok(entries) = fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.as_bytes();
        if !(name.starts_with(NEW_PREFIX.as_bytes()) || name.starts_with(OLD_PREFIX.as_bytes())) {
            continue;
        }
        let path = entry.path();
        let removed = match entry.file_type() {
            Ok(kind) if kind.is_dir() => fs::remove_dir_all(&path),
            Ok(_) => fs::remove_file(&path),
            Err(e) => Err(e),
        };
        match removed {
            Ok(()) => warn!("Removed {}, left by an interrupted commit", path.display()),
            Err(e) => warn!("Failed to remove {}: {e}", path.display()),
        }
    }
}

/// Builds the next live tree at `next` from `live`.
struct Builder<'a> {
    live: &'a Path,
    next: &'a Path,
    /// Every directory of the next tree, to fsync.
    dirs: Vec<PathBuf>,
    /// The files written (not linked), to fsync.
    written: Vec<PathBuf>,
}

impl Builder<'_> {
    fn build(&mut self, files: &BTreeMap<PathBuf, NewFile>, durability: Durability) -> Result<()> {
        self.create_dir_like(self.next, self.live)?;
        checkpoint("created");

        let replaced: BTreeSet<PathBuf> = files.keys().map(|rel| self.next.join(rel)).collect();
        if self.live.is_dir() {
            self.link_tree(self.live, self.next, &replaced, files)?;
        }
        checkpoint("linked");

        for (rel, file) in files {
            self.write(rel, file)?;
        }
        checkpoint("written");

        if durability == Durability::EachWrite {
            for path in &self.written {
                fs::File::open(path)
                    .and_then(|f| f.sync_all())
                    .context(error::IoSnafu {
                        action: "fsync",
                        path,
                    })?;
            }
            // Deepest first; every directory, as each holds new entries (links or files).
            for dir in self.dirs.iter().rev() {
                atomic::sync_dir(dir)?;
            }
        }
        checkpoint("synced");
        Ok(())
    }

    /// Creates directory `dir` with the permission bits of `like` (when that is a directory).
    fn create_dir_like(&mut self, dir: &Path, like: &Path) -> Result<()> {
        fs::create_dir(dir).context(error::IoSnafu {
            action: "create directory",
            path: dir,
        })?;
        if let Ok(metadata) = fs::symlink_metadata(like)
            && metadata.is_dir()
        {
            fs::set_permissions(dir, fs::Permissions::from_mode(metadata.mode() & 0o7777))
                .context(error::IoSnafu {
                    action: "set the permissions of",
                    path: dir,
                })?;
        }
        self.dirs.push(dir.to_path_buf());
        Ok(())
    }

    /// Mirrors the directories under `from` into `to` and hard-links every other entry (a link is
    /// made to the entry itself, never followed), except the paths about to be `replaced` and the
    /// names starting with a dot (temporary files a crash left behind; no key encodes to one).
    fn link_tree(
        &mut self,
        from: &Path,
        to: &Path,
        replaced: &BTreeSet<PathBuf>,
        files: &BTreeMap<PathBuf, NewFile>,
    ) -> Result<()> {
        let entries = fs::read_dir(from).context(error::ListSnafu { path: from })?;
        for entry in entries {
            let entry = entry.context(error::ListSnafu { path: from })?;
            let name = entry.file_name();
            if name.as_bytes().starts_with(b".") {
                continue;
            }
            let source = entry.path();
            let target = to.join(&name);
            let kind = entry
                .file_type()
                .context(error::ListSnafu { path: &source })?;
            if replaced.contains(&target) {
                if kind.is_dir() {
                    let label = self.label_of(&target, files);
                    return error::CorruptionSnafu {
                        path: source,
                        reason: format!("cannot set '{label}': longer keys are in the way"),
                    }
                    .fail();
                }
                // A file (or a link, or anything else) at a key's path is replaced, as an atomic
                // write replaces it, never written through.
                continue;
            }
            if kind.is_dir() {
                self.create_dir_like(&target, &source)?;
                self.link_tree(&source, &target, replaced, files)?;
            } else {
                fs::hard_link(&source, &target).context(error::IoSnafu {
                    action: format!("hard-link {} as", source.display()),
                    path: &target,
                })?;
            }
        }
        Ok(())
    }

    /// Writes one new file at `rel` in the next tree, creating the directories it needs.
    fn write(&mut self, rel: &Path, file: &NewFile) -> Result<()> {
        let mut dir = self.next.to_path_buf();
        if let Some(parent) = rel.parent() {
            for component in parent.components() {
                dir.push(component);
                match fs::symlink_metadata(&dir) {
                    Ok(metadata) if metadata.is_dir() => {}
                    Ok(_) => {
                        return error::CorruptionSnafu {
                            path: self.in_live(&dir),
                            reason: format!(
                                "cannot set '{}': a shorter key holding a value is in the way",
                                file.label
                            ),
                        }
                        .fail();
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {
                        fs::create_dir(&dir).context(error::IoSnafu {
                            action: "create directory",
                            path: &dir,
                        })?;
                        self.dirs.push(dir.clone());
                    }
                    Err(source) => {
                        return Err(source).context(error::IoSnafu {
                            action: "inspect",
                            path: &dir,
                        });
                    }
                }
            }
        }
        let path = self.next.join(rel);
        // Keep the permission bits of the value it replaces, as an atomic write in place would.
        let mode = fs::symlink_metadata(self.live.join(rel))
            .ok()
            .filter(fs::Metadata::is_file)
            .map(|m| m.mode() & 0o7777);
        atomic::write_new_file(&path, file.value.as_bytes(), &file.label, mode)?;
        self.written.push(path);
        Ok(())
    }

    /// The path in `live/` that `path` in the next tree stands for (what an error names).
    fn in_live(&self, path: &Path) -> PathBuf {
        path.strip_prefix(self.next)
            .map_or_else(|_| path.to_path_buf(), |rel| self.live.join(rel))
    }

    /// The label of the value to be written at `path` in the next tree.
    fn label_of(&self, path: &Path, files: &BTreeMap<PathBuf, NewFile>) -> String {
        path.strip_prefix(self.next)
            .ok()
            .and_then(|rel| files.get(rel))
            .map_or_else(|| path.display().to_string(), |f| f.label.clone())
    }
}
