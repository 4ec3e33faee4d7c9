//! A test hook: with the `test-hooks` feature, `MIGRATOR_KILL_AT=<step>` makes migrator SIGKILL
//! itself when it reaches that step, so tests can interrupt every step and check that `current`
//! still resolves to a complete datastore and that a rerun completes.
//!
//! Only the `migrator-kill-points` binary (built with the feature, for the tests) reads the
//! variable. The released `migrator` never does, with or without the feature: its `main` passes
//! [`KillPoints::none`]. Without the feature (a plain `cargo build`), [`KillPoints`] cannot even
//! be told to kill: it is an empty type whose checkpoints only log, and the variable's name is
//! not in the binary.
//!
//! The steps, in order (`STEPS`; `N` counts migrations from 1):
//! `locked`, `planned`, `migration-started-N` (the migration is running; it dies with migrator),
//! `migration-done-N`, `synced` (the final copy is durable and records its source),
//! `flip-patch`, `flip-minor`, `flip-major`, `flip-current` (after each link rename), `flipped`
//! (after the directory fsync), `gc-removed-N` (after the N-th entry garbage collection removed).

/// The environment variable naming the step to die at.
#[cfg(feature = "test-hooks")]
pub const KILL_AT_ENV: &str = "MIGRATOR_KILL_AT";

/// The steps a run passes, with `N` standing for a migration or removal count.
#[cfg(feature = "test-hooks")]
pub const STEPS: [&str; 11] = [
    "locked",
    "planned",
    "migration-started-N",
    "migration-done-N",
    "synced",
    "flip-patch",
    "flip-minor",
    "flip-major",
    "flip-current",
    "flipped",
    "gc-removed-N",
];

/// Where migrator may be told to die (nowhere, without the `test-hooks` feature).
#[derive(Debug, Clone, Default)]
pub struct KillPoints {
    #[cfg(feature = "test-hooks")]
    at: Option<String>,
}

impl KillPoints {
    /// Never kills.
    #[must_use]
    pub fn none() -> Self {
        Self::default()
    }

    /// Kills at the step named by [`KILL_AT_ENV`], if set.
    #[cfg(feature = "test-hooks")]
    pub fn from_env() -> Self {
        Self {
            at: std::env::var(KILL_AT_ENV).ok().filter(|s| !s.is_empty()),
        }
    }

    /// Kills at `step`.
    #[cfg(feature = "test-hooks")]
    pub fn at(step: impl Into<String>) -> Self {
        Self {
            at: Some(step.into()),
        }
    }

    /// Marks reaching `step`; SIGKILLs this process if it is the chosen one.
    pub fn checkpoint(&self, step: &str) {
        log::debug!("Step {step}");
        #[cfg(feature = "test-hooks")]
        if self.at.as_deref() == Some(step) {
            log::warn!("{KILL_AT_ENV}={step}: killing migrator now");
            if let Err(e) = rustix::process::kill_process(
                rustix::process::getpid(),
                rustix::process::Signal::KILL,
            ) {
                log::error!("Failed to SIGKILL myself: {e}; aborting instead");
            }
            // SIGKILL cannot be caught: this is reached only if the kill failed.
            std::process::abort();
        }
    }
}
