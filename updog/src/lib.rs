//! updog, the node side of the updater: the checking half (Bottlerocket-compatible).
//!
//! - [`sysroot`]: the node's well-known paths under `--sysroot`;
//! - [`config`]: `/etc/updog.toml`; [`release`]: `/usr/lib/os-release` and the build's arch;
//! - [`transport`], [`tuf`]: loading the TUF repository through tough with upstream's query
//!   parameters, persisted trust and classified errors;
//! - [`select`]: which update a node takes (variant, arch, max_version, waves, `--image`,
//!   `version_lock`, the regret path), as pure functions;
//! - [`check`]: `updog check-update`; [`cli`]: the command line; [`lock`]: one updog at a time;
//! - [`conformance`]: the tuf-conformance client-under-test, over the same TUF loading code.
//!
//! `docs/updog.md` at the workspace root documents the commands, config, outputs and exit codes.

pub mod check;
pub mod cli;
pub mod config;
pub mod conformance;
pub mod error;
pub mod lock;
pub mod logging;
pub mod release;
pub mod select;
pub mod sysroot;
pub mod transport;
pub mod tuf;

pub use error::{Error, Result};
