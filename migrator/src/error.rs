//! migrator's errors: each names the path, link, target or migration that failed.

use snafu::Snafu;
use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, Snafu)]
#[snafu(visibility(pub(crate)))]
pub enum Error {
    #[snafu(display("Failed to resolve datastore path {}: {source}", path.display()))]
    Canonicalize {
        path: PathBuf,
        source: std::io::Error,
    },

    #[snafu(display("Datastore path {} has no parent directory", path.display()))]
    NoParent { path: PathBuf },

    #[snafu(display("Datastore link {} exists but is broken ({problem}); this is not a first boot, so migrator stops and changes nothing; {copies}", link.display()))]
    BrokenChain {
        link: PathBuf,
        problem: String,
        copies: String,
    },

    #[snafu(display("Failed to read version link {}: {source}", link.display()))]
    LinkRead {
        link: PathBuf,
        source: std::io::Error,
    },

    #[snafu(display("Version link {} points to '{target}', which is not a version name (vX.Y.Z)", link.display()))]
    InvalidDataStoreVersion {
        link: PathBuf,
        target: String,
        source: semver::Error,
    },

    #[snafu(display("Failed to create link {} -> {target}: {source}", link.display()))]
    LinkCreate {
        link: PathBuf,
        target: String,
        source: std::io::Error,
    },

    #[snafu(display("Failed to rename link {} over {}: {source}", temp.display(), link.display()))]
    LinkSwap {
        temp: PathBuf,
        link: PathBuf,
        source: std::io::Error,
    },

    #[snafu(display("Failed to lock datastore directory {} against other writers (migrator, settings commits): {source}", path.display()))]
    Lock {
        path: PathBuf,
        source: nodeio::LockError,
    },

    #[snafu(display("Failed to read os-release {}: {source}", path.display()))]
    OsRelease {
        path: PathBuf,
        source: std::io::Error,
    },

    #[snafu(display("No os-release under {} (looked for etc/os-release and usr/lib/os-release)", sysroot.display()))]
    NoOsRelease { sysroot: PathBuf },

    #[snafu(display("os-release {} has no VERSION_ID", path.display()))]
    NoVersionId { path: PathBuf },

    #[snafu(display("os-release {} has VERSION_ID '{value}', not a version: {source}", path.display()))]
    BadVersionId {
        path: PathBuf,
        value: String,
        source: semver::Error,
    },

    #[snafu(display("Failed to read trusted root {}: {source}", path.display()))]
    OpenRoot {
        path: PathBuf,
        source: std::io::Error,
    },

    #[snafu(display("Directory {} is missing or unreadable: {source}", path.display()))]
    Directory {
        path: PathBuf,
        source: std::io::Error,
    },

    #[snafu(display("Path {} cannot be a file:// URL", path.display()))]
    DirectoryUrl { path: PathBuf },

    #[snafu(display("Failed to load the local TUF repository (metadata {}, migrations {}): {source}", metadata.display(), targets.display()))]
    RepoLoad {
        metadata: PathBuf,
        targets: PathBuf,
        #[snafu(source(from(tough::error::Error, Box::new)))]
        source: Box<tough::error::Error>,
    },

    #[snafu(display("Invalid target name '{name}': {source}"))]
    TargetName {
        name: String,
        #[snafu(source(from(tough::error::Error, Box::new)))]
        source: Box<tough::error::Error>,
    },

    #[snafu(display(
        "Target '{name}' is not listed in the signed targets metadata; it will not be run"
    ))]
    TargetNotListed { name: String },

    #[snafu(display(
        "Failed to read target '{name}' (its length and sha256 are checked against the signed metadata): {source}"
    ))]
    TargetRead {
        name: String,
        #[snafu(source(from(tough::error::Error, Box::new)))]
        source: Box<tough::error::Error>,
    },

    #[snafu(display("manifest.json from the local repository does not parse: {source}"))]
    ManifestParse {
        #[snafu(source(from(update_metadata::manifest::Error, Box::new)))]
        source: Box<update_metadata::manifest::Error>,
    },

    #[snafu(display("No migration path from {from} to {to}: {source}"))]
    FindMigrations {
        from: String,
        to: String,
        #[snafu(source(from(update_metadata::migrations::Error, Box::new)))]
        source: Box<update_metadata::migrations::Error>,
    },

    #[snafu(display("Migration '{name}' is not a valid lz4 frame: {source}"))]
    Lz4Decode {
        name: String,
        source: std::io::Error,
    },

    #[snafu(display("Failed to seal migration '{name}' into memory: {source}"))]
    SealMigration {
        name: String,
        source: std::io::Error,
    },

    #[snafu(display("Failed to start migration '{name}': {source}"))]
    StartMigration {
        name: String,
        source: std::io::Error,
    },

    #[snafu(display("Migration '{name}' failed ({status}){}", if stderr.is_empty() { String::new() } else { format!(": {stderr}") }))]
    MigrationFailure {
        name: String,
        status: String,
        stderr: String,
    },

    #[snafu(display("Migration '{name}' did not finish within {} s (the migration timeout, --migration-timeout); it and every process it started were killed{}", timeout.as_secs_f64(), if stderr.is_empty() { String::new() } else { format!("; its stderr: {stderr}") }))]
    MigrationTimeout {
        name: String,
        timeout: std::time::Duration,
        stderr: String,
    },

    #[snafu(display("Failed to {action} migration '{name}': {source}"))]
    SuperviseMigration {
        name: String,
        action: String,
        source: std::io::Error,
    },

    #[snafu(display(
        "Processes of migration '{name}' are still alive after SIGKILL of its process group (pids {pids}); its output is not used"
    ))]
    MigrationSurvivors { name: String, pids: String },

    #[snafu(display("New datastore location {} already exists", path.display()))]
    NewVersionAlreadyExists { path: PathBuf },

    #[snafu(display("Failed to make the migrated datastore {} durable: {source}", path.display()))]
    SyncDatastore {
        path: PathBuf,
        #[snafu(source(from(datastore::Error, Box::new)))]
        source: Box<datastore::Error>,
    },

    #[snafu(display("Failed to {action} {}: {source}", path.display()))]
    Io {
        action: String,
        path: PathBuf,
        source: std::io::Error,
    },

    #[snafu(display("Failed to read datastore {} for the dry-run report: {source}", path.display()))]
    ReadDatastore {
        path: PathBuf,
        #[snafu(source(from(datastore::Error, Box::new)))]
        source: Box<datastore::Error>,
    },

    #[snafu(display("Failed to create a scratch directory for the dry run: {source}"))]
    Scratch { source: std::io::Error },

    #[snafu(display("Failed to start the async runtime: {source}"))]
    Runtime { source: std::io::Error },
}
