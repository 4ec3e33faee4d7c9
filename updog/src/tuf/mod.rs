//! Loading a TUF repository through tough, with trust that persists between runs, and tough's
//! errors turned into errors that say what was refused and why.
//!
//! [`TufLoader`] is the one place updog (and the tuf-conformance client) loads metadata:
//! `RepositoryLoader` with a persisted datastore, `ExpirationEnforcement::Safe`, and a
//! transport of the caller's choice (updog's adds upstream's query parameters).
//!
//! Persisted trust (beyond upstream; docs/compatibility.md): tough keeps the metadata it verified in its
//! datastore directory and refuses a timestamp, snapshot or targets older than what is there.
//! tough does *not* read the trusted root back from its datastore; it always starts from the
//! root it is given. So [`node_trusted_root`] picks the newer of the shipped root and the root
//! the datastore holds: a node that once followed a root rotation never starts from the older
//! root again, and a repository that stops serving the newer `N.root.json` cannot take it back.

pub mod store;

use snafu::{ResultExt, Snafu};
use std::path::{Path, PathBuf};
use tough::error::Error as ToughError;
use tough::schema::{Root, Signed};
use tough::{
    ExpirationEnforcement, IntoVec, Repository, RepositoryLoader, TargetName, Transport,
    TransportErrorKind,
};
use url::Url;

/// The file in tough's datastore that holds the latest time tough has seen.
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

    #[snafu(display("TUF error: {source}"))]
    Tough {
        #[snafu(source(from(ToughError, Box::new)))]
        source: Box<ToughError>,
    },
}

impl TufError {
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
            file: format!("{}.root.json", current_version + 1),
            trusted: *current_version,
            offered: *new_version,
            expected: current_version + 1,
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

/// Loads a repository: the builder around tough's `RepositoryLoader` that every caller uses.
#[derive(Debug)]
pub struct TufLoader {
    trusted_root: Vec<u8>,
    metadata_url: Url,
    targets_url: Url,
    datastore: PathBuf,
    transport: Option<Box<dyn Transport + Send + Sync>>,
}

impl TufLoader {
    /// A loader trusting `trusted_root` (root.json bytes), fetching from the two base URLs, and
    /// keeping its trust state in `datastore` (created if missing).
    #[must_use]
    pub fn new(
        trusted_root: Vec<u8>,
        metadata_url: Url,
        targets_url: Url,
        datastore: impl Into<PathBuf>,
    ) -> Self {
        Self {
            trusted_root,
            metadata_url,
            targets_url,
            datastore: datastore.into(),
            transport: None,
        }
    }

    /// Fetches through `transport` instead of tough's default (`file://`, `http(s)://`).
    #[must_use]
    pub fn transport(mut self, transport: impl Transport + 'static) -> Self {
        self.transport = Some(Box::new(transport));
        self
    }

    pub fn datastore(&self) -> &Path {
        &self.datastore
    }

    /// Runs the TUF client workflow (root chain, timestamp, snapshot, targets) with expiry
    /// enforced, updating the datastore with what was verified.
    pub async fn load(self) -> Result<Repository, TufError> {
        create_private_dir(&self.datastore)?;
        let mut loader =
            RepositoryLoader::new(&self.trusted_root, self.metadata_url, self.targets_url)
                .datastore(&self.datastore)
                .expiration_enforcement(ExpirationEnforcement::Safe);
        if let Some(transport) = self.transport {
            loader = loader.transport(BoxedTransport(transport));
        }
        loader.load().await.map_err(|e| match e {
            ToughError::ParseTrustedMetadata { source, .. } => TufError::BadTrustedRoot {
                origin: "(the root this node trusts)".into(),
                detail: source.to_string(),
            },
            ToughError::VerifyTrustedMetadata { source, .. } => TufError::BadTrustedRoot {
                origin: "(the root this node trusts)".into(),
                detail: source.to_string(),
            },
            e => TufError::from_tough(e, &self.datastore),
        })
    }
}

/// tough wants a sized transport; this forwards to a boxed one.
#[derive(Debug, Clone)]
struct BoxedTransport(Box<dyn Transport + Send + Sync>);

#[tough::async_trait]
impl Transport for BoxedTransport {
    async fn fetch(&self, url: Url) -> Result<tough::TransportStream, tough::TransportError> {
        self.0.fetch(url).await
    }
}

/// Reads a whole target through tough (length and sha256 verified), with errors classified.
pub async fn read_target(
    repository: &Repository,
    name: &str,
    datastore: &Path,
) -> Result<Vec<u8>, TufError> {
    let target = TargetName::new(name).map_err(|e| TufError::from_tough(e, datastore))?;
    let stream = repository
        .read_target(&target)
        .await
        .map_err(|e| TufError::from_tough(e, datastore))?
        .ok_or_else(|| TufError::NotListed { name: name.into() })?;
    stream
        .into_vec()
        .await
        .map_err(|e| TufError::from_tough(e, datastore))
}

/// The root a node starts from: the shipped root at `shipped`, unless the datastore holds a
/// verified root of the same or a higher version (see the module docs).
pub fn node_trusted_root(shipped: &Path, datastore: &Path) -> Result<Vec<u8>, TufError> {
    let shipped_bytes = std::fs::read(shipped).context(ReadRootSnafu { path: shipped })?;
    let shipped_root =
        parse_self_signed_root(&shipped_bytes).map_err(|detail| TufError::BadTrustedRoot {
            origin: shipped.display().to_string(),
            detail,
        })?;
    let persisted_path = datastore.join("root.json");
    let persisted = match std::fs::read(&persisted_path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(shipped_bytes),
        Err(source) => {
            return Err(TufError::Datastore {
                path: persisted_path,
                source,
            });
        }
    };
    match parse_self_signed_root(&persisted) {
        Ok(root) if root.signed.version >= shipped_root.signed.version => {
            log::debug!(
                "starting from the persisted root version {} (shipped: {})",
                root.signed.version,
                shipped_root.signed.version
            );
            Ok(persisted)
        }
        Ok(_) => Ok(shipped_bytes),
        Err(e) => {
            // Only this node writes there; a damaged file is reported and replaced by the next
            // successful load, which re-walks the root chain from the shipped root.
            log::warn!(
                "ignoring the persisted root {}: {e}",
                persisted_path.display()
            );
            Ok(shipped_bytes)
        }
    }
}

/// Parses root.json bytes and checks that the root is signed by a threshold of its own keys;
/// the error says what is wrong.
pub fn parse_self_signed_root(bytes: &[u8]) -> Result<Signed<Root>, String> {
    let root: Signed<Root> =
        serde_json::from_slice(bytes).map_err(|e| format!("not a root.json: {e}"))?;
    root.signed
        .verify_role(&root)
        .map_err(|e| format!("signature check failed: {e}"))?;
    Ok(root)
}

/// Creates `dir` (and parents) with mode 0700 for the last component when new: trust state is
/// the node's own business.
fn create_private_dir(dir: &Path) -> Result<(), TufError> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .context(DatastoreSnafu { path: dir })
}
