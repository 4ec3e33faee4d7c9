//! The metadata a client trusts, and the rules for replacing it (TUF 1.0.x §5.3–§5.6), without any I/O.
//!
//! [`TrustedSet`] starts from a root and accepts each newer file only through the spec's checks, in the spec's
//! order: root (§5.3) before timestamp (§5.4) before snapshot (§5.5) before targets and delegated targets
//! (§5.6). It keeps the exact bytes it verified, so what is persisted or cached for migrator is what was checked.
//! Fetching, persisting and choosing between a local and a remote copy are the workflow's business
//! (`workflow.rs`); this is the part a reviewer must be able to read against the spec line by line, and the part
//! python-tuf's `TrustedMetadataSet` is the model for (same order, same intermediate states: an expired timestamp
//! or snapshot stays trusted as *intermediate* so that later files are still checked for rollback against it).

use super::schema::{self, Envelope, MetaListing, RoleKeys, RootMeta, TargetsMeta};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;

/// A verified file: its bytes exactly as received, the envelope, and the typed signed part.
#[derive(Debug, Clone)]
pub struct Trusted<T> {
    pub bytes: Vec<u8>,
    pub envelope: Envelope,
    pub meta: T,
}

/// Why a file was refused. The workflow adds where trust is kept and which URL it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrustError {
    /// Not metadata of the expected kind (JSON, `_type`, fields, spec version).
    Format {
        role: String,
        detail: String,
    },
    /// Not signed by a threshold of the keys trusted for the role.
    Signature {
        role: String,
        detail: String,
    },
    /// A root that is not exactly the next version.
    RootVersion {
        trusted: u64,
        offered: u64,
    },
    /// A version lower than the trusted one.
    Rollback {
        role: String,
        trusted: u64,
        offered: u64,
    },
    /// A role the previous snapshot listed is gone from the new one.
    RoleRemoved {
        role: String,
    },
    Expired {
        role: String,
    },
    /// Length or hashes differ from what the referencing metadata lists.
    HashMismatch {
        role: String,
        detail: String,
    },
    /// The version differs from the one the referencing metadata lists.
    VersionMismatch {
        role: String,
        fetched: u64,
        expected: u64,
    },
    /// snapshot.json does not list the role.
    NotInSnapshot {
        role: String,
    },
    /// The delegator is not trusted yet or does not delegate to the role.
    NotDelegated {
        role: String,
        delegator: String,
    },
    /// A file offered out of the spec's order (a bug in the caller).
    OutOfOrder {
        detail: String,
    },
}

impl std::fmt::Display for TrustError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Format { role, detail } => write!(f, "Invalid {role} metadata: {detail}"),
            Self::Signature { role, detail } => write!(
                f,
                "Signature check failed for {role} metadata: not signed by a threshold of the keys the \
                 trusted root lists for it ({detail})"
            ),
            Self::RootVersion { trusted, offered } => write!(
                f,
                "Rollback refused: the repository's {}.root.json is version {offered}, but version {} was \
                 expected after version {trusted}",
                trusted + 1,
                trusted + 1
            ),
            Self::Rollback {
                role,
                trusted,
                offered,
            } => write!(
                f,
                "Rollback refused: the repository offers {role} metadata version {offered}, but this node \
                 already trusts version {trusted}"
            ),
            Self::RoleRemoved { role } => write!(
                f,
                "Rollback refused: the repository's snapshot no longer lists {role} metadata, which this node \
                 trusts"
            ),
            Self::Expired { role } => write!(
                f,
                "The repository's {role} metadata has expired; refusing it (expired metadata may be a freeze \
                 attack). The publisher must refresh the repository."
            ),
            Self::HashMismatch { role, detail } => write!(
                f,
                "Hash mismatch: {role} metadata does not match the listing ({detail}); the file was changed or \
                 replaced"
            ),
            Self::VersionMismatch {
                role,
                fetched,
                expected,
            } => write!(
                f,
                "{role} metadata version mismatch: the repository serves version {fetched} where version \
                 {expected} was listed"
            ),
            Self::NotInSnapshot { role } => {
                write!(
                    f,
                    "The repository's snapshot does not list {role} metadata; refusing it"
                )
            }
            Self::NotDelegated { role, delegator } => {
                write!(f, "Role {role} is not delegated by {delegator}")
            }
            Self::OutOfOrder { detail } => write!(f, "TUF workflow out of order: {detail}"),
        }
    }
}

impl std::error::Error for TrustError {}

/// What became of a new timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampUpdate {
    /// It replaced the trusted one.
    Updated,
    /// Same version as the trusted one: not an update (§5.4.3); the trusted one is kept, whatever the new
    /// content, and its snapshot is not followed.
    KeptTrusted,
}

/// The trusted metadata; see the module documentation.
#[derive(Debug, Clone)]
pub struct TrustedSet {
    reference_time: DateTime<Utc>,
    root: Trusted<RootMeta>,
    timestamp: Option<Trusted<MetaListing>>,
    snapshot: Option<Trusted<MetaListing>>,
    /// "targets" and the delegated roles loaded so far.
    targets: BTreeMap<String, Trusted<TargetsMeta>>,
}

/// The top-level targets role's name, also the delegator of the roles it delegates.
pub const TARGETS: &str = "targets";

impl TrustedSet {
    /// Starts from the trusted root `root_bytes` (§5.2): it must be a root signed by a threshold of its own root
    /// keys. Expiry is checked only after the root update (§5.3.10), by [`Self::check_root_expiry`].
    pub fn new(root_bytes: &[u8], reference_time: DateTime<Utc>) -> Result<Self, TrustError> {
        let root = parse_root(root_bytes)?;
        verify(&root.envelope, &root.meta, "root", "root")?;
        Ok(Self {
            reference_time,
            root,
            timestamp: None,
            snapshot: None,
            targets: BTreeMap::new(),
        })
    }

    pub fn reference_time(&self) -> DateTime<Utc> {
        self.reference_time
    }

    pub fn root(&self) -> &Trusted<RootMeta> {
        &self.root
    }

    pub fn timestamp(&self) -> Option<&Trusted<MetaListing>> {
        self.timestamp.as_ref()
    }

    pub fn snapshot(&self) -> Option<&Trusted<MetaListing>> {
        self.snapshot.as_ref()
    }

    /// "targets" or a delegated role, once loaded.
    pub fn targets(&self, role: &str) -> Option<&Trusted<TargetsMeta>> {
        self.targets.get(role)
    }

    /// §5.3.4–§5.3.8: `bytes` (the repository's `N+1.root.json`) becomes the trusted root when it is signed by a
    /// threshold of the trusted root's root keys *and* of its own, and is exactly version N+1. Expiry does not
    /// matter for intermediate roots.
    pub fn update_root(&mut self, bytes: &[u8]) -> Result<(), TrustError> {
        if self.timestamp.is_some() {
            return Err(TrustError::OutOfOrder {
                detail: "a root update after the timestamp was loaded".into(),
            });
        }
        let new = parse_root(bytes)?;
        verify(&new.envelope, &self.root.meta, "root", "root")?;
        verify(&new.envelope, &new.meta, "root", "root")?;
        let trusted = self.root.meta.version;
        // A root at u64::MAX has no successor (found by the property tests: `trusted + 1` overflowed).
        if trusted.checked_add(1) != Some(new.meta.version) {
            return Err(TrustError::RootVersion {
                trusted,
                offered: new.meta.version,
            });
        }
        self.root = new;
        Ok(())
    }

    /// §5.3.10: the final root must not be expired.
    pub fn check_root_expiry(&self) -> Result<(), TrustError> {
        self.check_expiry("root", self.root.meta.expires)
    }

    /// §5.4: a new timestamp, signed by the root's timestamp keys, not older than the trusted one and not naming
    /// an older snapshot. Same version: [`TimestampUpdate::KeptTrusted`]. Accepted but expired: it stays trusted
    /// (for rollback checks of what follows) and the error says it expired.
    pub fn update_timestamp(&mut self, bytes: &[u8]) -> Result<TimestampUpdate, TrustError> {
        if self.snapshot.is_some() {
            return Err(TrustError::OutOfOrder {
                detail: "a timestamp update after the snapshot was loaded".into(),
            });
        }
        self.check_root_expiry()?;
        let new: Trusted<MetaListing> = parse_file(bytes, "timestamp")?;
        verify(&new.envelope, &self.root.meta, "timestamp", "timestamp")?;
        let new_snapshot = snapshot_entry(&new.meta)?.version;
        if let Some(trusted) = &self.timestamp {
            if new.meta.version < trusted.meta.version {
                return Err(TrustError::Rollback {
                    role: "timestamp".into(),
                    trusted: trusted.meta.version,
                    offered: new.meta.version,
                });
            }
            if new.meta.version == trusted.meta.version {
                return Ok(TimestampUpdate::KeptTrusted);
            }
            let trusted_snapshot = snapshot_entry(&trusted.meta)?.version;
            if new_snapshot < trusted_snapshot {
                return Err(TrustError::Rollback {
                    role: "snapshot".into(),
                    trusted: trusted_snapshot,
                    offered: new_snapshot,
                });
            }
        }
        let expires = new.meta.expires;
        self.timestamp = Some(new);
        self.check_expiry("timestamp", expires)?;
        Ok(TimestampUpdate::Updated)
    }

    /// The snapshot entry of the trusted timestamp (`snapshot.json`'s version, length, hashes).
    pub fn snapshot_listing(&self) -> Result<&schema::MetaFile, TrustError> {
        let timestamp = self
            .timestamp
            .as_ref()
            .ok_or_else(|| TrustError::OutOfOrder {
                detail: "the snapshot before the timestamp".into(),
            })?;
        snapshot_entry(&timestamp.meta)
    }

    /// §5.5: a new snapshot. `from_local_store`: bytes this node verified before (the length and hashes the
    /// timestamp lists are then not checked, as python-tuf, since a newer timestamp may list a newer snapshot
    /// while this one still serves for the rollback checks). Signed by the root's snapshot keys; every role the
    /// trusted snapshot lists stays listed with a version not lower. Accepted as intermediate even when expired or
    /// not the version the timestamp names; the error then says so.
    pub fn update_snapshot(
        &mut self,
        bytes: &[u8],
        from_local_store: bool,
    ) -> Result<(), TrustError> {
        if !self.targets.is_empty() {
            return Err(TrustError::OutOfOrder {
                detail: "a snapshot update after targets were loaded".into(),
            });
        }
        let timestamp = self
            .timestamp
            .as_ref()
            .ok_or_else(|| TrustError::OutOfOrder {
                detail: "the snapshot before the timestamp".into(),
            })?;
        self.check_expiry("timestamp", timestamp.meta.expires)?;
        let listing = snapshot_entry(&timestamp.meta)?.clone();
        if !from_local_store {
            schema::check_length_and_hashes(bytes, listing.length, listing.hashes.as_ref())
                .map_err(|detail| TrustError::HashMismatch {
                    role: "snapshot".into(),
                    detail,
                })?;
        }
        let new: Trusted<MetaListing> = parse_file(bytes, "snapshot")?;
        verify(&new.envelope, &self.root.meta, "snapshot", "snapshot")?;
        if let Some(trusted) = &self.snapshot {
            for (name, old) in &trusted.meta.meta {
                let role = name.strip_suffix(".json").unwrap_or(name).to_string();
                let Some(entry) = new.meta.meta.get(name) else {
                    return Err(TrustError::RoleRemoved { role });
                };
                if entry.version < old.version {
                    return Err(TrustError::Rollback {
                        role,
                        trusted: old.version,
                        offered: entry.version,
                    });
                }
            }
        }
        self.snapshot = Some(new);
        self.check_final_snapshot()
    }

    /// The snapshot is final (§5.5.4, §5.5.6): not expired, and the version the timestamp lists.
    pub fn check_final_snapshot(&self) -> Result<(), TrustError> {
        let snapshot = self
            .snapshot
            .as_ref()
            .ok_or_else(|| TrustError::OutOfOrder {
                detail: "targets before the snapshot".into(),
            })?;
        self.check_expiry("snapshot", snapshot.meta.expires)?;
        let expected = self.snapshot_listing()?.version;
        if snapshot.meta.version != expected {
            return Err(TrustError::VersionMismatch {
                role: "snapshot".into(),
                fetched: snapshot.meta.version,
                expected,
            });
        }
        Ok(())
    }

    /// The snapshot's entry for `role` ("targets" or a delegated role name).
    pub fn role_listing(&self, role: &str) -> Result<&schema::MetaFile, TrustError> {
        let snapshot = self
            .snapshot
            .as_ref()
            .ok_or_else(|| TrustError::OutOfOrder {
                detail: "targets before the snapshot".into(),
            })?;
        snapshot
            .meta
            .meta
            .get(&format!("{role}.json"))
            .ok_or_else(|| TrustError::NotInSnapshot { role: role.into() })
    }

    /// §5.6: top-level targets (`delegator` "root") or a delegated role (`delegator` the trusted targets role that
    /// delegates it). Length and hashes as the snapshot lists them (if it does), signed by a threshold of the
    /// delegator's keys for the role, exactly the version the snapshot lists, not expired.
    pub fn update_targets(
        &mut self,
        role: &str,
        delegator: &str,
        bytes: &[u8],
    ) -> Result<(), TrustError> {
        self.check_final_snapshot()?;
        let listing = self.role_listing(role)?.clone();
        schema::check_length_and_hashes(bytes, listing.length, listing.hashes.as_ref()).map_err(
            |detail| TrustError::HashMismatch {
                role: role.into(),
                detail,
            },
        )?;
        let new: Trusted<TargetsMeta> = parse_file(bytes, "targets")?;
        if delegator == "root" {
            if role != TARGETS {
                return Err(TrustError::NotDelegated {
                    role: role.into(),
                    delegator: delegator.into(),
                });
            }
            verify(&new.envelope, &self.root.meta, TARGETS, TARGETS)?;
        } else {
            let not_delegated = || TrustError::NotDelegated {
                role: role.into(),
                delegator: delegator.into(),
            };
            let delegations = self
                .targets
                .get(delegator)
                .and_then(|parent| parent.meta.delegations.as_ref())
                .ok_or_else(not_delegated)?;
            let delegated = delegations
                .roles
                .iter()
                .find(|r| r.name == role)
                .ok_or_else(not_delegated)?;
            schema::verify_threshold(&new.envelope, &delegations.keys, &delegated.keys()).map_err(
                |detail| TrustError::Signature {
                    role: role.into(),
                    detail,
                },
            )?;
        }
        if new.meta.version != listing.version {
            return Err(TrustError::VersionMismatch {
                role: role.into(),
                fetched: new.meta.version,
                expected: listing.version,
            });
        }
        self.check_expiry(role, new.meta.expires)?;
        self.targets.insert(role.to_string(), new);
        Ok(())
    }

    fn check_expiry(&self, role: &str, expires: DateTime<Utc>) -> Result<(), TrustError> {
        if self.reference_time >= expires {
            return Err(TrustError::Expired { role: role.into() });
        }
        Ok(())
    }
}

/// Whether the keys (ids and threshold, and the key material behind the ids) of top-level `role` differ between
/// two roots: §5.3.11 discards the trusted timestamp and snapshot when theirs rotated.
pub fn role_keys_changed(old: &RootMeta, new: &RootMeta, role: &str) -> bool {
    let material = |root: &RootMeta| {
        root.roles.get(role).map(|keys| {
            let mut ids = keys.keyids.clone();
            ids.sort();
            let values: Vec<_> = ids.iter().map(|id| root.keys.get(id).cloned()).collect();
            (ids, keys.threshold, values)
        })
    };
    material(old) != material(new)
}

fn parse_root(bytes: &[u8]) -> Result<Trusted<RootMeta>, TrustError> {
    parse_file(bytes, "root")
}

fn parse_file<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    kind: &str,
) -> Result<Trusted<T>, TrustError> {
    let (envelope, meta) = schema::parse(bytes, kind).map_err(|e| TrustError::Format {
        role: kind.into(),
        detail: e.0,
    })?;
    Ok(Trusted {
        bytes: bytes.to_vec(),
        envelope,
        meta,
    })
}

/// Checks `envelope` against `root`'s keys for top-level role `key_role`; errors name `role`.
fn verify(
    envelope: &Envelope,
    root: &RootMeta,
    key_role: &str,
    role: &str,
) -> Result<(), TrustError> {
    let keys: &RoleKeys = root.roles.get(key_role).ok_or_else(|| TrustError::Format {
        role: "root".into(),
        detail: format!("no \"{key_role}\" role"),
    })?;
    schema::verify_threshold(envelope, &root.keys, keys).map_err(|detail| TrustError::Signature {
        role: role.into(),
        detail,
    })
}

fn snapshot_entry(timestamp: &MetaListing) -> Result<&schema::MetaFile, TrustError> {
    timestamp
        .meta
        .get("snapshot.json")
        .ok_or_else(|| TrustError::Format {
            role: "timestamp".into(),
            detail: "meta does not list snapshot.json".into(),
        })
}

#[cfg(test)]
pub(crate) mod tests;

#[cfg(test)]
mod proptests;
