//! The API's command-line client, upstream's interface flag for flag: `raw` (the default), `get`, `set`,
//! `apply`, `update check|apply|cancel`, `reboot`, over HTTP/1.1 on the API's unix socket.
//!
//! [`client`] talks to the socket; [`update`] makes the update actions synchronous (upstream's
//! `wait_request`); [`set`], [`get`] and [`apply`] shape settings; [`cli`] parses the command line and runs it.

pub mod apply;
pub mod cli;
pub mod client;
pub mod get;
pub mod reboot;
pub mod set;
pub mod update;

pub use client::ApiClient;
