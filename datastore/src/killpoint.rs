//! A test hook: with the `test-hooks` feature, `DATASTORE_KILL_AT=<step>` makes a commit SIGKILL
//! its own process when it reaches that step, so `tests/commit_crash.rs` can interrupt every step
//! of [`crate::FilesystemDataStore::commit_transaction`] and check that `live/` is the old tree or
//! the new one, never a mix. Without the feature (every build but the datastore's own tests) a
//! checkpoint only logs, and the variable's name is not in the binary.
//!
//! The steps, in order ([`COMMIT_STEPS`]): `created` (the empty `live.new-<rand>`), `linked`
//! (unchanged files hard-linked), `written` (the transaction's files written, not yet fsynced),
//! `synced` (the new tree durable), `exchanged` (after the `RENAME_EXCHANGE`), `durable` (the
//! version directory fsynced), `transaction-removed`, `done` (the old tree removed).

/// The environment variable naming the step to die at.
#[cfg(feature = "test-hooks")]
pub const KILL_AT_ENV: &str = "DATASTORE_KILL_AT";

/// The steps a commit passes, in order.
#[cfg(feature = "test-hooks")]
pub const COMMIT_STEPS: [&str; 8] = [
    "created",
    "linked",
    "written",
    "synced",
    "exchanged",
    "durable",
    "transaction-removed",
    "done",
];

/// Marks reaching `step` of a commit; with the `test-hooks` feature, SIGKILLs this process if
/// [`KILL_AT_ENV`] names it.
pub(crate) fn checkpoint(step: &str) {
    log::trace!("Commit step {step}");
    #[cfg(feature = "test-hooks")]
    if std::env::var(KILL_AT_ENV).is_ok_and(|at| at == step) {
        log::warn!("{KILL_AT_ENV}={step}: killing this process now");
        if let Err(e) =
            rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::KILL)
        {
            log::error!("Failed to SIGKILL myself: {e}; aborting instead");
        }
        // SIGKILL cannot be caught: this is reached only if the kill failed.
        std::process::abort();
    }
}
