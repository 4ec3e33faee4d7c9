//! signpost's errors: each names the disk, partition or file it is about, and for a refused command the
//! partition's bits. The message includes its cause, as upstream's do, so `signpost` prints just the message.

use crate::gptprio::GptPrio;
use crate::set::SetSelect;
use crate::sysfs::DevNum;
use snafu::Snafu;
use std::io;
use std::path::PathBuf;

#[derive(Debug, Snafu)]
#[snafu(visibility(pub(crate)))]
pub enum Error {
    // Finding the disk.
    #[snafu(display("Failed to stat {}: {source}", path.display()))]
    Stat { path: PathBuf, source: io::Error },

    #[snafu(display("{} is neither a block device nor a disk image file", path.display()))]
    NotADisk { path: PathBuf },

    #[snafu(display("Failed to read {}: {source}", path.display()))]
    SysfsRead { path: PathBuf, source: io::Error },

    #[snafu(display("Unexpected content {text:?} in {}", path.display()))]
    SysfsParse { path: PathBuf, text: String },

    #[snafu(display("Sysfs path {} has no device name", path.display()))]
    SysfsName { path: PathBuf },

    #[snafu(display(
        "Device {dev} is not a block device in {}/dev/block (pass the OS disk with --disk)",
        sysfs.display()
    ))]
    NoSysfsDevice { dev: DevNum, sysfs: PathBuf },

    #[snafu(display("Block device {} is not a partition (pass the OS disk with --disk)", device.display()))]
    RootNotPartition { device: PathBuf },

    #[snafu(display(
        "The filesystem at {} is on {}, not on the OS disk {}",
        sysroot.display(),
        root_disk.display(),
        disk.display()
    ))]
    RootOnOtherDisk {
        sysroot: PathBuf,
        root_disk: PathBuf,
        disk: PathBuf,
    },

    // The table.
    #[snafu(display("Failed to open {} for {what}: {source}", path.display()))]
    OpenDisk {
        path: PathBuf,
        what: &'static str,
        source: io::Error,
    },

    #[snafu(display("Failed to find GPT on device {}: {source}", path.display()))]
    ReadTable {
        path: PathBuf,
        source: gptman::Error,
    },

    /// A copy whose checksums match but whose geometry no reader should trust (see `table::read_table`).
    #[snafu(display("Refusing the GPT on {}: {problems}", path.display()))]
    UnsafeTable { path: PathBuf, problems: String },

    #[snafu(display(
        "Refusing to write the partition table of {}: afterwards no set would boot ({boot_entries}). The table is unchanged.",
        path.display()
    ))]
    WouldBeUnbootable { path: PathBuf, boot_entries: String },

    #[snafu(display(
        "The running set {set} ({partition}: {flags}) has not been marked successful: the other set is the only fallback, so it may not be {action}. Mark this boot successful (signpost mark-successful-boot) once the node is healthy, or reboot to fall back."
    ))]
    ActiveNotConfirmed {
        set: SetSelect,
        partition: String,
        flags: GptPrio,
        action: &'static str,
    },

    #[snafu(display("{source}"))]
    Lock { source: nodeio::LockError },

    #[snafu(display("The lock held for {} does not cover OS disk {}; take the disk's own lock before writing it", lock.display(), disk.display()))]
    WrongLock { lock: PathBuf, disk: PathBuf },

    #[snafu(display("Failed to write GPT onto device {}: {source}", path.display()))]
    WriteTable {
        path: PathBuf,
        source: gptman::Error,
    },

    #[snafu(display("Failed to get the {what} of {}: {source}", path.display()))]
    TableIo {
        path: PathBuf,
        what: &'static str,
        source: io::Error,
    },

    #[snafu(display("Failed to write the {copy} GPT onto device {}: {source}", path.display()))]
    WriteCopy {
        path: PathBuf,
        copy: &'static str,
        source: io::Error,
    },

    #[snafu(display("Failed to flush the {copy} GPT to device {}: {source}", path.display()))]
    SyncTable {
        path: PathBuf,
        copy: &'static str,
        source: io::Error,
    },

    #[snafu(display("The {copy} GPT written to {} does not read back: {source}", path.display()))]
    VerifyRead {
        path: PathBuf,
        copy: &'static str,
        source: gptman::Error,
    },

    #[snafu(display("The {copy} GPT read back from {} differs from the table written", path.display()))]
    VerifyMismatch { path: PathBuf, copy: &'static str },

    // Partitions.
    #[snafu(display("Failed to find partition {number} on {}", disk.display()))]
    PartitionNotFound { number: u32, disk: PathBuf },

    #[snafu(display("Failed to open partition device {}: {source}", path.display()))]
    OpenPartition { path: PathBuf, source: io::Error },

    #[snafu(display(
        "Partition node {} is {node_len} bytes but partition {number} is {table_len} bytes in the GPT (re-run partx)",
        node.display()
    ))]
    NodeSizeMismatch {
        node: PathBuf,
        node_len: u64,
        number: u32,
        table_len: u64,
    },

    #[snafu(display("Failed to flush partition {path}: {source}"))]
    SyncPartition { path: String, source: io::Error },

    // The sets.
    #[snafu(display("Failed to find {part_type} partition for set {set}"))]
    PartitionMissingFromSet {
        part_type: &'static str,
        set: SetSelect,
    },

    #[snafu(display("Failed to find BOTTLEROCKET_PRIVATE partition"))]
    PrivateMissing,

    // The active set.
    #[snafu(display("Failed to read {}: {source}", path.display()))]
    ReadCmdline { path: PathBuf, source: io::Error },

    #[snafu(display(
        "{reference} in {} is not a partition on {}",
        cmdline.display(),
        disk.display()
    ))]
    CmdlinePartuuidNotOnDisk {
        reference: String,
        cmdline: PathBuf,
        disk: PathBuf,
    },

    #[snafu(display("{} names partitions of both set A and set B", cmdline.display()))]
    CmdlineNamesBothSets { cmdline: PathBuf },

    #[snafu(display(
        "Active partition {partition} ({how}) not in either partition set on {}",
        disk.display()
    ))]
    ActiveNotInSet {
        partition: u32,
        disk: PathBuf,
        how: String,
    },

    #[snafu(display(
        "Cannot tell the active partition set: {} names no PARTUUID, and the root device of {} does not say: {source}",
        cmdline.display(),
        sysroot.display()
    ))]
    NoActiveSet {
        cmdline: PathBuf,
        sysroot: PathBuf,
        source: Box<Error>,
    },

    // Refused commands.
    #[snafu(display(
        "Inactive partition is not available: {} has a single partition set ({partition} {flags})",
        disk.display()
    ))]
    InactiveNotAvailable {
        disk: PathBuf,
        partition: String,
        flags: GptPrio,
    },

    #[snafu(display("Inactive partition {partition} is already marked for upgrade ({flags})"))]
    InactiveAlreadyMarked { partition: String, flags: GptPrio },

    #[snafu(display(
        "Inactive partition {partition} has not been marked valid for upgrade ({flags})"
    ))]
    InactiveNotValid { partition: String, flags: GptPrio },

    #[snafu(display("Inactive partition {partition} is not valid to roll back to ({flags})"))]
    InactiveInvalidRollback { partition: String, flags: GptPrio },

    // Output.
    #[snafu(display("Failed to write the output: {source}"))]
    Output { source: io::Error },

    #[snafu(display("Failed to serialize the status: {source}"))]
    SerializeStatus { source: serde_json::Error },
}
