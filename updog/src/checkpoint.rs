//! The download checkpoint: what lets an `update-image` killed mid-image (SIGKILL, power loss) continue where the
//! partition is known to be good instead of at byte 0.
//!
//! `/var/lib/updog/download-checkpoint.json` is written atomically (temp file, fsync, rename, fsync dir: nodeio)
//! only for a position whose decompressed bytes were already flushed (`fdatasync`) to the partition, so the file
//! never claims more than the device holds. It names the update (version, the inactive set's BOOT partuuid), the
//! images already complete (with the length and XXH3-128 the read-back matched), and for the image in progress a
//! resumable position: the compressed and decompressed offsets at an lz4 block boundary, the frame's format, the
//! SHA-256 midstate of the compressed bytes so far ([`ResumableSha256`]), and the XXH3-128 of the decompressed
//! prefix as it was written (checked against the device when resuming).
//!
//! It is only a hint: a run uses it only when the freshly verified metadata still lists the same targets with the
//! same length and sha256, the inactive set is the same one and still cleared; anything else starts over and
//! removes it. Correctness never depends on it: the resumed stream's sha256 is checked over the whole compressed
//! stream (the midstate carries the prefix), and the whole image is read back from the device.

use crate::lz4::Position;
use serde::{Deserialize, Serialize};
use snafu::{ResultExt, Snafu};
use std::path::{Path, PathBuf};

/// Where the checkpoint lives (under the sysroot).
pub const CHECKPOINT_FILE: &str = "/var/lib/updog/download-checkpoint.json";

/// The default checkpoint interval: compressed bytes between two checkpoints (each costs an `fdatasync` of the
/// partition and an atomic write of a small file).
pub const DEFAULT_INTERVAL: u64 = 16 << 20;

#[derive(Debug, Snafu)]
#[snafu(visibility(pub(crate)))]
pub enum CheckpointError {
    #[snafu(display("Failed to write the download checkpoint {}: {source}", path.display()))]
    Write {
        path: PathBuf,
        source: nodeio::AtomicWriteError,
    },

    #[snafu(display("Failed to remove the download checkpoint {}: {source}", path.display()))]
    Remove {
        path: PathBuf,
        source: std::io::Error,
    },

    #[snafu(display("Failed to create {}: {source}", path.display()))]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The checkpoint file's contents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The version being written (for the log; the targets below are what must match).
    pub version: String,
    /// The inactive set's BOOT partition, by partuuid.
    pub inactive_boot: String,
    /// Images written, flushed, read back and verified, in order.
    pub complete: Vec<CompleteImage>,
    /// The image being written, if it reached a checkpoint.
    pub current: Option<PartialImage>,
}

/// The signed identity of a target: what must still match for a checkpoint to be used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedTarget {
    /// `root`, `boot` or `hash`.
    pub image: String,
    pub target: String,
    pub length: u64,
    pub sha256: String,
}

/// An image that was written and verified whole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompleteImage {
    pub signed: SignedTarget,
    /// Its decompressed length and XXH3-128 (hex), as the read-back matched them.
    pub len: u64,
    pub checksum: String,
}

/// The image in progress at its last durable position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartialImage {
    pub signed: SignedTarget,
    pub resume: Resume,
}

/// Where to continue one image: the lz4 decoder's position, the SHA-256 midstate of the compressed bytes before it,
/// and the XXH3-128 (hex) of the decompressed bytes before it as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resume {
    pub position: Position,
    pub sha256: Sha256State,
    pub prefix_checksum: String,
}

impl Checkpoint {
    /// The checkpoint at `path`; `None` when there is none or it cannot be read as one (it is only a hint: an
    /// unreadable one is logged and the update starts over).
    pub fn load(path: &Path) -> Option<Checkpoint> {
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                log::warn!(
                    "Cannot read the download checkpoint {}: {e}; starting over",
                    path.display()
                );
                return None;
            }
        };
        match serde_json::from_slice(&bytes) {
            Ok(checkpoint) => Some(checkpoint),
            Err(e) => {
                log::warn!(
                    "The download checkpoint {} is not valid ({e}); starting over",
                    path.display()
                );
                None
            }
        }
    }

    /// Writes the checkpoint atomically and durably (0600: it is updog's own state).
    pub fn store(&self, path: &Path) -> Result<(), CheckpointError> {
        let dir = nodeio::atomic::parent_dir(path);
        if !dir.is_dir() {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)
                .context(CreateDirSnafu { path: &dir })?;
        }
        let json = serde_json::to_vec_pretty(self).expect("a checkpoint serializes");
        nodeio::AtomicWrite::new(path)
            .mode(0o600)
            .write(&json)
            .context(WriteSnafu { path })
    }

    /// Removes the checkpoint at `path` (and makes the removal durable); none is fine.
    pub fn remove(path: &Path) -> Result<(), CheckpointError> {
        match std::fs::remove_file(path) {
            Ok(()) => {
                let dir = nodeio::atomic::parent_dir(path);
                std::fs::File::open(&dir)
                    .and_then(|d| d.sync_all())
                    .context(RemoveSnafu { path })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(CheckpointError::Remove {
                path: path.to_owned(),
                source,
            }),
        }
    }
}

/// SHA-256's initial state (FIPS 180-4 §5.3.3).
const H0: [u32; 8] = [
    0x6a09_e667,
    0xbb67_ae85,
    0x3c6e_f372,
    0xa54f_f53a,
    0x510e_527f,
    0x9b05_688c,
    0x1f83_d9ab,
    0x5be0_cd19,
];

/// SHA-256 whose state can be saved and restored: sha2's compression function (`compress256`) over 64-byte
/// blocks, with the 8-word state, the byte count and the partial block kept here ([`Sha256State`]).
#[derive(Debug, Clone)]
pub struct ResumableSha256 {
    state: [u32; 8],
    /// Bytes hashed so far, the partial block included.
    length: u64,
    block: [u8; 64],
    /// Bytes of `block` in use (< 64).
    filled: usize,
}

/// A [`ResumableSha256`] as saved: the state words, the byte count, and the partial block in hex.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sha256State {
    pub state: [u32; 8],
    pub length: u64,
    pub partial: String,
}

/// Equal when they hashed the same bytes (what lies in the block past `filled` is not state).
impl PartialEq for ResumableSha256 {
    fn eq(&self, other: &Self) -> bool {
        self.state == other.state
            && self.length == other.length
            && self.block[..self.filled] == other.block[..other.filled]
    }
}

impl Eq for ResumableSha256 {}

impl Default for ResumableSha256 {
    fn default() -> Self {
        Self::new()
    }
}

impl ResumableSha256 {
    #[must_use]
    pub fn new() -> Self {
        Self {
            state: H0,
            length: 0,
            block: [0; 64],
            filled: 0,
        }
    }

    /// Bytes hashed so far.
    pub fn len(&self) -> u64 {
        self.length
    }

    pub fn is_empty(&self) -> bool {
        self.length == 0
    }

    pub fn update(&mut self, mut data: &[u8]) {
        self.length += data.len() as u64;
        if self.filled > 0 {
            let take = (64 - self.filled).min(data.len());
            self.block[self.filled..self.filled + take].copy_from_slice(&data[..take]);
            self.filled += take;
            data = &data[take..];
            if self.filled < 64 {
                return;
            }
            sha2::block_api::compress256(&mut self.state, &[self.block]);
            self.filled = 0;
        }
        let (blocks, rest) = data.as_chunks::<64>();
        if !blocks.is_empty() {
            sha2::block_api::compress256(&mut self.state, blocks);
        }
        self.block[..rest.len()].copy_from_slice(rest);
        self.filled = rest.len();
    }

    /// The digest of everything hashed (FIPS 180-4 §5.1.1 padding: 0x80, zeros, the bit length).
    #[must_use]
    pub fn finalize(&self) -> [u8; 32] {
        let mut state = self.state;
        let mut tail = [0u8; 128];
        tail[..self.filled].copy_from_slice(&self.block[..self.filled]);
        tail[self.filled] = 0x80;
        let blocks = if self.filled < 56 { 1 } else { 2 };
        tail[blocks * 64 - 8..blocks * 64].copy_from_slice(&(self.length * 8).to_be_bytes());
        let (tail, _) = tail[..blocks * 64].as_chunks::<64>();
        sha2::block_api::compress256(&mut state, tail);
        let mut digest = [0u8; 32];
        for (out, word) in digest.chunks_exact_mut(4).zip(state) {
            out.copy_from_slice(&word.to_be_bytes());
        }
        digest
    }

    pub fn save(&self) -> Sha256State {
        Sha256State {
            state: self.state,
            length: self.length,
            partial: hex::encode(&self.block[..self.filled]),
        }
    }

    /// The hasher a [`Sha256State`] describes; `None` when it is inconsistent (a partial block that is not the
    /// byte count modulo 64).
    pub fn restore(saved: &Sha256State) -> Option<Self> {
        let partial = hex::decode(&saved.partial).ok()?;
        if partial.len() as u64 != saved.length % 64 {
            return None;
        }
        let mut block = [0u8; 64];
        block[..partial.len()].copy_from_slice(&partial);
        Some(Self {
            state: saved.state,
            length: saved.length,
            block,
            filled: partial.len(),
        })
    }
}

/// The checkpoint's path under `sysroot`.
pub fn path(sysroot: &crate::sysroot::Sysroot) -> PathBuf {
    sysroot.resolve(CHECKPOINT_FILE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::Digest;

    // Low bytes on purpose: the pattern wraps.
    #[allow(clippy::cast_possible_truncation)]
    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 + i / 253) as u8).collect()
    }

    #[test]
    fn digests_equal_sha2s_for_every_length_around_the_block_and_padding_edges() {
        for len in (0..=200).chain([1000, 4095, 4096, 65_537, 1 << 20]) {
            let bytes = data(len);
            let mut hasher = ResumableSha256::new();
            hasher.update(&bytes);
            assert_eq!(
                hasher.finalize().as_slice(),
                sha2::Sha256::digest(&bytes).as_slice(),
                "length {len}"
            );
            assert_eq!(hasher.len(), len as u64);
        }
    }

    #[test]
    fn any_split_into_updates_gives_the_same_digest() {
        let bytes = data(10_000);
        let want = sha2::Sha256::digest(&bytes);
        for piece in [1, 3, 63, 64, 65, 127, 1000, 4097] {
            let mut hasher = ResumableSha256::new();
            for chunk in bytes.chunks(piece) {
                hasher.update(chunk);
            }
            assert_eq!(
                hasher.finalize().as_slice(),
                want.as_slice(),
                "pieces of {piece}"
            );
        }
    }

    #[test]
    fn a_saved_state_restored_through_json_continues_to_the_same_digest() {
        let bytes = data(300_001);
        let want = sha2::Sha256::digest(&bytes);
        for cut in [0, 1, 63, 64, 100, 299_999, 300_001] {
            let mut first = ResumableSha256::new();
            first.update(&bytes[..cut]);
            let json = serde_json::to_string(&first.save()).unwrap();
            let saved: Sha256State = serde_json::from_str(&json).unwrap();
            let mut second = ResumableSha256::restore(&saved).unwrap();
            assert_eq!(second, first);
            second.update(&bytes[cut..]);
            assert_eq!(
                second.finalize().as_slice(),
                want.as_slice(),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn an_inconsistent_saved_state_is_refused() {
        let mut hasher = ResumableSha256::new();
        hasher.update(&data(70));
        let mut saved = hasher.save();
        saved.length = 71;
        assert!(ResumableSha256::restore(&saved).is_none());
        saved.length = 70;
        saved.partial = "zz".into();
        assert!(ResumableSha256::restore(&saved).is_none());
    }

    #[test]
    fn a_checkpoint_is_stored_atomically_loaded_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("var/lib/updog/download-checkpoint.json");
        assert_eq!(Checkpoint::load(&path), None);
        let signed = SignedTarget {
            image: "root".into(),
            target: "root.ext4.lz4".into(),
            length: 1234,
            sha256: "ab".repeat(32),
        };
        let checkpoint = Checkpoint {
            version: "1.2.0".into(),
            inactive_boot: "0b6f1e6c-0000-4000-8000-000000000001".into(),
            complete: vec![],
            current: Some(PartialImage {
                signed,
                resume: Resume {
                    position: Position {
                        compressed: 700,
                        decompressed: 65536,
                        frame: None,
                    },
                    sha256: ResumableSha256::new().save(),
                    prefix_checksum: "00".repeat(16),
                },
            }),
        };
        checkpoint.store(&path).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(Checkpoint::load(&path), Some(checkpoint));
        std::fs::write(&path, b"{ not json").unwrap();
        assert_eq!(Checkpoint::load(&path), None);
        Checkpoint::remove(&path).unwrap();
        assert!(!path.exists());
        Checkpoint::remove(&path).unwrap();
    }
}
