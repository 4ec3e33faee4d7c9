//! The tuf-conformance "client-under-test" (theupdateframework/tuf-conformance, CLIENT-CLI.md), over updog's own
//! TUF client ([`crate::tuf::workflow::Client`]), so the conformance suite tests the code that guards the node.
//!
//! - `init TRUSTED_ROOT`: copies the root into `METADATA_DIR/root.json` (checked to be a root.json; no network).
//! - `refresh`: the client workflow from `METADATA_DIR/root.json` and the trusted metadata beside it (each role as
//!   `<quoted role>.json`, delegated roles too, the bytes the repository served); each file is stored as soon as
//!   it is verified, so what was verified before a failure stays trusted. The final root becomes `root.json`.
//! - `download`: refresh, then each `--target-name` in order, found through the delegations, verified (length and
//!   every supported hash) into `TARGET_DIR/<quoted name>`; a file already there that matches is not downloaded
//!   again; a failed download leaves nothing.
//!
//! Unlike a node (where the shipped root is the anchor and `N.root.json` the chain), the suite's contract makes
//! `root.json` in the metadata directory the anchor, as python-tuf's ngclient does.

use crate::tuf::repository::FoundTarget;
use crate::tuf::store::MetadataStore;
use crate::tuf::workflow::{Client, MetadataLimits};
use crate::tuf::{Repository, TufError};
use snafu::{ResultExt, Snafu};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use url::Url;
#[derive(Debug, Snafu)]
#[snafu(visibility(pub(crate)))]
pub enum ConformanceError {
    #[snafu(display("Failed to read trusted root {}: {source}", path.display()))]
    ReadTrustedRoot {
        path: PathBuf,
        source: std::io::Error,
    },

    #[snafu(display("{} is not a root.json: {detail}", path.display()))]
    NotARoot { path: PathBuf, detail: String },

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

    #[snafu(display("Target '{name}': {source}"))]
    Target { name: String, source: TufError },

    #[snafu(display("download needs {what}"))]
    MissingArgument { what: &'static str },
}

type Result<T, E = ConformanceError> = std::result::Result<T, E>;

/// `init`: trust `trusted_root` from now on.
pub fn init(metadata_dir: &Path, trusted_root: &Path) -> Result<()> {
    let bytes = std::fs::read(trusted_root).context(ReadTrustedRootSnafu { path: trusted_root })?;
    crate::tuf::schema::parse::<crate::tuf::schema::RootMeta>(&bytes, "root").map_err(|e| {
        ConformanceError::NotARoot {
            path: trusted_root.to_owned(),
            detail: e.0,
        }
    })?;
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

/// `download`: refresh, then fetch each target (in order) into `target_dir`. Stops at the first failure.
pub async fn download(
    metadata_dir: &Path,
    metadata_url: &Url,
    targets_url: &Url,
    target_names: &[String],
    target_dir: &Path,
) -> Result<()> {
    let mut repository = load(metadata_dir, metadata_url, targets_url).await?;
    std::fs::create_dir_all(target_dir).context(IoSnafu {
        what: "create the target directory",
        path: target_dir,
    })?;
    for name in target_names {
        download_one(&mut repository, name, target_dir).await?;
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

async fn download_one(repository: &mut Repository, name: &str, target_dir: &Path) -> Result<()> {
    let target_error = |source| ConformanceError::Target {
        name: name.into(),
        source,
    };
    let target: FoundTarget = repository.find_target(name).await.map_err(target_error)?;
    let path = artifact_path(target_dir, name);
    if let Ok(existing) = std::fs::read(&path)
        && crate::tuf::schema::check_length_and_hashes(
            &existing,
            Some(target.file.length),
            Some(&target.file.hashes),
        )
        .is_ok()
    {
        log::debug!("{name}: already downloaded with matching hashes");
        return Ok(());
    }
    let mut stream = repository
        .stream_target(&target)
        .await
        .map_err(target_error)?;
    let mut bytes = Vec::new();
    while let Some(chunk) = futures::StreamExt::next(&mut stream).await {
        bytes.extend_from_slice(&chunk.map_err(target_error)?);
    }
    write_atomically(&path, &bytes)
}

/// Refreshes from `metadata_dir/root.json` with the metadata directory as the store, then makes the final root
/// the new `root.json`.
async fn load(metadata_dir: &Path, metadata_url: &Url, targets_url: &Url) -> Result<Repository> {
    let root_path = metadata_dir.join("root.json");
    let root = std::fs::read(&root_path).context(NotInitializedSnafu { path: &root_path })?;
    let store = MetadataStore::open(metadata_dir)
        .map_err(TufError::store)
        .context(TufSnafu)?;
    // updog's own transport (no redirects, stall and rate limits), without updog's query parameters.
    let transport = crate::fetch::ResumingTransport::new(
        crate::transport::QueryParams::new(),
        crate::fetch::FetchSettings::default(),
    )
    .map_err(|e| ConformanceError::Tuf {
        source: TufError::Refused {
            detail: e.to_string(),
        },
    })?;
    let client = Client::refresh(
        &root,
        store,
        Arc::new(transport.with_deadline(crate::tuf::METADATA_DEADLINE)),
        metadata_url.clone(),
        chrono::Utc::now(),
        MetadataLimits::default(),
    )
    .await;
    let client = match client {
        Ok(client) => client,
        Err(e) => {
            // Roots verified before the failure are trusted from now on (spec §5.3.7).
            store_final_root(metadata_dir, &root)?;
            return Err(ConformanceError::Tuf { source: e });
        }
    };
    if let Some((_, bytes)) = client.root_chain().last()
        && *bytes != root
    {
        write_atomically(&root_path, bytes)?;
    }
    Ok(Repository::from_client(
        client,
        targets_url.clone(),
        Arc::new(transport),
    ))
}

/// After a failed refresh: the newest stored `N.root.json` that chains from `root` becomes `root.json`.
fn store_final_root(metadata_dir: &Path, root: &[u8]) -> Result<()> {
    let Ok(mut set) = crate::tuf::trusted_set::TrustedSet::new(root, chrono::Utc::now()) else {
        return Ok(());
    };
    let Ok(store) = MetadataStore::open(metadata_dir) else {
        return Ok(());
    };
    let mut newest = None;
    for version in store.root_versions().unwrap_or_default() {
        if version != set.root().meta.version + 1 {
            continue;
        }
        let Ok(Some(bytes)) = store.read_root(version, MetadataLimits::default().root) else {
            break;
        };
        if set.update_root(&bytes).is_err() {
            break;
        }
        newest = Some(bytes);
    }
    match newest {
        Some(bytes) => write_atomically(&metadata_dir.join("root.json"), &bytes),
        None => Ok(()),
    }
}

/// Writes `bytes` to `path` atomically (nodeio: temporary file, fsync, rename, directory fsync), so
/// `path` holds either the old content or the new, and a failure leaves no partial file.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    nodeio::write_atomically(path, bytes).context(StoreSnafu)
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
