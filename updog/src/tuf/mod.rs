//! updog's TUF client: the workflow of TUF 1.0.x §5 written on tough's crypto, with trust persisted on the node
//! and anchored in the shipped root.
//!
//! By step: [`schema`] (the file formats, signature thresholds, target hashes), [`trusted_set`] (the §5.3–§5.6
//! acceptance rules, no I/O), [`store`] (the node's durable copy of what it trusts), [`workflow`] (the refresh:
//! stored roots re-verified from the shipped one, root chain, timestamp, snapshot, targets), [`delegation`] (the
//! §5.6.7 search for a target through delegated roles), [`repository`] (what commands use: load, find, read and
//! stream targets verified, and cache exactly the verified metadata for migrator).
//!
//! tough is kept for what it does well (key types, signature verification over canonical JSON, and the
//! repository loader migrator uses offline); `tough::RepositoryLoader` is no longer updog's client: see
//! docs/updog.md ("The TUF client workflow") and docs/compatibility.md for where the behaviour differs.

pub mod delegation;
pub mod repository;
pub mod schema;
pub mod store;
pub mod trusted_set;
pub mod workflow;

pub use repository::Repository;

#[cfg(test)]
mod tests;

use futures::StreamExt;
use snafu::Snafu;
use std::path::{Path, PathBuf};
use tough::error::Error as ToughError;
use tough::{Transport, TransportErrorKind};
use trusted_set::TrustError;
use url::Url;

/// The most one metadata file may take to download, retries included (slow retrieval; a trickle is cut earlier
/// by the transport's minimum rate). Images have no total deadline: only the minimum rate and the stall timeout.
pub const METADATA_DEADLINE: std::time::Duration = std::time::Duration::from_secs(120);

/// The file in the store that holds the latest time a verified load used.
pub const LATEST_KNOWN_TIME: &str = "latest_known_time.json";

/// Why a repository (or one of its targets) was not loaded.
#[derive(Debug, Snafu)]
#[snafu(visibility(pub(crate)))]
pub enum TufError {
    #[snafu(display("Failed to read trusted root {}: {source}", path.display()))]
    ReadRoot {
        path: PathBuf,
        source: std::io::Error,
    },

    #[snafu(display(
        "Trusted root {origin} is not a valid root.json signed by its own root keys: {detail}"
    ))]
    BadTrustedRoot { origin: String, detail: String },

    #[snafu(display("Failed to prepare the TUF datastore {}: {source}", path.display()))]
    Datastore {
        path: PathBuf,
        source: std::io::Error,
    },

    #[snafu(display(
        "The system clock ({system_time}) is earlier than the latest time this node has seen \
         ({latest_known_time}, recorded in {}). Metadata expiry cannot be judged with a clock \
         that went backwards, so nothing was loaded. Fix the clock (NTP); if the clock is right \
         and the recorded time is wrong, remove {}.",
        file.display(),
        file.display()
    ))]
    ClockSteppedBackward {
        system_time: String,
        latest_known_time: String,
        file: PathBuf,
    },

    #[snafu(display(
        "The repository's {role} metadata has expired; refusing it (expired metadata may be a \
         freeze attack). The publisher must refresh the repository."
    ))]
    Expired { role: String },

    #[snafu(display(
        "Rollback refused: the repository offers {role} metadata version {offered}, but this \
         node already trusts version {trusted} (trust kept in {}). The repository was rolled \
         back, or is replaying old metadata.",
        datastore.display()
    ))]
    Rollback {
        role: String,
        trusted: u64,
        offered: u64,
        datastore: PathBuf,
    },

    #[snafu(display(
        "Rollback refused: the repository's {file} is version {offered}, but version {expected} \
         was expected after version {trusted}"
    ))]
    RootRollback {
        file: String,
        trusted: u64,
        offered: u64,
        expected: u64,
    },

    #[snafu(display(
        "Signature check failed for {role} metadata: not signed by a threshold of the keys the \
         trusted root lists for it ({detail})"
    ))]
    Signature { role: String, detail: String },

    #[snafu(display("Hash mismatch: {detail}; the file was changed or replaced"))]
    HashMismatch { detail: String },

    #[snafu(display("Size limit exceeded: {detail}; refusing the oversized file"))]
    TooLarge { detail: String },

    #[snafu(display(
        "{role} metadata version mismatch: the repository serves version {fetched} where version \
         {expected} was listed"
    ))]
    VersionMismatch {
        role: String,
        fetched: u64,
        expected: u64,
    },

    #[snafu(display("Failed to fetch {url}: {detail}"))]
    Fetch { url: String, detail: String },

    #[snafu(display("Invalid {role} metadata: {detail}"))]
    BadMetadata { role: String, detail: String },

    #[snafu(display("Target '{name}' is not listed in the repository's targets metadata"))]
    NotListed { name: String },

    #[snafu(display(
        "The trusted metadata stored in {} is damaged: {}: {detail}. To recover, remove {} (trust then starts \
         again from the shipped root, and rollback protection from the repository's current state)",
        dir.display(),
        file.display(),
        dir.display()
    ))]
    DamagedStore {
        file: PathBuf,
        detail: String,
        dir: PathBuf,
    },

    #[snafu(display("{source}"))]
    Store {
        #[snafu(source(from(store::StoreError, Box::new)))]
        source: Box<store::StoreError>,
    },

    #[snafu(display("{detail}"))]
    Refused { detail: String },

    #[snafu(display("Target '{name}' cannot be fetched: {detail}"))]
    BadTarget { name: String, detail: String },

    #[snafu(display("TUF error: {source}"))]
    Tough {
        #[snafu(source(from(ToughError, Box::new)))]
        source: Box<ToughError>,
    },
}

impl TufError {
    pub(crate) fn store(source: store::StoreError) -> Self {
        TufError::Store {
            source: Box::new(source),
        }
    }

    /// The error for a refused file, in the words the rest of updog (and its tests) use; `datastore` is where
    /// trust is kept.
    pub fn from_trust(error: TrustError, datastore: &Path) -> Self {
        match error {
            TrustError::Format { role, detail } => TufError::BadMetadata { role, detail },
            TrustError::Signature { role, detail } => TufError::Signature { role, detail },
            // Saturating: a root at u64::MAX (which has no successor) must not overflow the message.
            TrustError::RootVersion { trusted, offered } => TufError::RootRollback {
                file: format!("{}.root.json", trusted.saturating_add(1)),
                trusted,
                offered,
                expected: trusted.saturating_add(1),
            },
            TrustError::Rollback {
                role,
                trusted,
                offered,
            } => TufError::Rollback {
                role,
                trusted,
                offered,
                datastore: datastore.to_owned(),
            },
            TrustError::Expired { role } => TufError::Expired { role },
            TrustError::HashMismatch { role, detail } => TufError::HashMismatch {
                detail: format!("{role} metadata: {detail}"),
            },
            TrustError::VersionMismatch {
                role,
                fetched,
                expected,
            } => TufError::VersionMismatch {
                role,
                fetched,
                expected,
            },
            other @ (TrustError::RoleRemoved { .. }
            | TrustError::NotInSnapshot { .. }
            | TrustError::NotDelegated { .. }
            | TrustError::OutOfOrder { .. }) => TufError::Refused {
                detail: other.to_string(),
            },
        }
    }

    /// Turns a tough error into the error that names what was refused. `datastore` is where the
    /// trust state lives (for messages about it).
    pub fn from_tough(error: ToughError, datastore: &Path) -> Self {
        classify(&error, datastore).unwrap_or(TufError::Tough {
            source: Box::new(error),
        })
    }
}

/// The specific error for the kinds of tough failure a user must tell apart, looking through
/// transport errors to the failure they carry.
fn classify(error: &ToughError, datastore: &Path) -> Option<TufError> {
    use ToughError as E;
    Some(match error {
        E::SystemTimeSteppedBackward {
            sys_time,
            latest_known_time,
        } => TufError::ClockSteppedBackward {
            system_time: sys_time.to_string(),
            latest_known_time: latest_known_time.to_string(),
            file: datastore.join(LATEST_KNOWN_TIME),
        },
        E::ExpiredMetadata { role, .. } => TufError::Expired {
            role: role.to_string(),
        },
        E::OlderMetadata {
            role,
            current_version,
            new_version,
            ..
        } if *role == tough::schema::RoleType::Root => TufError::RootRollback {
            file: format!("{}.root.json", current_version.saturating_add(1)),
            trusted: *current_version,
            offered: *new_version,
            expected: current_version.saturating_add(1),
        },
        E::OlderMetadata {
            role,
            current_version,
            new_version,
            ..
        } => TufError::Rollback {
            role: role.to_string(),
            trusted: *current_version,
            offered: *new_version,
            datastore: datastore.to_owned(),
        },
        E::OlderSnapshotInTimestamp {
            snapshot_new,
            snapshot_old,
            ..
        } => TufError::Rollback {
            role: "snapshot".into(),
            trusted: *snapshot_old,
            offered: *snapshot_new,
            datastore: datastore.to_owned(),
        },
        E::SnapshotRoleRollback {
            role,
            old_role_version,
            new_role_version,
            ..
        } => TufError::Rollback {
            role: role.trim_end_matches(".json").to_string(),
            trusted: *old_role_version,
            offered: *new_role_version,
            datastore: datastore.to_owned(),
        },
        E::VerifyMetadata { role, source, .. } => TufError::Signature {
            role: role.to_string(),
            detail: source.to_string(),
        },
        E::VerifyRoleMetadata { role, source, .. } => TufError::Signature {
            role: role.clone(),
            detail: source.to_string(),
        },
        E::HashMismatch { .. } => TufError::HashMismatch {
            detail: error.to_string(),
        },
        E::MaxSizeExceeded { .. } => TufError::TooLarge {
            detail: error.to_string(),
        },
        E::VersionMismatch {
            role,
            fetched,
            expected,
            ..
        } => TufError::VersionMismatch {
            role: role.to_string(),
            fetched: *fetched,
            expected: *expected,
        },
        E::ParseMetadata { role, source, .. } => TufError::BadMetadata {
            role: role.to_string(),
            detail: source.to_string(),
        },
        E::Transport { url, source, .. } => {
            // Size and hash checks run inside the stream, so their errors arrive wrapped.
            if let Some(inner) = std::error::Error::source(source)
                .and_then(|e| e.downcast_ref::<ToughError>())
                .and_then(|inner| classify(inner, datastore))
            {
                return Some(inner);
            }
            // The transport's own cause when it has one: tough's wrapper would repeat the URL.
            let detail = match source.kind() {
                TransportErrorKind::FileNotFound => "not found".to_string(),
                _ => std::error::Error::source(source)
                    .map_or_else(|| source.to_string(), ToString::to_string),
            };
            TufError::Fetch {
                url: url::Url::parse(url.as_ref()).map_or_else(
                    |_| url.to_string(),
                    |url| crate::fetch::redacted(&url).to_string(),
                ),
                detail,
            }
        }
        _ => return None,
    })
}

/// Fetches `url` whole through `transport`, refusing more than `max_len` bytes. `Ok(None)` when the file does not
/// exist (404/403/410 over HTTP, a missing file over `file://`): the end of the root chain, for one.
pub(crate) async fn fetch_bounded(
    transport: &dyn Transport,
    url: Url,
    max_len: u64,
) -> Result<Option<Vec<u8>>, TufError> {
    let mut stream = match transport.fetch(url.clone()).await {
        Ok(stream) => stream,
        Err(e) if e.kind() == TransportErrorKind::FileNotFound => return Ok(None),
        Err(e) => return Err(transport_error(&url, &e)),
    };
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = match chunk {
            Ok(chunk) => chunk,
            // updog's transport answers at once and reports the response's status in the stream.
            Err(e) if e.kind() == TransportErrorKind::FileNotFound && bytes.is_empty() => {
                return Ok(None);
            }
            Err(e) => return Err(transport_error(&url, &e)),
        };
        if (bytes.len() + chunk.len()) as u64 > max_len {
            return Err(TufError::TooLarge {
                detail: format!(
                    "{} is larger than its limit of {max_len} bytes",
                    crate::fetch::redacted(&url)
                ),
            });
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(Some(bytes))
}

/// The error for a failed fetch: the transport's own cause (tough's wrapper would repeat the URL).
pub(crate) fn transport_error(url: &Url, error: &tough::TransportError) -> TufError {
    let detail = match error.kind() {
        TransportErrorKind::FileNotFound => "not found".to_string(),
        _ => {
            std::error::Error::source(error).map_or_else(|| error.to_string(), ToString::to_string)
        }
    };
    TufError::Fetch {
        url: crate::fetch::redacted(url).to_string(),
        detail,
    }
}

/// `name` (a relative path, already URL-quoted) under the directory URL `base` (a missing trailing `/` is added,
/// so the last segment of `base` is kept).
pub(crate) fn join_url(base: &Url, name: &str) -> Result<Url, TufError> {
    let mut dir = base.clone();
    if !dir.path().ends_with('/') {
        dir.set_path(&format!("{}/", dir.path()));
    }
    dir.join(name).map_err(|e| TufError::Fetch {
        url: format!("{}{name}", crate::fetch::redacted(&dir)),
        detail: format!("not a valid URL: {e}"),
    })
}
