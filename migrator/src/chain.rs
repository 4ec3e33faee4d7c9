//! The datastore version chain, upstream's layout in the datastore directory:
//!
//! ```text
//! current -> v1 -> v1.2 -> v1.2.0 -> v1.2.0_<16 alnum>     (relative links; the last is the data)
//! ```
//!
//! The version is the patch link's name. A flip points the patch, minor, major links and then
//! `current` at the new data, each by creating a link at a temporary name and renaming it over
//! the old one; exactly one of those renames changes what `current` resolves to, so at every
//! instant `current` resolves to the complete old datastore or the complete new one.

use crate::error::{self, Result};
use crate::killpoint::KillPoints;
use datastore::random_suffix;
use semver::Version;
use snafu::{OptionExt, ResultExt};
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

/// The name of the link that selects the datastore in use.
pub const CURRENT: &str = "current";

/// Prefix of the temporary links of a flip (left over only by a crash; garbage collection
/// removes them).
pub const TEMP_LINK_PREFIX: &str = ".flip-";

/// The link names of a version: (major `v1`, minor `v1.2`, patch `v1.2.0`).
pub fn link_names(version: &Version) -> (String, String, String) {
    (
        format!("v{}", version.major),
        format!("v{}.{}", version.major, version.minor),
        format!("v{}.{}.{}", version.major, version.minor, version.patch),
    )
}

/// The version `current` resolves to: the name of the patch link reached through
/// `current` → major → minor (a leading `v` is allowed, as upstream).
pub fn current_version(datastore_dir: &Path) -> Result<Version> {
    let current = datastore_dir.join(CURRENT);
    let major = datastore_dir.join(read_link(&current)?);
    let minor = datastore_dir.join(read_link(&major)?);
    let patch = read_link(&minor)?;
    let name = patch.to_string_lossy();
    let version = name.strip_prefix('v').unwrap_or(&name);
    Version::parse(version).context(error::InvalidDataStoreVersionSnafu {
        link: minor,
        target: name.to_string(),
    })
}

fn read_link(link: &Path) -> Result<PathBuf> {
    std::fs::read_link(link).context(error::LinkReadSnafu { link })
}

/// A fresh directory name for a datastore of `version` beside the others:
/// `v<version>_<16 alnum>` (must not exist).
pub fn new_datastore_location(datastore_dir: &Path, version: &Version) -> Result<PathBuf> {
    let path = datastore_dir.join(format!("v{version}_{}", random_suffix()));
    snafu::ensure!(
        !path.exists(),
        error::NewVersionAlreadyExistsSnafu { path: &path }
    );
    Ok(path)
}

/// Points the links of `version` at the data directory `data_dir_name` (in `datastore_dir`):
/// patch, minor, major, then `current`, each by a rename over the old link, then fsyncs the
/// directory (a failed fsync only warns, as upstream: the links cannot be swapped back safely).
pub fn flip(
    datastore_dir: &Path,
    version: &Version,
    data_dir_name: &str,
    kill: &KillPoints,
) -> Result<()> {
    let (major, minor, patch) = link_names(version);
    for (link, target, step) in [
        (patch.as_str(), data_dir_name, "flip-patch"),
        (minor.as_str(), patch.as_str(), "flip-minor"),
        (major.as_str(), minor.as_str(), "flip-major"),
        (CURRENT, major.as_str(), "flip-current"),
    ] {
        replace_link(datastore_dir, link, target)?;
        kill.checkpoint(step);
    }
    if let Err(e) = datastore::sync_dir(datastore_dir) {
        log::warn!(
            "fsync of datastore directory {} failed, the new links may not survive a crash: {e}",
            datastore_dir.display()
        );
    }
    kill.checkpoint("flipped");
    Ok(())
}

/// Makes `dir/link` a relative link to `target`, atomically (temporary link + rename).
pub fn replace_link(dir: &Path, link: &str, target: &str) -> Result<()> {
    let temp = dir.join(format!("{TEMP_LINK_PREFIX}{}", random_suffix()));
    let link = dir.join(link);
    log::debug!("Flipping {} to point to {target}", link.display());
    symlink(target, &temp).context(error::LinkCreateSnafu {
        link: &temp,
        target,
    })?;
    if let Err(source) = std::fs::rename(&temp, &link) {
        if let Err(e) = std::fs::remove_file(&temp) {
            log::warn!("Failed to remove temporary link {}: {e}", temp.display());
        }
        return Err(source).context(error::LinkSwapSnafu { temp, link });
    }
    Ok(())
}

/// Creates a new, empty datastore of `version` in `datastore_dir` and points the chain at it, as
/// storewolf does on a node's first boot. Returns the data directory.
pub fn create_datastore(datastore_dir: &Path, version: &Version) -> Result<PathBuf> {
    std::fs::create_dir_all(datastore_dir).context(error::IoSnafu {
        action: "create datastore directory",
        path: datastore_dir,
    })?;
    let data = new_datastore_location(datastore_dir, version)?;
    datastore::FilesystemDataStore::create(&data)
        .context(error::SyncDatastoreSnafu { path: &data })?;
    datastore::sync_tree(&data).context(error::SyncDatastoreSnafu { path: &data })?;
    let name = dir_name(&data)?;
    flip(datastore_dir, version, &name, &KillPoints::none())?;
    Ok(data)
}

/// The final component of a path, as a string.
pub fn dir_name(path: &Path) -> Result<String> {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .context(error::NoParentSnafu { path })
}

/// Follows `name` through links inside `dir` (relative or absolute) to the entry it ends at;
/// `None` if it dangles, loops, or leaves `dir`.
pub fn resolve_in(dir: &Path, name: &str) -> Option<String> {
    let mut current = name.to_string();
    for _ in 0..40 {
        let path = dir.join(&current);
        match std::fs::read_link(&path) {
            Ok(target) => {
                let next = if target.is_absolute() {
                    if target.parent()? != dir {
                        return None;
                    }
                    target.file_name()?.to_string_lossy().into_owned()
                } else {
                    let mut components = target.components();
                    let only = components.next()?;
                    if components.next().is_some() {
                        return None;
                    }
                    only.as_os_str().to_string_lossy().into_owned()
                };
                current = next;
            }
            Err(_) => {
                return path.exists().then_some(current);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_upstreams_chain_and_reads_its_version() {
        let dir = tempfile::tempdir().unwrap();
        let version = Version::new(1, 5, 2);
        let data = create_datastore(dir.path(), &version).unwrap();
        assert!(data.join("live").is_dir());
        let name = dir_name(&data).unwrap();
        assert!(
            name.starts_with("v1.5.2_") && name.len() == "v1.5.2_".len() + 16,
            "{name}"
        );
        assert_eq!(
            std::fs::read_link(dir.path().join("current")).unwrap(),
            Path::new("v1")
        );
        assert_eq!(
            std::fs::read_link(dir.path().join("v1")).unwrap(),
            Path::new("v1.5")
        );
        assert_eq!(
            std::fs::read_link(dir.path().join("v1.5")).unwrap(),
            Path::new("v1.5.2")
        );
        assert_eq!(
            std::fs::read_link(dir.path().join("v1.5.2")).unwrap(),
            Path::new(&name)
        );
        assert_eq!(current_version(dir.path()).unwrap(), version);
        assert_eq!(
            resolve_in(dir.path(), CURRENT).as_deref(),
            Some(name.as_str())
        );
        assert_eq!(
            std::fs::canonicalize(dir.path().join("current")).unwrap(),
            std::fs::canonicalize(&data).unwrap()
        );
    }

    #[test]
    fn flip_moves_current_and_leaves_no_temp_link() {
        let dir = tempfile::tempdir().unwrap();
        create_datastore(dir.path(), &Version::new(1, 0, 0)).unwrap();
        let newer = new_datastore_location(dir.path(), &Version::new(2, 1, 0)).unwrap();
        std::fs::create_dir(&newer).unwrap();
        flip(
            dir.path(),
            &Version::new(2, 1, 0),
            &dir_name(&newer).unwrap(),
            &KillPoints::none(),
        )
        .unwrap();
        assert_eq!(current_version(dir.path()).unwrap(), Version::new(2, 1, 0));
        // The old chain's links stay (v1 → v1.0 → v1.0.0), only current moved.
        assert_eq!(
            std::fs::read_link(dir.path().join("v1")).unwrap(),
            Path::new("v1.0")
        );
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| {
                let n = e.unwrap().file_name().to_string_lossy().into_owned();
                n.starts_with(TEMP_LINK_PREFIX).then_some(n)
            })
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn a_broken_chain_names_the_link() {
        let dir = tempfile::tempdir().unwrap();
        let err = current_version(dir.path()).unwrap_err();
        assert!(err.to_string().contains("current"), "{err}");
        symlink("v1", dir.path().join("current")).unwrap();
        symlink("v1.0", dir.path().join("v1")).unwrap();
        symlink("garbage", dir.path().join("v1.0")).unwrap();
        let err = current_version(dir.path()).unwrap_err();
        assert!(err.to_string().contains("garbage"), "{err}");
    }

    #[test]
    fn resolve_in_refuses_loops_and_escapes() {
        let dir = tempfile::tempdir().unwrap();
        symlink("b", dir.path().join("a")).unwrap();
        symlink("a", dir.path().join("b")).unwrap();
        symlink("../elsewhere", dir.path().join("c")).unwrap();
        symlink("missing", dir.path().join("d")).unwrap();
        assert_eq!(resolve_in(dir.path(), "a"), None);
        assert_eq!(resolve_in(dir.path(), "c"), None);
        assert_eq!(resolve_in(dir.path(), "d"), None);
    }
}
