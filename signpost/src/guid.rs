//! GPT GUIDs: the partition type GUIDs of Bottlerocket's disk layout, and the mixed-endian conversion between the
//! canonical text form and the bytes on disk.
//!
//! On disk the first three fields of a GUID are little-endian and the last two big-endian, so the canonical
//! `6b636168-7420-6568-2070-6c616e657421` (BOOT) is stored as the bytes of `"hack the planet!"`. gptman hands out
//! the raw on-disk bytes; [`Guid`] keeps them and converts only when text is read or written.

use serde::{Serialize, Serializer};
use std::fmt;

/// A GUID as stored in a GPT (mixed-endian bytes).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Guid([u8; 16]);

/// The order of the canonical (big-endian, as written) bytes on disk: fields 1–3 swapped.
const DISK_ORDER: [usize; 16] = [3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15];
/// Where each canonical byte's two hex digits start in `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`.
const TEXT_OFFSETS: [usize; 16] = [0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34];
const TEXT_LEN: usize = 36;

impl Guid {
    /// The all-zero GUID: an unused partition entry's type.
    pub const NIL: Guid = Guid([0; 16]);

    /// A GUID from the bytes of a GPT entry or header.
    pub const fn from_disk_bytes(bytes: [u8; 16]) -> Self {
        Self(bytes)
    }

    /// The bytes to put in a GPT entry or header.
    pub const fn disk_bytes(self) -> [u8; 16] {
        self.0
    }

    /// The canonical form, for constants: panics (at compile time in a `const`) on a malformed string.
    pub const fn from_canonical(text: &str) -> Self {
        match Self::parse_bytes(text.as_bytes()) {
            Some(guid) => guid,
            None => panic!("malformed GUID"),
        }
    }

    /// Parses the canonical form `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` (either case).
    pub fn parse(text: &str) -> Option<Self> {
        Self::parse_bytes(text.as_bytes())
    }

    /// Whether this is the all-zero GUID.
    pub fn is_nil(self) -> bool {
        self == Self::NIL
    }

    const fn parse_bytes(text: &[u8]) -> Option<Self> {
        if text.len() != TEXT_LEN {
            return None;
        }
        let mut dash = 8;
        while dash < 24 {
            if text[dash] != b'-' {
                return None;
            }
            dash += 5;
        }
        let mut canonical = [0u8; 16];
        let mut i = 0;
        while i < 16 {
            let at = TEXT_OFFSETS[i];
            match (hex_value(text[at]), hex_value(text[at + 1])) {
                (Some(high), Some(low)) => canonical[i] = high << 4 | low,
                _ => return None,
            }
            i += 1;
        }
        let mut disk = [0u8; 16];
        let mut j = 0;
        while j < 16 {
            disk[j] = canonical[DISK_ORDER[j]];
            j += 1;
        }
        Some(Self(disk))
    }

    /// The canonical bytes, in the order they are written as text.
    fn canonical_bytes(self) -> [u8; 16] {
        let mut canonical = [0u8; 16];
        for (disk_index, &canonical_index) in DISK_ORDER.iter().enumerate() {
            canonical[canonical_index] = self.0[disk_index];
        }
        canonical
    }
}

const fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

/// Lower-case canonical form, as the kernel prints PARTUUIDs and GRUB's `gptprio.next -u` sets `$boot_uuid`.
impl fmt::Display for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.canonical_bytes();
        write!(
            f,
            "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
            b[0],
            b[1],
            b[2],
            b[3],
            b[4],
            b[5],
            b[6],
            b[7],
            b[8],
            b[9],
            b[10],
            b[11],
            b[12],
            b[13],
            b[14],
            b[15]
        )
    }
}

impl fmt::Debug for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Guid({self})")
    }
}

impl Serialize for Guid {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

// Partition type GUIDs (twoliter `partyplanner`, bottlerocket-core-kit `signpost/src/state.rs`).
/// `BOTTLEROCKET-BOOT-{A,B}`: kernel and GRUB config; carries the gptprio bits.
pub const BOTTLEROCKET_BOOT: Guid = Guid::from_canonical("6b636168-7420-6568-2070-6c616e657421");
/// `BOTTLEROCKET-ROOT-{A,B}`: the dm-verity protected root filesystem.
pub const BOTTLEROCKET_ROOT: Guid = Guid::from_canonical("5526016a-1a97-4ea4-b39a-b7c8c6ca4502");
/// `BOTTLEROCKET-HASH-{A,B}`: the root filesystem's dm-verity hash tree.
pub const BOTTLEROCKET_HASH: Guid = Guid::from_canonical("598f10af-c955-4456-6a99-7720068a6cea");
/// `BOTTLEROCKET-RESERVED-{A,B}`.
pub const BOTTLEROCKET_RESERVED: Guid =
    Guid::from_canonical("0c5d99a5-d331-4147-baef-08e2b855bdc9");
/// `BOTTLEROCKET-PRIVATE`: persistent private storage; carries bit 57 ("boot has ever succeeded").
pub const BOTTLEROCKET_PRIVATE: Guid = Guid::from_canonical("440408bb-eb0b-4328-a6e5-a29038fad706");
/// The data partition (labelled at first boot).
pub const BOTTLEROCKET_DATA: Guid = Guid::from_canonical("626f7474-6c65-6474-6861-726d61726b73");
/// `EFI-SYSTEM`.
pub const EFI_SYSTEM: Guid = Guid::from_canonical("c12a7328-f81f-11d2-ba4b-00a0c93ec93b");
/// `EFI-BACKUP`: the placeholder for a second EFI bank.
pub const EFI_BACKUP: Guid = Guid::from_canonical("b39ce39c-0a00-b4ab-2d11-f18f8237a21c");
/// `BIOS-BOOT`: sgdisk's `ef02`.
pub const BIOS_BOOT: Guid = Guid::from_canonical("21686148-6449-6e6f-744e-656564454649");

/// The unique GUID of the data partition on a unified disk (DATA-A); the data partition of a split image's second
/// disk uses it too.
pub const DATA_PREFERRED_PARTGUID: Guid =
    Guid::from_canonical("5b94e8df-28b8-485c-9d19-362263b5944c");
/// The unique GUID of the fallback data partition.
pub const DATA_FALLBACK_PARTGUID: Guid =
    Guid::from_canonical("69040874-417d-4e26-a764-7885f22007ea");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boot_type_spells_its_message_on_disk() {
        assert_eq!(BOTTLEROCKET_BOOT.disk_bytes(), *b"hack the planet!");
    }

    #[test]
    fn first_three_fields_are_little_endian_on_disk() {
        assert_eq!(
            EFI_SYSTEM.disk_bytes(),
            [
                0x28, 0x73, 0x2a, 0xc1, 0x1f, 0xf8, 0xd2, 0x11, 0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e,
                0xc9, 0x3b
            ]
        );
    }

    #[test]
    fn text_round_trips_in_lower_case() {
        let text = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B";
        let guid = Guid::parse(text).unwrap();
        assert_eq!(guid, EFI_SYSTEM);
        assert_eq!(guid.to_string(), text.to_lowercase());
        assert_eq!(
            BOTTLEROCKET_DATA.to_string(),
            "626f7474-6c65-6474-6861-726d61726b73"
        );
    }

    #[test]
    fn rejects_malformed_text() {
        for bad in [
            "",
            "c12a7328f81f11d2ba4b00a0c93ec93b",
            "c12a7328-f81f-11d2-ba4b-00a0c93ec93",
            "c12a7328-f81f-11d2-ba4b-00a0c93ec93bb",
            "c12a7328+f81f-11d2-ba4b-00a0c93ec93b",
            "g12a7328-f81f-11d2-ba4b-00a0c93ec93b",
        ] {
            assert_eq!(Guid::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn serializes_as_canonical_text() {
        assert_eq!(
            serde_json::to_string(&BOTTLEROCKET_PRIVATE).unwrap(),
            "\"440408bb-eb0b-4328-a6e5-a29038fad706\""
        );
    }
}
