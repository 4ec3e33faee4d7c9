//! nodeio: the node's low-level file helpers, written once and used by every crate.
//!
//! - [`atomic`]: replace a file atomically (temporary file, fsync, rename, fsync of the directory), never through a
//!   link.
//! - [`sync`]: fsync a directory or a whole tree.
//! - [`lock`]: exclusive locks that follow no links, one per OS disk, datastore or state directory, naming their
//!   holder.
//! - [`read`]: read a small text file (config, os-release, cmdline) only if it is a regular file, up to a limit
//!   (optionally refusing a symlink at the path), or the bytes of a small file with each refusal typed.
//! - [`os_release`]: parse `/usr/lib/os-release` (`KEY=VALUE` lines, shell-style quoting), with errors naming the
//!   file, the line and the problem.

pub mod atomic;
pub mod lock;
pub mod os_release;
pub mod read;
pub mod sync;

pub use atomic::{
    AtomicWrite, AtomicWriteError, Durability, Existing, random_suffix, write_atomically,
};
pub use lock::{Lock, LockError, machine_lock_dir};
pub use read::{
    SMALL_FILE_LIMIT, SmallReadError, read_small_file_nofollow, read_small_text_file,
    read_small_text_file_nofollow,
};
pub use sync::{SyncError, sync_dir, sync_tree};
