//! The TUF metadata formats as updog's client reads them, and threshold signature checks.
//!
//! Why not `tough::schema` for parsing: its `Hashes` requires `sha256` (a target listing only `sha512` fails to
//! parse, TUF allows any algorithm) and its key maps refuse a whole root whose key ids are not the sha256 of the
//! key (python-tuf, the reference client, accepts them). So each file is read as `{signed, signatures}` with
//! `signed` kept as a JSON value, and the typed views below are taken from it. Signatures are still checked by
//! tough's crypto over the canonical JSON of exactly that value ([`verify_threshold`]): what is verified is what
//! was received, extra fields included.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::num::NonZeroU64;

/// A metadata file: the signed part as received, and its signatures.
#[derive(Debug, Clone, Deserialize)]
pub struct Envelope {
    pub signed: Value,
    pub signatures: Vec<SignatureEntry>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SignatureEntry {
    pub keyid: String,
    pub sig: String,
}

/// The keys a role is verified with and how many must have signed.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct RoleKeys {
    pub keyids: Vec<String>,
    pub threshold: u64,
}

/// root.json's signed part.
#[derive(Debug, Clone, Deserialize)]
pub struct RootMeta {
    pub version: u64,
    pub expires: DateTime<Utc>,
    #[serde(default)]
    pub consistent_snapshot: bool,
    pub keys: BTreeMap<String, Value>,
    pub roles: BTreeMap<String, RoleKeys>,
}

/// An entry of timestamp's or snapshot's `meta`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct MetaFile {
    pub version: u64,
    #[serde(default)]
    pub length: Option<u64>,
    #[serde(default)]
    pub hashes: Option<BTreeMap<String, String>>,
}

/// timestamp.json's and snapshot.json's signed part.
#[derive(Debug, Clone, Deserialize)]
pub struct MetaListing {
    pub version: u64,
    pub expires: DateTime<Utc>,
    pub meta: BTreeMap<String, MetaFile>,
}

/// A target file's entry.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct TargetFile {
    pub length: u64,
    pub hashes: BTreeMap<String, String>,
    #[serde(default)]
    pub custom: Option<Value>,
}

/// targets.json's (or a delegated role's) signed part.
#[derive(Debug, Clone, Deserialize)]
pub struct TargetsMeta {
    pub version: u64,
    pub expires: DateTime<Utc>,
    pub targets: BTreeMap<String, TargetFile>,
    #[serde(default)]
    pub delegations: Option<Delegations>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Delegations {
    pub keys: BTreeMap<String, Value>,
    pub roles: Vec<DelegatedRole>,
}

/// One delegation: who may sign for which target paths.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct DelegatedRole {
    pub name: String,
    pub keyids: Vec<String>,
    pub threshold: u64,
    pub terminating: bool,
    #[serde(default)]
    pub paths: Option<Vec<String>>,
    #[serde(default)]
    pub path_hash_prefixes: Option<Vec<String>>,
}

impl DelegatedRole {
    pub fn keys(&self) -> RoleKeys {
        RoleKeys {
            keyids: self.keyids.clone(),
            threshold: self.threshold,
        }
    }
}

/// Why a file is not metadata of the expected kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormatError(pub String);

impl std::fmt::Display for FormatError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Parses `bytes` as a metadata file of role type `kind` ("root", "timestamp", "snapshot", "targets"): the
/// envelope and the typed view of its signed part. Checks `_type`, a supported `spec_version` (1.x), a version
/// ≥ 1, an expiry in UTC with `Z`, unique signature key ids, and (for delegations) unique role names.
pub fn parse<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    kind: &str,
) -> Result<(Envelope, T), FormatError> {
    let envelope: Envelope = serde_json::from_slice(bytes)
        .map_err(|e| FormatError(format!("not a TUF metadata file: {e}")))?;
    let signed = envelope
        .signed
        .as_object()
        .ok_or_else(|| FormatError("\"signed\" is not an object".into()))?;
    let found_type = signed.get("_type").and_then(Value::as_str).unwrap_or("");
    if found_type != kind {
        return Err(FormatError(format!(
            "\"_type\" is \"{found_type}\", expected \"{kind}\""
        )));
    }
    let spec = signed
        .get("spec_version")
        .and_then(Value::as_str)
        .unwrap_or("");
    let mut parts = spec.split('.');
    if parts.next() != Some("1")
        || parts.clone().count() > 2
        || parts.any(|p| p.parse::<u64>().is_err())
    {
        return Err(FormatError(format!(
            "unsupported spec_version \"{spec}\" (this client reads 1.x)"
        )));
    }
    if let Some(expires) = signed.get("expires").and_then(Value::as_str)
        && !expires.ends_with('Z')
    {
        return Err(FormatError(format!(
            "expires \"{expires}\" is not UTC (…Z)"
        )));
    }
    let mut seen = HashSet::new();
    for signature in &envelope.signatures {
        if !seen.insert(signature.keyid.as_str()) {
            return Err(FormatError(format!(
                "two signatures with key id {}",
                signature.keyid
            )));
        }
    }
    let typed: T = serde_json::from_value(envelope.signed.clone())
        .map_err(|e| FormatError(format!("invalid {kind} metadata: {e}")))?;
    if signed.get("version").and_then(Value::as_u64).unwrap_or(0) == 0 {
        return Err(FormatError("version must be an integer ≥ 1".into()));
    }
    Ok((envelope, typed))
}

/// Checks that `envelope` carries valid signatures, over the canonical JSON of its signed part, by at least
/// `role_keys.threshold` distinct keys of `role_keys.keyids` (looked up in `keys`). Keys of a type tough cannot
/// verify, or malformed, count as not signing. The error says how many valid signatures were found.
pub fn verify_threshold(
    envelope: &Envelope,
    keys: &BTreeMap<String, Value>,
    role_keys: &RoleKeys,
) -> Result<(), String> {
    let threshold = NonZeroU64::new(role_keys.threshold)
        .ok_or_else(|| "the role's threshold is 0".to_string())?;
    // tough verifies through a root's role table: build one holding just this role's usable keys.
    let mut tough_keys = HashMap::new();
    let mut keyids = Vec::new();
    for keyid in role_keys.keyids.iter().collect::<HashSet<_>>() {
        let (Ok(decoded), Some(key)) = (
            keyid.parse::<tough::schema::decoded::Decoded<tough::schema::decoded::Hex>>(),
            keys.get(keyid),
        ) else {
            continue;
        };
        if let Ok(key) = serde_json::from_value::<tough::schema::key::Key>(key.clone()) {
            tough_keys.insert(decoded.clone(), key);
            keyids.push(decoded);
        }
    }
    let mut roles = HashMap::new();
    roles.insert(
        tough::schema::RoleType::Targets,
        tough::schema::RoleKeys {
            keyids,
            threshold,
            _extra: HashMap::new(),
        },
    );
    let verifier = tough::schema::Root {
        spec_version: "1.0.0".into(),
        consistent_snapshot: false,
        version: NonZeroU64::MIN,
        expires: jiff::Timestamp::MAX,
        keys: tough_keys,
        roles,
        _extra: HashMap::new(),
    };
    let signatures = envelope
        .signatures
        .iter()
        .filter_map(|s| {
            Some(tough::schema::Signature {
                keyid: s.keyid.parse().ok()?,
                sig: s.sig.parse().ok()?,
            })
        })
        .collect();
    let signed = tough::schema::Signed {
        signed: AsReceived(&envelope.signed),
        signatures,
    };
    verifier.verify_role(&signed).map_err(|e| match e {
        tough::schema::Error::SignatureThreshold {
            threshold, valid, ..
        } => format!("{valid} valid signature(s), {threshold} required"),
        other => other.to_string(),
    })
}

/// The signed part exactly as received, for tough's verifier (which serializes it canonically).
struct AsReceived<'a>(&'a Value);

impl serde::Serialize for AsReceived<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl tough::schema::Role for AsReceived<'_> {
    const TYPE: tough::schema::RoleType = tough::schema::RoleType::Targets;
    fn expires(&self) -> jiff::Timestamp {
        jiff::Timestamp::MAX
    }
    fn version(&self) -> NonZeroU64 {
        NonZeroU64::MIN
    }
    fn filename(&self, _consistent_snapshot: bool) -> String {
        String::new()
    }
}

/// Checks `bytes` against a listed length and hashes. Every algorithm this client supports (sha256, sha512) that
/// is listed must match; with hashes listed, at least one must be supported. Returns what did not match.
pub fn check_length_and_hashes(
    bytes: &[u8],
    length: Option<u64>,
    hashes: Option<&BTreeMap<String, String>>,
) -> Result<(), String> {
    if let Some(length) = length
        && bytes.len() as u64 != length
    {
        return Err(format!("{} bytes where {length} were listed", bytes.len()));
    }
    let Some(hashes) = hashes else { return Ok(()) };
    let mut checked = 0;
    for (algorithm, expected) in hashes {
        let actual = match algorithm.as_str() {
            "sha256" => hex::encode(<sha2::Sha256 as sha2::Digest>::digest(bytes)),
            "sha512" => hex::encode(<sha2::Sha512 as sha2::Digest>::digest(bytes)),
            _ => continue,
        };
        if !actual.eq_ignore_ascii_case(expected) {
            return Err(format!("{algorithm} is {actual}, listed {expected}"));
        }
        checked += 1;
    }
    if checked == 0 && !hashes.is_empty() {
        return Err(format!(
            "none of the listed hash algorithms ({}) is supported (sha256, sha512)",
            hashes.keys().cloned().collect::<Vec<_>>().join(", ")
        ));
    }
    Ok(())
}
