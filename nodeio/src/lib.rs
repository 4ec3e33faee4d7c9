//! nodeio: the node's low-level file helpers, written once and used by every crate.
//!
//! - [`os_release`]: parse `/usr/lib/os-release` (`KEY=VALUE` lines, shell-style quoting), with errors naming the
//!   file, the line and the problem.

pub mod os_release;
