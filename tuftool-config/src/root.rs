//! root.json: creating and signing it, reading it, checking keys against it, and rotating it.

use crate::canonical::{file_bytes, sign_role};
use crate::durable::{Existing, write_file_atomic};
use crate::error::{self, Result};
use crate::keys::SigningKey;
use crate::role::Role;
use jiff::Timestamp;
use snafu::{OptionExt, ResultExt, ensure};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::num::NonZeroU64;
use std::path::{Path, PathBuf};
use tough::schema::decoded::{Decoded, Hex};
use tough::schema::{RoleKeys, Root, Signed};

const SPEC_VERSION: &str = "1.0.0";

/// A signed root.json and the exact bytes it is stored as.
#[derive(Debug, Clone)]
pub struct SignedRoot {
    signed: Signed<Root>,
    bytes: Vec<u8>,
    path: Option<PathBuf>,
}

impl SignedRoot {
    /// Reads a root.json and checks that it is signed by a threshold of its own root keys.
    pub fn read(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).context(error::ReadRootSnafu { path })?;
        let mut root = Self::from_bytes(bytes, &path.display().to_string())?;
        root.path = Some(path.to_path_buf());
        Ok(root)
    }

    /// Parses root.json bytes (`label` names them in errors) and checks the self-signature.
    pub fn from_bytes(bytes: Vec<u8>, label: &str) -> Result<Self> {
        let signed: Signed<Root> =
            serde_json::from_slice(&bytes).context(error::ParseRootSnafu { root: label })?;
        signed
            .signed
            .verify_role(&signed)
            .map_err(|e| error::Error::RootNotSelfSigned {
                root: label.to_string(),
                message: e.to_string(),
            })?;
        Ok(Self {
            signed,
            bytes,
            path: None,
        })
    }

    /// Names the file this root is (or will be) stored at, for messages.
    #[must_use]
    pub fn with_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.path = Some(path.into());
        self
    }

    /// Writes the root atomically (mode 0644), replacing any file at `path`.
    pub fn write(&self, path: impl AsRef<Path>) -> Result<()> {
        write_file_atomic(path.as_ref(), &self.bytes, 0o644, Existing::Replace)
    }

    /// The exact file bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The signed metadata.
    pub fn signed(&self) -> &Signed<Root> {
        &self.signed
    }

    /// The root body.
    pub fn root(&self) -> &Root {
        &self.signed.signed
    }

    /// The root version.
    pub fn version(&self) -> u64 {
        self.signed.signed.version.get()
    }

    /// When this root expires.
    pub fn expires(&self) -> Timestamp {
        self.signed.signed.expires
    }

    /// The file it was read from, if any.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Whether `key` is listed in this root for `role`.
    #[must_use]
    pub fn lists(&self, role: Role, key: &SigningKey) -> bool {
        self.role_keys(role)
            .is_some_and(|rk| rk.keyids.iter().any(|id| hex::encode(&**id) == key.keyid()))
    }

    /// The threshold for `role` (None if the root has no such role).
    pub fn threshold(&self, role: Role) -> Option<u64> {
        self.role_keys(role).map(|rk| rk.threshold.get())
    }

    fn role_keys(&self, role: Role) -> Option<&RoleKeys> {
        self.signed.signed.roles.get(&role.role_type())
    }

    /// Checks that every key is listed in this root for `role` and that together they meet the
    /// role's threshold. The errors name the key file, the role and this root.
    pub fn check_keys(&self, role: Role, keys: &[SigningKey]) -> Result<()> {
        let threshold = self
            .threshold(role)
            .context(error::RoleMissingFromRootSnafu {
                role,
                root: self.to_string(),
            })?;
        for key in keys {
            ensure!(
                self.lists(role, key),
                error::KeyNotInRootSnafu {
                    key: key.to_string(),
                    role,
                    root: self.to_string()
                }
            );
        }
        let available = keys
            .iter()
            .map(SigningKey::keyid)
            .collect::<BTreeSet<_>>()
            .len() as u64;
        ensure!(
            available >= threshold,
            error::ThresholdNotMetSnafu {
                role,
                available,
                threshold,
                root: self.to_string()
            }
        );
        Ok(())
    }
}

/// `/path/root.json (version 3)`, or `root.json /path/other.json (version 3)`
impl fmt::Display for SignedRoot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.path {
            // "/keys/root.json (version 3)", not "root.json /keys/root.json (version 3)".
            Some(path) if path.file_name().is_some_and(|n| n == "root.json") => {
                write!(f, "{} (version {})", path.display(), self.version())
            }
            Some(path) => write!(
                f,
                "root.json {} (version {})",
                path.display(),
                self.version()
            ),
            None => write!(f, "root.json (version {})", self.version()),
        }
    }
}

/// Describes a root.json to create: per-role keys and thresholds, version, expiry and
/// whether consistent snapshots are used. Required things in [`RootBuilder::new`], the rest
/// as methods.
#[derive(Debug, Clone)]
pub struct RootBuilder {
    expires: Timestamp,
    version: Option<NonZeroU64>,
    consistent_snapshot: bool,
    roles: BTreeMap<Role, (Vec<SigningKey>, NonZeroU64)>,
}

impl RootBuilder {
    /// A root that expires at `expires`; version 1 (or the next version, when rotating),
    /// consistent snapshots on, no roles yet.
    #[must_use]
    pub fn new(expires: Timestamp) -> Self {
        Self {
            expires,
            version: None,
            consistent_snapshot: true,
            roles: BTreeMap::new(),
        }
    }

    /// Sets the version (default 1; when rotating it must be the old version + 1).
    #[must_use]
    pub fn version(mut self, version: NonZeroU64) -> Self {
        self.version = Some(version);
        self
    }

    /// Sets `consistent_snapshot` (default true, as Bottlerocket).
    #[must_use]
    pub fn consistent_snapshot(mut self, consistent_snapshot: bool) -> Self {
        self.consistent_snapshot = consistent_snapshot;
        self
    }

    /// Lists `keys` for `role` with `threshold`. All four roles must be given. The root role's
    /// keys sign the new root.
    #[must_use]
    pub fn role(mut self, role: Role, keys: Vec<SigningKey>, threshold: NonZeroU64) -> Self {
        self.roles.insert(role, (keys, threshold));
        self
    }

    fn build(&self, version: NonZeroU64, now: Timestamp) -> Result<Root> {
        ensure!(
            self.expires > now,
            error::RootExpiryInPastSnafu {
                expires: self.expires.to_string(),
                now: now.to_string()
            }
        );
        let mut keys = HashMap::new();
        let mut roles = HashMap::new();
        for role in Role::ALL {
            let (role_keys, threshold) = self
                .roles
                .get(&role)
                .context(error::RootSpecMissingRoleSnafu { role })?;
            let mut keyids = BTreeMap::new();
            for key in role_keys {
                keyids.insert(key.keyid().to_string(), key);
            }
            ensure!(
                threshold.get() <= keyids.len() as u64,
                error::ThresholdAboveKeyCountSnafu {
                    role,
                    threshold: threshold.get(),
                    keys: keyids.len()
                }
            );
            let mut ids = Vec::new();
            for (id, key) in keyids {
                let decoded: Decoded<Hex> = hex::decode(&id).expect("key IDs are hex").into();
                keys.insert(decoded.clone(), key.public_key().clone());
                ids.push(decoded);
            }
            roles.insert(
                role.role_type(),
                RoleKeys {
                    keyids: ids,
                    threshold: *threshold,
                    _extra: HashMap::new(),
                },
            );
        }
        Ok(Root {
            spec_version: SPEC_VERSION.to_string(),
            consistent_snapshot: self.consistent_snapshot,
            version,
            expires: self.expires,
            keys,
            roles,
            _extra: HashMap::new(),
        })
    }

    fn root_keys(&self) -> &[SigningKey] {
        self.roles
            .get(&Role::Root)
            .map_or(&[], |(keys, _)| keys.as_slice())
    }

    /// Builds the root and signs it with its own root keys. Errors if a role is missing, a
    /// threshold exceeds its key count, or `expires` is not after `now`.
    pub async fn sign(self, now: Timestamp) -> Result<SignedRoot> {
        let version = self.version.unwrap_or(NonZeroU64::MIN);
        let root = self.build(version, now)?;
        let (_, bytes) = sign_role(root.clone(), &root, self.root_keys(), Role::Root).await?;
        SignedRoot::from_bytes(bytes, &format!("new root.json (version {version})"))
    }
}

/// Creates root version N+1 from `next`, signed by a threshold of the OLD root's root keys
/// (`old_root_keys`) and by the new root's own root keys, so that a client that trusts `old`
/// accepts it (TUF 5.3.4). Refuses, naming the role and the counts, if the old keys given do
/// not meet the old threshold.
pub async fn rotate_root(
    old: &SignedRoot,
    old_root_keys: &[SigningKey],
    next: RootBuilder,
    now: Timestamp,
) -> Result<SignedRoot> {
    let expected = old.version() + 1;
    let version = next.version.map_or(expected, NonZeroU64::get);
    ensure!(
        version == expected,
        error::RotatedRootVersionSnafu {
            given: version,
            expected,
            root: old.to_string()
        }
    );
    old.check_keys(Role::Root, old_root_keys)?;
    let version = NonZeroU64::new(version).context(error::RotatedRootVersionSnafu {
        given: version,
        expected,
        root: old.to_string(),
    })?;
    let new_root = next.build(version, now)?;
    let (mut signed, _) =
        sign_role(new_root.clone(), &new_root, next.root_keys(), Role::Root).await?;
    let (by_old, _) = sign_role(new_root.clone(), old.root(), old_root_keys, Role::Root).await?;
    for sig in by_old.signatures {
        if !signed.signatures.iter().any(|s| s.keyid == sig.keyid) {
            signed.signatures.push(sig);
        }
    }
    // What a client does with N+1 (TUF 5.3.4): both thresholds must hold.
    let label = format!("rotated root.json (version {version})");
    old.root()
        .verify_role(&signed)
        .map_err(|e| error::Error::RotationNotVerified {
            root: label.clone(),
            message: e.to_string(),
        })?;
    let bytes = file_bytes(&signed, Role::Root)?;
    SignedRoot::from_bytes(bytes, &label)
}
