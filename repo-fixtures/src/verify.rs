//! The client side of the fixtures: load a fixture repository through tough as a TUF client would, read its targets,
//! and try an attack. Used by the demo and by the tests that hold every attack to its expected rejection.

use crate::attacks::{Attack, Stage};
use crate::chain::FixtureRepo;
use snafu::{OptionExt, ResultExt, Snafu};
use std::path::{Path, PathBuf};
use tough::{IntoVec, Repository, RepositoryLoader, TargetName};
use update_metadata::Manifest;
use url::Url;

/// Loads a fixture repository from these URLs, trusting the fixture's `root.json`, with tough's trust state kept in
/// `datastore` (pass the same directory twice to model a client that already trusted an earlier load).
pub async fn load(
    repo: &FixtureRepo,
    metadata_url: Url,
    targets_url: Url,
    datastore: &Path,
) -> Result<Repository, LoadError> {
    let root = std::fs::read(repo.trusted_root()).context(RootSnafu {
        path: repo.trusted_root(),
    })?;
    RepositoryLoader::new(&root, metadata_url, targets_url)
        .datastore(datastore)
        .load()
        .await
        .context(TufSnafu)
}

/// Reads a whole target through tough (length and sha256 checked).
pub async fn read_target(repo: &Repository, name: &str) -> Result<Vec<u8>, LoadError> {
    let target = TargetName::new(name).context(TufSnafu)?;
    let stream = repo
        .read_target(&target)
        .await
        .context(TufSnafu)?
        .context(NotListedSnafu { name })?;
    stream.into_vec().await.context(TufSnafu)
}

/// What a client saw in a good repository.
#[derive(Debug, Clone)]
pub struct RepositoryReport {
    pub timestamp_version: u64,
    pub snapshot_version: u64,
    pub targets_version: u64,
    pub target_count: usize,
    pub manifest: Manifest,
}

/// Loads a good repository, reads manifest.json and every target it names, and reports what it found.
pub async fn check_repository(
    repo: &FixtureRepo,
    metadata_url: Url,
    targets_url: Url,
) -> Result<RepositoryReport, VerifyError> {
    let datastore = tempfile::tempdir().context(DatastoreSnafu)?;
    let loaded = load(repo, metadata_url, targets_url, datastore.path())
        .await
        .context(ClientSnafu)?;
    let manifest_bytes = read_target(&loaded, "manifest.json")
        .await
        .context(ClientSnafu)?;
    let manifest = Manifest::from_slice(&manifest_bytes).context(ManifestSnafu)?;
    for update in &manifest.updates {
        for name in [
            &update.images.boot,
            &update.images.root,
            &update.images.hash,
        ] {
            read_target(&loaded, name).await.context(ClientSnafu)?;
        }
    }
    for name in manifest.migrations.values().flatten() {
        read_target(&loaded, name).await.context(ClientSnafu)?;
    }
    Ok(RepositoryReport {
        timestamp_version: loaded.timestamp().signed.version.get(),
        snapshot_version: loaded.snapshot().signed.version.get(),
        targets_version: loaded.targets().signed.version.get(),
        target_count: loaded.all_targets().count(),
        manifest,
    })
}

/// Base URLs of a fixture served from a directory of fixtures (`<base>/<name>/metadata/`, `<base>/<name>/targets/`).
pub fn served_urls(base: &Url, name: &str) -> (Url, Url) {
    let join = |p: String| base.join(&p).expect("fixture names are URL-safe");
    (
        join(format!("{name}/metadata/")),
        join(format!("{name}/targets/")),
    )
}

/// Where a client may fetch a fixture from.
pub trait FixtureUrls {
    fn urls(&self, repo: &FixtureRepo) -> (Url, Url);
}

/// Straight from the directory, over `file://`.
pub struct FileUrls;

impl FixtureUrls for FileUrls {
    fn urls(&self, repo: &FixtureRepo) -> (Url, Url) {
        repo.file_urls()
    }
}

/// From a server whose root is the directory holding the fixtures.
pub struct ServedUrls(pub Url);

impl FixtureUrls for ServedUrls {
    fn urls(&self, repo: &FixtureRepo) -> (Url, Url) {
        let name = repo
            .dir
            .file_name()
            .expect("fixture directories have names")
            .to_string_lossy();
        served_urls(&self.0, &name)
    }
}

/// Plays an attack against a client: for a rollback, first loads the good repository into the client's datastore,
/// then loads the attack repository and (for target attacks) reads the target. Returns the error that stopped the
/// client, or `Ok(())` if the client accepted everything (a failed defence).
pub async fn attempt(
    attack: &Attack,
    attack_repo: &FixtureRepo,
    good_repo: &FixtureRepo,
    urls: &dyn FixtureUrls,
) -> Result<(), LoadError> {
    let datastore = tempfile::tempdir().context(ScratchSnafu)?;
    if attack.trusts_good_chain_first {
        let (metadata, targets) = urls.urls(good_repo);
        load(good_repo, metadata, targets, datastore.path()).await?;
    }
    let (metadata, targets) = urls.urls(attack_repo);
    let loaded = load(attack_repo, metadata, targets, datastore.path()).await?;
    if let Stage::ReadTarget(name) = attack.stage {
        read_target(&loaded, name).await?;
    }
    Ok(())
}

#[derive(Debug, Snafu)]
pub enum LoadError {
    #[snafu(display("Failed to read trusted root {}: {source}", path.display()))]
    Root {
        path: PathBuf,
        source: std::io::Error,
    },
    #[snafu(display("{source}"))]
    Tuf {
        #[snafu(source(from(tough::error::Error, Box::new)))]
        source: Box<tough::error::Error>,
    },
    #[snafu(display("Target '{name}' is not listed in the repository"))]
    NotListed { name: String },
    #[snafu(display("Failed to create a scratch datastore: {source}"))]
    Scratch { source: std::io::Error },
}

impl LoadError {
    /// The tough error behind this failure, if it came from tough.
    pub fn tough(&self) -> Option<&tough::error::Error> {
        match self {
            LoadError::Tuf { source } => Some(source.as_ref()),
            _ => None,
        }
    }
}

#[derive(Debug, Snafu)]
pub enum VerifyError {
    #[snafu(display("Failed to create a client datastore: {source}"))]
    Datastore { source: std::io::Error },
    #[snafu(display("Client rejected the repository: {source}"))]
    Client { source: LoadError },
    #[snafu(display("manifest.json does not parse: {source}"))]
    Manifest {
        source: update_metadata::manifest::Error,
    },
}
