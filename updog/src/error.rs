//! updog's command-level error: which step failed, wrapping the module error that says why.
//! `main` prints it (`Display`) on stderr and exits 1, as upstream.

use crate::config::ConfigError;
use crate::lock::LockError;
use crate::release::ReleaseError;
use crate::tuf::TufError;
use snafu::Snafu;
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
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
