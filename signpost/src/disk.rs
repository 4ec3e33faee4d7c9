//! Finding and opening the OS disk: the one mechanism every binary uses.
//!
//! 1. An explicit path (`--disk`, or a binary's own configuration), which may be a block device, a loop device or
//!    a plain disk-image file.
//! 2. Else the disk under the filesystem mounted at `--sysroot` (`/` on a real node), through sysfs as upstream:
//!    `stat(sysroot)` gives the device; a dm-verity device is replaced by its first lower device (the ROOT or HASH
//!    partition); the partition's parent in sysfs is the disk, opened as `/dev/NAME`.
//!
//! Partitions are reached through [`PartitionTarget`]: the partition's own node when the kernel has one (found in
//! sysfs under the disk), else the disk at the partition's offset.

use crate::error::{self, Error};
use crate::guid::Guid;
use crate::partition::PartitionTarget;
use crate::sysfs::{BlockDevice, DevNum, Sysfs};
use crate::table::{read_table, write_table};
use gptman::GPT;
use serde::Serialize;
use snafu::{OptionExt, ResultExt, ensure};
use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// The exclusive lock of one OS disk (invariant I6), held by every writer of the disk for the whole of its work:
/// updog's update commands (from before `clear-inactive` to after `mark-inactive-valid`), signpost's mutating
/// commands, the API. Keyed by the disk itself (its device number, or an image file's inode), not by the path or
/// sysroot naming it, so two sysroots naming one disk exclude each other. Functions that write the disk take it as
/// a proof token ([`crate::State::write`]). Released on drop.
#[derive(Debug)]
pub struct DiskLock {
    lock: nodeio::Lock,
}

impl DiskLock {
    /// Whether this is the lock of `disk`.
    pub fn covers(&self, disk: &OsDisk) -> bool {
        self.lock.is_disk_lock_for(&disk.path)
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        self.lock.path()
    }
}

/// What the OS disk is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum DiskKind {
    /// A regular file holding a whole disk image.
    ImageFile,
    /// A block device (a disk or a loop device), with its device number.
    BlockDevice {
        #[serde(serialize_with = "serialize_devnum")]
        dev: DevNum,
    },
}

fn serialize_devnum<S: serde::Serializer>(dev: &DevNum, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(dev)
}

/// The disk that holds the partition sets.
#[derive(Clone, Debug)]
pub struct OsDisk {
    path: PathBuf,
    kind: DiskKind,
    sysfs: Sysfs,
}

impl OsDisk {
    /// The disk at `path`: a block device or an image file.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, Error> {
        Self::open_with_sysfs(path, Sysfs::default())
    }

    /// As [`OsDisk::open`], looking partition nodes up in `sysfs`.
    pub fn open_with_sysfs(path: impl Into<PathBuf>, sysfs: Sysfs) -> Result<Self, Error> {
        let path = path.into();
        let metadata = fs::metadata(&path).context(error::StatSnafu { path: &path })?;
        let kind = if metadata.file_type().is_block_device() {
            DiskKind::BlockDevice {
                dev: DevNum::from_raw(metadata.rdev()),
            }
        } else if metadata.is_file() {
            DiskKind::ImageFile
        } else {
            return error::NotADiskSnafu { path }.fail();
        };
        Ok(Self { path, kind, sysfs })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn kind(&self) -> DiskKind {
        self.kind
    }

    /// Reads the partition table (the primary copy, else the backup).
    pub fn read_table(&self) -> Result<GPT, Error> {
        let mut file = fs::File::open(&self.path).context(error::OpenDiskSnafu {
            path: &self.path,
            what: "reading",
        })?;
        read_table(&mut file, &self.path)
    }

    /// Takes this disk's exclusive lock (see [`DiskLock`]), or fails at once naming the holder.
    pub fn lock(&self) -> Result<DiskLock, Error> {
        let lock = nodeio::Lock::disk(&self.path).context(error::LockSnafu)?;
        Ok(DiskLock { lock })
    }

    /// Writes both copies of `table`, each flushed before the next, and checks them (see [`crate::table`]).
    pub fn write_table(&self, table: &mut GPT) -> Result<(), Error> {
        write_table(&mut self.open_for_writing()?, &self.path, table)
    }

    fn open_for_writing(&self) -> Result<fs::File, Error> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .open(&self.path)
            .context(error::OpenDiskSnafu {
                path: &self.path,
                what: "writing",
            })
    }

    /// [`OsDisk::write_table`] without the bootability guard, for a simulated bootloader only (see
    /// [`crate::table::write_table_as_bootloader`]).
    pub fn write_table_as_bootloader(&self, table: &mut GPT) -> Result<(), Error> {
        crate::table::write_table_as_bootloader(&mut self.open_for_writing()?, &self.path, table)
    }

    /// The partition nodes the kernel has for this disk, by partition number: none for an image file, or for a
    /// loop device whose table no one parsed (`partx -a`). Only nodes whose device number matches sysfs count.
    pub fn partition_nodes(&self) -> Result<BTreeMap<u32, PathBuf>, Error> {
        let DiskKind::BlockDevice { dev } = self.kind else {
            return Ok(BTreeMap::new());
        };
        let Some(disk) = self.sysfs.block_device(dev)? else {
            return Ok(BTreeMap::new());
        };
        Ok(disk
            .partitions()?
            .into_iter()
            .filter_map(|(number, partition)| node_for(&partition).map(|node| (number, node)))
            .collect())
    }

    /// Every used partition of `table` as a place to read and write.
    pub fn partitions(&self, table: &GPT) -> Result<BTreeMap<u32, PartitionTarget>, Error> {
        let mut nodes = self.partition_nodes()?;
        Ok(table
            .iter()
            .filter(|(_, entry)| entry.is_used())
            .map(|(number, entry)| {
                let target = PartitionTarget {
                    disk: self.path.clone(),
                    number,
                    partuuid: Guid::from_disk_bytes(entry.unique_partition_guid),
                    label: entry.partition_name.as_str().to_string(),
                    first_lba: entry.starting_lba,
                    last_lba: entry.ending_lba,
                    sector_size: table.sector_size,
                    node: nodes.remove(&number),
                };
                (number, target)
            })
            .collect())
    }

    /// Partition `number` of `table` as a place to read and write.
    pub fn partition(&self, table: &GPT, number: u32) -> Result<PartitionTarget, Error> {
        self.partitions(table)?
            .remove(&number)
            .context(error::PartitionNotFoundSnafu {
                number,
                disk: &self.path,
            })
    }
}

/// `/dev/NAME` when it is the block device sysfs describes.
fn node_for(partition: &BlockDevice) -> Option<PathBuf> {
    let node = partition.dev_path();
    let metadata = fs::metadata(&node).ok()?;
    (metadata.file_type().is_block_device() && DevNum::from_raw(metadata.rdev()) == partition.dev())
        .then_some(node)
}

/// Where a binary finds the node's files and its OS disk: `--sysroot` and `--disk`.
#[derive(Clone, Debug)]
pub struct Location {
    sysroot: PathBuf,
    disk: Option<PathBuf>,
    sysfs: Sysfs,
}

impl Location {
    /// The node rooted at `sysroot` (`/` on a real node), its disk found through sysfs.
    #[must_use]
    pub fn new(sysroot: impl Into<PathBuf>) -> Self {
        Self {
            sysroot: sysroot.into(),
            disk: None,
            sysfs: Sysfs::default(),
        }
    }

    /// Use this disk instead of the one under the sysroot.
    #[must_use]
    pub fn disk(mut self, disk: impl Into<PathBuf>) -> Self {
        self.disk = Some(disk.into());
        self
    }

    /// Use this sysfs instead of `/sys` (tests with a fake tree).
    #[must_use]
    pub fn sysfs(mut self, sysfs: Sysfs) -> Self {
        self.sysfs = sysfs;
        self
    }

    pub fn sysroot(&self) -> &Path {
        &self.sysroot
    }

    pub fn explicit_disk(&self) -> Option<&Path> {
        self.disk.as_deref()
    }

    /// A well-known absolute path (`/proc/cmdline`) under the sysroot.
    pub fn resolve(&self, absolute: &str) -> PathBuf {
        self.sysroot.join(absolute.trim_start_matches('/'))
    }

    /// `<sysroot>/proc/cmdline`: the kernel command line the node booted with.
    /// Finds the OS disk and takes its lock ([`DiskLock`]).
    pub fn lock_disk(&self) -> Result<DiskLock, Error> {
        self.os_disk()?.lock()
    }

    pub fn cmdline_path(&self) -> PathBuf {
        self.resolve("/proc/cmdline")
    }

    /// The OS disk: the explicit one, else the disk under the sysroot's filesystem.
    pub fn os_disk(&self) -> Result<OsDisk, Error> {
        match &self.disk {
            Some(path) => OsDisk::open_with_sysfs(path, self.sysfs.clone()),
            None => {
                let (disk, _) = self.root_partition()?;
                OsDisk::open_with_sysfs(disk.dev_path(), self.sysfs.clone())
            }
        }
    }

    /// The disk and partition number under the sysroot's filesystem.
    pub fn root_partition(&self) -> Result<(BlockDevice, u32), Error> {
        let metadata = fs::metadata(&self.sysroot).context(error::StatSnafu {
            path: &self.sysroot,
        })?;
        self.sysfs.partition_under(DevNum::from_raw(metadata.dev()))
    }

    /// The partition number under the sysroot's filesystem, if that filesystem is on `disk`.
    pub fn root_partition_on(&self, disk: &OsDisk) -> Result<u32, Error> {
        let (root_disk, number) = self.root_partition()?;
        let on_disk = match disk.kind() {
            DiskKind::BlockDevice { dev } => dev == root_disk.dev(),
            DiskKind::ImageFile => false,
        };
        ensure!(
            on_disk,
            error::RootOnOtherDiskSnafu {
                sysroot: &self.sysroot,
                root_disk: root_disk.dev_path(),
                disk: disk.path(),
            }
        );
        Ok(number)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_image_file_is_a_disk_without_partition_nodes() {
        let file = tempfile::NamedTempFile::new().unwrap();
        let disk = OsDisk::open(file.path()).unwrap();
        assert_eq!(disk.kind(), DiskKind::ImageFile);
        assert!(disk.partition_nodes().unwrap().is_empty());
    }

    #[test]
    fn a_directory_is_not_a_disk() {
        let dir = tempfile::tempdir().unwrap();
        let err = OsDisk::open(dir.path()).unwrap_err();
        assert!(matches!(err, Error::NotADisk { .. }), "{err}");
        let err = OsDisk::open(dir.path().join("missing")).unwrap_err();
        assert!(matches!(err, Error::Stat { .. }), "{err}");
    }

    #[test]
    fn well_known_paths_resolve_under_the_sysroot() {
        let location = Location::new("/tmp/node");
        assert_eq!(location.cmdline_path(), Path::new("/tmp/node/proc/cmdline"));
        assert_eq!(
            Location::new("/").cmdline_path(),
            Path::new("/proc/cmdline")
        );
    }

    #[test]
    fn a_sysroot_on_a_whole_disk_is_not_on_a_partition() {
        // The sysroot's real device with an empty fake sysfs: no entry for it at all.
        let sysfs = tempfile::tempdir().unwrap();
        let location = Location::new("/").sysfs(Sysfs::new(sysfs.path()));
        let err = location.os_disk().unwrap_err();
        assert!(matches!(err, Error::NoSysfsDevice { .. }), "{err}");
    }
}
