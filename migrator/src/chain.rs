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

/// Whether the datastore at `datastore_path` (the `current` link, usually) exists. `Ok(false)`
/// only when there is no entry at all (lstat: no such file): a first boot, before storewolf
/// creates the datastore. A link that exists but dangles or loops is an error naming the link,
/// what is wrong, and the complete datastore copies still in its directory: treating it as a
/// first boot would let storewolf start over with an empty datastore beside the real one.
pub fn datastore_exists(datastore_path: &Path) -> Result<bool> {
    match std::fs::symlink_metadata(datastore_path) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(source) => {
            return Err(source).context(error::IoSnafu {
                action: "inspect datastore path",
                path: datastore_path,
            });
        }
    }
    match std::fs::canonicalize(datastore_path) {
        Ok(_) => Ok(true),
        Err(source) => {
            let dir = datastore_path.parent().unwrap_or(Path::new("/"));
            let copies = datastore_copies(dir)
                .iter()
                .map(|(name, version)| format!("{name} (version {version})"))
                .collect::<Vec<_>>();
            error::BrokenChainSnafu {
                link: datastore_path,
                problem: diagnose_link(datastore_path, &source),
                copies: if copies.is_empty() {
                    format!("no complete datastore copy is left in {}", dir.display())
                } else {
                    format!(
                        "complete datastore copies in {}: {}; point the links at one of them to repair",
                        dir.display(),
                        copies.join(", ")
                    )
                },
            }
            .fail()
        }
    }
}

/// What is wrong with a link that does not resolve: the links followed and where they end.
fn diagnose_link(link: &Path, error: &std::io::Error) -> String {
    let name = |path: &Path| {
        path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        )
    };
    let mut hops = vec![name(link)];
    let mut seen = vec![link.to_path_buf()];
    let mut at = link.to_path_buf();
    // 40 hops, as the kernel's own limit for one lookup.
    for _ in 0..40 {
        let target = match std::fs::read_link(&at) {
            Ok(target) => target,
            Err(e) => return format!("{}: {e}", hops.join(" -> ")),
        };
        hops.push(target.display().to_string());
        let next = at.parent().unwrap_or(Path::new("/")).join(&target);
        if seen.contains(&next) {
            return format!("{} is a loop", hops.join(" -> "));
        }
        match std::fs::symlink_metadata(&next) {
            Ok(meta) if meta.file_type().is_symlink() => {}
            Ok(_) => return format!("{} does not resolve: {error}", hops.join(" -> ")),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return format!(
                    "{} dangles: {} does not exist",
                    hops.join(" -> "),
                    next.display()
                );
            }
            Err(e) => return format!("{}: {e}", hops.join(" -> ")),
        }
        seen.push(next.clone());
        at = next;
    }
    format!("{} ... is a loop (more than 40 links)", hops.join(" -> "))
}

/// The version of a data directory name `v<version>_<suffix>`, `None` for any other name.
pub fn data_dir_version(name: &str) -> Option<Version> {
    let (version, suffix) = name.strip_prefix('v')?.split_once('_')?;
    if suffix.is_empty() {
        return None;
    }
    Version::parse(version).ok()
}

/// The complete datastore copies in `datastore_dir` (data directories holding `live/`), by
/// name, with their versions.
pub fn datastore_copies(datastore_dir: &Path) -> Vec<(String, Version)> {
    let Ok(entries) = std::fs::read_dir(datastore_dir) else {
        return Vec::new();
    };
    let mut copies: Vec<(String, Version)> = entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_str()?.to_string();
            let version = data_dir_version(&name)?;
            let live = std::fs::symlink_metadata(entry.path().join("live")).ok()?;
            live.is_dir().then_some((name, version))
        })
        .collect();
    copies.sort();
    copies
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
    fn only_a_missing_entry_is_a_first_boot() {
        let dir = tempfile::tempdir().unwrap();
        let current = dir.path().join(CURRENT);
        assert!(!datastore_exists(&current).unwrap());
        assert!(!datastore_exists(&dir.path().join("no/such/dir/current")).unwrap());
        let data = create_datastore(dir.path(), &Version::new(1, 0, 0)).unwrap();
        assert!(datastore_exists(&current).unwrap());
        assert!(datastore_exists(&data).unwrap());
    }

    #[test]
    fn a_dangling_link_names_the_missing_target_and_the_copies_left() {
        let dir = tempfile::tempdir().unwrap();
        let data = create_datastore(dir.path(), &Version::new(1, 0, 0)).unwrap();
        let name = dir_name(&data).unwrap();
        std::fs::rename(&data, dir.path().join("v1.0.0_AbCdEfGhIjKlMnOp")).unwrap();
        // Not a datastore copy: no live/.
        std::fs::create_dir(dir.path().join("v0.9.0_emptyemptyempty")).unwrap();
        let err = datastore_exists(&dir.path().join(CURRENT)).unwrap_err();
        let message = err.to_string();
        assert!(matches!(err, error::Error::BrokenChain { .. }), "{message}");
        for expected in [
            dir.path().join(CURRENT).display().to_string(),
            format!("current -> v1 -> v1.0 -> v1.0.0 -> {name} dangles"),
            format!("{} does not exist", dir.path().join(&name).display()),
            "v1.0.0_AbCdEfGhIjKlMnOp (version 1.0.0)".to_string(),
        ] {
            assert!(message.contains(&expected), "{expected:?} not in {message}");
        }
        assert!(!message.contains("v0.9.0_empty"), "{message}");

        std::fs::remove_dir_all(dir.path().join("v1.0.0_AbCdEfGhIjKlMnOp")).unwrap();
        let message = datastore_exists(&dir.path().join(CURRENT))
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("no complete datastore copy is left"),
            "{message}"
        );
    }

    #[test]
    fn a_looping_link_is_named_as_a_loop() {
        let dir = tempfile::tempdir().unwrap();
        create_datastore(dir.path(), &Version::new(1, 0, 0)).unwrap();
        replace_link(dir.path(), "v1", CURRENT).unwrap();
        let message = datastore_exists(&dir.path().join(CURRENT))
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("current -> v1 -> current is a loop"),
            "{message}"
        );
        replace_link(dir.path(), CURRENT, CURRENT).unwrap();
        let message = datastore_exists(&dir.path().join(CURRENT))
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("current -> current is a loop"),
            "{message}"
        );
    }

    #[test]
    fn data_directory_names_carry_their_version() {
        assert_eq!(data_dir_version("v1.2.3_abc"), Some(Version::new(1, 2, 3)));
        for other in ["v1.2.3", "v1.2.3_", "1.2.3_abc", "v1.2_abc", "current"] {
            assert_eq!(data_dir_version(other), None, "{other}");
        }
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
