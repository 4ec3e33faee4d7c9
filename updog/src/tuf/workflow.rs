//! The client workflow of TUF 1.0.x §5, with trust persisted on the node.
//!
//! [`Client::refresh`] runs §5.2–§5.6 in order:
//!
//! 1. **Trusted root** (§5.2): the *shipped* root (`/usr/share/updog/root.json`, on a real node on the
//!    dm-verity-protected ROOT) is the only anchor. The roots this node rotated to before (`N.root.json` in the
//!    store) are re-verified from it, one version at a time, at every start: a root written into the store by
//!    someone else does not chain and is refused.
//! 2. **Root update** (§5.3): `N+1.root.json` from the repository until it has no next one (at most 256 steps),
//!    each signed by the old and the new root's threshold and exactly the next version, each persisted; when the
//!    timestamp or snapshot keys change the stored timestamp and snapshot are discarded (§5.3.11). The final root
//!    must not be expired.
//! 3. **Timestamp** (§5.4): the stored one first (the rollback reference), then the repository's. A newer one
//!    replaces it; the same version is not an update (the trusted one is kept, its snapshot not followed).
//! 4. **Snapshot** (§5.5): the stored one is used as is when it is the version the timestamp names and
//!    unexpired (no download); otherwise the repository's (`V.snapshot.json` with consistent snapshots),
//!    checked against the timestamp's length and hashes and for role rollback against the stored one.
//! 5. **Targets** (§5.6): likewise, the stored `targets.json` when snapshot lists exactly its version, else the
//!    repository's. Delegated roles are loaded only when a target search reaches them ([`Client::load_role`]).
//!
//! Everything verified is persisted atomically and durably ([`MetadataStore`]); a store that cannot be read, or
//! that holds files that are not validly signed metadata, is an error naming the file, never a silent reset of
//! rollback protection. Local files that are merely out of date (an expired or superseded snapshot or targets)
//! are replaced from the repository, as python-tuf's ngclient does.

use super::store::{MetadataStore, role_file_name};
use super::trusted_set::{TARGETS, TimestampUpdate, TrustError, TrustedSet, role_keys_changed};
use super::{TufError, fetch_bounded};
use chrono::{DateTime, Utc};
use std::sync::Arc;
use tough::Transport;
use url::Url;

/// The most root versions one refresh walks (python-tuf's `max_root_rotations`).
pub const MAX_ROOT_ROTATIONS: u64 = 256;

/// Size limits for metadata downloads without a listed length (python-tuf's defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetadataLimits {
    pub root: u64,
    pub timestamp: u64,
    pub snapshot: u64,
    pub targets: u64,
}

impl Default for MetadataLimits {
    fn default() -> Self {
        Self {
            root: 512_000,
            timestamp: 16_384,
            snapshot: 2_000_000,
            targets: 5_000_000,
        }
    }
}

/// A refreshed repository: the trusted set, the store it persists to, and where it fetches from.
pub struct Client {
    set: TrustedSet,
    store: MetadataStore,
    transport: Arc<dyn Transport>,
    metadata_url: Url,
    limits: MetadataLimits,
    /// The shipped root and the chain after it, in version order, as verified (for the migrator cache).
    root_chain: Vec<(u64, Vec<u8>)>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("metadata_url", &self.metadata_url.as_str())
            .field("store", &self.store.dir())
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Runs §5.2–§5.6 (see the module documentation) at `reference_time`.
    pub async fn refresh(
        shipped_root: &[u8],
        store: MetadataStore,
        transport: Arc<dyn Transport>,
        metadata_url: Url,
        reference_time: DateTime<Utc>,
        limits: MetadataLimits,
    ) -> Result<Self, TufError> {
        let set = TrustedSet::new(shipped_root, reference_time).map_err(|e| {
            TufError::BadTrustedRoot {
                origin: "(the root this node ships)".into(),
                detail: e.to_string(),
            }
        })?;
        let root_chain = vec![(set.root().meta.version, shipped_root.to_vec())];
        let mut client = Self {
            set,
            store,
            transport,
            metadata_url,
            limits,
            root_chain,
        };
        client.load_stored_roots()?;
        client.update_root().await?;
        client.load_timestamp().await?;
        client.load_snapshot().await?;
        client.load_role(TARGETS, "root").await?;
        Ok(client)
    }

    pub fn trusted(&self) -> &TrustedSet {
        &self.set
    }

    pub fn store(&self) -> &MetadataStore {
        &self.store
    }

    pub fn transport(&self) -> &Arc<dyn Transport> {
        &self.transport
    }

    /// Every verified root from the shipped one on: `(version, bytes)`.
    pub fn root_chain(&self) -> &[(u64, Vec<u8>)] {
        &self.root_chain
    }

    fn trust_error(&self, error: TrustError) -> TufError {
        TufError::from_trust(error, self.store.dir())
    }

    fn damaged(&self, file: &str, error: impl std::fmt::Display) -> TufError {
        TufError::DamagedStore {
            file: self.store.dir().join(file),
            detail: error.to_string(),
            dir: self.store.dir().to_owned(),
        }
    }

    /// §5.2 with persisted rotations: re-verify the stored chain from the shipped root.
    fn load_stored_roots(&mut self) -> Result<(), TufError> {
        let versions = self.store.root_versions().map_err(TufError::store)?;
        for version in versions {
            let current = self.set.root().meta.version;
            if version <= current {
                // A root the shipped one already supersedes (the OS image moved on).
                continue;
            }
            let file = format!("{version}.root.json");
            if version != current + 1 {
                return Err(self.damaged(
                    &file,
                    format!("the stored roots skip from version {current} to {version}"),
                ));
            }
            let bytes = self
                .store
                .read_root(version, self.limits.root)
                .map_err(TufError::store)?
                .ok_or_else(|| self.damaged(&file, "listed but gone"))?;
            self.set.update_root(&bytes).map_err(|e| {
                self.damaged(
                    &file,
                    format!("it does not chain from the shipped root: {e}"),
                )
            })?;
            self.root_chain.push((version, bytes));
        }
        Ok(())
    }

    /// §5.3: walk the repository's root chain.
    async fn update_root(&mut self) -> Result<(), TufError> {
        for _ in 0..MAX_ROOT_ROTATIONS {
            // A root at u64::MAX has no successor to fetch.
            let Some(next) = self.set.root().meta.version.checked_add(1) else {
                break;
            };
            let url = self.url(&format!("{next}.root.json"))?;
            let Some(bytes) = fetch_bounded(&*self.transport, url, self.limits.root).await? else {
                break;
            };
            let old = self.set.root().meta.clone();
            self.set
                .update_root(&bytes)
                .map_err(|e| self.trust_error(e))?;
            let new = &self.set.root().meta;
            // §5.3.11: a rotated timestamp or snapshot key makes the stored files useless for rollback checks
            // (an attacker holding the old key could have signed them); forget them before trusting the new root.
            if role_keys_changed(&old, new, "timestamp") || role_keys_changed(&old, new, "snapshot")
            {
                for role in ["timestamp", "snapshot"] {
                    self.store.remove_role(role).map_err(TufError::store)?;
                }
            }
            self.store
                .write_root(next, &bytes)
                .map_err(TufError::store)?;
            self.root_chain.push((next, bytes));
        }
        self.set
            .check_root_expiry()
            .map_err(|e| self.trust_error(e))
    }

    /// §5.4.
    async fn load_timestamp(&mut self) -> Result<(), TufError> {
        if let Some(local) = self
            .store
            .read_role("timestamp", self.limits.timestamp)
            .map_err(TufError::store)?
        {
            match self.set.update_timestamp(&local) {
                // Expired is fine for the rollback reference.
                Ok(_) | Err(TrustError::Expired { .. }) => {}
                Err(e) => return Err(self.damaged("timestamp.json", e)),
            }
        }
        let url = self.url("timestamp.json")?;
        let bytes = fetch_bounded(&*self.transport, url.clone(), self.limits.timestamp)
            .await?
            .ok_or_else(|| not_found(&url))?;
        match self
            .set
            .update_timestamp(&bytes)
            .map_err(|e| self.trust_error(e))?
        {
            TimestampUpdate::Updated => self
                .store
                .write_role("timestamp", &bytes)
                .map_err(TufError::store),
            TimestampUpdate::KeptTrusted => {
                log::debug!(
                    "the repository's timestamp is the version this node trusts; keeping the trusted copy"
                );
                Ok(())
            }
        }
    }

    /// §5.5.
    async fn load_snapshot(&mut self) -> Result<(), TufError> {
        if let Some(local) = self
            .store
            .read_role("snapshot", self.limits.snapshot)
            .map_err(TufError::store)?
        {
            match self.set.update_snapshot(&local, true) {
                Ok(()) => {
                    log::debug!("using the stored snapshot (the version the timestamp names)");
                    return Ok(());
                }
                // Out of date: it stays as the rollback reference and the repository's is fetched.
                Err(TrustError::Expired { role } | TrustError::VersionMismatch { role, .. })
                    if role == "snapshot" => {}
                Err(e) => return Err(self.damaged("snapshot.json", e)),
            }
        }
        let listing = self
            .set
            .snapshot_listing()
            .map_err(|e| self.trust_error(e))?
            .clone();
        let name = if self.set.root().meta.consistent_snapshot {
            format!("{}.snapshot.json", listing.version)
        } else {
            "snapshot.json".into()
        };
        let url = self.url(&name)?;
        let max = listing.length.unwrap_or(self.limits.snapshot);
        let bytes = fetch_bounded(&*self.transport, url.clone(), max)
            .await?
            .ok_or_else(|| not_found(&url))?;
        self.set
            .update_snapshot(&bytes, false)
            .map_err(|e| self.trust_error(e))?;
        self.store
            .write_role("snapshot", &bytes)
            .map_err(TufError::store)
    }

    /// §5.6 for `role` as delegated by `delegator` ("root" for the top-level targets): the stored copy when it is
    /// the version snapshot lists, else the repository's. Loaded once per refresh.
    pub async fn load_role(&mut self, role: &str, delegator: &str) -> Result<(), TufError> {
        if self.set.targets(role).is_some() {
            return Ok(());
        }
        let listing = self
            .set
            .role_listing(role)
            .map_err(|e| self.trust_error(e))?
            .clone();
        let file = role_file_name(role);
        if let Some(local) = self
            .store
            .read_role(role, self.limits.targets)
            .map_err(TufError::store)?
        {
            match self.set.update_targets(role, delegator, &local) {
                Ok(()) => {
                    log::debug!(
                        "using the stored {role} metadata (the version the snapshot lists)"
                    );
                    return Ok(());
                }
                // Superseded, expired or re-keyed: fetch the repository's (rollback is guarded by snapshot).
                Err(e) => log::debug!("stored {file} not usable: {e}"),
            }
        }
        let quoted = file.strip_suffix(".json").unwrap_or(&file);
        let name = if self.set.root().meta.consistent_snapshot {
            format!("{}.{quoted}.json", listing.version)
        } else {
            format!("{quoted}.json")
        };
        let url = self.url(&name)?;
        let max = listing.length.unwrap_or(self.limits.targets);
        let bytes = fetch_bounded(&*self.transport, url.clone(), max)
            .await?
            .ok_or_else(|| not_found(&url))?;
        self.set
            .update_targets(role, delegator, &bytes)
            .map_err(|e| self.trust_error(e))?;
        self.store.write_role(role, &bytes).map_err(TufError::store)
    }

    /// `name` (role names already quoted) under the metadata URL. Over `file://` the URL's path is the file's
    /// path as written (tough's filesystem transport does not decode it): a role `a/b` is the file
    /// `N.a%2Fb.json`, never a subdirectory, as python-tuf names it.
    fn url(&self, name: &str) -> Result<Url, TufError> {
        super::join_url(&self.metadata_url, name)
    }
}

fn not_found(url: &Url) -> TufError {
    TufError::Fetch {
        url: crate::fetch::redacted(url).to_string(),
        detail: "not found".into(),
    }
}
