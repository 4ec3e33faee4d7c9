//! The operations behind each CLI command, driven by a [`RepoConfig`]. Each takes `now`
//! explicitly; the CLI passes the system time or `--now`.

use crate::config::RepoConfig;
use crate::durable::{Existing, write_file_atomic};
use crate::error::{self, Result};
use crate::published::{PublishedRepo, metadata_dir};
use crate::refresh::Refresh;
use crate::repo::{BuildSummary, RepoBuild};
use crate::role::Role;
use crate::root::{SignedRoot, rotate_root};
use crate::validate::{RepoValidator, ValidationReport};
use jiff::Timestamp;
use snafu::{ResultExt, ensure};
use std::path::{Path, PathBuf};

/// `create-root`: builds and signs a version-1 root.json from the config's roles, thresholds
/// and root lifetime, and writes it to the config's `root` path (refusing to overwrite one).
pub async fn create_root(config: &RepoConfig, now: Timestamp) -> Result<SignedRoot> {
    let keys = config.load_keys().await?;
    let root = config.root_builder(&keys, now)?.sign(now).await?;
    write_file_atomic(&config.root, root.bytes(), 0o644, Existing::Refuse)?;
    SignedRoot::read(&config.root)
}

/// `build`: adds `manifest` and the files in `targets_dir` to the config's repository.
pub async fn build(
    config: &RepoConfig,
    manifest: Option<&Path>,
    targets_dir: Option<&Path>,
    now: Timestamp,
) -> Result<BuildSummary> {
    let keys = config.load_keys().await?;
    let mut build =
        RepoBuild::new(&config.root, keys.repo_keys(), now).expirations(config.expiration);
    if let Some(manifest) = manifest {
        build = build.manifest(manifest);
    }
    if let Some(dir) = targets_dir {
        build = build.targets_dir(dir);
    }
    build.write(&config.repository).await
}

/// `refresh`: re-signs targets, snapshot and timestamp with new versions and expiry times.
pub async fn refresh(config: &RepoConfig, now: Timestamp) -> Result<BuildSummary> {
    let keys = config.load_keys().await?;
    Refresh::new(&config.root, keys.repo_keys(), now)
        .expirations(config.expiration)
        .write(&config.repository)
        .await
}

/// `rotate-root`: creates root N+1 from `new` (its roles, thresholds, root lifetime), signed by
/// the old config's root keys (meeting the old threshold) and the new root keys; publishes it
/// with targets, snapshot and timestamp re-signed by the new keys, atomically; then writes it to
/// the new config's `root` path. The old root stays in the repository as `N.root.json`.
pub async fn rotate(
    old: &RepoConfig,
    new: &RepoConfig,
    now: Timestamp,
) -> Result<(SignedRoot, BuildSummary)> {
    ensure!(
        same_dir(&old.repository, &new.repository),
        error::RepositoryMismatchSnafu {
            old: old.repository.clone(),
            new: new.repository.clone()
        }
    );
    let old_root = SignedRoot::read(&old.root)?;
    let published = PublishedRepo::open(&new.repository).await?;
    ensure!(
        published.repo.is_some(),
        error::NothingToRefreshSnafu {
            path: new.repository.clone()
        }
    );
    let latest = published.latest_root_version();
    ensure!(
        latest == old_root.version(),
        error::RotationBaseSnafu {
            old_root: old_root.to_string(),
            version: old_root.version(),
            published: latest,
            path: new.repository.clone(),
        }
    );
    drop(published);

    let old_keys = old.load_keys().await?;
    let new_keys = new.load_keys().await?;
    let next = new.root_builder(&new_keys, now)?;
    let rotated = rotate_root(&old_root, old_keys.get(Role::Root), next, now).await?;

    // Publish first, from a temporary copy: if publishing fails, the config still names the old
    // root and nothing changed. Check the new keys against the new root under its real name.
    let labelled = rotated.clone().with_path(&new.root);
    for role in Role::REPO {
        labelled.check_keys(role, new_keys.get(role))?;
    }
    let tmp = tempfile::Builder::new()
        .prefix(".rotated-root-")
        .tempfile()
        .context(error::WriteFileSnafu {
            path: std::env::temp_dir(),
        })?;
    std::fs::write(tmp.path(), rotated.bytes())
        .context(error::WriteFileSnafu { path: tmp.path() })?;
    let summary = Refresh::new(tmp.path(), new_keys.repo_keys(), now)
        .expirations(new.expiration)
        .write(&new.repository)
        .await?;
    rotated.write(&new.root)?;
    Ok((SignedRoot::read(&new.root)?, summary))
}

fn same_dir(a: &Path, b: &Path) -> bool {
    let canon = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    canon(a) == canon(b)
}

/// Where `validate` reads the repository from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The config's repository directory (file://).
    Directory,
    /// The config's `metadata_base_url` / `targets_base_url`, as clients see it.
    Remote,
}

/// `validate --config`: loads the repository as a fresh client would, from `trusted_root`
/// (default: the repository's `1.root.json`, so the whole root chain is walked, else the
/// config's root), and expects to end on the config's root version.
pub async fn validate(
    config: &RepoConfig,
    trusted_root: Option<&Path>,
    source: Source,
    now: Timestamp,
) -> Result<ValidationReport> {
    let trusted_root: PathBuf = match trusted_root {
        Some(path) => path.to_path_buf(),
        None => {
            let first = metadata_dir(&config.repository).join("1.root.json");
            if first.exists() {
                first
            } else {
                config.root.clone()
            }
        }
    };
    let expected = SignedRoot::read(&config.root)?.version();
    let validator = match source {
        Source::Directory => RepoValidator::for_directory(&trusted_root, &config.repository, now)?,
        Source::Remote => {
            let bytes = std::fs::read(&trusted_root).context(error::ReadRootSnafu {
                path: &trusted_root,
            })?;
            RepoValidator::new(
                bytes,
                config.metadata_base_url.clone(),
                config.targets_base_url.clone(),
                now,
            )
        }
    };
    Ok(validator.expect_root_version(expected).run().await)
}
