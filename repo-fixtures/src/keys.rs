//! The fixture signing keys: fixed ed25519 keys checked into `repo-fixtures/keys/`, so that every fixture
//! repository is signed by the same keys (ed25519 signatures are deterministic) and tests are reproducible.
//! These keys are public test data: never use them for anything real.

use snafu::{ResultExt, Snafu};
use std::path::{Path, PathBuf};
use tough::sign::Sign;

/// One of the checked-in fixture keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FixtureKey {
    Root1,
    Root2,
    /// Not in the fixture root: the new key of a root rotation.
    Root3,
    Targets1,
    Targets2,
    Snapshot1,
    Timestamp1,
}

impl FixtureKey {
    pub const ALL: [FixtureKey; 7] = [
        FixtureKey::Root1,
        FixtureKey::Root2,
        FixtureKey::Root3,
        FixtureKey::Targets1,
        FixtureKey::Targets2,
        FixtureKey::Snapshot1,
        FixtureKey::Timestamp1,
    ];

    /// The file name under `repo-fixtures/keys/`.
    pub fn file_name(self) -> &'static str {
        match self {
            FixtureKey::Root1 => "root-1.pem",
            FixtureKey::Root2 => "root-2.pem",
            FixtureKey::Root3 => "root-3.pem",
            FixtureKey::Targets1 => "targets-1.pem",
            FixtureKey::Targets2 => "targets-2.pem",
            FixtureKey::Snapshot1 => "snapshot-1.pem",
            FixtureKey::Timestamp1 => "timestamp-1.pem",
        }
    }

    /// The PKCS#8 PEM text of the private key.
    pub fn pem(self) -> &'static str {
        match self {
            FixtureKey::Root1 => include_str!("../keys/root-1.pem"),
            FixtureKey::Root2 => include_str!("../keys/root-2.pem"),
            FixtureKey::Root3 => include_str!("../keys/root-3.pem"),
            FixtureKey::Targets1 => include_str!("../keys/targets-1.pem"),
            FixtureKey::Targets2 => include_str!("../keys/targets-2.pem"),
            FixtureKey::Snapshot1 => include_str!("../keys/snapshot-1.pem"),
            FixtureKey::Timestamp1 => include_str!("../keys/timestamp-1.pem"),
        }
    }

    /// The path of the checked-in PEM file (for tools that take key paths).
    pub fn path(self) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("keys")
            .join(self.file_name())
    }

    /// A signer for this key. tough takes ed25519 keys as PKCS#8 DER, so the PEM armour is removed here.
    pub fn signer(self) -> Result<Box<dyn Sign>, KeyError> {
        let pem = pem::parse(self.pem()).context(PemSnafu { key: self })?;
        let keypair =
            tough::sign::parse_keypair(pem.contents()).context(ParseSnafu { key: self })?;
        Ok(Box::new(keypair))
    }

    /// The TUF key id (hex) of this key, as root.json lists it.
    pub fn key_id(self) -> Result<String, KeyError> {
        let id = self
            .signer()?
            .tuf_key()
            .key_id()
            .context(KeyIdSnafu { key: self })?;
        Ok(hex::encode(&*id))
    }
}

#[derive(Debug, Snafu)]
pub enum KeyError {
    #[snafu(display("Fixture key {key:?} is not valid PEM: {source}"))]
    Pem {
        key: FixtureKey,
        source: pem::PemError,
    },
    #[snafu(display("Fixture key {key:?} is not a key tough can sign with: {source}"))]
    Parse {
        key: FixtureKey,
        #[snafu(source(from(tough::error::Error, Box::new)))]
        source: Box<tough::error::Error>,
    },
    #[snafu(display("Failed to compute the key id of fixture key {key:?}: {source}"))]
    KeyId {
        key: FixtureKey,
        #[snafu(source(from(tough::schema::Error, Box::new)))]
        source: Box<tough::schema::Error>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn every_fixture_key_loads_and_has_a_distinct_key_id() {
        let ids: HashSet<String> = FixtureKey::ALL
            .iter()
            .map(|k| k.key_id().unwrap())
            .collect();
        assert_eq!(ids.len(), FixtureKey::ALL.len());
        for id in ids {
            assert_eq!(id.len(), 64, "key id {id} is not a sha256 hex digest");
        }
    }

    #[test]
    fn checked_in_file_matches_embedded_text() {
        for key in FixtureKey::ALL {
            assert_eq!(std::fs::read_to_string(key.path()).unwrap(), key.pem());
        }
    }
}
