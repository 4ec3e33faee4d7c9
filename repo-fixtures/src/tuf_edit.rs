//! Low-level editing of a TUF repository that is already on disk: read its current roles, change one thing,
//! re-sign with a chosen set of keys, and re-point the roles above it (targets → snapshot → timestamp).
//!
//! This is how the attack repositories are made from a good one. Unlike tough's editor, signing here never checks
//! a threshold, because an attack needs metadata signed by too few keys.

use crate::keys::{FixtureKey, KeyError};
use snafu::{OptionExt, ResultExt, Snafu};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tough::schema::{
    Hashes, Metafile, Role, RoleType, Root, Signature, Signed, Snapshot, Targets, Timestamp,
};

/// The four top-level roles of a repository as currently published in its metadata directory.
#[derive(Debug, Clone)]
pub struct PublishedRoles {
    pub metadata_dir: PathBuf,
    pub root: Signed<Root>,
    pub timestamp: Signed<Timestamp>,
    pub snapshot: Signed<Snapshot>,
    pub targets: Signed<Targets>,
}

/// Which keys sign each re-signed role.
#[derive(Debug, Clone)]
pub struct RoleSigners {
    pub targets: Vec<FixtureKey>,
    pub snapshot: Vec<FixtureKey>,
    pub timestamp: Vec<FixtureKey>,
}

impl PublishedRoles {
    /// Reads the newest `N.root.json`, `timestamp.json`, and the snapshot and targets files they point at.
    pub fn load(metadata_dir: &Path) -> Result<Self, EditError> {
        let newest_root = newest_root_version(metadata_dir)?;
        let root: Signed<Root> = read_json(&metadata_dir.join(format!("{newest_root}.root.json")))?;
        let timestamp: Signed<Timestamp> = read_json(&metadata_dir.join("timestamp.json"))?;
        let snapshot_version =
            meta_version(&timestamp.signed.meta, "snapshot.json", "timestamp.json")?;
        let snapshot: Signed<Snapshot> =
            read_json(&metadata_dir.join(format!("{snapshot_version}.snapshot.json")))?;
        let targets_version = meta_version(&snapshot.signed.meta, "targets.json", "snapshot.json")?;
        let targets: Signed<Targets> =
            read_json(&metadata_dir.join(format!("{targets_version}.targets.json")))?;
        Ok(Self {
            metadata_dir: metadata_dir.to_owned(),
            root,
            timestamp,
            snapshot,
            targets,
        })
    }

    /// Writes `self.targets` as it is (signatures included), then re-points snapshot at it and re-signs it, then
    /// re-points timestamp at the snapshot and re-signs it.
    pub async fn publish_from_targets(&mut self, signers: &RoleSigners) -> Result<(), EditError> {
        let targets_meta = write_role(&self.metadata_dir, &self.targets)?;
        self.snapshot
            .signed
            .meta
            .insert("targets.json".into(), targets_meta);
        self.snapshot = sign_role(self.snapshot.signed.clone(), &signers.snapshot).await?;
        self.publish_from_snapshot(signers).await
    }

    /// Writes `self.snapshot` as it is, then re-points timestamp at it and re-signs it.
    pub async fn publish_from_snapshot(&mut self, signers: &RoleSigners) -> Result<(), EditError> {
        let snapshot_meta = write_role(&self.metadata_dir, &self.snapshot)?;
        self.timestamp
            .signed
            .meta
            .insert("snapshot.json".into(), snapshot_meta);
        self.timestamp = sign_role(self.timestamp.signed.clone(), &signers.timestamp).await?;
        self.publish_timestamp()
    }

    /// Writes `self.timestamp` as it is.
    pub fn publish_timestamp(&self) -> Result<(), EditError> {
        write_role(&self.metadata_dir, &self.timestamp).map(|_| ())
    }
}

/// Signs a role with exactly the given keys (any number, even fewer than the role's threshold).
pub async fn sign_role<T: Role>(role: T, keys: &[FixtureKey]) -> Result<Signed<T>, EditError> {
    let data = role.canonical_form().context(CanonicalSnafu)?;
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let mut signatures = Vec::new();
    for &key in keys {
        let signer = key.signer().context(KeySnafu)?;
        let sig = signer
            .sign(&data, &rng)
            .await
            .map_err(|e| EditError::Sign {
                key,
                message: e.to_string(),
            })?;
        let keyid = signer.tuf_key().key_id().context(CanonicalSnafu)?;
        signatures.push(Signature {
            keyid,
            sig: sig.into(),
        });
    }
    Ok(Signed {
        signed: role,
        signatures,
    })
}

/// Writes a signed role under its TUF file name (`N.name.json`, or `timestamp.json`) exactly as tuftool-config
/// writes roles (sorted pretty JSON plus a newline) and returns the metafile entry that describes it.
pub fn write_role<T: Role + Clone>(
    metadata_dir: &Path,
    role: &Signed<T>,
) -> Result<Metafile, EditError> {
    let path = metadata_dir.join(role.signed.filename(true));
    let bytes = tuftool_config::canonical::file_bytes(role, publisher_role(T::TYPE))
        .context(SerializeSnafu { path: &path })?;
    std::fs::write(&path, &bytes).context(WriteSnafu { path: &path })?;
    Ok(metafile_for(&bytes, role.signed.version().get()))
}

/// The metafile entry (length, sha256, version) that describes a metadata file with these bytes.
pub fn metafile_for(bytes: &[u8], version: u64) -> Metafile {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    Metafile {
        length: Some(bytes.len() as u64),
        hashes: Some(Hashes {
            sha256: digest.as_ref().to_vec().into(),
            _extra: HashMap::new(),
        }),
        version: version.try_into().expect("TUF versions are non-zero"),
        _extra: HashMap::new(),
    }
}

/// Reads and parses a metadata file.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, EditError> {
    let bytes = std::fs::read(path).context(ReadSnafu { path })?;
    serde_json::from_slice(&bytes).context(ParseSnafu { path })
}

/// The highest N for which `N.root.json` exists in the directory.
pub fn newest_root_version(metadata_dir: &Path) -> Result<u64, EditError> {
    let entries = std::fs::read_dir(metadata_dir).context(ReadSnafu { path: metadata_dir })?;
    let mut newest = None;
    for entry in entries {
        let entry = entry.context(ReadSnafu { path: metadata_dir })?;
        let name = entry.file_name();
        let Some(version) = name
            .to_str()
            .and_then(|n| n.strip_suffix(".root.json"))
            .and_then(|v| v.parse::<u64>().ok())
        else {
            continue;
        };
        newest = newest.max(Some(version));
    }
    newest.context(NoRootSnafu { path: metadata_dir })
}

fn publisher_role(role: RoleType) -> tuftool_config::Role {
    match role {
        RoleType::Root => tuftool_config::Role::Root,
        RoleType::Snapshot => tuftool_config::Role::Snapshot,
        RoleType::Timestamp => tuftool_config::Role::Timestamp,
        // Fixtures have no delegated roles.
        _ => tuftool_config::Role::Targets,
    }
}

fn meta_version(
    meta: &HashMap<String, Metafile>,
    name: &str,
    in_file: &str,
) -> Result<u64, EditError> {
    meta.get(name)
        .map(|m| m.version.get())
        .context(MetaMissingSnafu { name, in_file })
}

#[derive(Debug, Snafu)]
pub enum EditError {
    #[snafu(display("Failed to read {}: {source}", path.display()))]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[snafu(display("Failed to parse {}: {source}", path.display()))]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[snafu(display("Failed to serialize {}: {source}", path.display()))]
    Serialize {
        path: PathBuf,
        #[snafu(source(from(tuftool_config::Error, Box::new)))]
        source: Box<tuftool_config::Error>,
    },
    #[snafu(display("Failed to write {}: {source}", path.display()))]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[snafu(display("No N.root.json in {}", path.display()))]
    NoRoot { path: PathBuf },
    #[snafu(display("{in_file} has no meta entry for {name}"))]
    MetaMissing { name: String, in_file: String },
    #[snafu(display("Failed to serialize a role canonically: {source}"))]
    Canonical {
        #[snafu(source(from(tough::schema::Error, Box::new)))]
        source: Box<tough::schema::Error>,
    },
    #[snafu(display("{source}"))]
    Key { source: KeyError },
    #[snafu(display("Signing with fixture key {key:?} failed: {message}"))]
    Sign { key: FixtureKey, message: String },
}
