//! Hostile input: a disk image whose GPT holds arbitrary bytes, or header fields and entries that are valid by their
//! checksums but make no sense, is loaded or refused with an error, never a panic; and the kernel command line
//! parser reads back what the simulated boot writes and survives anything else.

use gptman::{GPT, GPTPartitionEntry};
use proptest::prelude::*;
use signpost::cmdline::{PartitionRef, boot_partition_args, partition_refs};
use signpost::guid::{
    BOTTLEROCKET_BOOT, BOTTLEROCKET_HASH, BOTTLEROCKET_PRIVATE, BOTTLEROCKET_ROOT,
};
use signpost::{Guid, Location, State};
use std::fs::{self, File};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::OnceLock;

const SECTOR: u64 = 512;
const DISK_SECTORS: u64 = 4096;
/// The primary header's LBA, and the bytes of the header and its 128-entry array (LBA 1..=33).
const HEADER_OFFSET: u64 = SECTOR;
const TABLE_BYTES: usize = 33 * 512;
const BOOT_A: Guid = Guid::from_disk_bytes([0xa1; 16]);

/// A 2 MiB image with Bottlerocket's layout (BOOT, ROOT, HASH of sets A and B, then PRIVATE), set A booting,
/// and a sysroot whose kernel command line names set A. Returns (sysroot, image path).
fn node() -> (tempfile::TempDir, std::path::PathBuf) {
    let (dir, image) = node_files();
    let file = File::create(&image).unwrap();
    file.set_len(DISK_SECTORS * SECTOR).unwrap();
    let mut table = GPT::new_from(&mut &file, SECTOR, [7; 16]).unwrap();
    let types = [
        BOTTLEROCKET_BOOT,
        BOTTLEROCKET_ROOT,
        BOTTLEROCKET_HASH,
        BOTTLEROCKET_BOOT,
        BOTTLEROCKET_ROOT,
        BOTTLEROCKET_HASH,
        BOTTLEROCKET_PRIVATE,
    ];
    for (n, part_type) in (1u32..).zip(types) {
        let start = 64 + u64::from(n - 1) * 256;
        let unique = if n == 1 {
            BOOT_A
        } else {
            Guid::from_disk_bytes([u8::try_from(n).unwrap(); 16])
        };
        table[n] = GPTPartitionEntry {
            partition_type_guid: part_type.disk_bytes(),
            unique_partition_guid: unique.disk_bytes(),
            starting_lba: start,
            ending_lba: start + 255,
            // Set A: priority 1, successful.
            attribute_bits: if n == 1 { (1 << 48) | (1 << 56) } else { 0 },
            partition_name: format!("PART-{n}").as_str().into(),
        };
    }
    let mut writer = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&image)
        .unwrap();
    signpost::table::write_table(&mut writer, &image, &mut table).unwrap();
    (dir, image)
}

/// A sysroot whose kernel command line names set A, and where its disk image goes.
fn node_files() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir_all(dir.path().join("proc")).unwrap();
    fs::write(dir.path().join("proc/cmdline"), boot_partition_args(BOOT_A)).unwrap();
    let image = dir.path().join("disk.img");
    (dir, image)
}

fn load(sysroot: &Path, image: &Path) -> Result<State, signpost::Error> {
    State::load(&Location::new(sysroot).disk(image))
}

/// Everything `signpost status` and the update commands compute from a loaded state.
fn use_state(mut state: State) {
    let _ = state.status();
    let _ = state.next();
    let _ = state.inactive_set();
    let _ = state.gptprio(signpost::SetSelect::A);
    let _ = state.clear_inactive();
    let _ = state.mark_inactive_valid();
    let _ = state.upgrade_to_inactive();
    let _ = state.cancel_upgrade();
    let _ = state.rollback_to_inactive();
}

/// CRC-32 (IEEE, as GPT uses), bitwise: small and only for tests.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// Recomputes the primary copy's checksums over `table` (LBA 1..=33 as bytes), so that the reader goes past them
/// to the fields: the entry array's over 128 entries of 128 bytes at LBA 2, then the header's.
fn fix_checksums(table: &mut [u8]) {
    let entries = crc32(&table[512..512 + 128 * 128]);
    table[88..92].copy_from_slice(&entries.to_le_bytes());
    table[16..20].fill(0);
    let header = crc32(&table[..92]);
    table[16..20].copy_from_slice(&header.to_le_bytes());
}

/// Header fields (offset in the header, width) a hostile table may set to anything.
const HEADER_FIELDS: [(usize, usize); 9] = [
    (12, 4), // header size
    (24, 8), // this header's LBA
    (32, 8), // the other header's LBA
    (40, 8), // first usable LBA
    (48, 8), // last usable LBA
    (72, 8), // entry array LBA
    (80, 4), // number of entries
    (84, 4), // entry size
    (8, 4),  // revision
];

/// A value for a field: the ones that break arithmetic or allocation, or anything.
fn field_value() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0),
        Just(1),
        Just(2),
        Just(33),
        Just(34),
        Just(92),
        Just(127),
        Just(128),
        Just(129),
        Just(256),
        Just(DISK_SECTORS - 1),
        Just(DISK_SECTORS),
        Just(u64::from(u32::MAX)),
        Just(u64::MAX),
        any::<u64>(),
    ]
}

/// An entry field (offset in a 128-byte entry, width): starting LBA, ending LBA, attributes, type GUID.
const ENTRY_FIELDS: [(usize, usize); 4] = [(32, 8), (40, 8), (48, 8), (0, 8)];

#[derive(Debug, Clone)]
enum Damage {
    /// Bytes written anywhere in LBA 0..=33.
    Bytes { offset: usize, bytes: Vec<u8> },
    /// One header field set to a value.
    Header { field: usize, value: u64 },
    /// One field of one of the first entries set to a value.
    Entry {
        entry: usize,
        field: usize,
        value: u64,
    },
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        (
            0..TABLE_BYTES + 512,
            prop::collection::vec(any::<u8>(), 1..16)
        )
            .prop_map(|(offset, bytes)| Damage::Bytes { offset, bytes }),
        (0..HEADER_FIELDS.len(), field_value())
            .prop_map(|(field, value)| Damage::Header { field, value }),
        (0usize..8, 0..ENTRY_FIELDS.len(), field_value()).prop_map(|(entry, field, value)| {
            Damage::Entry {
                entry,
                field,
                value,
            }
        }),
    ]
}

/// Applies `damage` to LBA 0..=33 (`disk`, from byte 0).
fn apply(disk: &mut [u8], damage: &Damage) {
    let put = |disk: &mut [u8], at: usize, width: usize, value: u64| {
        disk[at..at + width].copy_from_slice(&value.to_le_bytes()[..width]);
    };
    let header = usize::try_from(HEADER_OFFSET).unwrap();
    match damage {
        Damage::Bytes { offset, bytes } => {
            let end = (offset + bytes.len()).min(disk.len());
            disk[*offset..end].copy_from_slice(&bytes[..end - offset]);
        }
        Damage::Header { field, value } => {
            let (at, width) = HEADER_FIELDS[*field];
            put(disk, header + at, width, *value);
        }
        Damage::Entry {
            entry,
            field,
            value,
        } => {
            let (at, width) = ENTRY_FIELDS[*field];
            put(disk, header + 512 + entry * 128 + at, width, *value);
        }
    }
}

/// Damages the primary copy of a fresh node's table (checksums recomputed when `fix` is set) and the backup
/// (zeroed when `drop_backup` is set, so that only the damaged primary can be read), then loads it.
fn load_damaged(
    damages: &[Damage],
    fix: bool,
    drop_backup: bool,
) -> Result<State, signpost::Error> {
    // The pristine image, built (and fsynced) once.
    static PRISTINE: OnceLock<Vec<u8>> = OnceLock::new();
    let pristine = PRISTINE.get_or_init(|| {
        let (_sysroot, image) = node();
        fs::read(image).unwrap()
    });
    let (sysroot, image) = node_files();
    fs::write(&image, pristine).unwrap();
    let file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&image)
        .unwrap();
    let mut start = pristine[..TABLE_BYTES + 512].to_vec();
    for damage in damages {
        apply(&mut start, damage);
    }
    if fix {
        fix_checksums(&mut start[512..]);
    }
    file.write_all_at(&start, 0).unwrap();
    if drop_backup {
        file.write_all_at(&[0; TABLE_BYTES], (DISK_SECTORS - 33) * SECTOR)
            .unwrap();
    }
    load(sysroot.path(), &image)
}

#[test]
fn the_undamaged_node_loads_with_set_a_active() {
    let (sysroot, image) = node();
    let state = load(sysroot.path(), &image).unwrap();
    assert_eq!(state.active(), signpost::SetSelect::A);
    // Recomputing checksums over an undamaged table changes nothing.
    assert!(load_damaged(&[], true, true).is_ok());
}

/// Found by the property test below: an entry size of 0 in a primary header whose checksums match made gptman
/// panic (an assertion in its entry-array checksum). The copy is refused and the backup read.
#[test]
fn a_checksummed_header_with_entry_size_0_falls_back_to_the_backup() {
    let zero_size = Damage::Header { field: 7, value: 0 };
    let state = load_damaged(std::slice::from_ref(&zero_size), true, false).unwrap();
    assert_eq!(
        signpost::table::loaded_from(state.table()),
        signpost::table::TableCopy::Backup
    );
    let err = load_damaged(&[zero_size], true, true).unwrap_err();
    assert!(matches!(err, signpost::Error::UnsafeTable { .. }), "{err}");
    assert!(err.to_string().contains("entry size 0, not 128"), "{err}");
}

/// gptman's alignment search panics when every used entry starts at LBA 0; an entry array of 2^32 - 1 entries
/// would be allocated before its checksum is checked; a partition ending before it starts has a negative length.
#[test]
fn checksummed_nonsense_geometry_is_refused_naming_the_problem() {
    let cases: [(&[Damage], &str); 2] = [
        (
            &[Damage::Header {
                field: 6,
                value: u64::from(u32::MAX),
            }],
            "4294967295 entries, more than 4096",
        ),
        (
            &[Damage::Entry {
                entry: 0,
                field: 1,
                value: 1,
            }],
            "entry 1 spans LBAs 64..=1",
        ),
    ];
    for (damages, problem) in cases {
        let err = load_damaged(damages, true, true).unwrap_err();
        assert!(err.to_string().contains(problem), "{err}");
    }
    let all_at_zero: Vec<Damage> = (0..7)
        .flat_map(|entry| {
            [
                Damage::Entry {
                    entry,
                    field: 0,
                    value: 0,
                },
                Damage::Entry {
                    entry,
                    field: 1,
                    value: 0,
                },
            ]
        })
        .collect();
    let err = load_damaged(&all_at_zero, true, true).unwrap_err();
    assert!(
        err.to_string()
            .contains("entry 1 spans LBAs 0..=0, outside the usable 34..="),
        "{err}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_in_the_table_are_loaded_or_refused(
        damages in prop::collection::vec(damage(), 1..4), fix in any::<bool>(), drop_backup in any::<bool>(),
    ) {
        if let Ok(state) = load_damaged(&damages, fix, drop_backup) {
            use_state(state);
        }
    }

    #[test]
    fn an_image_of_arbitrary_bytes_is_refused(bytes in prop::collection::vec(any::<u8>(), 0..2048), sectors in 0u64..80) {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("disk.img");
        let file = File::create(&image).unwrap();
        file.set_len(sectors * SECTOR).unwrap();
        file.write_all_at(&bytes, SECTOR.min(sectors * SECTOR)).unwrap();
        prop_assert!(load(dir.path(), &image).is_err());
    }

    #[test]
    fn arbitrary_command_lines_give_references_or_none(text in any::<String>()) {
        let _ = partition_refs(&text);
    }

    #[test]
    fn partition_references_read_back(
        refs in prop::collection::vec((any::<[u8; 16]>(), any::<u32>()), 0..4),
        noise in prop::collection::vec("[ a-zA-Z0-9=,\"/.-]{0,20}", 0..5),
    ) {
        let refs: Vec<PartitionRef> = refs
            .into_iter()
            .map(|(bytes, offset)| PartitionRef { partuuid: Guid::from_disk_bytes(bytes), offset })
            .collect();
        // Each reference between words that hold no PARTUUID of their own.
        let mut cmdline = String::new();
        for (i, reference) in refs.iter().enumerate() {
            let mut word = noise.get(i).cloned().unwrap_or_default();
            while word.contains("PARTUUID=") {
                word = word.replace("PARTUUID=", "");
            }
            cmdline.push_str(&format!("{word} {reference} "));
        }
        prop_assert_eq!(partition_refs(&cmdline), refs);
    }

    #[test]
    fn references_in_hostile_text_are_well_formed(
        words in prop::collection::vec(prop_oneof![
            Just("PARTUUID=".to_string()),
            Just("/PARTNROFF=".to_string()),
            Just("6b636168-7420-6568-2070-6c616e657421".to_string()),
            Just("99999999999".to_string()),
            "[0-9a-fA-F-]{0,40}",
            any::<String>(),
        ], 0..12),
    ) {
        let text = words.concat();
        for reference in partition_refs(&text) {
            // Every reference found names a GUID written after a PARTUUID= in the text (case aside).
            let canonical = format!("PARTUUID={}", reference.partuuid);
            prop_assert!(text.to_ascii_lowercase().contains(&canonical.to_ascii_lowercase()), "{canonical} in {text:?}");
        }
    }
}
