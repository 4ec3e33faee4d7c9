//! The simulated node: a sysroot directory plus an OS disk with Bottlerocket's layout, and its boot.
//!
//! [`Node::boot`] does what the firmware and GRUB do, then what the kernel leaves behind:
//!
//! 1. the bootloader rule, [`signpost::boot_rule`] (GRUB's `gptprio.next`): pick the BOOT partition, spend one of
//!    its tries and rewrite the GPT (durably, as signpost writes it) when it had any;
//! 2. write `<sysroot>/proc/cmdline` as upstream GRUB's kernel line, naming the set by its BOOT partition's
//!    PARTUUID ([`signpost::cmdline::boot_partition_args`]), which is how signpost tells the active set.
//!
//! 3. on a node with OS images installed ([`Node::install`]): read the root hash from the chosen BOOT image, check
//!    ROOT against HASH with it (`veritysetup verify`, as dm-verity would on every read: a corrupt or mismatched
//!    root fails the boot), then take `os-release` and `root.json` from the booted ROOT into the sysroot
//!    (`usr/lib/os-release`, `usr/share/updog/root.json`), so the node's version is the booted image's.
//!
//! Before step 1, `<sysroot>/run` is emptied, as a real boot starts with a fresh tmpfs there.
//!
//! No pick means "boot failed: no bootable partition set", and `proc/cmdline` is removed (no kernel runs).
//! Later steps (migrator, the health checks and `signpost mark-successful-boot`) join [`Node::boot`] after step 3
//! and report through [`BootOutcome`]; a failed step leaves the boot unmarked, so the next boot falls back.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use repo_fixtures::node::Node;
//! let dir = tempfile::tempdir()?;
//! let node = Node::create(dir.path())?;
//! let booted = node.boot()?; // set A, on a fresh disk
//! let status = node.signpost(&["status"]);
//! assert_eq!(status.code, 0);
//! # Ok(()) }
//! ```

use crate::disk::{DiskBuilder, DiskError, FixtureDisk};
use crate::images::{self, ImageError, OsImages, ROOT_HASH_FILE};
use nodeio::os_release::{OsRelease, OsReleaseError};
use signpost::boot_rule::{self, BootPick};
use signpost::cmdline::boot_partition_args;
use signpost::guid::BOTTLEROCKET_BOOT;
use signpost::{GptPrio, Guid, Location, OsDisk, SetSelect};
use snafu::{OptionExt, ResultExt, Snafu, ensure};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

#[derive(Debug, Snafu)]
pub enum NodeError {
    #[snafu(display("Failed to create {}", path.display()))]
    CreateDir { path: PathBuf, source: io::Error },

    #[snafu(display("Failed to build the node's disk"))]
    BuildDisk { source: DiskError },

    #[snafu(display("Failed to install images: {source}"))]
    InstallDisk { source: signpost::Error },

    #[snafu(display("Failed to install images: the disk has no set {set:?}"))]
    NoSuchSet { set: SetSelect },

    #[snafu(display("Failed to write the {what} image into partition {number}"))]
    InstallWrite {
        what: &'static str,
        number: u32,
        source: io::Error,
    },

    #[snafu(display("Failed to record that {} carries OS images", path.display()))]
    Marker { path: PathBuf, source: io::Error },
}

#[derive(Debug, Snafu)]
pub enum BootError {
    #[snafu(display("boot failed: cannot empty {} (a tmpfs on a real node)", path.display()))]
    ClearRun { path: PathBuf, source: io::Error },

    #[snafu(display("boot failed: no bootable partition set on {}", disk.display()))]
    NoBootableSet { disk: PathBuf },

    #[snafu(display("boot failed: cannot read the OS disk"))]
    Disk { source: signpost::Error },

    #[snafu(display(
        "boot failed: BOOT partition {number} is neither the first nor the second BOOT entry"
    ))]
    UnknownBootPartition { number: u32 },

    #[snafu(display("boot failed: ROOT partition {number} (after BOOT) is not in the table"))]
    NoRootPartition {
        number: u32,
        source: signpost::Error,
    },

    #[snafu(display("boot failed: cannot read partition {number} of the booted set"))]
    ReadPartition { number: u32, source: io::Error },

    #[snafu(display("boot failed: BOOT partition {number} holds no root hash"))]
    NoRootHash { number: u32, source: ImageError },

    #[snafu(display(
        "boot failed: ROOT partition {root} does not match its dm-verity hash tree in partition {hash} (root hash {root_hash})"
    ))]
    VerityMismatch {
        root: u32,
        hash: u32,
        root_hash: String,
    },

    #[snafu(display("boot failed: cannot check the booted images: {source}"))]
    ImageTools { source: ImageError },

    #[snafu(display("boot failed: the booted ROOT has no {path}"))]
    RootFile { path: String, source: ImageError },

    #[snafu(display("boot failed: the booted ROOT's os-release is malformed: {source}"))]
    BadOsRelease { source: OsReleaseError },

    #[snafu(display("Failed to write {}", path.display()))]
    WriteCmdline { path: PathBuf, source: io::Error },

    #[snafu(display("boot failed: cannot write the booted release's {}", path.display()))]
    WriteSysroot { path: PathBuf, source: io::Error },

    #[snafu(display("Failed to remove {}", path.display()))]
    RemoveCmdline { path: PathBuf, source: io::Error },
}

/// What a successful boot did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootOutcome {
    /// The set that booted.
    pub set: SetSelect,
    /// Its BOOT partition number and PARTUUID.
    pub boot_partition: u32,
    pub boot_partuuid: Guid,
    /// The BOOT entry's bits before and after the bootloader ran (tries decremented when there were any).
    pub before: GptPrio,
    pub after: GptPrio,
    /// The kernel command line written to `<sysroot>/proc/cmdline`.
    pub cmdline: String,
    /// What the booted ROOT image says it is, on a node with OS images installed (`None` on a bare disk).
    pub release: Option<BootedRelease>,
}

/// The release a boot came up in, read from the verified ROOT image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootedRelease {
    /// `VERSION_ID` from the ROOT image's `/usr/lib/os-release`.
    pub version_id: String,
    /// `VARIANT_ID` from the same file.
    pub variant_id: String,
    /// The dm-verity root hash the BOOT image named and ROOT matched.
    pub root_hash: String,
    /// The whole os-release text.
    pub os_release: String,
}

/// What the bootloader chose.
struct Loaded {
    pick: BootPick,
    set: SetSelect,
    /// The ROOT partition's size in 512-byte sectors, for the `dm-mod.create` line.
    root_sectors: u64,
}

/// The result of running `signpost` against the node in-process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignpostRun {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// A simulated node.
#[derive(Clone, Debug)]
pub struct Node {
    sysroot: PathBuf,
    disk: PathBuf,
}

impl Node {
    /// An existing sysroot and OS disk (image file or device).
    pub fn new(sysroot: impl Into<PathBuf>, disk: impl Into<PathBuf>) -> Self {
        Self {
            sysroot: sysroot.into(),
            disk: disk.into(),
        }
    }

    /// A fresh node in `dir`: `dir/sysroot/` and `dir/disk.img` with the default layout. Not booted yet.
    pub fn create(dir: &Path) -> Result<Self, NodeError> {
        Self::create_with(dir, &DiskBuilder::new()).map(|(node, _)| node)
    }

    /// A fresh node in `dir` whose disk `builder` builds.
    pub fn create_with(
        dir: &Path,
        builder: &DiskBuilder,
    ) -> Result<(Self, FixtureDisk), NodeError> {
        let sysroot = dir.join("sysroot");
        fs::create_dir_all(&sysroot).context(CreateDirSnafu { path: &sysroot })?;
        let disk = builder
            .build(dir.join("disk.img"))
            .context(BuildDiskSnafu)?;
        Ok((Self::new(sysroot, &disk.path), disk))
    }

    pub fn sysroot(&self) -> &Path {
        &self.sysroot
    }

    pub fn disk(&self) -> &Path {
        &self.disk
    }

    /// The same node with its disk reached through another path (e.g. a loop device over the image).
    #[must_use]
    pub fn with_disk(&self, disk: impl Into<PathBuf>) -> Self {
        Self::new(&self.sysroot, disk)
    }

    /// How the updater's binaries find this node's files and disk.
    pub fn location(&self) -> Location {
        Location::new(&self.sysroot).disk(&self.disk)
    }

    pub fn cmdline_path(&self) -> PathBuf {
        self.location().cmdline_path()
    }

    /// Boots the node (see the module documentation).
    pub fn boot(&self) -> Result<BootOutcome, BootError> {
        let cmdline_path = self.cmdline_path();
        // Whatever ran before is gone; until the bootloader has picked a set no kernel command line exists.
        match fs::remove_file(&cmdline_path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => return Err(source).context(RemoveCmdlineSnafu { path: cmdline_path }),
        }
        // `/run` is a tmpfs: a boot starts with it empty (thar-be-updates' status, the API socket, lock files).
        let run = self.sysroot.join("run");
        match fs::remove_dir_all(&run) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => return Err(source).context(ClearRunSnafu { path: run }),
        }
        let loaded = self.run_bootloader()?;
        let cmdline = grub_kernel_line(
            loaded.pick.number,
            loaded.pick.partuuid,
            loaded.root_sectors,
        );
        write_cmdline(&cmdline_path, &cmdline)?;
        let release = if self.has_images() {
            Some(self.verify_and_take_release(loaded.pick.number)?)
        } else {
            None
        };
        // Later steps run here, in the booted set: migrator, the health checks, mark-successful-boot.
        Ok(BootOutcome {
            set: loaded.set,
            boot_partition: loaded.pick.number,
            boot_partuuid: loaded.pick.partuuid,
            before: loaded.pick.before,
            after: loaded.pick.after,
            cmdline,
            release,
        })
    }

    /// The marker that says this node's disk carries real OS images, so that its boot checks them.
    fn images_marker(&self) -> PathBuf {
        self.sysroot.join("etc/fixture-node/images-installed")
    }

    /// Whether [`Node::install`] put OS images on this node's disk.
    pub fn has_images(&self) -> bool {
        self.images_marker().exists()
    }

    /// Writes a release's images into `set` (BOOT, ROOT, HASH: the set's BOOT entry and the two after it, as in
    /// Bottlerocket's layout), flushed, and from then on makes every boot verify the booted set's images. A fresh
    /// Bottlerocket disk holds its first release in set A.
    pub fn install(&self, set: SetSelect, images: &OsImages) -> Result<(), NodeError> {
        let disk = OsDisk::open(&self.disk).context(InstallDiskSnafu)?;
        let table = disk.read_table().context(InstallDiskSnafu)?;
        let boot_number = table
            .iter()
            .filter(|(_, entry)| entry.partition_type_guid == BOTTLEROCKET_BOOT.disk_bytes())
            .nth(set.index())
            .map(|(number, _)| number)
            .context(NoSuchSetSnafu { set })?;
        for (offset, what, image) in [
            (0, "BOOT", &images.boot),
            (1, "ROOT", &images.root),
            (2, "HASH", &images.hash),
        ] {
            let number = boot_number + offset;
            let target = disk.partition(&table, number).context(InstallDiskSnafu)?;
            let mut file = target.open_write().context(InstallDiskSnafu)?;
            io::Write::write_all(&mut file, image).context(InstallWriteSnafu { what, number })?;
            file.sync_all().context(InstallDiskSnafu)?;
        }
        let marker = self.images_marker();
        if let Some(dir) = marker.parent() {
            fs::create_dir_all(dir).context(MarkerSnafu { path: &marker })?;
        }
        fs::write(&marker, b"").context(MarkerSnafu { path: &marker })
    }

    /// dm-verity and the root filesystem: the BOOT image names the root hash, ROOT must match HASH under it, and
    /// then the node's os-release and updog root.json are the booted ROOT's.
    fn verify_and_take_release(&self, boot_number: u32) -> Result<BootedRelease, BootError> {
        let disk = OsDisk::open(&self.disk).context(DiskSnafu)?;
        let table = disk.read_table().context(DiskSnafu)?;
        let scratch = tempfile::tempdir().context(ReadPartitionSnafu {
            number: boot_number,
        })?;
        let copy_out = |number: u32, name: &str| -> Result<PathBuf, BootError> {
            let target = disk.partition(&table, number).context(DiskSnafu)?;
            let mut source = target.open_read().context(DiskSnafu)?;
            let path = scratch.path().join(name);
            let mut out = fs::File::create(&path).context(ReadPartitionSnafu { number })?;
            io::copy(&mut source, &mut out).context(ReadPartitionSnafu { number })?;
            Ok(path)
        };
        let (root_number, hash_number) = (boot_number + 1, boot_number + 2);
        let boot = copy_out(boot_number, "boot.img")?;
        let root = copy_out(root_number, "root.img")?;
        let hash = copy_out(hash_number, "hash.img")?;

        let root_hash = images::read_ext4_file(&boot, ROOT_HASH_FILE).context(NoRootHashSnafu {
            number: boot_number,
        })?;
        let root_hash = String::from_utf8_lossy(&root_hash).trim().to_string();
        let verified = images::verity_verify(&root, &hash, &root_hash).context(ImageToolsSnafu)?;
        ensure!(
            verified,
            VerityMismatchSnafu {
                root: root_number,
                hash: hash_number,
                root_hash,
            }
        );

        let mut taken = Vec::new();
        for (inside, on_node) in [
            ("/usr/lib/os-release", "usr/lib/os-release"),
            ("/usr/share/updog/root.json", "usr/share/updog/root.json"),
        ] {
            let data =
                images::read_ext4_file(&root, inside).context(RootFileSnafu { path: inside })?;
            let path = self.sysroot.join(on_node);
            if let Some(dir) = path.parent() {
                fs::create_dir_all(dir).context(WriteSysrootSnafu { path: &path })?;
            }
            fs::write(&path, &data).context(WriteSysrootSnafu { path: &path })?;
            taken.push(data);
        }
        let os_release = String::from_utf8_lossy(&taken[0]).into_owned();
        let release = OsRelease::parse(&os_release, Path::new("/usr/lib/os-release"))
            .context(BadOsReleaseSnafu)?;
        let field = |key: &str| release.get(key).unwrap_or_default().to_string();
        Ok(BootedRelease {
            version_id: field("VERSION_ID"),
            variant_id: field("VARIANT_ID"),
            root_hash,
            os_release,
        })
    }

    /// GRUB: the rule, the table rewritten when a try was spent, and the set and ROOT size the kernel line needs.
    fn run_bootloader(&self) -> Result<Loaded, BootError> {
        let disk = OsDisk::open(&self.disk).context(DiskSnafu)?;
        let mut table = disk.read_table().context(DiskSnafu)?;
        let pick = boot_rule::apply(&mut table).context(NoBootableSetSnafu { disk: &self.disk })?;
        if pick.spent_a_try() {
            // GRUB writes the spent try whatever is left to boot: no bootability guard here.
            disk.write_table_as_bootloader(&mut table)
                .context(DiskSnafu)?;
        }
        let boot_index = table
            .iter()
            .filter(|(_, entry)| entry.partition_type_guid == BOTTLEROCKET_BOOT.disk_bytes())
            .position(|(number, _)| number == pick.number);
        let set = match boot_index {
            Some(0) => SetSelect::A,
            Some(1) => SetSelect::B,
            _ => {
                return UnknownBootPartitionSnafu {
                    number: pick.number,
                }
                .fail();
            }
        };
        // upstream's grub.cfg names ROOT as the partition after BOOT (PARTNROFF=1).
        let root_number = pick.number + 1;
        let root = disk
            .partition(&table, root_number)
            .context(NoRootPartitionSnafu {
                number: root_number,
            })?;
        Ok(Loaded {
            pick,
            set,
            root_sectors: root.len() / 512,
        })
    }

    /// Runs `signpost --sysroot SYSROOT --disk DISK ARGS…` in-process (the same code as the binary).
    pub fn signpost(&self, args: &[&str]) -> SignpostRun {
        let sysroot = self.sysroot.to_string_lossy().into_owned();
        let disk = self.disk.to_string_lossy().into_owned();
        let mut argv = vec!["signpost", "--sysroot", &sysroot, "--disk", &disk];
        argv.extend_from_slice(args);
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        let code = signpost::cli::main_with(argv, &mut stdout, &mut stderr);
        SignpostRun {
            code,
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        }
    }
}

/// Upstream GRUB's kernel line for the BOOT partition `number`: `dm-mod.create` names ROOT and HASH by offset from
/// the BOOT PARTUUID. The verity table's hash parameters follow when the boot checks dm-verity.
fn grub_kernel_line(number: u32, boot_partuuid: Guid, root_sectors: u64) -> String {
    format!(
        "BOOT_IMAGE=(hd0,gpt{number})/vmlinuz console=ttyS0 root=/dev/dm-0 rootwait ro \
         dm-mod.create=\"root,,,ro,0 {root_sectors} verity 1 {}\"\n",
        boot_partition_args(boot_partuuid)
    )
}

fn write_cmdline(path: &Path, cmdline: &str) -> Result<(), BootError> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).context(WriteCmdlineSnafu { path })?;
    }
    fs::write(path, cmdline).context(WriteCmdlineSnafu { path })
}
