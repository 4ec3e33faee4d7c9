//! A disk image on a loop device (root only), detached on drop.
//!
//! This kernel parses no partition tables (no `CONFIG_EFI_PARTITION`), so `losetup -P` gives no partition nodes:
//! [`LoopDevice::add_partition_nodes`] runs `partx -a`, which parses the GPT in user space and adds
//! `/dev/loopNpK` with BLKPG. Any BLKRRPART (`blockdev --rereadpt`, an `sgdisk` write, `losetup -P`) removes them
//! again, which is why nothing here or in signpost re-reads the table.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use repo_fixtures::{disk::DiskBuilder, loop_device::LoopDevice};
//! let disk = DiskBuilder::new().build("/tmp/disk.img")?;
//! let mut device = LoopDevice::attach(&disk.path)?;
//! device.add_partition_nodes(disk.partitions.len() as u32)?;
//! // /dev/loopNp1 .. /dev/loopNp13 exist until `device` is dropped.
//! # Ok(()) }
//! ```

use crate::tool::{ToolRunError, run_tool};
use snafu::{Snafu, ensure};
use std::io::Write;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

/// How long devtmpfs may take to show the nodes `partx -a` added.
const NODE_TIMEOUT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(10);

#[derive(Debug, Snafu)]
pub enum LoopError {
    #[snafu(context(false), display("{source}"))]
    Run { source: ToolRunError },

    #[snafu(display("`losetup --show` printed {output:?}, not a loop device"))]
    NoDevice { output: String },

    #[snafu(display("{} did not appear within {NODE_TIMEOUT:?} after `partx -a`", node.display()))]
    NodeMissing { node: PathBuf },
}

/// An attached loop device.
#[derive(Debug)]
pub struct LoopDevice {
    device: PathBuf,
    partitions_added: bool,
}

impl LoopDevice {
    /// `losetup -f --show IMAGE`.
    pub fn attach(image: impl AsRef<Path>) -> Result<Self, LoopError> {
        let image = image.as_ref().to_string_lossy().into_owned();
        let output = run_tool("losetup", &["-f", "--show", &image])?;
        let printed = String::from_utf8_lossy(&output.stdout).trim().to_string();
        ensure!(
            printed.starts_with("/dev/loop"),
            NoDeviceSnafu { output: printed }
        );
        Ok(Self {
            device: PathBuf::from(printed),
            partitions_added: false,
        })
    }

    /// The loop device, e.g. `/dev/loop3`.
    pub fn path(&self) -> &Path {
        &self.device
    }

    /// The node partition `number` gets from `partx -a`, e.g. `/dev/loop3p4`.
    pub fn partition_node(&self, number: u32) -> PathBuf {
        PathBuf::from(format!("{}p{number}", self.device.display()))
    }

    /// `partx -a`, then waits until the nodes of partitions 1..=`count` exist.
    pub fn add_partition_nodes(&mut self, count: u32) -> Result<(), LoopError> {
        run_tool("partx", &["-a", &self.device.to_string_lossy()])?;
        self.partitions_added = true;
        let deadline = Instant::now() + NODE_TIMEOUT;
        for number in 1..=count {
            let node = self.partition_node(number);
            while !is_block_device(&node) {
                ensure!(Instant::now() < deadline, NodeMissingSnafu { node });
                thread::sleep(POLL);
            }
        }
        Ok(())
    }

    /// `partx -d`: removes the partition nodes.
    pub fn remove_partition_nodes(&mut self) -> Result<(), LoopError> {
        run_tool("partx", &["-d", &self.device.to_string_lossy()])?;
        self.partitions_added = false;
        Ok(())
    }

    /// Whether partition `number`'s node exists.
    pub fn has_partition_node(&self, number: u32) -> bool {
        is_block_device(&self.partition_node(number))
    }
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        let device = self.device.to_string_lossy().into_owned();
        let mut results = Vec::new();
        if self.partitions_added {
            results.push(run_tool("partx", &["-d", &device]).map(drop));
        }
        results.push(run_tool("losetup", &["-d", &device]).map(drop));
        for result in results {
            if let Err(e) = result {
                // Drop cannot fail; a leaked loop device must at least be visible. Nothing more can be done if
                // stderr itself is gone.
                let _ = writeln!(std::io::stderr(), "repo-fixtures: detaching {device}: {e}");
            }
        }
    }
}

fn is_block_device(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.file_type().is_block_device())
}
