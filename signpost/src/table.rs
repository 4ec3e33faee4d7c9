//! Reading and durably writing the GPT (both copies) of a disk, device or image file.
//!
//! Reading is gptman's `GPT::find_from`: the primary copy (LBA 1 and its entry array), and when that fails to
//! parse or its CRCs do not match, the backup copy at the disk's last LBA (verified: a zeroed or corrupted primary
//! header or entry array loads from the backup; see the tests below).
//!
//! Writing never asks the kernel to re-read the table (BLKRRPART): on this kernel that removes the partition nodes
//! `partx -a` added. It writes one copy at a time, each flushed (`fsync`) before the next begins:
//!
//! 1. the primary header and entry array, then `fsync`;
//! 2. the backup header and entry array, then `fsync`;
//! 3. both copies read back and compared with the table in memory.
//!
//! So an interruption at any point leaves at least one complete, valid copy: before step 1 completes, the backup
//! still holds the old table (a torn primary fails its CRC, so readers fall back to the backup); after it, the
//! primary holds the new one. gptman's own `write_into` writes both copies with no flush between them, which on a
//! write-back cache could leave both torn.

use crate::boot_rule;
use crate::error::{self, Error};
use gptman::{GPT, GPTHeader, GPTPartitionEntry};
use snafu::{ResultExt, ensure};
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

/// Which of the two copies a table was read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TableCopy {
    Primary,
    Backup,
}

/// Reads the partition table: the primary copy, else the backup.
///
/// gptman trusts a header whose checksum matches: an entry size other than 128 or an entry array past the disk's
/// end makes it panic or allocate without bound, and used entries that all start at LBA 0 make its alignment
/// search panic. Such a copy can be forged (both CRCs are public arithmetic), so each copy is screened first
/// ([`screen_copy`]) and one that fails is hidden from gptman, which then reads the other; when neither is left,
/// the error names what was wrong with each.
pub fn read_table(file: &mut File, path: &Path) -> Result<GPT, Error> {
    let disk_len = file
        .seek(SeekFrom::End(0))
        .context(error::TableIoSnafu { path, what: "size" })?;
    let mut hidden = Vec::new();
    let mut problems = Vec::new();
    // The places gptman's `find_from` looks: LBA 1 and the last LBA, with 512- then 4096-byte sectors.
    for sector_size in [512u64, 4096] {
        let Some(last_lba) = (disk_len / sector_size).checked_sub(1) else {
            continue;
        };
        for (copy, lba) in [("primary", 1), ("backup", last_lba)] {
            if let Err(problem) = screen_copy(file, disk_len, sector_size, lba) {
                hidden.push(lba * sector_size);
                problems.push(format!(
                    "{copy} header at LBA {lba} ({sector_size}-byte sectors): {problem}"
                ));
            }
        }
    }
    let mut screened = Screened {
        file,
        len: disk_len,
        hidden: &hidden,
        position: 0,
    };
    GPT::find_from(&mut screened).map_err(|source| {
        if problems.is_empty() {
            Error::ReadTable {
                path: path.to_owned(),
                source,
            }
        } else {
            Error::UnsafeTable {
                path: path.to_owned(),
                problems: problems.join("; "),
            }
        }
    })
}

/// The size of a GPT entry as gptman reads it (and as every GPT written in practice has).
const ENTRY_SIZE: u64 = 128;
/// The most entries a screened copy may declare: far above the 128 of every real table, far below what would hurt.
const MAX_ENTRIES: u64 = 4096;

/// Checks the copy whose header is at `lba` for what gptman cannot survive; `Ok` for a copy gptman will refuse on
/// its own (no signature, a bad checksum) or can read. Entries are checked only when their array's checksum
/// matches (gptman reads no further otherwise): each used one within the usable LBAs, its start not after its end.
fn screen_copy(file: &File, disk_len: u64, sector_size: u64, lba: u64) -> Result<(), String> {
    let mut header = [0u8; 92];
    if file.read_exact_at(&mut header, lba * sector_size).is_err() || &header[..8] != b"EFI PART" {
        return Ok(());
    }
    let u32_at = |at: usize| u64::from(u32::from_le_bytes(header[at..at + 4].try_into().unwrap()));
    let u64_at = |at: usize| u64::from_le_bytes(header[at..at + 8].try_into().unwrap());
    let mut zeroed = header;
    zeroed[16..20].fill(0);
    if u32_at(12) != 92 || u32_at(16) != u64::from(crc32(&zeroed)) {
        return Ok(());
    }
    let sectors = disk_len / sector_size;
    let (first_usable, last_usable) = (u64_at(40), u64_at(48));
    let (array_lba, entries, entry_size) = (u64_at(72), u32_at(80), u32_at(84));
    if entry_size != ENTRY_SIZE {
        return Err(format!("entry size {entry_size}, not {ENTRY_SIZE}"));
    }
    if entries > MAX_ENTRIES {
        return Err(format!("{entries} entries, more than {MAX_ENTRIES}"));
    }
    let array_len = entries * ENTRY_SIZE;
    let array_start = array_lba
        .checked_mul(sector_size)
        .filter(|start| {
            start
                .checked_add(array_len)
                .is_some_and(|end| end <= disk_len)
        })
        .ok_or_else(|| format!("entry array at LBA {array_lba} does not fit on the disk"))?;
    if !(first_usable <= last_usable && last_usable < sectors) {
        return Err(format!(
            "usable LBAs {first_usable}..={last_usable} not on a disk of {sectors} sectors"
        ));
    }
    let mut array = vec![0u8; usize::try_from(array_len).map_err(|e| e.to_string())?];
    if file.read_exact_at(&mut array, array_start).is_err()
        || u32_at(88) != u64::from(crc32(&array))
    {
        return Ok(());
    }
    for (index, entry) in array.chunks_exact(128).enumerate() {
        let lba_at = |at: usize| u64::from_le_bytes(entry[at..at + 8].try_into().unwrap());
        let (start, end) = (lba_at(32), lba_at(40));
        if entry[..16] != [0; 16] && !(first_usable <= start && start <= end && end <= last_usable)
        {
            return Err(format!(
                "entry {} spans LBAs {start}..={end}, outside the usable {first_usable}..={last_usable}",
                index + 1
            ));
        }
    }
    Ok(())
}

/// CRC-32 (IEEE), as GPT checksums its header and entry array.
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

/// The disk as gptman reads it: a header sector that failed [`screen_copy`] reads as zeros (no signature), so
/// gptman goes on to the other copy.
struct Screened<'a> {
    file: &'a File,
    /// The disk's length (a block device's metadata says 0).
    len: u64,
    /// Byte offsets of hidden header sectors; gptman reads a header as 92 bytes from its sector's start.
    hidden: &'a [u64],
    position: u64,
}

impl Read for Screened<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let read = self.file.read_at(buf, self.position)?;
        for &start in self.hidden {
            // The overlap of [start, start + 92) with what was read.
            let from = start.max(self.position);
            let to = (start + 92).min(self.position + read as u64);
            if from < to {
                let (from, to) = (from - self.position, to - self.position);
                buf[usize::try_from(from).unwrap()..usize::try_from(to).unwrap()].fill(0);
            }
        }
        self.position += read as u64;
        Ok(read)
    }
}

impl Seek for Screened<'_> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        let base = match pos {
            SeekFrom::Start(offset) => Some(offset),
            SeekFrom::End(delta) => self.len.checked_add_signed(delta),
            SeekFrom::Current(delta) => self.position.checked_add_signed(delta),
        };
        self.position =
            base.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before byte 0"))?;
        Ok(self.position)
    }
}

/// The copy `table` was read from.
#[must_use]
pub fn loaded_from(table: &GPT) -> TableCopy {
    if table.is_primary() {
        TableCopy::Primary
    } else {
        TableCopy::Backup
    }
}

/// Writes both copies of `table` to `file`, one at a time with an `fsync` after each, then reads both back and
/// checks them. `path` names the file in errors.
///
/// The bootability guard (invariant I7) runs first: a table on which the bootloader rule ([`boot_rule::choose`])
/// would pick neither set A nor set B ([`boot_rule::boots_a_set`]) is refused before a byte is written. This is the one function that writes GPT state, so no
/// command, present or future, can leave the disk with nothing to boot.
pub fn write_table(file: &mut File, path: &Path, table: &mut GPT) -> Result<(), Error> {
    ensure!(
        boot_rule::boots_a_set(table),
        error::WouldBeUnbootableSnafu {
            path,
            boot_entries: boot_rule::describe(table),
        }
    );
    write_copies(file, path, table, Copies::Both)?;
    verify_table(file, path, table)
}

/// [`write_table`] without the bootability guard: only for a simulated bootloader, which (as GRUB does) spends
/// the try of the set it boots even when that leaves no other set bootable; the booted set then marks itself
/// successful or the next boot fails. No command of this project calls it.
pub fn write_table_as_bootloader(
    file: &mut File,
    path: &Path,
    table: &mut GPT,
) -> Result<(), Error> {
    write_copies(file, path, table, Copies::Both)?;
    verify_table(file, path, table)
}

/// How far [`write_copies`] goes: everything, or (to test an interrupted write) the primary copy only.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Copies {
    Both,
    #[cfg(test)]
    PrimaryOnly,
}

/// gptman serialises the table (and checks its entries: unique GUIDs, no overlaps, within the disk) into memory;
/// the recorded writes are then applied copy by copy.
pub(crate) fn write_copies(
    file: &mut File,
    path: &Path,
    table: &mut GPT,
    copies: Copies,
) -> Result<(), Error> {
    let disk_len = file
        .seek(SeekFrom::End(0))
        .context(error::TableIoSnafu { path, what: "size" })?;
    let mut recorder = WriteRecorder::new(disk_len);
    table
        .write_into(&mut recorder)
        .context(error::WriteTableSnafu { path })?;
    // The primary copy lives in the first LBAs and the backup in the last ones: the middle of the disk separates
    // them.
    let (primary, backup): (Vec<_>, Vec<_>) = recorder
        .into_writes()
        .into_iter()
        .partition(|write| write.offset < disk_len / 2);
    apply(file, path, &primary, "primary")?;
    if copies == Copies::Both {
        apply(file, path, &backup, "backup")?;
    }
    Ok(())
}

fn apply(
    file: &File,
    path: &Path,
    writes: &[RecordedWrite],
    copy: &'static str,
) -> Result<(), Error> {
    for write in writes {
        file.write_all_at(&write.bytes, write.offset)
            .context(error::WriteCopySnafu { path, copy })?;
    }
    file.sync_all()
        .context(error::SyncTableSnafu { path, copy })
}

/// Reads both copies back and checks that each holds exactly the entries of `table`.
fn verify_table(file: &mut File, path: &Path, table: &GPT) -> Result<(), Error> {
    let expected: Vec<GPTPartitionEntry> = table.iter().map(|(_, entry)| entry.clone()).collect();
    let disk_len = file
        .seek(SeekFrom::End(0))
        .context(error::TableIoSnafu { path, what: "size" })?;
    let last_lba = disk_len / table.sector_size - 1;
    for (copy, lba) in [("primary", 1), ("backup", last_lba)] {
        let entries = read_copy(file, table.sector_size, lba)
            .with_context(|_| error::VerifyReadSnafu { path, copy })?;
        ensure!(
            entries == expected,
            error::VerifyMismatchSnafu { path, copy }
        );
    }
    Ok(())
}

/// Reads and validates (both CRCs) the copy whose header is at `header_lba`.
pub(crate) fn read_copy<R: Read + Seek>(
    reader: &mut R,
    sector_size: u64,
    header_lba: u64,
) -> Result<Vec<GPTPartitionEntry>, gptman::Error> {
    reader.seek(SeekFrom::Start(header_lba * sector_size))?;
    let header = GPTHeader::read_from(reader)?;
    header.read_partitions(reader, sector_size)
}

struct RecordedWrite {
    offset: u64,
    bytes: Vec<u8>,
}

/// A `Write + Seek` that records writes in memory (adjacent writes merged), over a device of a fixed length.
struct WriteRecorder {
    len: u64,
    position: u64,
    writes: Vec<RecordedWrite>,
}

impl WriteRecorder {
    fn new(len: u64) -> Self {
        Self {
            len,
            position: 0,
            writes: Vec::new(),
        }
    }

    fn into_writes(self) -> Vec<RecordedWrite> {
        self.writes
    }
}

impl Write for WriteRecorder {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let end = self.position + buf.len() as u64;
        if end > self.len {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "GPT write at byte {} past the end of the disk ({} bytes)",
                    self.position, self.len
                ),
            ));
        }
        match self.writes.last_mut() {
            Some(last) if last.offset + last.bytes.len() as u64 == self.position => {
                last.bytes.extend_from_slice(buf);
            }
            _ => self.writes.push(RecordedWrite {
                offset: self.position,
                bytes: buf.to_vec(),
            }),
        }
        self.position = end;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Seek for WriteRecorder {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        let target = match pos {
            SeekFrom::Start(offset) => Some(offset),
            SeekFrom::End(delta) => self.len.checked_add_signed(delta),
            SeekFrom::Current(delta) => self.position.checked_add_signed(delta),
        };
        self.position = target
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before byte 0"))?;
        Ok(self.position)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guid::{BOTTLEROCKET_BOOT, Guid};
    use std::io::Cursor;

    const SECTOR: u64 = 512;
    const DISK_SECTORS: u64 = 8192;

    /// The second BOOT partition's bits in [`disk_with`]: priority 1, successful, so every table here boots.
    const FALLBACK_BITS: u64 = (1 << 48) | (1 << 56);

    /// A 4 MiB image file with a GPT of two BOOT partitions; the first has `bits`, the second boots.
    fn disk_with(bits: u64) -> (tempfile::NamedTempFile, GPT) {
        let file = tempfile::NamedTempFile::new().unwrap();
        file.as_file().set_len(DISK_SECTORS * SECTOR).unwrap();
        let mut table = GPT::new_from(&mut file.as_file(), SECTOR, [7; 16]).unwrap();
        for n in 1..=2u32 {
            let start = 2048 + u64::from(n - 1) * 1024;
            table[n] = GPTPartitionEntry {
                partition_type_guid: BOTTLEROCKET_BOOT.disk_bytes(),
                unique_partition_guid: Guid::from_disk_bytes([u8::try_from(n).unwrap(); 16])
                    .disk_bytes(),
                starting_lba: start,
                ending_lba: start + 1023,
                attribute_bits: if n == 1 { bits } else { FALLBACK_BITS },
                partition_name: format!("BOOT-{n}").as_str().into(),
            };
        }
        let path = file.path().to_path_buf();
        write_table(&mut file.reopen().unwrap(), &path, &mut table).unwrap();
        (file, table)
    }

    fn zero(file: &File, offset: u64, len: u64) {
        file.write_all_at(&vec![0; usize::try_from(len).unwrap()], offset)
            .unwrap();
    }

    fn first_bits(file: &mut File) -> (u64, TableCopy) {
        let table = read_table(file, Path::new("disk")).unwrap();
        (table[1].attribute_bits, loaded_from(&table))
    }

    #[test]
    fn a_table_on_which_nothing_would_boot_is_refused_and_the_disk_unchanged() {
        let (file, mut table) = disk_with(1 << 48);
        let before = std::fs::read(file.path()).unwrap();
        // Priority without tries or success on both: the bootloader would find nothing.
        table[2].attribute_bits = 1 << 48;
        let path = file.path().to_path_buf();
        let err = write_table(&mut file.reopen().unwrap(), &path, &mut table).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "Refusing to write the partition table of {}: afterwards no set would boot (partition 1 (BOOT-1): \
                 priority=1 tries_left=0 successful=false; partition 2 (BOOT-2): priority=1 tries_left=0 \
                 successful=false). The table is unchanged.",
                path.display()
            )
        );
        assert_eq!(std::fs::read(file.path()).unwrap(), before);
    }

    #[test]
    fn a_third_boot_entry_that_would_boot_does_not_count_as_a_set() {
        let (file, mut table) = disk_with(1 << 48);
        table[2].attribute_bits = 1 << 48;
        // A stray third BOOT-type entry, priority 15 and successful: GRUB would boot it, but it is neither set.
        table[3] = GPTPartitionEntry {
            partition_type_guid: BOTTLEROCKET_BOOT.disk_bytes(),
            unique_partition_guid: Guid::from_disk_bytes([3; 16]).disk_bytes(),
            starting_lba: 4096,
            ending_lba: 4096 + 1023,
            attribute_bits: (15 << 48) | (1 << 56),
            partition_name: "STRAY".into(),
        };
        let before = std::fs::read(file.path()).unwrap();
        let path = file.path().to_path_buf();
        let err = write_table(&mut file.reopen().unwrap(), &path, &mut table).unwrap_err();
        assert!(
            err.to_string()
                .contains("partition 3 (STRAY): priority=15 tries_left=0 successful=true"),
            "{err}"
        );
        assert_eq!(std::fs::read(file.path()).unwrap(), before);
    }

    #[test]
    fn writes_both_copies_and_they_read_back() {
        let (file, table) = disk_with(1 << 48);
        let mut f = file.reopen().unwrap();
        let expected: Vec<_> = table.iter().map(|(_, e)| e.clone()).collect();
        assert_eq!(read_copy(&mut f, SECTOR, 1).unwrap(), expected);
        assert_eq!(
            read_copy(&mut f, SECTOR, DISK_SECTORS - 1).unwrap(),
            expected
        );
        assert_eq!(first_bits(&mut f), (1 << 48, TableCopy::Primary));
    }

    #[test]
    fn a_zeroed_primary_header_loads_from_the_backup() {
        let (file, _) = disk_with(1 << 48);
        let mut f = file.reopen().unwrap();
        zero(&f, SECTOR, SECTOR);
        assert_eq!(first_bits(&mut f), (1 << 48, TableCopy::Backup));
    }

    #[test]
    fn a_corrupt_primary_entry_array_loads_from_the_backup() {
        let (file, _) = disk_with(1 << 48);
        let mut f = file.reopen().unwrap();
        // A byte of the first entry's attributes: the header is intact but the entry array's CRC no longer matches.
        f.write_all_at(&[0xff], 2 * SECTOR + 48 + 6).unwrap();
        assert_eq!(first_bits(&mut f), (1 << 48, TableCopy::Backup));
    }

    #[test]
    fn a_zeroed_backup_still_loads_from_the_primary() {
        let (file, _) = disk_with(1 << 48);
        let mut f = file.reopen().unwrap();
        zero(&f, (DISK_SECTORS - 33) * SECTOR, 33 * SECTOR);
        assert_eq!(first_bits(&mut f), (1 << 48, TableCopy::Primary));
    }

    #[test]
    fn rewriting_a_table_loaded_from_the_backup_repairs_the_primary() {
        let (file, _) = disk_with(1 << 48);
        let mut f = file.reopen().unwrap();
        zero(&f, SECTOR, SECTOR);
        let mut table = read_table(&mut f, file.path()).unwrap();
        assert!(table.is_backup());
        write_table(&mut f, file.path(), &mut table).unwrap();
        let expected: Vec<_> = table.iter().map(|(_, e)| e.clone()).collect();
        assert_eq!(read_copy(&mut f, SECTOR, 1).unwrap(), expected);
        assert_eq!(first_bits(&mut f), (1 << 48, TableCopy::Primary));
    }

    #[test]
    fn a_write_interrupted_after_the_primary_loads_the_new_table() {
        let (file, mut table) = disk_with(1 << 48);
        let mut f = file.reopen().unwrap();
        table[1].attribute_bits = 2 << 48;
        write_copies(&mut f, file.path(), &mut table, Copies::PrimaryOnly).unwrap();
        assert_eq!(first_bits(&mut f), (2 << 48, TableCopy::Primary));
        // The backup still holds the old table, whole: a later damage of the primary falls back to it.
        assert_eq!(
            read_copy(&mut f, SECTOR, DISK_SECTORS - 1).unwrap()[0].attribute_bits,
            1 << 48
        );
        zero(&f, SECTOR, SECTOR);
        assert_eq!(first_bits(&mut f), (1 << 48, TableCopy::Backup));
    }

    #[test]
    fn a_torn_primary_falls_back_to_the_old_backup() {
        let (file, mut table) = disk_with(1 << 48);
        let mut f = file.reopen().unwrap();
        table[1].attribute_bits = 2 << 48;
        // Only the new primary header reached the disk, not its entry array: the header's entry CRC no longer
        // matches the old entries.
        let mut recorder = WriteRecorder::new(DISK_SECTORS * SECTOR);
        table.write_into(&mut recorder).unwrap();
        let header = recorder
            .into_writes()
            .into_iter()
            .find(|w| w.offset == SECTOR)
            .unwrap();
        f.write_all_at(&header.bytes, header.offset).unwrap();
        assert_eq!(first_bits(&mut f), (1 << 48, TableCopy::Backup));
    }

    #[test]
    fn the_recorder_merges_adjacent_writes_and_refuses_past_the_end() {
        let mut recorder = WriteRecorder::new(100);
        recorder.seek(SeekFrom::Start(10)).unwrap();
        recorder.write_all(b"abc").unwrap();
        recorder.write_all(b"def").unwrap();
        recorder.seek(SeekFrom::End(-4)).unwrap();
        recorder.write_all(b"xyz").unwrap();
        assert!(recorder.write_all(b"12").is_err());
        let writes = recorder.into_writes();
        assert_eq!(writes.len(), 2);
        assert_eq!(
            (writes[0].offset, writes[0].bytes.as_slice()),
            (10, &b"abcdef"[..])
        );
        assert_eq!(
            (writes[1].offset, writes[1].bytes.as_slice()),
            (96, &b"xyz"[..])
        );
    }

    #[test]
    fn gptman_in_memory_round_trip_matches_our_reader() {
        let mut disk = Cursor::new(vec![0u8; usize::try_from(DISK_SECTORS * SECTOR).unwrap()]);
        let mut table = GPT::new_from(&mut disk, SECTOR, [1; 16]).unwrap();
        table.write_into(&mut disk).unwrap();
        assert!(
            read_copy(&mut disk, SECTOR, 1)
                .unwrap()
                .iter()
                .all(GPTPartitionEntry::is_unused)
        );
    }
}
