//! thar-be-updates: the update dispatcher behind the API (Bottlerocket-compatible). Each run takes one command
//! (`refresh`, `prepare`, `activate`, `deactivate`), returns as soon as the command is accepted or refused (exit 0,
//! or 64–67 as upstream), and finishes the command in a detached child that records the outcome in
//! `/run/cache/thar-be-updates/status.json`.
//!
//! - [`cli`]: the command line; [`detach`]: fork-and-return (the parent and the detached child, and the verdict
//!   between them);
//! - [`run`]: the child's work under the lock; [`transition`]: the state machine and recovery from a command
//!   that died;
//! - [`command`]: the commands, through updog's library; [`progress`]: a prepare's progress in the status;
//! - [`status`]: status.json; [`config`]: `/etc/thar-be-updates.toml`; [`node`]: the node's paths and boot state.
//!
//! `api/thar-be-updates/README.md` and `docs/api.md` document the CLI, the files and the status JSON.

pub mod cli;
pub mod command;
pub mod config;
pub mod detach;
pub mod error;
pub mod node;
pub mod progress;
pub mod run;
pub mod status;
pub mod transition;

pub use error::{Error, Result};
