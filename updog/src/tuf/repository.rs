//! What updog's commands use of a TUF repository: load it with the node's trust, find a target (through
//! delegations), read or stream it verified, and cache the verified metadata for migrator.

use super::delegation;
use super::schema::{self, TargetFile};
use super::store::MetadataStore;
use super::trusted_set::TARGETS;
use super::workflow::{Client, MetadataLimits};
use super::{TufError, transport_error};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt};
use sha2::Digest;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tough::Transport;
use url::Url;

/// A loaded repository (see the module documentation).
#[derive(Debug)]
pub struct Repository {
    client: Client,
    targets_url: Url,
    /// Targets (images of any size) come through this one: no total deadline, unlike metadata.
    targets_transport: Arc<dyn Transport>,
}

/// A target as the signed metadata describes it, and the role that lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct FoundTarget {
    pub name: String,
    pub role: String,
    pub file: TargetFile,
}

/// A target's bytes as they arrive, each chunk passed on only while the length stays within the listed one; the
/// stream's last item is an error unless the whole length and every supported hash matched.
pub type VerifiedStream = Pin<Box<dyn Stream<Item = Result<Bytes, TufError>> + Send>>;

impl Repository {
    /// Loads the repository at `metadata_url` with the trust kept in `store_dir`, anchored in `shipped_root`,
    /// at the time `now` (see [`Client::refresh`]); metadata through `metadata_transport`, targets later through
    /// `targets_transport`. The latest time a verified load used is kept in the store:
    /// a clock earlier than it is refused (expiry cannot be judged by a clock that went back); it is recorded
    /// only after a load verified, so a wrong clock that refuses the metadata leaves nothing behind.
    pub async fn load(
        shipped_root: &[u8],
        store_dir: &Path,
        metadata_transport: Arc<dyn Transport>,
        targets_transport: Arc<dyn Transport>,
        metadata_url: Url,
        targets_url: Url,
        now: DateTime<Utc>,
    ) -> Result<Self, TufError> {
        let store = MetadataStore::open(store_dir).map_err(TufError::store)?;
        let latest = store.read_latest_known_time().map_err(TufError::store)?;
        if let Some(latest) = latest
            && now < latest
        {
            return Err(TufError::ClockSteppedBackward {
                system_time: now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                latest_known_time: latest.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                file: store_dir.join(super::LATEST_KNOWN_TIME),
            });
        }
        let client = Client::refresh(
            shipped_root,
            store,
            metadata_transport,
            metadata_url,
            now,
            MetadataLimits::default(),
        )
        .await?;
        // Verified at `now`: every trusted role expires after it, so `now` is never beyond a signed expiry.
        if latest.is_none_or(|latest| now > latest) {
            client
                .store()
                .write_latest_known_time(now)
                .map_err(TufError::store)?;
        }
        Ok(Self {
            client,
            targets_url,
            targets_transport,
        })
    }

    /// A repository over an already refreshed client (the conformance client keeps its own anchor).
    #[must_use]
    pub fn from_client(
        client: Client,
        targets_url: Url,
        targets_transport: Arc<dyn Transport>,
    ) -> Self {
        Self {
            client,
            targets_url,
            targets_transport,
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Every target the top-level targets role lists itself (delegated targets are found only by name).
    pub fn top_level_targets(&self) -> impl Iterator<Item = (&String, &TargetFile)> {
        self.client
            .trusted()
            .targets(TARGETS)
            .into_iter()
            .flat_map(|t| t.meta.targets.iter())
    }

    /// §5.6.7: the target `name`, searched pre-order depth-first through the delegations, loading only the roles
    /// delegated a path that matches `name`, at most [`delegation::MAX_DELEGATIONS`] of them; a terminating role ends the
    /// search below its delegator. Not found: [`TufError::NotListed`].
    pub async fn find_target(&mut self, name: &str) -> Result<FoundTarget, TufError> {
        let top = self
            .client
            .trusted()
            .targets(TARGETS)
            .map(|t| t.meta.clone())
            .ok_or_else(|| TufError::Refused {
                detail: "no trusted targets metadata".into(),
            })?;
        let mut loader = Loader {
            client: &mut self.client,
        };
        match delegation::find_target(&top, name, &mut loader).await? {
            Some(found) => Ok(FoundTarget {
                name: name.to_string(),
                role: found.role,
                file: found.target,
            }),
            None => Err(TufError::NotListed {
                name: name.to_string(),
            }),
        }
    }

    /// Where `target` is fetched from: under the targets URL, each path segment URL-quoted, and with consistent
    /// snapshots the hash prefixed to the *file name* (`dir/<hash>.file`), as the spec says.
    pub fn target_url(&self, target: &FoundTarget) -> Result<Url, TufError> {
        // A URL resolves `.`/`..` segments (quoted too: `%2E%2E` is `..` to a URL parser), so a listed `../x`
        // would be fetched from outside the targets URL: refused.
        if target.name.split('/').any(|s| s == "." || s == "..") {
            return Err(TufError::BadTarget {
                name: target.name.clone(),
                detail: "its path has a '.' or '..' segment".into(),
            });
        }
        let mut segments: Vec<String> = target
            .name
            .split('/')
            .map(|s| percent_encoding::utf8_percent_encode(s, SEGMENT).to_string())
            .collect();
        if self.client.trusted().root().meta.consistent_snapshot {
            let (_, hash) =
                target
                    .file
                    .hashes
                    .iter()
                    .next()
                    .ok_or_else(|| TufError::BadTarget {
                        name: target.name.clone(),
                        detail: "it lists no hash".into(),
                    })?;
            let last = segments
                .last_mut()
                .expect("split yields one segment at least");
            *last = format!("{hash}.{last}");
        }
        super::join_url(&self.targets_url, &segments.join("/"))
    }

    /// Streams `target` from the repository, verified as it flows (see [`VerifiedStream`]).
    pub async fn stream_target(&self, target: &FoundTarget) -> Result<VerifiedStream, TufError> {
        let url = self.target_url(target)?;
        let hashers = Hashers::for_target(target)?;
        let inner = match self.targets_transport.fetch(url.clone()).await {
            Ok(stream) => stream,
            Err(e) => return Err(transport_error(&url, &e)),
        };
        Ok(Box::pin(Verifying {
            inner,
            url,
            name: target.name.clone(),
            expected_len: target.file.length,
            received: 0,
            hashers,
            done: false,
        }))
    }

    /// Streams `target` from byte `offset` on through `transport` (a Range request), continuing a download a
    /// checkpoint recorded: `sha256` is the state over the first `offset` bytes. Verified as
    /// [`Repository::stream_target`]'s stream, over the whole target: the length, and the sha256 (only sha256: a
    /// midstate of another algorithm is not kept, so the target must list sha256).
    pub async fn stream_target_from(
        &self,
        target: &FoundTarget,
        transport: &crate::fetch::ResumingTransport,
        offset: u64,
        sha256: crate::checkpoint::ResumableSha256,
    ) -> Result<VerifiedStream, TufError> {
        let url = self.target_url(target)?;
        let want = target
            .file
            .hashes
            .get("sha256")
            .ok_or_else(|| TufError::BadTarget {
                name: target.name.clone(),
                detail: "it lists no sha256, so its download cannot be resumed".into(),
            })?
            .to_ascii_lowercase();
        if sha256.len() != offset || offset > target.file.length {
            return Err(TufError::Refused {
                detail: format!(
                    "cannot resume '{}' at byte {offset}: the hash state covers {} bytes of {}",
                    target.name,
                    sha256.len(),
                    target.file.length
                ),
            });
        }
        let inner = match transport.fetch_from(url.clone(), offset).await {
            Ok(stream) => stream,
            Err(e) => return Err(transport_error(&url, &e)),
        };
        Ok(Box::pin(Verifying {
            inner,
            url,
            name: target.name.clone(),
            expected_len: target.file.length,
            received: offset,
            hashers: Hashers {
                sha256: Some((Sha256::Resumed(sha256), want)),
                sha512: None,
            },
            done: false,
        }))
    }

    /// The whole target `name`, found and verified.
    pub async fn read_target(&mut self, name: &str) -> Result<Vec<u8>, TufError> {
        let target = self.find_target(name).await?;
        let mut stream = self.stream_target(&target).await?;
        let mut bytes =
            Vec::with_capacity(usize::try_from(target.file.length.min(1 << 20)).unwrap_or(0));
        while let Some(chunk) = stream.next().await {
            bytes.extend_from_slice(&chunk?);
        }
        Ok(bytes)
    }

    /// Writes what migrator needs to load this repository offline after the reboot: into `metadata_dir` exactly
    /// the bytes this load verified (every root of the chain as `N.root.json`, `timestamp.json`, and snapshot and
    /// targets under the names their consistent-snapshot setting gives), and into `targets_dir` each of `targets`
    /// (verified, named `<sha256>.<name>` with consistent snapshots). Each file is written atomically; the caller
    /// syncs and then checks the cache with [`check_cache`].
    pub async fn cache(
        &mut self,
        metadata_dir: &Path,
        targets_dir: &Path,
        targets: &[String],
    ) -> Result<(), TufError> {
        let consistent = self.client.trusted().root().meta.consistent_snapshot;
        let mut files: Vec<(String, Vec<u8>)> = self
            .client
            .root_chain()
            .iter()
            .map(|(version, bytes)| (format!("{version}.root.json"), bytes.clone()))
            .collect();
        let set = self.client.trusted();
        let timestamp = set.timestamp().ok_or_else(|| TufError::Refused {
            detail: "no trusted timestamp to cache".into(),
        })?;
        files.push(("timestamp.json".into(), timestamp.bytes.clone()));
        let snapshot = set.snapshot().ok_or_else(|| TufError::Refused {
            detail: "no trusted snapshot to cache".into(),
        })?;
        let top = set.targets(TARGETS).ok_or_else(|| TufError::Refused {
            detail: "no trusted targets to cache".into(),
        })?;
        let versioned = |version: u64, role: &str| {
            if consistent {
                format!("{version}.{role}.json")
            } else {
                format!("{role}.json")
            }
        };
        files.push((
            versioned(snapshot.meta.version, "snapshot"),
            snapshot.bytes.clone(),
        ));
        files.push((versioned(top.meta.version, TARGETS), top.bytes.clone()));
        remove_stale_roots(
            metadata_dir,
            self.client.root_chain().last().map_or(0, |(v, _)| *v),
        )?;
        for (name, bytes) in &files {
            write_cache_file(&metadata_dir.join(name), bytes)?;
        }
        for name in targets {
            if name.is_empty() || name.contains('/') || name == "." || name == ".." {
                return Err(TufError::BadTarget {
                    name: name.clone(),
                    detail: "a cached target must be a plain file name".into(),
                });
            }
            let target = self.find_target(name).await?;
            if target.role != TARGETS {
                // migrator's loader (tough) reads top-level targets only.
                return Err(TufError::BadTarget {
                    name: name.clone(),
                    detail: format!(
                        "it is listed by the delegated role {}; migrations and manifest.json must be \
                         top-level targets",
                        target.role
                    ),
                });
            }
            let bytes = {
                let mut stream = self.stream_target(&target).await?;
                let mut bytes = Vec::new();
                while let Some(chunk) = stream.next().await {
                    bytes.extend_from_slice(&chunk?);
                }
                bytes
            };
            let file_name = if consistent {
                let sha256 = hex::encode(sha2::Sha256::digest(&bytes));
                format!("{sha256}.{name}")
            } else {
                name.clone()
            };
            write_cache_file(&targets_dir.join(file_name), &bytes)?;
        }
        Ok(())
    }
}

/// Delegated roles for the search: loaded (stored copy or repository, verified) on first use.
struct Loader<'a> {
    client: &'a mut Client,
}

impl delegation::RoleLoader for Loader<'_> {
    type Error = TufError;

    async fn load(
        &mut self,
        delegator: &str,
        role: &schema::DelegatedRole,
    ) -> Result<schema::TargetsMeta, TufError> {
        self.client.load_role(&role.name, delegator).await?;
        Ok(self
            .client
            .trusted()
            .targets(&role.name)
            .expect("load_role loaded it")
            .meta
            .clone())
    }
}

/// Checks a cache written by [`Repository::cache`] exactly as migrator will read it after the reboot: tough's
/// loader over `file://`, trusting `root` (the shipped root), expiry not enforced, each of `targets` read in
/// full (length and sha256). A cache that would fail migrator at boot fails here, before the set is marked
/// valid.
pub async fn check_cache(
    root: &[u8],
    metadata_dir: &Path,
    targets_dir: &Path,
    targets: &[String],
) -> Result<(), TufError> {
    use tough::{
        ExpirationEnforcement, FilesystemTransport, IntoVec, RepositoryLoader, TargetName,
    };
    let url = |dir: &Path| {
        Url::from_directory_path(dir).map_err(|()| TufError::Refused {
            detail: format!("{} is not an absolute directory", dir.display()),
        })
    };
    let scratch = tempfile::tempdir().map_err(|source| TufError::Datastore {
        path: std::env::temp_dir(),
        source,
    })?;
    let tough_error = |e| TufError::from_tough(e, scratch.path());
    let repo = RepositoryLoader::new(&root, url(metadata_dir)?, url(targets_dir)?)
        .transport(FilesystemTransport)
        .datastore(scratch.path())
        .expiration_enforcement(ExpirationEnforcement::Unsafe)
        .load()
        .await
        .map_err(tough_error)?;
    for name in targets {
        let target = TargetName::new(name.as_str()).map_err(tough_error)?;
        repo.read_target(&target)
            .await
            .map_err(tough_error)?
            .ok_or_else(|| TufError::NotListed { name: name.clone() })?
            .into_vec()
            .await
            .map_err(tough_error)?;
    }
    Ok(())
}

/// Removes `N.root.json` files above `newest` from an earlier update's cache (another repository's roots, say):
/// migrator's loader would try them as the next root and fail at boot.
fn remove_stale_roots(metadata_dir: &Path, newest: u64) -> Result<(), TufError> {
    let io_error = |source| TufError::Datastore {
        path: metadata_dir.to_owned(),
        source,
    };
    let entries = match std::fs::read_dir(metadata_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_error(e)),
    };
    for entry in entries {
        let entry = entry.map_err(io_error)?;
        let stale = entry
            .file_name()
            .to_str()
            .and_then(|n| n.strip_suffix(".root.json"))
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|v| v > newest);
        if stale {
            std::fs::remove_file(entry.path()).map_err(io_error)?;
        }
    }
    Ok(())
}

fn write_cache_file(path: &Path, bytes: &[u8]) -> Result<(), TufError> {
    nodeio::write_atomically(path, bytes).map_err(|e| TufError::Datastore {
        path: PathBuf::from(path),
        source: std::io::Error::other(e.to_string()),
    })
}

/// Characters quoted in a URL path segment: everything but the unreserved ones (RFC 3986).
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The hashes a target lists that this client computes (sha256, sha512); at least one is required.
struct Hashers {
    sha256: Option<(Sha256, String)>,
    sha512: Option<(sha2::Sha512, String)>,
}

/// sha256 from the start (sha2's, the fastest), or continued from a checkpoint's midstate.
enum Sha256 {
    Fresh(sha2::Sha256),
    Resumed(crate::checkpoint::ResumableSha256),
}

impl Sha256 {
    fn update(&mut self, bytes: &[u8]) {
        match self {
            Sha256::Fresh(h) => h.update(bytes),
            Sha256::Resumed(h) => h.update(bytes),
        }
    }

    fn hex(self) -> String {
        match self {
            Sha256::Fresh(h) => hex::encode(h.finalize()),
            Sha256::Resumed(h) => hex::encode(h.finalize()),
        }
    }
}

impl Hashers {
    fn for_target(target: &FoundTarget) -> Result<Self, TufError> {
        let hashes = &target.file.hashes;
        let hashers = Self {
            sha256: hashes
                .get("sha256")
                .map(|h| (Sha256::Fresh(sha2::Sha256::new()), h.to_ascii_lowercase())),
            sha512: hashes
                .get("sha512")
                .map(|h| (sha2::Sha512::new(), h.to_ascii_lowercase())),
        };
        if hashers.sha256.is_none() && hashers.sha512.is_none() {
            return Err(TufError::BadTarget {
                name: target.name.clone(),
                detail: format!(
                    "none of its hash algorithms ({}) is supported (sha256, sha512)",
                    hashes.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            });
        }
        Ok(hashers)
    }

    fn update(&mut self, bytes: &[u8]) {
        if let Some((h, _)) = &mut self.sha256 {
            h.update(bytes);
        }
        if let Some((h, _)) = &mut self.sha512 {
            h.update(bytes);
        }
    }

    /// The first hash that differs: (algorithm, computed, listed).
    fn mismatch(&mut self) -> Option<(&'static str, String, String)> {
        if let Some((h, want)) = self.sha256.take() {
            let got = h.hex();
            if got != want {
                return Some(("sha256", got, want));
            }
        }
        if let Some((h, want)) = self.sha512.take() {
            let got = hex::encode(h.finalize());
            if got != want {
                return Some(("sha512", got, want));
            }
        }
        None
    }
}

struct Verifying {
    inner: tough::TransportStream,
    url: Url,
    name: String,
    expected_len: u64,
    received: u64,
    hashers: Hashers,
    done: bool,
}

impl Stream for Verifying {
    type Item = Result<Bytes, TufError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        let this = &mut *self;
        match this.inner.as_mut().poll_next(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Err(e))) => {
                this.done = true;
                Poll::Ready(Some(Err(transport_error(&this.url, &e))))
            }
            Poll::Ready(Some(Ok(chunk))) => {
                this.received += chunk.len() as u64;
                if this.received > this.expected_len {
                    this.done = true;
                    return Poll::Ready(Some(Err(TufError::TooLarge {
                        detail: format!(
                            "target '{}' is longer than the {} bytes its metadata lists",
                            this.name, this.expected_len
                        ),
                    })));
                }
                this.hashers.update(&chunk);
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(None) => {
                this.done = true;
                if this.received != this.expected_len {
                    return Poll::Ready(Some(Err(TufError::HashMismatch {
                        detail: format!(
                            "target '{}' ended after {} bytes where its metadata lists {}",
                            this.name, this.received, this.expected_len
                        ),
                    })));
                }
                match this.hashers.mismatch() {
                    Some((algorithm, got, want)) => {
                        Poll::Ready(Some(Err(TufError::HashMismatch {
                            detail: format!(
                                "target '{}': {algorithm} is {got}, its metadata lists {want}",
                                this.name
                            ),
                        })))
                    }
                    None => Poll::Ready(None),
                }
            }
        }
    }
}
