//! The updater's test world (DESIGN.md §7).
//!
//! - [`http`]: an in-process HTTP/1.1 server over a directory that injects faults per request (drop at byte N,
//!   stall, corrupt a byte, 4xx/5xx, refuse Range, endless body, rate limit) and records every request.
//! - [`nginx`]: the real thing, nginx on a loopback port from a private config, stopped on drop.
//! - [`require`]: guards for tests that need a system tool or root (skip locally, fail loudly in CI).
//! - [`cli`]: the `repo-fixtures` command.

pub mod cli;
pub mod http;
pub mod nginx;
pub mod require;
