//! Block devices as sysfs describes them: from a device number to its directory, a partition to its disk, a
//! dm-verity device to its lower device, and a disk to its partition nodes.
//!
//! The kernel's sysfs (`/sys`) is used as it is, never under `--sysroot`: it describes the devices this kernel has
//! (loop devices included), while `--sysroot` relocates the node's files. Tests point [`Sysfs::new`] at a fake
//! tree.

use crate::error::{self, Error};
use snafu::{OptionExt, ResultExt};
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// A block device number (`st_dev` / `st_rdev`), split with the kernel's real major/minor encoding (upstream's
/// block-party uses the legacy 8-bit split, wrong for minors above 255).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub struct DevNum {
    pub major: u32,
    pub minor: u32,
}

impl DevNum {
    /// Splits glibc's `dev_t` encoding (`gnu_dev_major` / `gnu_dev_minor`, with their masks).
    #[must_use]
    pub fn from_raw(dev: u64) -> Self {
        let major = ((dev & 0x0000_0000_000f_ff00) >> 8) | ((dev & 0xffff_f000_0000_0000) >> 32);
        let minor = (dev & 0x0000_0000_0000_00ff) | ((dev & 0x0000_0fff_fff0_0000) >> 12);
        // The masks keep 12 + 20 bits of the major and 8 + 24 of the minor: both fit in 32 bits.
        #[allow(clippy::cast_possible_truncation)]
        Self {
            major: major as u32,
            minor: minor as u32,
        }
    }

    /// Parses sysfs's `dev` file content, `MAJOR:MINOR`.
    pub fn parse(text: &str) -> Option<Self> {
        let (major, minor) = text.trim().split_once(':')?;
        Some(Self {
            major: major.parse().ok()?,
            minor: minor.parse().ok()?,
        })
    }
}

impl fmt::Display for DevNum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.major, self.minor)
    }
}

/// Where sysfs is mounted.
#[derive(Clone, Debug)]
pub struct Sysfs {
    root: PathBuf,
}

impl Default for Sysfs {
    fn default() -> Self {
        Self::new("/sys")
    }
}

impl Sysfs {
    #[must_use]
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The block device with number `dev`, through `/sys/dev/block/MAJOR:MINOR`. `None` when sysfs has no such
    /// entry (no sysfs, or not a block device).
    pub fn block_device(&self, dev: DevNum) -> Result<Option<BlockDevice>, Error> {
        let link = self.root.join("dev/block").join(dev.to_string());
        let dir = match fs::canonicalize(&link) {
            Ok(dir) => dir,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(source).context(error::SysfsReadSnafu { path: link }),
        };
        BlockDevice::at(dir).map(Some)
    }

    /// The partition that holds the filesystem on device `dev` (the device of a mounted `/`), and its disk: `dev`
    /// itself when it is a partition, else its first lower device (a dm-verity root's data partition), as
    /// upstream's `State::load`.
    pub fn partition_under(&self, dev: DevNum) -> Result<(BlockDevice, u32), Error> {
        let device = self.block_device(dev)?.context(error::NoSysfsDeviceSnafu {
            dev,
            sysfs: &self.root,
        })?;
        let partition = match device.lower_devices()?.into_iter().next() {
            Some(lower) => lower,
            None => device,
        };
        let number = partition
            .partition_number()?
            .context(error::RootNotPartitionSnafu {
                device: partition.dir.clone(),
            })?;
        let disk = partition.disk()?;
        Ok((disk, number))
    }
}

/// A block device's sysfs directory (the resolved `/sys/devices/.../NAME`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockDevice {
    dir: PathBuf,
    name: String,
    dev: DevNum,
}

impl BlockDevice {
    fn at(dir: PathBuf) -> Result<Self, Error> {
        let name = dir
            .file_name()
            .and_then(|name| name.to_str())
            .context(error::SysfsNameSnafu { path: &dir })?
            .to_string();
        let dev_file = dir.join("dev");
        let text =
            fs::read_to_string(&dev_file).context(error::SysfsReadSnafu { path: &dev_file })?;
        let dev = DevNum::parse(&text).context(error::SysfsParseSnafu {
            path: &dev_file,
            text: text.trim(),
        })?;
        Ok(Self { dir, name, dev })
    }

    /// The kernel's name, e.g. `loop0p3`.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn dev(&self) -> DevNum {
        self.dev
    }

    pub fn sysfs_dir(&self) -> &Path {
        &self.dir
    }

    /// The device node devtmpfs creates for it, `/dev/NAME`.
    pub fn dev_path(&self) -> PathBuf {
        Path::new("/dev").join(&self.name)
    }

    /// The partition number, if this is a partition (its `partition` file).
    pub fn partition_number(&self) -> Result<Option<u32>, Error> {
        let path = self.dir.join("partition");
        match fs::read_to_string(&path) {
            Ok(text) => text
                .trim()
                .parse()
                .ok()
                .context(error::SysfsParseSnafu {
                    path: &path,
                    text: text.trim(),
                })
                .map(Some),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(source).context(error::SysfsReadSnafu { path }),
        }
    }

    /// The disk a partition belongs to: its parent directory in sysfs.
    pub fn disk(&self) -> Result<BlockDevice, Error> {
        let parent = self
            .dir
            .parent()
            .context(error::SysfsNameSnafu { path: &self.dir })?;
        BlockDevice::at(parent.to_path_buf())
    }

    /// The devices under this one (`slaves/`), sorted by name; a dm-verity device's are its data and hash
    /// partitions.
    pub fn lower_devices(&self) -> Result<Vec<BlockDevice>, Error> {
        let dir = self.dir.join("slaves");
        let mut lower = Vec::new();
        for entry in read_dir_sorted(&dir)? {
            let resolved =
                fs::canonicalize(&entry).context(error::SysfsReadSnafu { path: &entry })?;
            lower.push(BlockDevice::at(resolved)?);
        }
        Ok(lower)
    }

    /// The partitions the kernel knows on this disk, by number. Empty when the kernel parsed no table and nothing
    /// (`partx -a`) added them.
    pub fn partitions(&self) -> Result<Vec<(u32, BlockDevice)>, Error> {
        let mut partitions = Vec::new();
        for child in read_dir_sorted(&self.dir)? {
            if !child.join("partition").is_file() {
                continue;
            }
            let device = BlockDevice::at(child)?;
            if let Some(number) = device.partition_number()? {
                partitions.push((number, device));
            }
        }
        partitions.sort_by_key(|(number, _)| *number);
        Ok(partitions)
    }
}

/// The entries of `dir` in name order; a missing directory has none.
fn read_dir_sorted(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(source).context(error::SysfsReadSnafu { path: dir }),
    };
    let mut paths = Vec::new();
    for entry in entries {
        paths.push(entry.context(error::SysfsReadSnafu { path: dir })?.path());
    }
    paths.sort();
    Ok(paths)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// A fake sysfs: `vda` with partitions 3 and 4, and `dm-0` over `vda4` and `vda5`, linked from `dev/block` as
    /// the kernel does.
    fn fake_sysfs() -> tempfile::TempDir {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let devices = root.join("devices/pci0000:00/virtio1/block");
        let write = |dir: &Path, file: &str, text: &str| {
            fs::create_dir_all(dir).unwrap();
            fs::write(dir.join(file), text).unwrap();
        };
        write(&devices.join("vda"), "dev", "254:0\n");
        for (n, minor) in [(3, 3), (4, 4), (5, 5)] {
            let dir = devices.join(format!("vda/vda{n}"));
            write(&dir, "dev", &format!("259:{minor}\n"));
            write(&dir, "partition", &format!("{n}\n"));
        }
        let dm = root.join("devices/virtual/block/dm-0");
        write(&dm, "dev", "253:0\n");
        fs::create_dir_all(dm.join("slaves")).unwrap();
        symlink(
            "../../../../pci0000:00/virtio1/block/vda/vda5",
            dm.join("slaves/vda5"),
        )
        .unwrap();
        symlink(
            "../../../../pci0000:00/virtio1/block/vda/vda4",
            dm.join("slaves/vda4"),
        )
        .unwrap();
        let links = root.join("dev/block");
        fs::create_dir_all(&links).unwrap();
        symlink(
            "../../devices/pci0000:00/virtio1/block/vda",
            links.join("254:0"),
        )
        .unwrap();
        symlink(
            "../../devices/pci0000:00/virtio1/block/vda/vda4",
            links.join("259:4"),
        )
        .unwrap();
        symlink("../../devices/virtual/block/dm-0", links.join("253:0")).unwrap();
        tmp
    }

    #[test]
    fn splits_device_numbers_like_glibc() {
        assert_eq!(
            DevNum::from_raw(0xfe00),
            DevNum {
                major: 254,
                minor: 0
            }
        );
        assert_eq!(
            DevNum::from_raw(0x10301),
            DevNum {
                major: 259,
                minor: 1
            }
        );
        // A minor above 255 lives partly in the high bits.
        assert_eq!(
            DevNum::from_raw(0x0010_0701),
            DevNum {
                major: 7,
                minor: 257
            }
        );
        // The widest numbers, and a major above 4095 (its high bits sit above the minor's): no bit of one lands in
        // the other.
        assert_eq!(
            DevNum::from_raw(u64::MAX),
            DevNum {
                major: u32::MAX,
                minor: u32::MAX
            }
        );
        assert_eq!(
            DevNum::from_raw(0x0012_3000_0000_0501),
            DevNum {
                major: 0x123_005,
                minor: 1
            }
        );
        assert_eq!(
            DevNum::from_raw(0x0000_0fff_fff0_0000),
            DevNum {
                major: 0,
                minor: 0xffff_ff00
            }
        );
        assert_eq!(
            DevNum::parse("7:257\n"),
            Some(DevNum {
                major: 7,
                minor: 257
            })
        );
        assert_eq!(DevNum::parse("7"), None);
    }

    #[test]
    fn a_dm_verity_root_resolves_to_its_first_lower_partition_and_disk() {
        let tmp = fake_sysfs();
        let sysfs = Sysfs::new(tmp.path());
        let (disk, number) = sysfs
            .partition_under(DevNum {
                major: 253,
                minor: 0,
            })
            .unwrap();
        assert_eq!(number, 4);
        assert_eq!(disk.name(), "vda");
        assert_eq!(
            disk.dev(),
            DevNum {
                major: 254,
                minor: 0
            }
        );
        assert_eq!(disk.dev_path(), Path::new("/dev/vda"));
    }

    #[test]
    fn a_partition_root_resolves_to_itself() {
        let tmp = fake_sysfs();
        let (disk, number) = Sysfs::new(tmp.path())
            .partition_under(DevNum {
                major: 259,
                minor: 4,
            })
            .unwrap();
        assert_eq!((disk.name(), number), ("vda", 4));
    }

    #[test]
    fn a_whole_disk_root_is_not_a_partition() {
        let tmp = fake_sysfs();
        let err = Sysfs::new(tmp.path())
            .partition_under(DevNum {
                major: 254,
                minor: 0,
            })
            .unwrap_err();
        assert!(matches!(err, Error::RootNotPartition { .. }), "{err}");
        let err = Sysfs::new(tmp.path())
            .partition_under(DevNum { major: 8, minor: 0 })
            .unwrap_err();
        assert!(matches!(err, Error::NoSysfsDevice { .. }), "{err}");
    }

    #[test]
    fn lists_a_disks_partitions_by_number() {
        let tmp = fake_sysfs();
        let disk = Sysfs::new(tmp.path())
            .block_device(DevNum {
                major: 254,
                minor: 0,
            })
            .unwrap()
            .unwrap();
        let partitions: Vec<_> = disk
            .partitions()
            .unwrap()
            .into_iter()
            .map(|(n, device)| (n, device.name().to_string()))
            .collect();
        assert_eq!(
            partitions,
            [
                (3, "vda3".to_string()),
                (4, "vda4".to_string()),
                (5, "vda5".to_string())
            ]
        );
    }
}
