//! Signing keys: generating them, reading them from PEM files, and naming them in errors.
//!
//! Keys are stored as PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`) files, mode 0600, for all three
//! key types. tough's `parse_keypair` accepts ed25519 and ecdsa only as raw PKCS#8 DER and rsa
//! only as PEM, so [`PemKeySource`] decodes the PEM itself and hands tough the form it accepts.

use crate::durable::{Existing, write_file_atomic};
use crate::error::{self, Result};
use crate::role::Role;
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, Ed25519KeyPair};
use snafu::ResultExt;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use tough::async_trait;
use tough::key_source::KeySource;
use tough::schema::key::Key;
use tough::sign::{Sign, parse_keypair};

/// The key types a repository can be signed with (the ones tough and updog verify).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyType {
    /// RSA 3072 bits, `rsassa-pss-sha256`.
    Rsa,
    /// Ed25519 (deterministic signatures: fixtures use it for byte-identical repositories).
    Ed25519,
    /// ECDSA on NIST P-256, `ecdsa-sha2-nistp256`.
    EcdsaP256,
}

impl KeyType {
    /// All key types, in the order they are documented.
    pub const ALL: [KeyType; 3] = [KeyType::Rsa, KeyType::Ed25519, KeyType::EcdsaP256];

    /// The type of a TUF public key.
    pub fn of(key: &Key) -> Self {
        match key {
            Key::Rsa { .. } => Self::Rsa,
            Key::Ed25519 { .. } => Self::Ed25519,
            Key::Ecdsa { .. } | Key::EcdsaOld { .. } => Self::EcdsaP256,
        }
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Self::Rsa => "rsa",
            Self::Ed25519 => "ed25519",
            Self::EcdsaP256 => "ecdsa-p256",
        })
    }
}

impl FromStr for KeyType {
    type Err = error::Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "rsa" => Ok(Self::Rsa),
            "ed25519" => Ok(Self::Ed25519),
            "ecdsa-p256" | "ecdsa" => Ok(Self::EcdsaP256),
            _ => error::UnknownKeyTypeSnafu { name: s }.fail(),
        }
    }
}

/// The public facts about a key that was generated or loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    /// Where the private key lives.
    pub path: PathBuf,
    /// Its type.
    pub key_type: KeyType,
    /// Its TUF key ID (hex sha256 of the canonical public key).
    pub keyid: String,
}

/// Generates a private key of `key_type` and writes it to `path` as a PKCS#8 PEM file, mode 0600,
/// atomically. Refuses to overwrite an existing file: a lost signing key cannot be recovered.
pub fn generate_key(key_type: KeyType, path: &Path) -> Result<KeyInfo> {
    let rng = SystemRandom::new();
    let failed = || error::Error::GenerateKey { key_type };
    let der: Vec<u8> = match key_type {
        KeyType::Rsa => aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa3072)
            .and_then(|k| k.as_der())
            .map_err(|_| failed())?
            .as_ref()
            .to_vec(),
        KeyType::Ed25519 => Ed25519KeyPair::generate_pkcs8(&rng)
            .map_err(|_| failed())?
            .as_ref()
            .to_vec(),
        KeyType::EcdsaP256 => EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
            .map_err(|_| failed())?
            .as_ref()
            .to_vec(),
    };
    let pem = pem_encode(&der);
    // Prove the bytes load the way every command will load them before writing anything.
    let (sign, _) = parse_private_key(path, pem.as_bytes())?;
    let info = key_info(path, sign.as_ref())?;
    write_file_atomic(path, pem.as_bytes(), 0o600, Existing::Refuse)?;
    Ok(info)
}

fn pem_encode(der: &[u8]) -> String {
    let config = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);
    pem::encode_config(&pem::Pem::new("PRIVATE KEY", der.to_vec()), config)
}

fn key_info(path: &Path, sign: &dyn Sign) -> Result<KeyInfo> {
    let key = sign.tuf_key();
    let keyid = key.key_id().context(error::KeyIdSnafu {
        key: path.display().to_string(),
    })?;
    Ok(KeyInfo {
        path: path.to_path_buf(),
        key_type: KeyType::of(&key),
        keyid: hex::encode(&*keyid),
    })
}

/// Parses private key file contents. Accepts PKCS#8 PEM (`PRIVATE KEY`, any key type),
/// PKCS#1 PEM (`RSA PRIVATE KEY`) and raw PKCS#8 DER; names the file in every error.
fn parse_private_key(path: &Path, bytes: &[u8]) -> Result<(Box<dyn Sign>, KeyType)> {
    let unrecognized = |detail: &str| error::Error::KeyUnrecognized {
        path: path.to_path_buf(),
        detail: detail.to_string(),
    };
    let sign: Box<dyn Sign> = match pem::parse(bytes) {
        Ok(block) => match block.tag() {
            "PRIVATE KEY" => {
                let der = block.contents();
                if Ed25519KeyPair::from_pkcs8(der).is_ok()
                    || EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, der).is_ok()
                {
                    // tough takes ed25519 and ecdsa keys only as DER.
                    Box::new(parse_keypair(der).map_err(|e| unrecognized(&e.to_string()))?)
                } else {
                    // ...and rsa keys only as PEM.
                    Box::new(parse_keypair(bytes).map_err(|_| {
                        unrecognized("a PKCS#8 key that is not rsa, ed25519 or ecdsa p256")
                    })?)
                }
            }
            "RSA PRIVATE KEY" => {
                Box::new(parse_keypair(bytes).map_err(|e| unrecognized(&e.to_string()))?)
            }
            "EC PRIVATE KEY" => {
                return Err(unrecognized(
                    "a SEC1 EC key; convert it with `openssl pkcs8 -topk8 -nocrypt -in KEY -out KEY.pk8.pem`",
                ));
            }
            "ENCRYPTED PRIVATE KEY" => {
                return Err(unrecognized("an encrypted key; decrypt it first"));
            }
            other => return Err(unrecognized(&format!("a PEM block of type '{other}'"))),
        },
        // Not PEM: tough also reads raw PKCS#8 DER (ed25519 / ecdsa).
        Err(_) => Box::new(
            parse_keypair(bytes)
                .map_err(|_| unrecognized("neither a PEM private key nor PKCS#8 DER"))?,
        ),
    };
    let key_type = KeyType::of(&sign.tuf_key());
    Ok((sign, key_type))
}

fn read_private_key(path: &Path) -> Result<(Box<dyn Sign>, KeyType)> {
    let bytes = std::fs::read(path).context(error::ReadKeySnafu { path })?;
    parse_private_key(path, &bytes)
}

/// A private key in a PEM file, as a tough [`KeySource`].
#[derive(Debug, Clone)]
pub struct PemKeySource {
    /// The key file.
    pub path: PathBuf,
}

#[async_trait]
impl KeySource for PemKeySource {
    async fn as_sign(
        &self,
    ) -> std::result::Result<Box<dyn Sign>, Box<dyn std::error::Error + Send + Sync + 'static>>
    {
        Ok(read_private_key(&self.path)?.0)
    }

    async fn write(
        &self,
        value: &str,
        _key_id_hex: &str,
    ) -> std::result::Result<(), Box<dyn std::error::Error + Send + Sync + 'static>> {
        Ok(write_file_atomic(
            &self.path,
            value.as_bytes(),
            0o600,
            Existing::Replace,
        )?)
    }
}

/// A loaded signing key: its source, its public half and a label for messages (the file path).
///
/// Cheap to clone; a key that serves several roles is loaded once and shared.
#[derive(Clone)]
pub struct SigningKey {
    source: Arc<dyn KeySource>,
    label: String,
    public: Key,
    keyid: String,
}

impl SigningKey {
    /// Loads a private key file (see [`PemKeySource`]).
    pub async fn from_pem_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let (sign, _) = read_private_key(path)?;
        let public = sign.tuf_key();
        let keyid = hex::encode(&*public.key_id().context(error::KeyIdSnafu {
            key: path.display().to_string(),
        })?);
        Ok(Self {
            source: Arc::new(PemKeySource {
                path: path.to_path_buf(),
            }),
            label: path.display().to_string(),
            public,
            keyid,
        })
    }

    /// Wraps any tough key source (a KMS, an HSM, an in-memory test key); `label` names it in
    /// messages.
    pub async fn from_key_source(
        label: impl Into<String>,
        source: Box<dyn KeySource>,
    ) -> Result<Self> {
        let label = label.into();
        let sign = source
            .as_sign()
            .await
            .map_err(|e| error::Error::KeySource {
                label: label.clone(),
                message: e.to_string(),
            })?;
        let public = sign.tuf_key();
        let keyid = hex::encode(&*public.key_id().context(error::KeyIdSnafu { key: &label })?);
        Ok(Self {
            source: Arc::from(source),
            label,
            public,
            keyid,
        })
    }

    /// The TUF key ID, hex.
    pub fn keyid(&self) -> &str {
        &self.keyid
    }

    /// The key type.
    pub fn key_type(&self) -> KeyType {
        KeyType::of(&self.public)
    }

    /// The public key as it is listed in root.json.
    pub fn public_key(&self) -> &Key {
        &self.public
    }

    /// The label used in messages (the file path for PEM keys).
    pub fn label(&self) -> &str {
        &self.label
    }

    /// A boxed key source for tough's signing functions.
    pub(crate) fn key_source(&self) -> Box<dyn KeySource> {
        Box::new(SharedKeySource(Arc::clone(&self.source)))
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("label", &self.label)
            .field("key_type", &self.key_type())
            .field("keyid", &self.keyid)
            .finish()
    }
}

/// `Key /x/y.pem (ed25519, keyid 0123456789ab…)`
impl fmt::Display for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Key {} ({}, keyid {}…)",
            self.label,
            self.key_type(),
            &self.keyid[..12]
        )
    }
}

#[derive(Debug)]
struct SharedKeySource(Arc<dyn KeySource>);

#[async_trait]
impl KeySource for SharedKeySource {
    async fn as_sign(
        &self,
    ) -> std::result::Result<Box<dyn Sign>, Box<dyn std::error::Error + Send + Sync + 'static>>
    {
        self.0.as_sign().await
    }

    async fn write(
        &self,
        value: &str,
        key_id_hex: &str,
    ) -> std::result::Result<(), Box<dyn std::error::Error + Send + Sync + 'static>> {
        self.0.write(value, key_id_hex).await
    }
}

/// Which keys sign which role. A key may serve several roles.
#[derive(Debug, Clone, Default)]
pub struct RoleKeys {
    by_role: BTreeMap<Role, Vec<SigningKey>>,
}

impl RoleKeys {
    /// No keys for any role.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The same keys for every role (convenient for fixtures with one key).
    #[must_use]
    pub fn all_roles(keys: &[SigningKey]) -> Self {
        let mut this = Self::new();
        for role in Role::ALL {
            this = this.role(role, keys.to_vec());
        }
        this
    }

    /// Sets the keys for `role` (replacing any set before).
    #[must_use]
    pub fn role(mut self, role: Role, keys: Vec<SigningKey>) -> Self {
        self.by_role.insert(role, keys);
        self
    }

    /// The keys for `role` (empty if none were given).
    pub fn get(&self, role: Role) -> &[SigningKey] {
        self.by_role.get(&role).map_or(&[], Vec::as_slice)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[tokio::test]
    async fn every_key_type_is_generated_as_pkcs8_pem_with_mode_0600_and_loads_back() {
        let dir = tempfile::tempdir().unwrap();
        for key_type in KeyType::ALL {
            let path = dir.path().join(format!("{key_type}.pem"));
            let info = generate_key(key_type, &path).unwrap();
            assert_eq!(info.key_type, key_type);
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(text.starts_with("-----BEGIN PRIVATE KEY-----\n"), "{text}");
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
            let key = SigningKey::from_pem_file(&path).await.unwrap();
            assert_eq!(key.key_type(), key_type);
            assert_eq!(key.keyid(), info.keyid);
            // tough signs with it through the KeySource.
            let sign = key.key_source().as_sign().await.unwrap();
            let sig = sign.sign(b"msg", &SystemRandom::new()).await.unwrap();
            assert!(!sig.is_empty());
        }
    }

    #[test]
    fn generating_over_an_existing_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.pem");
        let first = generate_key(KeyType::Ed25519, &path).unwrap();
        let err = generate_key(KeyType::Ed25519, &path).unwrap_err();
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
        let again = SigningKey::key_info_for_test(&path);
        assert_eq!(again, first.keyid);
    }

    #[tokio::test]
    async fn bad_key_files_are_errors_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let err = SigningKey::from_pem_file(&missing).await.unwrap_err();
        assert!(err.to_string().contains("missing.pem"), "{err}");

        let garbage = dir.path().join("garbage.pem");
        std::fs::write(&garbage, "not a key").unwrap();
        let err = SigningKey::from_pem_file(&garbage).await.unwrap_err();
        assert!(err.to_string().contains("garbage.pem"), "{err}");

        let sec1 = dir.path().join("sec1.pem");
        std::fs::write(
            &sec1,
            "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n",
        )
        .unwrap();
        let err = SigningKey::from_pem_file(&sec1).await.unwrap_err();
        assert!(
            err.to_string().contains("sec1.pem") && err.to_string().contains("pkcs8"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn raw_pkcs8_der_is_accepted_too() {
        let dir = tempfile::tempdir().unwrap();
        let der = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        let path = dir.path().join("k.der");
        std::fs::write(&path, der.as_ref()).unwrap();
        assert_eq!(
            SigningKey::from_pem_file(&path).await.unwrap().key_type(),
            KeyType::Ed25519
        );
    }

    impl SigningKey {
        fn key_info_for_test(path: &Path) -> String {
            key_info(path, read_private_key(path).unwrap().0.as_ref())
                .unwrap()
                .keyid
        }
    }
}
