//! One partition of the OS disk as a place to read and write: through its own device node when the kernel has one
//! (`/dev/loop0p4`, `/dev/nvme0n1p4`), else through the disk at the partition's byte offset (an image file, or a
//! loop device with no partition nodes).
//!
//! The node is preferred when it exists: the kernel keeps a separate page cache per block device, so data written
//! through the whole disk may not be seen through a partition node that was read before (and the other way
//! round). Whoever writes a partition should read it back through the same [`PartitionTarget`].

use crate::error::{self, Error};
use crate::guid::Guid;
use serde::Serialize;
use snafu::{ResultExt, ensure};
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Where one partition of the OS disk lives.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PartitionTarget {
    /// The disk (device or image file) the partition is on.
    pub disk: PathBuf,
    /// The partition number, from 1.
    pub number: u32,
    /// The partition's unique GUID (its PARTUUID).
    pub partuuid: Guid,
    /// The GPT label, e.g. `BOTTLEROCKET-ROOT-B`.
    pub label: String,
    pub first_lba: u64,
    pub last_lba: u64,
    pub sector_size: u64,
    /// The partition's device node, when the kernel has one.
    pub node: Option<PathBuf>,
}

impl PartitionTarget {
    /// The partition's length in bytes.
    pub fn len(&self) -> u64 {
        (self.last_lba - self.first_lba + 1) * self.sector_size
    }

    /// Never true for a GPT entry (its last LBA is at or after its first); here for completeness with `len`.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Where the partition starts on the disk, in bytes.
    pub fn disk_offset(&self) -> u64 {
        self.first_lba * self.sector_size
    }

    /// The path I/O goes through: the node, or the disk.
    pub fn io_path(&self) -> &Path {
        self.node.as_deref().unwrap_or(&self.disk)
    }

    /// Opens the partition for reading.
    pub fn open_read(&self) -> Result<PartitionFile, Error> {
        self.open_with(OpenOptions::new().read(true))
    }

    /// Opens the partition for reading and writing (never creating or truncating anything).
    pub fn open_write(&self) -> Result<PartitionFile, Error> {
        self.open_with(OpenOptions::new().read(true).write(true))
    }

    /// Opens the partition with caller-chosen options (e.g. `custom_flags(O_DIRECT)`); `create` and `truncate`
    /// must stay off, as the path is a device or a whole disk image.
    pub fn open_with(&self, options: &OpenOptions) -> Result<PartitionFile, Error> {
        let path = self.io_path();
        let mut file = options
            .open(path)
            .context(error::OpenPartitionSnafu { path })?;
        let base = match &self.node {
            Some(node) => {
                // A stale node (the table changed since `partx -a`) would put the data in the wrong place.
                let node_len = file
                    .seek(SeekFrom::End(0))
                    .context(error::OpenPartitionSnafu { path: node })?;
                ensure!(
                    node_len == self.len(),
                    error::NodeSizeMismatchSnafu {
                        node: node.clone(),
                        node_len,
                        number: self.number,
                        table_len: self.len(),
                    }
                );
                0
            }
            None => self.disk_offset(),
        };
        Ok(PartitionFile {
            file,
            path: self.to_string(),
            base,
            len: self.len(),
            position: 0,
        })
    }
}

/// `/dev/loop0p3` when the partition has a node, else `DISK#N` (partition N of DISK, reached at its offset).
impl fmt::Display for PartitionTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.node {
            Some(node) => write!(f, "{}", node.display()),
            None => write!(f, "{}#{}", self.disk.display(), self.number),
        }
    }
}

/// An open partition: `Read`, `Write` and `Seek` within its bounds (position 0 is the partition's first byte), and
/// positional `read_at`/`write_at`. A write that would pass the end fails with `StorageFull` (after writing what
/// fits, as a block device does); reads stop at the end.
#[derive(Debug)]
pub struct PartitionFile {
    file: File,
    path: String,
    base: u64,
    len: u64,
    position: u64,
}

impl PartitionFile {
    /// The partition's length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The underlying file (the node or the disk) and where the partition starts in it, for callers that do their
    /// own positional or aligned I/O.
    pub fn file(&self) -> (&File, u64) {
        (&self.file, self.base)
    }

    /// Flushes everything written to the device (`fsync`).
    pub fn sync_all(&self) -> Result<(), Error> {
        self.file
            .sync_all()
            .context(error::SyncPartitionSnafu { path: &self.path })
    }

    /// Writes `buf` at `offset` within the partition; what does not fit is an error (nothing is written then).
    pub fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.check_fits(offset, buf.len())?;
        self.file.write_all_at(buf, self.base + offset)
    }

    /// Reads exactly `buf.len()` bytes at `offset` within the partition.
    pub fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        if offset
            .checked_add(buf.len() as u64)
            .is_none_or(|end| end > self.len)
        {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("read past the end of partition {}", self.path),
            ));
        }
        self.file.read_exact_at(buf, self.base + offset)
    }

    fn check_fits(&self, offset: u64, len: usize) -> io::Result<()> {
        match offset.checked_add(len as u64) {
            Some(end) if end <= self.len => Ok(()),
            _ => Err(self.full()),
        }
    }

    fn full(&self) -> io::Error {
        io::Error::new(
            io::ErrorKind::StorageFull,
            format!(
                "write past the end of partition {} ({} bytes)",
                self.path, self.len
            ),
        )
    }
}

impl Read for PartitionFile {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.len.saturating_sub(self.position);
        let take = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        if take == 0 {
            return Ok(0);
        }
        let read = self
            .file
            .read_at(&mut buf[..take], self.base + self.position)?;
        self.position += read as u64;
        Ok(read)
    }
}

impl Write for PartitionFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let left = self.len.saturating_sub(self.position);
        if left == 0 {
            return Err(self.full());
        }
        let take = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let written = self
            .file
            .write_at(&buf[..take], self.base + self.position)?;
        self.position += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Seek for PartitionFile {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        let target = match pos {
            SeekFrom::Start(offset) => Some(offset),
            SeekFrom::End(delta) => self.len.checked_add_signed(delta),
            SeekFrom::Current(delta) => self.position.checked_add_signed(delta),
        };
        self.position = target.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("seek before the start of partition {}", self.path),
            )
        })?;
        Ok(self.position)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target_in(disk: &Path) -> PartitionTarget {
        PartitionTarget {
            disk: disk.to_path_buf(),
            number: 4,
            partuuid: Guid::from_disk_bytes([4; 16]),
            label: "BOTTLEROCKET-ROOT-A".into(),
            first_lba: 4,
            last_lba: 7,
            sector_size: 512,
            node: None,
        }
    }

    #[test]
    fn without_a_node_io_goes_to_the_disk_at_the_partitions_offset() {
        let disk = tempfile::NamedTempFile::new().unwrap();
        disk.as_file().set_len(16 * 512).unwrap();
        let target = target_in(disk.path());
        assert_eq!(target.to_string(), format!("{}#4", disk.path().display()));
        assert_eq!((target.len(), target.disk_offset()), (2048, 2048));

        let mut part = target.open_write().unwrap();
        part.write_all(b"hello").unwrap();
        part.seek(SeekFrom::End(-3)).unwrap();
        part.write_all(b"end").unwrap();
        part.sync_all().unwrap();

        let bytes = std::fs::read(disk.path()).unwrap();
        assert_eq!(&bytes[2048..2053], b"hello");
        assert_eq!(&bytes[4093..4096], b"end");
        assert!(
            bytes[4096..].iter().all(|&b| b == 0),
            "nothing past the partition"
        );

        let mut back = String::new();
        let mut part = target.open_read().unwrap();
        part.seek(SeekFrom::Start(0)).unwrap();
        Read::by_ref(&mut part)
            .take(5)
            .read_to_string(&mut back)
            .unwrap();
        assert_eq!(back, "hello");
        let mut all = Vec::new();
        part.seek(SeekFrom::Start(0)).unwrap();
        part.read_to_end(&mut all).unwrap();
        assert_eq!(all.len(), 2048, "reads stop at the partition's end");
    }

    #[test]
    fn a_write_past_the_end_fails_after_filling_the_partition() {
        let disk = tempfile::NamedTempFile::new().unwrap();
        disk.as_file().set_len(16 * 512).unwrap();
        let mut part = target_in(disk.path()).open_write().unwrap();
        part.seek(SeekFrom::Start(2040)).unwrap();
        let err = part.write_all(&[1u8; 16]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::StorageFull);
        let bytes = std::fs::read(disk.path()).unwrap();
        assert!(bytes[4088..4096].iter().all(|&b| b == 1));
        assert!(bytes[4096..].iter().all(|&b| b == 0));
        assert_eq!(
            part.write_all_at(&[2; 9], 2040).unwrap_err().kind(),
            io::ErrorKind::StorageFull
        );
        assert!(part.read_exact_at(&mut [0; 9], 2040).is_err());
    }

    #[test]
    fn a_node_of_the_wrong_size_is_refused() {
        let disk = tempfile::NamedTempFile::new().unwrap();
        disk.as_file().set_len(16 * 512).unwrap();
        let node = tempfile::NamedTempFile::new().unwrap();
        node.as_file().set_len(512).unwrap();
        let mut target = target_in(disk.path());
        target.node = Some(node.path().to_path_buf());
        let err = target.open_read().unwrap_err();
        assert!(matches!(err, Error::NodeSizeMismatch { .. }), "{err}");
        node.as_file().set_len(2048).unwrap();
        target.open_read().unwrap();
    }
}
