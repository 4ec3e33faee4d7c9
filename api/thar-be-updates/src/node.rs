//! The node as thar-be-updates sees it: its paths under `--sysroot`, the running image (os-release) and which set
//! boots next (signpost, on the disk updog.toml names).

use crate::error::{self, Result};
use crate::status::{STATUS_PATH, UpdateImage};
use signpost::{Location, State};
use snafu::ResultExt;
use std::path::{Path, PathBuf};
use updog::config::Config as UpdogConfig;
use updog::release::Release;
use updog::sysroot::Sysroot;

/// thar-be-updates' lock: one update command at a time.
pub const LOCK_PATH: &str = "/run/abupdate/thar-be-updates.lock";

/// The node's files thar-be-updates uses.
#[derive(Debug, Clone)]
pub struct NodePaths {
    sysroot: Sysroot,
}

impl NodePaths {
    #[must_use]
    pub fn new(sysroot: &Path) -> Self {
        Self {
            sysroot: Sysroot::new(sysroot),
        }
    }

    #[must_use]
    pub fn sysroot(&self) -> &Sysroot {
        &self.sysroot
    }

    #[must_use]
    pub fn status(&self) -> PathBuf {
        self.sysroot.resolve(STATUS_PATH)
    }

    #[must_use]
    pub fn lock(&self) -> PathBuf {
        self.sysroot.resolve(LOCK_PATH)
    }

    /// `<cmd>.log` beside the status: the detached command's log.
    #[must_use]
    pub fn log(&self, command: &str) -> PathBuf {
        self.status().with_file_name(format!("{command}.log"))
    }

    /// Where the OS disk is: updog.toml's `disk` when it names one, else the disk under the sysroot. A broken
    /// updog.toml is ignored here (as updog's own update-apply/revert do); the commands that need it report it.
    #[must_use]
    pub fn location(&self) -> Location {
        let location = Location::new(self.sysroot.root());
        let path = self.sysroot.updog_toml();
        if !path.exists() {
            return location;
        }
        match UpdogConfig::load(&path) {
            Ok(config) => match config.disk {
                Some(disk) => location.disk(disk),
                None => location,
            },
            Err(e) => {
                log::warn!("ignoring updog's config ({e}) to find the OS disk");
                location
            }
        }
    }

    /// The running image, from os-release.
    pub fn running_image(&self) -> Result<UpdateImage> {
        let path = self.sysroot.os_release();
        let release = Release::load(&path).context(error::ReleaseSnafu { path: &path })?;
        Ok(UpdateImage {
            arch: release.arch,
            version: release.version_id,
            variant: release.variant_id,
        })
    }

    /// Whether the running set boots next (signpost's `next()` is the active set).
    pub fn active_is_next(&self) -> Result<bool> {
        Ok(self.boot_next()?.active_is_next)
    }
}

impl NodePaths {
    /// Whether the inactive (staged) set boots next.
    pub fn staged_is_next(&self) -> Result<bool> {
        Ok(self.boot_next()?.inactive_is_next)
    }

    /// Which set the bootloader boots next, as the disk says now.
    pub fn boot_next(&self) -> Result<BootNext> {
        let state = State::load(&self.location()).context(error::BootStateSnafu)?;
        let next = state.next();
        Ok(BootNext {
            active_is_next: next == Some(state.active()),
            inactive_is_next: next.is_some() && next == state.inactive(),
        })
    }

    /// Makes `<sysroot>/run/cache/thar-be-updates` (the status and the logs) a real directory: every missing
    /// component under the sysroot is created (0755), and a symlink or anything but a directory at any of them is
    /// refused, naming it, so that nothing is written through a link to elsewhere.
    pub fn ensure_status_dir(&self) -> Result<PathBuf> {
        let root = self.sysroot.root();
        let dir = self.status();
        let dir = dir.parent().unwrap_or(root).to_path_buf();
        let relative = dir.strip_prefix(root).unwrap_or(&dir);
        let mut path = root.to_path_buf();
        for component in relative.components() {
            path.push(component);
            ensure_real_dir(&path)?;
        }
        Ok(dir)
    }
}

/// `path` is a directory and not a link to one; created (0755) when missing.
fn ensure_real_dir(path: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    let metadata = match std::fs::symlink_metadata(path) {
        Ok(metadata) => metadata,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            match std::fs::DirBuilder::new().mode(0o755).create(path) {
                Ok(()) => return Ok(()),
                // Someone else made it meanwhile: check what it is.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    std::fs::symlink_metadata(path).context(error::CreateDirSnafu { path })?
                }
                Err(source) => return Err(source).context(error::CreateDirSnafu { path }),
            }
        }
        Err(source) => return Err(source).context(error::CreateDirSnafu { path }),
    };
    let file_type = metadata.file_type();
    snafu::ensure!(
        file_type.is_dir(),
        error::NotADirectorySnafu {
            path,
            found: if file_type.is_symlink() {
                "a symlink"
            } else if file_type.is_file() {
                "a regular file"
            } else {
                "a special file"
            },
        }
    );
    Ok(())
}

/// Which set boots next, from the GPT (neither, when no set is bootable).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BootNext {
    /// The running set boots next.
    pub active_is_next: bool,
    /// The inactive set (where an update is staged) boots next.
    pub inactive_is_next: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_directory_is_created_as_real_directories() {
        let dir = tempfile::tempdir().unwrap();
        let paths = NodePaths::new(dir.path());
        let status_dir = paths.ensure_status_dir().unwrap();
        assert_eq!(status_dir, dir.path().join("run/cache/thar-be-updates"));
        for path in ["run", "run/cache", "run/cache/thar-be-updates"] {
            let metadata = std::fs::symlink_metadata(dir.path().join(path)).unwrap();
            assert!(metadata.is_dir(), "{path}");
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(metadata.permissions().mode() & 0o7777, 0o755, "{path}");
        }
        // Again: an existing tree is fine.
        paths.ensure_status_dir().unwrap();
    }

    #[test]
    fn a_symlink_or_a_file_at_any_component_is_refused_naming_it() {
        for component in ["run", "run/cache", "run/cache/thar-be-updates"] {
            let dir = tempfile::tempdir().unwrap();
            let sysroot = dir.path().join("node");
            let outside = dir.path().join("outside");
            std::fs::create_dir_all(&outside).unwrap();
            let at = sysroot.join(component);
            std::fs::create_dir_all(at.parent().unwrap()).unwrap();
            std::os::unix::fs::symlink(&outside, &at).unwrap();
            let error = NodePaths::new(&sysroot)
                .ensure_status_dir()
                .unwrap_err()
                .to_string();
            assert_eq!(
                error,
                format!("{} is a symlink, not a directory", at.display()),
                "{component}"
            );
            assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);

            std::fs::remove_file(&at).unwrap();
            std::fs::write(&at, "").unwrap();
            let error = NodePaths::new(&sysroot)
                .ensure_status_dir()
                .unwrap_err()
                .to_string();
            assert_eq!(
                error,
                format!("{} is a regular file, not a directory", at.display()),
                "{component}"
            );
        }
    }
}
