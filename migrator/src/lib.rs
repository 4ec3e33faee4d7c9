//! migrator: moves a node's datastore to the version of the OS being booted, compatible with
//! Bottlerocket's `migrator` (same flags, exit codes, link layout and migration interface).
//!
//! - [`chain`]: the `current → vX → vX.Y → vX.Y.Z → vX.Y.Z_<rand>` links, reading the version,
//!   the rename-based flip, creating a datastore as storewolf does;
//! - [`repo`]: the locally cached TUF repository, loaded through tough (expiry not enforced for
//!   offline boots; signatures and hashes always);
//! - [`sealed`]: running a verified migration from a sealed memfd (nothing executable on disk);
//! - [`supervise`]: one migration process to its end: own process group, timeout, output read
//!   without waiting on descendants, the whole group killed;
//! - [`run`]: [`Migrator`]: lock, plan, run, make durable, flip, collect garbage; and the dry run;
//! - [`dry_run`]: the report of what a migration would change;
//! - [`gc`]: removing old datastore copies, keeping the current and the previous one (#2589);
//! - [`lock`]: one migrator at a time; [`killpoint`]: the crash-test hook;
//! - [`cli`]: the command line.

pub mod chain;
pub mod cli;
pub mod dry_run;
pub mod error;
pub mod gc;
pub mod killpoint;
pub mod lock;
pub mod repo;
pub mod run;
pub mod sealed;
pub mod supervise;

pub use dry_run::{Change, DryRunReport, Place};
pub use error::{Error, Result};
pub use gc::GcReport;
pub use run::{MigrationPlan, Migrator, Outcome};
