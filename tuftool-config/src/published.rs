//! The repository as it is published now: its root chain and, if it has one, its signed
//! metadata, loaded through tough the way a client loads it.

use crate::error::{self, Result};
use snafu::ResultExt;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tough::{ExpirationEnforcement, Repository, RepositoryLoader};
use url::Url;

/// `OUT/metadata` and `OUT/targets`.
pub(crate) fn metadata_dir(out: &Path) -> PathBuf {
    out.join("metadata")
}

/// See [`metadata_dir`].
pub(crate) fn targets_dir(out: &Path) -> PathBuf {
    out.join("targets")
}

/// A `file://` URL for a directory (tough joins file names onto it).
pub(crate) fn dir_url(dir: &Path) -> Result<Url> {
    let abs = std::path::absolute(dir).context(error::ReadDirSnafu { path: dir })?;
    Url::from_directory_path(&abs).map_err(|()| error::Error::FileUrl { path: abs })
}

/// The published state of a repository directory.
#[derive(Debug)]
pub(crate) struct PublishedRepo {
    /// `k.root.json` files in `OUT/metadata`, by version.
    pub(crate) roots: BTreeMap<u64, PathBuf>,
    /// The loaded repository, if `OUT/metadata/timestamp.json` exists.
    pub(crate) repo: Option<Repository>,
    /// tough's datastore from loading it: holds the trusted timestamp/snapshot/targets, so that
    /// loading the staged repository with it applies tough's rollback checks against what is
    /// published now.
    pub(crate) datastore: tempfile::TempDir,
}

impl PublishedRepo {
    /// Reads `out` (which may not exist yet). Expiry is not enforced here: refreshing an expired
    /// repository is exactly what `refresh` is for. Signatures, hashes and the root chain are.
    pub(crate) async fn open(out: &Path) -> Result<Self> {
        let metadata = metadata_dir(out);
        let datastore = tempfile::tempdir().context(error::CreateDirSnafu {
            path: std::env::temp_dir(),
        })?;
        let mut roots = BTreeMap::new();
        if metadata.is_dir() {
            for entry in
                std::fs::read_dir(&metadata).context(error::ReadDirSnafu { path: &metadata })?
            {
                let entry = entry.context(error::ReadDirSnafu { path: &metadata })?;
                let name = entry.file_name();
                let Some(name) = name.to_str() else { continue };
                if let Some(version) = name
                    .strip_suffix(".root.json")
                    .and_then(|v| v.parse::<u64>().ok())
                {
                    roots.insert(version, entry.path());
                }
            }
        }
        let mut published = Self {
            roots,
            repo: None,
            datastore,
        };
        if metadata.join("timestamp.json").exists() {
            let Some(earliest) = published.roots.values().next().cloned() else {
                return error::PublishedRepoSnafu {
                    path: out,
                    message: "metadata/timestamp.json exists but there is no N.root.json beside it",
                }
                .fail();
            };
            let trusted =
                std::fs::read(&earliest).context(error::ReadRootSnafu { path: &earliest })?;
            let (metadata_url, targets_url) = (dir_url(&metadata)?, dir_url(&targets_dir(out))?);
            let repo = load(
                &trusted,
                metadata_url,
                targets_url,
                published.datastore.path(),
            )
            .await
            .map_err(|e| error::Error::PublishedRepo {
                path: out.to_path_buf(),
                message: e.to_string(),
            })?;
            published.repo = Some(repo);
        }
        Ok(published)
    }

    /// The highest published root version (0 if none).
    pub(crate) fn latest_root_version(&self) -> u64 {
        self.roots.keys().next_back().copied().unwrap_or(0)
    }
}

/// Loads a repository through tough, starting from `trusted_root` and walking
/// the `N.root.json` chain, without enforcing expiry (callers check expiry against their own
/// `now`, which tough cannot be given).
pub(crate) async fn load(
    trusted_root: &[u8],
    metadata_url: Url,
    targets_url: Url,
    datastore: &Path,
) -> std::result::Result<Repository, tough::error::Error> {
    RepositoryLoader::new(&trusted_root, metadata_url, targets_url)
        .datastore(datastore)
        .expiration_enforcement(ExpirationEnforcement::Unsafe)
        .load()
        .await
}
