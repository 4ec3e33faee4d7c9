//! signpost: the A/B partition state of a Bottlerocket-layout OS disk, in the GPT attribute bits GRUB's
//! `gptprio.next` reads; disk-compatible with Bottlerocket's `signpost`.
//!
//! - [`guid`]: partition type GUIDs and the mixed-endian GUID bytes.
//! - [`gptprio`]: the attribute bits (priority, tries left, successful, boot ever succeeded).
//! - [`boot_rule`]: the bootloader's choice (`gptprio.next`), the one place it lives.
//! - [`set`]: partition sets A and B.
//! - [`disk`], [`sysfs`], [`partition`]: finding the OS disk, and reading/writing one of its partitions through its
//!   node or at its offset.
//! - [`table`]: reading the GPT (falling back to the backup) and writing it durably.
//! - [`cmdline`]: the kernel command line's PARTUUIDs.
//! - [`state`]: load → change → write; the nine commands' effects.
//! - [`cli`]: the `signpost` command.
//!
//! ```no_run
//! use signpost::{Location, State};
//! // What an updater does: find the disk and the set that is not running, then write there.
//! let location = Location::new("/");
//! // One writer per disk: held until the set is marked valid.
//! let lock = location.lock_disk()?;
//! let mut state = State::load(&location)?;
//! state.clear_inactive()?;
//! state.write(&lock)?;
//! let inactive = state.inactive_set().expect("a dual-set disk");
//! let mut root = inactive.root.open_write()?;
//! // ... write the image into `root`, root.sync_all()?, read it back ...
//! state.mark_inactive_valid()?;
//! state.write(&lock)?;
//! # Ok::<(), signpost::Error>(())
//! ```

pub mod boot_rule;
pub mod cli;
pub mod cmdline;
pub mod disk;
pub mod error;
pub mod gptprio;
pub mod guid;
pub mod partition;
pub mod set;
pub mod state;
pub mod sysfs;
pub mod table;

pub use disk::{DiskKind, DiskLock, Location, OsDisk};
pub use error::Error;
pub use gptprio::GptPrio;
pub use guid::Guid;
pub use partition::{PartitionFile, PartitionTarget};
pub use set::{PartitionSet, SetSelect};
pub use state::State;
