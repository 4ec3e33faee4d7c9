//! updog, the node side of the updater (Bottlerocket-compatible): checking for updates and writing
//! them into the inactive partition set.
//!
//! - [`sysroot`]: the node's well-known paths under `--sysroot`;
//! - [`config`]: `/etc/updog.toml`; [`release`]: `/usr/lib/os-release` and the build's arch;
//! - [`transport`], [`tuf`]: loading the TUF repository through tough with upstream's query
//!   parameters, persisted trust and classified errors;
//! - [`select`]: which update a node takes (variant, arch, max_version, waves, `--image`,
//!   `version_lock`, the regret path), as pure functions;
//! - [`check`]: `updog check-update`; [`cli`]: the command line; [`lock`]: one updog at a time;
//! - [`update`]: `update-image`, `update`, `update-apply`, `update-revert`; [`fetch`]: the download
//!   transport (Range resume, stall timeout); [`write`]: streaming an image into a partition and
//!   reading it back; [`lz4`]: the resumable lz4 frame decoder it uses; [`checkpoint`]: the durable download
//!   checkpoint; [`progress`]: progress on a terminal or as JSON lines;
//! - [`signals`]: SIGTERM/SIGHUP deferred around marking the set valid and the reboot;
//! - [`health`]: `mark-successful-boot` (health checks, then the mark); [`records`]: the staged, pending and
//!   rolled-back versions under `/var/lib/updog`;
//! - [`conformance`]: the tuf-conformance client-under-test, over the same TUF loading code.
//!
//! `docs/updog.md` at the workspace root documents the commands, config, outputs and exit codes.

pub mod check;
pub mod checkpoint;
pub mod cli;
pub mod config;
pub mod conformance;
pub mod error;
pub mod fetch;
pub mod health;
pub mod lock;
pub mod logging;
pub mod lz4;
pub mod progress;
pub mod records;
pub mod release;
pub mod select;
pub mod signals;
pub mod sysroot;
pub mod transport;
pub mod tuf;
pub mod update;
pub mod write;

pub use error::{Error, Result};
