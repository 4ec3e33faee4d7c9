//! updog's command-level error: which step failed, wrapping the module error that says why.
//! `main` prints it (`Display`) on stderr and exits 1, as upstream.

use crate::config::ConfigError;
use crate::fetch::FetchError;
use crate::health::HealthError;
use crate::lock::LockError;
use crate::records::RecordError;
use crate::release::ReleaseError;
use crate::tuf::TufError;
use crate::write::WriteError;
use semver::Version;
use snafu::Snafu;
use std::path::PathBuf;
use url::Url;

#[derive(Debug, Snafu)]
#[snafu(visibility(pub(crate)))]
pub enum Error {
    #[snafu(display("{source}"))]
    Lock { source: LockError },

    #[snafu(display("{source}"))]
    Config { source: ConfigError },

    #[snafu(display("{source}"))]
    Release { source: ReleaseError },

    #[snafu(display("Failed to start the async runtime: {source}"))]
    Runtime { source: std::io::Error },

    #[snafu(display("Failed to load the update repository at {metadata_url}: {source}"))]
    Repository {
        metadata_url: Url,
        #[snafu(source(from(TufError, Box::new)))]
        source: Box<TufError>,
    },

    #[snafu(display("Failed to read manifest.json from the update repository: {source}"))]
    ManifestRead {
        #[snafu(source(from(TufError, Box::new)))]
        source: Box<TufError>,
    },

    #[snafu(display("Invalid manifest.json in the update repository: {source}"))]
    ManifestParse {
        source: update_metadata::manifest::Error,
    },

    /// Upstream's "No update available" (exit 1), with the reason after a colon.
    #[snafu(display("No update available{}", reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default()))]
    NoUpdate { reason: Option<String> },

    #[snafu(display("Failed to serialize update information: {source}"))]
    Serialize { source: serde_json::Error },

    /// update/update-image with nothing to take: upstream's words, but an error (exit 1), not a success (#990).
    #[snafu(display("No update required{}", reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default()))]
    NoUpdateRequired { reason: Option<String> },

    #[snafu(display("Failed to set up downloads: {source}"))]
    Transport { source: FetchError },

    #[snafu(display(
        "Failed to find the migrations from {from} to {to} in manifest.json: {source}"
    ))]
    Migrations {
        from: Version,
        to: Version,
        #[snafu(source(from(update_metadata::migrations::Error, Box::new)))]
        source: Box<update_metadata::migrations::Error>,
    },

    #[snafu(display("Failed to create {}: {source}", path.display()))]
    CreateCacheDir {
        path: PathBuf,
        source: std::io::Error,
    },

    #[snafu(display(
        "Failed to cache the migrations and metadata for migrator in {} and {}: {source}",
        migrations_dir.display(),
        metadata_dir.display()
    ))]
    Cache {
        metadata_dir: PathBuf,
        migrations_dir: PathBuf,
        #[snafu(source(from(TufError, Box::new)))]
        source: Box<TufError>,
    },

    #[snafu(display("Failed to flush the cached files in {} to disk: {source}", path.display()))]
    SyncCache {
        path: PathBuf,
        source: nodeio::SyncError,
    },

    /// signpost's errors name the disk, partition and bits.
    #[snafu(display("{source}"))]
    Disk {
        #[snafu(source(from(signpost::Error, Box::new)))]
        source: Box<signpost::Error>,
    },

    #[snafu(display("Could not find inactive partition set on {}", disk.display()))]
    NoInactiveSet { disk: PathBuf },

    #[snafu(display("Failed to download the {image} image {target}: {source}"))]
    ImageFetch {
        image: &'static str,
        target: String,
        source: Box<TufError>,
    },

    #[snafu(display("{source}"))]
    ImageWrite {
        #[snafu(source(from(WriteError, Box::new)))]
        source: Box<WriteError>,
    },

    #[snafu(display(
        "The inactive set changed while its images were written (BOOT was {was}, is now {now}); not marking it valid"
    ))]
    SetChanged { was: String, now: String },

    /// The boot chain's records (staged, pending, rolled back) name their file.
    #[snafu(display("{source}"))]
    Records { source: RecordError },

    /// A health check failed, timed out or could not be run: the boot stays unmarked.
    #[snafu(display("{source}"))]
    Health { source: HealthError },

    #[snafu(display("The reboot command is empty"))]
    EmptyRebootCommand,

    #[snafu(display("Failed to run the reboot command '{command}': {source}"))]
    RebootStart {
        command: String,
        source: std::io::Error,
    },

    #[snafu(display("The reboot command '{command}' failed: {status}"))]
    RebootFailed { command: String, status: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
