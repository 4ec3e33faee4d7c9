//! The updater's test world.
//!
//! - [`http`]: an in-process HTTP/1.1 server over a directory that injects faults per request (drop at byte N,
//!   stall, corrupt a byte, 4xx/5xx, refuse Range, endless body, rate limit) and records every request.
//! - [`nginx`]: the real thing, nginx on a loopback port from a private config, stopped on drop.
//! - [`require`]: guards for tests that need a system tool or root (skip locally, fail loudly in CI).
//! - [`keys`], [`chain`]: the fixed fixture keys and the good release chain 1.0.0 → 1.1.0 → 1.2.0 (two variants,
//!   two arches, waves, migrations), published through tuftool-config at a fixed clock.
//! - [`attacks`], [`tuf_edit`]: attack repositories, each the good chain with one thing changed, and the rejection
//!   a TUF client must give.
//! - [`verify`]: the client side: load a fixture through tough, read targets, play an attack.
//! - [`lifecycle`]: the main job, a whole update lifecycle on a simulated node with the real binaries.
//! - [`cli`]: the `repo-fixtures` command.
//! - [`disk`], [`loop_device`]: Bottlerocket's disk layout on an image file, and (as root) on a loop device with
//!   partition nodes.
//! - [`gpt_tools`]: `cgpt` and `sgdisk` as independent readers of the GPT bits.
//! - [`tool`]: running a system tool and reporting its failure.
//! - [`node`]: the simulated node (sysroot + disk) and its boot (the bootloader rule, `proc/cmdline`).
//! - [`node_dir`]: a simulated node kept in a directory for `repo-fixtures node create|boot|status|serve`.

pub mod api;
pub mod attacks;
pub mod boot_states;
pub mod chain;
pub mod cli;
pub mod disk;
pub mod gpt_tools;
pub mod http;
pub mod images;
pub mod keys;
pub mod lifecycle;
pub mod loop_device;
pub mod nginx;
pub mod node;
pub mod node_dir;
pub mod require;
pub mod tool;
pub mod tuf_edit;
pub mod verify;
