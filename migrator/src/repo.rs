//! The node's local copy of the TUF repository, cached by updog before the reboot: metadata in
//! `/var/cache/bottlerocket-metadata`, targets (`<sha256>.<name>`, manifest.json and the
//! migrations) in `/var/lib/bottlerocket-migrations`.
//!
//! It is loaded through tough with the new image's root.json and **expiry not enforced**
//! (`ExpirationEnforcement::Unsafe`, as upstream): a node that was shut down for longer than its
//! cached timestamp's lifetime must still boot offline. Signatures, thresholds, versions and
//! every target's length and sha256 are always enforced, so a migration that signed metadata does
//! not list, or whose bytes do not match it, is never run.

use crate::error::{self, Result};
use snafu::{OptionExt, ResultExt};
use std::io::Read;
use std::path::{Path, PathBuf};
use tough::{
    ExpirationEnforcement, FilesystemTransport, IntoVec, Repository, RepositoryLoader, TargetName,
};
use update_metadata::Manifest;
use url::Url;

/// The loaded local repository.
#[derive(Debug)]
pub struct LocalRepo {
    repo: Repository,
    // tough's trust datastore for this load: a scratch directory, as upstream (the cached
    // metadata on disk is the newest the node will ever see offline).
    _scratch: tempfile::TempDir,
}

impl LocalRepo {
    /// Loads the repository from `metadata_dir` and `migration_dir`, trusting `root_path`.
    pub async fn load(root_path: &Path, metadata_dir: &Path, migration_dir: &Path) -> Result<Self> {
        let root = std::fs::read(root_path).context(error::OpenRootSnafu { path: root_path })?;
        let metadata_url = dir_url(metadata_dir)?;
        let targets_url = dir_url(migration_dir)?;
        let scratch = tempfile::Builder::new()
            .prefix("migrator-tuf-")
            .tempdir()
            .context(error::ScratchSnafu)?;
        let repo = RepositoryLoader::new(&root, metadata_url, targets_url)
            .transport(FilesystemTransport)
            .datastore(scratch.path())
            .expiration_enforcement(ExpirationEnforcement::Unsafe)
            .load()
            .await
            .context(error::RepoLoadSnafu {
                metadata: metadata_dir,
                targets: migration_dir,
            })?;
        Ok(Self {
            repo,
            _scratch: scratch,
        })
    }

    /// Reads a whole target; `Ok` only once its length and sha256 matched the signed metadata.
    pub async fn read_target(&self, name: &str) -> Result<Vec<u8>> {
        let target = TargetName::new(name).context(error::TargetNameSnafu { name })?;
        let stream = self
            .repo
            .read_target(&target)
            .await
            .context(error::TargetReadSnafu { name })?
            .context(error::TargetNotListedSnafu { name })?;
        stream
            .into_vec()
            .await
            .context(error::TargetReadSnafu { name })
    }

    /// manifest.json, verified.
    pub async fn manifest(&self) -> Result<Manifest> {
        let bytes = self.read_target(MANIFEST_TARGET).await?;
        Manifest::from_slice(&bytes).context(error::ManifestParseSnafu)
    }

    /// A migration: verified, then lz4-decoded into the executable bytes.
    pub async fn read_migration(&self, name: &str) -> Result<Vec<u8>> {
        let compressed = self.read_target(name).await?;
        let mut binary = Vec::new();
        lz4_flex::frame::FrameDecoder::new(compressed.as_slice())
            .read_to_end(&mut binary)
            .context(error::Lz4DecodeSnafu { name })?;
        Ok(binary)
    }
}

/// The target name of the manifest in every repository.
pub const MANIFEST_TARGET: &str = "manifest.json";

fn dir_url(dir: &Path) -> Result<Url> {
    let canonical: PathBuf =
        std::fs::canonicalize(dir).context(error::DirectorySnafu { path: dir })?;
    Url::from_directory_path(&canonical)
        .map_err(|()| error::Error::DirectoryUrl { path: canonical })
}
