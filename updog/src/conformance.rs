//! The tuf-conformance "client-under-test" (theupdateframework/tuf-conformance, CLIENT-CLI.md),
//! over updog's own TUF loading code ([`crate::tuf::TufLoader`]), so the conformance suite tests
//! the code that guards the node.
//!
//! - `init TRUSTED_ROOT`: copies the root into `METADATA_DIR/root.json` (checked to be a
//!   root.json; no network).
//! - `refresh`: the TUF client workflow from `METADATA_DIR/root.json` and the trusted metadata
//!   beside it, then stores what is now trusted as `root.json`, `timestamp.json`,
//!   `snapshot.json`, `targets.json` — the bytes the repository served, not tough's
//!   re-serialisation. Metadata verified before a failure is kept (as the spec asks: each file
//!   becomes trusted when it is verified).
//! - `download`: refresh, then each `--target-name` in order: verified (length and sha256) into
//!   `TARGET_DIR/<percent-encoded name>`, the same file name every time; a file already there with
//!   the listed length and sha256 is not downloaded again; a failed download leaves nothing.
//!
//! tough needs a datastore of its own (it also writes `latest_known_time.json`, which the spec's
//! metadata directory must not hold), so each run loads through a scratch datastore seeded from
//! the metadata directory and then copies back what changed.

use crate::fetch::{FetchError, FetchSettings, ResumingTransport};
use crate::transport::QueryParams;
use crate::tuf::{self, TufError, TufLoader};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use snafu::{OptionExt, ResultExt, Snafu};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tough::schema::{Root, Signed, Snapshot, Targets, Timestamp};
use tough::{Repository, TargetName, Transport, TransportError, TransportStream};
use url::Url;

#[derive(Debug, Snafu)]
#[snafu(visibility(pub(crate)))]
pub enum ConformanceError {
    #[snafu(display("Failed to read trusted root {}: {source}", path.display()))]
    ReadTrustedRoot {
        path: PathBuf,
        source: std::io::Error,
    },

    #[snafu(display("{} is not a root.json: {source}", path.display()))]
    NotARoot {
        path: PathBuf,
        source: serde_json::Error,
    },

    #[snafu(display(
        "No trusted root in {}: run `init TRUSTED_ROOT` first ({source})",
        path.display()
    ))]
    NotInitialized {
        path: PathBuf,
        source: std::io::Error,
    },

    #[snafu(display("Failed to {what} {}: {source}", path.display()))]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },

    /// nodeio's error names the file and the step that failed.
    #[snafu(display("{source}"))]
    Store { source: nodeio::AtomicWriteError },

    #[snafu(display("{source}"))]
    Tuf { source: TufError },

    #[snafu(display("{source}"))]
    Fetch { source: FetchError },

    #[snafu(display("Target '{name}': {source}"))]
    Target { name: String, source: TufError },

    #[snafu(display("Target '{name}' is not listed in the trusted targets metadata"))]
    TargetNotListed { name: String },

    #[snafu(display("download needs {what}"))]
    MissingArgument { what: &'static str },
}

type Result<T, E = ConformanceError> = std::result::Result<T, E>;

/// The top-level roles, as stored in the metadata directory.
const ROLE_FILES: [&str; 4] = [
    "root.json",
    "timestamp.json",
    "snapshot.json",
    "targets.json",
];

/// `init`: trust `trusted_root` from now on.
pub fn init(metadata_dir: &Path, trusted_root: &Path) -> Result<()> {
    let bytes = std::fs::read(trusted_root).context(ReadTrustedRootSnafu { path: trusted_root })?;
    serde_json::from_slice::<Signed<Root>>(&bytes).context(NotARootSnafu { path: trusted_root })?;
    std::fs::create_dir_all(metadata_dir).context(IoSnafu {
        what: "create the metadata directory",
        path: metadata_dir,
    })?;
    write_atomically(&metadata_dir.join("root.json"), &bytes)
}

/// `refresh`: update the trusted metadata in `metadata_dir` from `metadata_url`.
pub async fn refresh(metadata_dir: &Path, metadata_url: &Url) -> Result<()> {
    load(metadata_dir, metadata_url, metadata_url)
        .await
        .map(drop)
}

/// `download`: refresh, then fetch each target (in order) into `target_dir`. Stops at the first
/// failure.
pub async fn download(
    metadata_dir: &Path,
    metadata_url: &Url,
    targets_url: &Url,
    target_names: &[String],
    target_dir: &Path,
) -> Result<()> {
    let (repository, datastore) = load(metadata_dir, metadata_url, targets_url).await?;
    std::fs::create_dir_all(target_dir).context(IoSnafu {
        what: "create the target directory",
        path: target_dir,
    })?;
    for name in target_names {
        download_one(&repository, datastore.path(), name, target_dir).await?;
    }
    Ok(())
}

/// Where `download` stores the target `name`: one flat file whose name is the target name with
/// everything but `[A-Za-z0-9._-]` percent-encoded (so `a/b.txt` is `a%2Fb.txt`, and `..` cannot
/// leave the directory).
pub fn artifact_path(target_dir: &Path, name: &str) -> PathBuf {
    let mut file = String::new();
    for byte in name.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'-') {
            file.push(char::from(byte));
        } else {
            file.push_str(&format!("%{byte:02X}"));
        }
    }
    if file.chars().all(|c| c == '.') {
        file = file.replace('.', "%2E");
    }
    target_dir.join(file)
}

async fn download_one(
    repository: &Repository,
    datastore: &Path,
    name: &str,
    target_dir: &Path,
) -> Result<()> {
    let target_name = TargetName::new(name).map_err(|e| ConformanceError::Target {
        name: name.into(),
        source: TufError::from_tough(e, datastore),
    })?;
    let listed = repository
        .targets()
        .signed
        .find_target(&target_name, false)
        .ok()
        .context(TargetNotListedSnafu { name })?;
    let path = artifact_path(target_dir, name);
    if let Ok(existing) = std::fs::read(&path)
        && existing.len() as u64 == listed.length
        && Sha256::digest(&existing).as_slice() == listed.hashes.sha256.as_ref()
    {
        log::debug!("{name}: already downloaded with matching hashes");
        return Ok(());
    }
    let bytes = tuf::read_target(repository, name, datastore)
        .await
        .context(TargetSnafu { name })?;
    write_atomically(&path, &bytes)
}

/// Loads through a scratch datastore seeded from `metadata_dir`, then stores back what is
/// trusted now (also after a failure). Returns the repository and the scratch datastore (which
/// must live as long as the repository is read).
async fn load(
    metadata_dir: &Path,
    metadata_url: &Url,
    targets_url: &Url,
) -> Result<(Repository, tempfile::TempDir)> {
    let root_path = metadata_dir.join("root.json");
    let root = std::fs::read(&root_path).context(NotInitializedSnafu { path: &root_path })?;
    let scratch = tempfile::tempdir().context(IoSnafu {
        what: "create a scratch datastore in",
        path: std::env::temp_dir(),
    })?;
    let mut seeded = Vec::new();
    for file in &ROLE_FILES[1..] {
        let from = metadata_dir.join(file);
        match std::fs::read(&from) {
            Ok(bytes) => {
                std::fs::write(scratch.path().join(file), &bytes).context(IoSnafu {
                    what: "seed the scratch datastore with",
                    path: &from,
                })?;
                seeded.push((*file, bytes));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(source).context(IoSnafu {
                    what: "read",
                    path: from,
                });
            }
        }
    }
    seeded.push(("root.json", root.clone()));

    let recorder = RecordingTransport::new(metadata_url.clone()).context(FetchSnafu)?;
    let result = TufLoader::new(
        root,
        metadata_url.clone(),
        targets_url.clone(),
        scratch.path(),
    )
    .transport(recorder.clone())
    .load()
    .await;
    store_trusted(metadata_dir, scratch.path(), &seeded, &recorder)?;
    let repository = result.context(TufSnafu)?;
    Ok((repository, scratch))
}

/// Copies each top-level role tough now trusts from the scratch datastore into `metadata_dir`,
/// as the bytes the repository served; removes the roles tough dropped (after a key rotation).
fn store_trusted(
    metadata_dir: &Path,
    scratch: &Path,
    seeded: &[(&str, Vec<u8>)],
    recorder: &RecordingTransport,
) -> Result<()> {
    for file in ROLE_FILES {
        let path = metadata_dir.join(file);
        let seed = seeded.iter().find(|(f, _)| *f == file).map(|(_, b)| b);
        let trusted = match std::fs::read(scratch.join(file)) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if seed.is_some() && file != "root.json" {
                    remove_if_present(&path)?;
                }
                continue;
            }
            Err(source) => {
                return Err(source).context(IoSnafu {
                    what: "read",
                    path: scratch.join(file),
                });
            }
        };
        let normalize = |bytes: &[u8]| normalized(file, bytes);
        let Some(trusted_value) = normalize(&trusted) else {
            continue;
        };
        if seed.and_then(|s| normalize(s)).as_ref() == Some(&trusted_value) {
            continue;
        }
        // tough stores its own re-serialisation; store the served bytes it verified.
        let served = recorder
            .bodies()
            .into_iter()
            .rev()
            .find(|body| normalize(body).as_ref() == Some(&trusted_value));
        match served {
            Some(body) => write_atomically(&path, &body)?,
            None => {
                log::warn!("{file}: served bytes not found; storing tough's copy");
                write_atomically(&path, &trusted)?;
            }
        }
    }
    Ok(())
}

/// The role file's content as tough's schema reads it, for comparing two serialisations.
fn normalized(file: &str, bytes: &[u8]) -> Option<serde_json::Value> {
    fn via<T: DeserializeOwned + Serialize>(bytes: &[u8]) -> Option<serde_json::Value> {
        let parsed: Signed<T> = serde_json::from_slice(bytes).ok()?;
        serde_json::to_value(parsed).ok()
    }
    match file {
        "root.json" => via::<Root>(bytes),
        "timestamp.json" => via::<Timestamp>(bytes),
        "snapshot.json" => via::<Snapshot>(bytes),
        _ => via::<Targets>(bytes),
    }
}

fn remove_if_present(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(source).context(IoSnafu {
            what: "remove",
            path,
        }),
    }
}

/// Writes `bytes` to `path` atomically (nodeio: temporary file, fsync, rename, directory fsync), so
/// `path` holds either the old content or the new, and a failure leaves no partial file.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    nodeio::write_atomically(path, bytes).context(StoreSnafu)
}

/// One response body, filled as tough reads the stream.
type Body = Arc<Mutex<Vec<u8>>>;

/// updog's transport (no query parameters: the suite's server is no update repository), keeping a
/// copy of every metadata body fetched (URLs under the metadata base), so the metadata directory
/// can hold the served bytes. Not tough's default transport: that one follows redirects.
#[derive(Debug, Clone)]
struct RecordingTransport {
    inner: ResumingTransport,
    metadata_url: Url,
    bodies: Arc<Mutex<Vec<Body>>>,
}

impl RecordingTransport {
    fn new(metadata_url: Url) -> std::result::Result<Self, FetchError> {
        Ok(Self {
            inner: ResumingTransport::new(QueryParams::new(), FetchSettings::default())?,
            metadata_url,
            bodies: Arc::default(),
        })
    }

    fn bodies(&self) -> Vec<Vec<u8>> {
        let bodies = self
            .bodies
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        bodies
            .iter()
            .map(|b| {
                b.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .clone()
            })
            .collect()
    }
}

#[tough::async_trait]
impl Transport for RecordingTransport {
    async fn fetch(&self, url: Url) -> std::result::Result<TransportStream, TransportError> {
        use futures::TryStreamExt;
        let record = url.as_str().starts_with(self.metadata_url.as_str());
        let stream = self.inner.fetch(url).await?;
        if !record {
            return Ok(stream);
        }
        let body = Arc::new(Mutex::new(Vec::new()));
        self.bodies
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(Arc::clone(&body));
        Ok(Box::pin(stream.inspect_ok(move |bytes| {
            body.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .extend_from_slice(bytes);
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifact_paths_are_flat_and_stable() {
        let dir = Path::new("/t");
        assert_eq!(
            artifact_path(dir, "manifest.json"),
            Path::new("/t/manifest.json")
        );
        assert_eq!(
            artifact_path(dir, "path/to/artifact.txt"),
            Path::new("/t/path%2Fto%2Fartifact.txt")
        );
        assert_eq!(artifact_path(dir, "../x"), Path::new("/t/..%2Fx"));
        assert_eq!(artifact_path(dir, ".."), Path::new("/t/%2E%2E"));
        assert_eq!(artifact_path(dir, "a b"), Path::new("/t/a%20b"));
    }

    #[test]
    fn init_refuses_what_is_not_a_root() {
        let dir = tempfile::tempdir().unwrap();
        let garbage = dir.path().join("garbage.json");
        std::fs::write(&garbage, b"{\"signed\": 3}").unwrap();
        let error = init(&dir.path().join("metadata"), &garbage).unwrap_err();
        assert!(error.to_string().contains("is not a root.json"), "{error}");
        assert!(!dir.path().join("metadata/root.json").exists());
    }
}
