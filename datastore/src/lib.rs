//! The node's settings store, file-for-file compatible with Bottlerocket's `datastore` crate
//! (`FilesystemDataStore`):
//!
//! - [`key`]: dotted key names with quoted segments, checked as upstream (characters, length,
//!   one segment for metadata) and against the file names they become;
//! - [`encoding`]: key segment ↔ file name (percent-encoding of all but alphanumerics, `_`, `-`);
//! - [`filesystem`]: [`FilesystemDataStore`]: `live/` and `pending/<tx>/`, data and metadata
//!   files, get/set/unset/list by prefix, transactions and their commit;
//! - `commit`: a commit is all or nothing: the next live tree is built beside `live/` (unchanged
//!   files hard-linked) and exchanged with it by one `renameat2(RENAME_EXCHANGE)`;
//! - [`killpoint`]: with the `test-hooks` feature, `DATASTORE_KILL_AT=<step>` kills a commit at
//!   that step (the crate's own tests);
//! - [`value`]: one JSON document per file, without a trailing newline;
//! - every write is nodeio's atomic write: a temporary file renamed over the key's file
//!   (fsynced by default, or made durable at once with [`sync_tree`] under
//!   [`Durability::Deferred`]), so no reader and no crash ever sees half a value.
//!
//! ```
//! use datastore::{Committed, FilesystemDataStore, Key, KeyType};
//!
//! let dir = tempfile::tempdir()?;
//! let store = FilesystemDataStore::create(dir.path().join("v1.0.0_0123456789abcdef"))?;
//! let motd = Key::new(KeyType::Data, "settings.motd")?;
//! store.set_key(&motd, "\"hello\"", &Committed::pending("default"))?;
//! store.commit_transaction("default")?;
//! assert_eq!(store.get_key(&motd, &Committed::Live)?.as_deref(), Some("\"hello\""));
//! assert!(store.set_key(&motd, "hello", &Committed::Live).is_err()); // not JSON
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod atomic;
mod commit;
pub mod encoding;
pub mod error;
pub mod filesystem;
pub mod key;
pub mod killpoint;
pub mod value;

pub use atomic::{sync_dir, sync_tree};
pub use error::{Error, Result};
pub use filesystem::{Committed, DEFAULT_TRANSACTION, FilesystemDataStore};
pub use key::{KEY_SEPARATOR, Key, KeyType, MAX_FILE_NAME_LENGTH, MAX_KEY_NAME_LENGTH};
pub use nodeio::{Durability, random_suffix};
