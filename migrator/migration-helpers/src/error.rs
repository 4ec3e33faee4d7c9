//! The errors of a migration run: each names the datastore, key or setting involved.

use snafu::Snafu;
use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, Snafu)]
#[snafu(visibility(pub(crate)))]
pub enum Error {
    #[snafu(display("Source and target datastore are the same: {}", path.display()))]
    SameDatastore { path: PathBuf },

    #[snafu(display("Target datastore {} already exists; a migration writes a fresh copy", path.display()))]
    TargetExists { path: PathBuf },

    #[snafu(display("Failed to create target datastore {}: {source}", path.display()))]
    CreateTarget {
        path: PathBuf,
        #[snafu(source(from(datastore::Error, Box::new)))]
        source: Box<datastore::Error>,
    },

    #[snafu(display("Failed to list transactions of {}: {source}", path.display()))]
    ListTransactions {
        path: PathBuf,
        #[snafu(source(from(datastore::Error, Box::new)))]
        source: Box<datastore::Error>,
    },

    #[snafu(display("Failed to read {committed} data of {}: {source}", path.display()))]
    GetData {
        committed: String,
        path: PathBuf,
        #[snafu(source(from(datastore::Error, Box::new)))]
        source: Box<datastore::Error>,
    },

    #[snafu(display("Failed to read metadata of {}: {source}", path.display()))]
    GetMetadata {
        path: PathBuf,
        #[snafu(source(from(datastore::Error, Box::new)))]
        source: Box<datastore::Error>,
    },

    #[snafu(display("Key '{key}' holds invalid JSON {input:?}: {source}"))]
    Deserialize {
        key: String,
        input: String,
        source: serde_json::Error,
    },

    #[snafu(display("Migrated {key_type} key '{key}' is not a valid key: {source}"))]
    InvalidKey {
        key_type: datastore::KeyType,
        key: String,
        #[snafu(source(from(datastore::Error, Box::new)))]
        source: Box<datastore::Error>,
    },

    #[snafu(display("Failed to write {committed} data to {}: {source}", path.display()))]
    DataStoreWrite {
        committed: String,
        path: PathBuf,
        #[snafu(source(from(datastore::Error, Box::new)))]
        source: Box<datastore::Error>,
    },

    #[snafu(display("Failed to read os-release {}: {source}", path.display()))]
    OsRelease {
        path: PathBuf,
        source: std::io::Error,
    },

    #[snafu(display("{source}"))]
    OsReleaseSyntax {
        source: nodeio::os_release::OsReleaseError,
    },

    #[snafu(display("Setting '{setting}' holds a list with non-string items: {data:?}"))]
    ReplaceListContents {
        setting: String,
        data: Vec<serde_json::Value>,
    },

    #[snafu(display(
        "Metadata '{metadata}' of setting '{setting}' holds a list with non-string items: {data:?}"
    ))]
    ReplaceMetadataListContents {
        setting: String,
        metadata: String,
        data: Vec<serde_json::Value>,
    },

    #[snafu(display("Setting '{setting}' is not a string; its template cannot be replaced"))]
    NonStringSettingDataType { setting: String },

    #[snafu(display("Template {template:?}: {reason}"))]
    Template { template: String, reason: String },

    #[snafu(display("Cannot rename '{from}' to '{to}': '{to}' already holds {existing}"))]
    RenameTargetExists {
        from: String,
        to: String,
        existing: serde_json::Value,
    },

    #[snafu(display("{message}"))]
    Migration { message: String },
}
