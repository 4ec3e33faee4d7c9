//! The datastore's errors: each names the key, transaction or path that failed.

use snafu::Snafu;
use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, Snafu)]
#[snafu(visibility(pub(crate)))]
pub enum Error {
    #[snafu(display("Invalid key '{name}': {reason}"))]
    InvalidKey { name: String, reason: String },

    #[snafu(display("Key '{name}' is {length} bytes long; a key name is at most {max}"))]
    KeyTooLong {
        name: String,
        length: usize,
        max: usize,
    },

    #[snafu(display(
        "Key '{name}': segment '{segment}' is {encoded_length} bytes once encoded as a file name; at most {max} fit"
    ))]
    SegmentTooLong {
        name: String,
        segment: String,
        encoded_length: usize,
        max: usize,
    },

    #[snafu(display(
        "Metadata '{meta}' of key '{data}' needs the file name '{file_name}', longer than {max} bytes"
    ))]
    MetadataNameTooLong {
        data: String,
        meta: String,
        file_name: String,
        max: usize,
    },

    #[snafu(display("Value for key '{key}' is not valid JSON ({source}): {value:?}"))]
    InvalidValue {
        key: String,
        value: String,
        source: serde_json::Error,
    },

    #[snafu(display("Key '{key}' in {} holds invalid JSON ({source})", path.display()))]
    CorruptValue {
        key: String,
        path: PathBuf,
        source: serde_json::Error,
    },

    #[snafu(display("Invalid transaction name {name:?}: {reason}"))]
    InvalidTransaction { name: String, reason: String },

    #[snafu(display("Datastore corrupted at {}: {reason}", path.display()))]
    Corruption { path: PathBuf, reason: String },

    #[snafu(display("Datastore entry {} is not a key this datastore can hold: {reason}; refusing to go on without it (a setting would be lost)", path.display()))]
    Unrepresentable { path: PathBuf, reason: String },

    #[snafu(display("Failed to read key '{key}' from {}: {source}", path.display()))]
    ReadKey {
        key: String,
        path: PathBuf,
        source: std::io::Error,
    },

    /// nodeio's error names the file, its directory or its temporary file.
    #[snafu(display("Failed to write key '{key}': {source}"))]
    WriteKey {
        key: String,
        source: nodeio::AtomicWriteError,
    },

    #[snafu(display("Failed to make datastore tree {} durable: {source}", root.display()))]
    SyncTree {
        root: PathBuf,
        source: nodeio::SyncError,
    },

    #[snafu(display("Failed to remove key '{key}' at {}: {source}", path.display()))]
    RemoveKey {
        key: String,
        path: PathBuf,
        source: std::io::Error,
    },

    #[snafu(display("Failed to list {}: {source}", path.display()))]
    List {
        path: PathBuf,
        source: std::io::Error,
    },

    #[snafu(display("Failed to {action} {}: {source}", path.display()))]
    Io {
        action: String,
        path: PathBuf,
        source: std::io::Error,
    },
}
