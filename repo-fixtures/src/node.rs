//! The simulated node: a sysroot directory plus an OS disk with Bottlerocket's layout, and its boot.
//!
//! [`Node::boot`] does what the firmware and GRUB do, then what the kernel leaves behind:
//!
//! 1. the bootloader rule, [`signpost::boot_rule`] (GRUB's `gptprio.next`): pick the BOOT partition, spend one of
//!    its tries and rewrite the GPT (durably, as signpost writes it) when it had any;
//! 2. write `<sysroot>/proc/cmdline` as upstream GRUB's kernel line, naming the set by its BOOT partition's
//!    PARTUUID ([`signpost::cmdline::boot_partition_args`]), which is how signpost tells the active set.
//!
//! No pick means "boot failed: no bootable partition set", and `proc/cmdline` is removed (no kernel runs).
//! Later steps (checking ROOT against its dm-verity hash, `os-release` from the ROOT image, migrator, the health
//! checks and `signpost mark-successful-boot`) join [`Node::boot`] after step 2 and report through
//! [`BootOutcome`]; a failed step leaves the boot unmarked, so the next boot falls back.
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
use signpost::boot_rule::{self, BootPick};
use signpost::cmdline::boot_partition_args;
use signpost::guid::BOTTLEROCKET_BOOT;
use signpost::{GptPrio, Guid, Location, OsDisk, SetSelect};
use snafu::{OptionExt, ResultExt, Snafu};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

#[derive(Debug, Snafu)]
pub enum NodeError {
    #[snafu(display("Failed to create {}", path.display()))]
    CreateDir { path: PathBuf, source: io::Error },

    #[snafu(display("Failed to build the node's disk"))]
    BuildDisk { source: DiskError },
}

#[derive(Debug, Snafu)]
pub enum BootError {
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

    #[snafu(display("Failed to write {}", path.display()))]
    WriteCmdline { path: PathBuf, source: io::Error },

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
        let loaded = self.run_bootloader()?;
        let cmdline = grub_kernel_line(
            loaded.pick.number,
            loaded.pick.partuuid,
            loaded.root_sectors,
        );
        write_cmdline(&cmdline_path, &cmdline)?;
        // Later steps run here, in the booted set: the dm-verity check of ROOT, os-release from ROOT, migrator,
        // the health checks, mark-successful-boot.
        Ok(BootOutcome {
            set: loaded.set,
            boot_partition: loaded.pick.number,
            boot_partuuid: loaded.pick.partuuid,
            before: loaded.pick.before,
            after: loaded.pick.after,
            cmdline,
        })
    }

    /// GRUB: the rule, the table rewritten when a try was spent, and the set and ROOT size the kernel line needs.
    fn run_bootloader(&self) -> Result<Loaded, BootError> {
        let disk = OsDisk::open(&self.disk).context(DiskSnafu)?;
        let mut table = disk.read_table().context(DiskSnafu)?;
        let pick = boot_rule::apply(&mut table).context(NoBootableSetSnafu { disk: &self.disk })?;
        if pick.spent_a_try() {
            disk.write_table(&mut table).context(DiskSnafu)?;
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
