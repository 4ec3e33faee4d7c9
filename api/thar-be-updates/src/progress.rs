//! Progress of a running prepare in status.json (beyond upstream): an updog [`ProgressSink`] that writes
//! `update_progress` (phase, image, bytes done and total) atomically, the first event of every phase and image at
//! once, then at most about once a second. `most_recent_command` is left alone: it stays the last finished command
//! until this one ends.

use crate::status::{StatusFile, UpdateStatus};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use updog::progress::{Phase, ProgressEvent, ProgressSink};

/// How often progress is written at most (besides the first event of each phase and image).
const INTERVAL: Duration = Duration::from_secs(1);

/// Writes progress into the status file.
#[derive(Debug)]
pub struct StatusProgress {
    file: StatusFile,
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    status: UpdateStatus,
    last_write: Option<Instant>,
    last_step: Option<(Phase, Option<String>)>,
}

fn phase_name(phase: Phase) -> &'static str {
    match phase {
        Phase::Migrations => "migrations",
        Phase::Write => "write",
        Phase::Verify => "verify",
    }
}

impl StatusProgress {
    /// Progress for `status` (whose `update_progress` is set: the command is running), written to `file`.
    #[must_use]
    pub fn new(file: StatusFile, status: UpdateStatus) -> Self {
        Self {
            file,
            inner: Mutex::new(Inner {
                status,
                last_write: None,
                last_step: None,
            }),
        }
    }

    /// The status with the last progress, to finish the command with.
    #[must_use]
    pub fn into_status(self) -> UpdateStatus {
        self.inner
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .status
    }
}

impl ProgressSink for StatusProgress {
    fn report(&self, event: &ProgressEvent<'_>) {
        let mut inner = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let step = (event.phase, event.image.map(str::to_string));
        let Some(progress) = inner.status.update_progress.as_mut() else {
            return;
        };
        progress.phase = Some(phase_name(event.phase).to_string());
        progress.image = step.1.clone();
        progress.bytes_done = Some(event.done_bytes);
        progress.bytes_total = Some(event.total_bytes);
        let new_step = inner.last_step.as_ref() != Some(&step);
        let due = inner.last_write.is_none_or(|at| at.elapsed() >= INTERVAL);
        if !(new_step || due) {
            return;
        }
        inner.last_step = Some(step);
        inner.last_write = Some(Instant::now());
        // Progress is a courtesy: a failed write must not fail the update (the final status write reports).
        if let Err(e) = self.file.write(&inner.status) {
            log::warn!("Failed to record progress: {e}");
        }
    }
}
