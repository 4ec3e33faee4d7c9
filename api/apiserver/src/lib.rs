//! apiserver: the node's API, HTTP/1.1 over a unix socket (`<sysroot>/run/api.sock`), wire-compatible with
//! Bottlerocket's (the contract is the repository's `docs/api.md`).
//!
//! - [`config`]: the command line and `/etc/apiserver.toml`;
//! - [`socket`]: the socket, born 0600; a stale one replaced, anything else at its path refused;
//! - [`server`]: the accept loop (hyper http1 over tokio), graceful exit on SIGTERM/SIGINT;
//! - [`router`]: the peer-uid check, routes, the 1 MiB body limit, query checks, the handlers;
//! - [`settings`]: the known settings, PATCH validation, keys ↔ nested JSON;
//! - [`store`]: the datastore under its in-process turn and the machine-wide datastore lock (migrator's);
//! - [`render`]: `commit_and_apply` → `/etc/thar-be-updates.toml` and `/etc/updog.toml`;
//! - [`updates`]: the update actions through thar-be-updates, the status file, the reboot command;
//! - [`os`]: `GET /os` from os-release;
//! - [`error`]: start errors, and request errors with their HTTP status.

pub mod config;
pub mod error;
pub mod os;
pub mod render;
pub mod router;
pub mod server;
pub mod settings;
pub mod socket;
pub mod store;
pub mod updates;

pub use config::{Cli, ServerConfig};
pub use error::{RequestError, StartError};
pub use server::run;
