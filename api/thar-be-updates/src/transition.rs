//! The state machine: which command may run in which state (upstream's table), and what a command that died
//! mid-way leaves behind.
//!
//! ```text
//!             refresh (update found)          prepare                 activate
//!    Idle ───────────────────────────► Available ─────────► Staged ─────────────► Ready
//!     ▲  ◄─────────────────────────────   │  ▲                │ ▲  ◄──────────────── │
//!     │      refresh (none found / error) │  │ prepare fails   │ │    deactivate      │
//!     └───────────────────────────────────┘  └─────────────────┘ └── prepare (newer) ─┘
//! ```
//! A refresh in Staged or Ready keeps the state (it only updates `available_updates`/`chosen_update`).
//!
//! The disk has the last word on what boots next ([`reconcile_with_disk`]): someone may run `signpost
//! upgrade-to-inactive` or `cancel-upgrade` by hand, or the node may run an unconfirmed boot, so when a command is
//! accepted (before the check above) and after it ends, `next_to_boot` and Staged ↔ Ready are read from the GPT.

use crate::error::{self, Result};
use crate::node::BootNext;
use crate::status::{CommandResult, CommandStatus, UpdateCommand, UpdateState, UpdateStatus};
use chrono::{DateTime, SecondsFormat, Utc};
use snafu::{OptionExt, ensure};

/// Whether `command` may start on `status`: 65 not in this state, 66 prepare without a chosen update, 67 activate
/// with nothing staged.
pub fn check(command: UpdateCommand, status: &UpdateStatus) -> Result<()> {
    use UpdateState::{Available, Ready, Staged};
    let state = status.update_state;
    let allowed = match command {
        UpdateCommand::Refresh => true,
        UpdateCommand::Prepare => matches!(state, Available | Staged),
        UpdateCommand::Activate => state == Staged,
        UpdateCommand::Deactivate => state == Ready,
    };
    ensure!(allowed, error::NotAllowedSnafu { command, state });
    match command {
        UpdateCommand::Prepare => {
            status
                .chosen_update
                .as_ref()
                .context(error::NoChosenUpdateSnafu { state })?;
        }
        UpdateCommand::Activate => {
            status
                .staging_partition
                .as_ref()
                .context(error::NothingStagedSnafu { state })?;
        }
        UpdateCommand::Refresh | UpdateCommand::Deactivate => {}
    }
    Ok(())
}

/// Makes `status` say what the disk says: `active_partition.next_to_boot` is whether the running set boots next,
/// `staging_partition.next_to_boot` whether the inactive set does, and with something staged, Staged ↔ Ready
/// follows the disk (the inactive set boots next: Ready; else Staged). Idle and Available are not the disk's to
/// change. Returns whether anything changed.
pub fn reconcile_with_disk(status: &mut UpdateStatus, boot: BootNext) -> bool {
    let before = status.clone();
    if let Some(active) = &mut status.active_partition {
        active.next_to_boot = boot.active_is_next;
    }
    if let Some(staging) = &mut status.staging_partition {
        staging.next_to_boot = boot.inactive_is_next;
        if matches!(
            status.update_state,
            UpdateState::Staged | UpdateState::Ready
        ) {
            status.update_state = if boot.inactive_is_next {
                UpdateState::Ready
            } else {
                UpdateState::Staged
            };
        }
    }
    *status != before
}

/// Records a command that died mid-way (its `update_progress` is still there while the lock is free) as Failed,
/// and makes the state consistent with what it may have left on disk:
/// - prepare: the inactive set may be cleared or half-written, so nothing is staged (Available, or Idle with no
///   chosen update);
/// - activate, deactivate: whether the staged set boots next is read from the disk (`staged_is_next`);
/// - refresh changed nothing on disk.
///
/// Returns whether there was anything to recover.
pub fn recover_interrupted(
    status: &mut UpdateStatus,
    staged_is_next: impl FnOnce() -> Result<bool>,
    now: DateTime<Utc>,
) -> Result<bool> {
    let Some(progress) = status.update_progress.take() else {
        return Ok(false);
    };
    match progress.cmd_type {
        UpdateCommand::Refresh => {}
        UpdateCommand::Prepare => {
            status.staging_partition = None;
            status.update_state = if status.chosen_update.is_some() {
                UpdateState::Available
            } else {
                UpdateState::Idle
            };
            status.set_next_to_boot(false);
        }
        UpdateCommand::Activate | UpdateCommand::Deactivate => {
            if status.staging_partition.is_some() {
                let next = staged_is_next()?;
                status.set_next_to_boot(next);
                status.update_state = if next {
                    UpdateState::Ready
                } else {
                    UpdateState::Staged
                };
            }
        }
    }
    status.most_recent_command = CommandResult {
        cmd_type: progress.cmd_type,
        cmd_status: CommandStatus::Failed,
        timestamp: now,
        exit_status: 1,
        stderr: format!(
            "interrupted: thar-be-updates {} (pid {}, started {}) ended before it finished",
            progress.cmd_type,
            progress.pid,
            progress
                .started
                .to_rfc3339_opts(SecondsFormat::AutoSi, true)
        ),
    };
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::{StagedImage, UpdateImage, UpdateProgress};

    fn image(version: &str) -> UpdateImage {
        UpdateImage {
            arch: "x86_64".into(),
            version: version.parse().unwrap(),
            variant: "aws-dev".into(),
        }
    }

    fn now() -> DateTime<Utc> {
        "2026-12-03T12:00:00Z".parse().unwrap()
    }

    fn status(state: UpdateState) -> UpdateStatus {
        let mut status = UpdateStatus::new(image("1.0.0"), true, now());
        status.update_state = state;
        if state != UpdateState::Idle {
            status.chosen_update = Some(image("1.2.0"));
        }
        if matches!(state, UpdateState::Staged | UpdateState::Ready) {
            status.staging_partition = Some(StagedImage {
                image: image("1.2.0"),
                next_to_boot: false,
            });
            status.set_next_to_boot(state == UpdateState::Ready);
        }
        status
    }

    #[test]
    fn upstreams_table_of_allowed_commands() {
        use UpdateCommand::*;
        use UpdateState::*;
        for (state, allowed) in [
            (Idle, &[Refresh][..]),
            (Available, &[Refresh, Prepare][..]),
            (Staged, &[Refresh, Prepare, Activate][..]),
            (Ready, &[Refresh, Deactivate][..]),
        ] {
            for command in [Refresh, Prepare, Activate, Deactivate] {
                let result = check(command, &status(state));
                if allowed.contains(&command) {
                    assert!(result.is_ok(), "{command} in {state:?}: {result:?}");
                } else {
                    assert_eq!(
                        result.unwrap_err().exit_code(),
                        65,
                        "{command} in {state:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn prepare_needs_a_chosen_update_and_activate_a_staged_one() {
        let mut available = status(UpdateState::Available);
        available.chosen_update = None;
        assert_eq!(
            check(UpdateCommand::Prepare, &available)
                .unwrap_err()
                .exit_code(),
            66
        );
        let mut staged = status(UpdateState::Staged);
        staged.staging_partition = None;
        assert_eq!(
            check(UpdateCommand::Activate, &staged)
                .unwrap_err()
                .exit_code(),
            67
        );
    }

    fn running(status: &mut UpdateStatus, cmd_type: UpdateCommand) {
        status.update_progress = Some(UpdateProgress {
            cmd_type,
            phase: Some("write".into()),
            image: Some("root".into()),
            bytes_done: Some(1),
            bytes_total: Some(2),
            started: now(),
            pid: 77,
        });
    }

    #[test]
    fn an_interrupted_prepare_leaves_nothing_staged_and_is_recorded_as_failed() {
        let mut status = status(UpdateState::Staged);
        running(&mut status, UpdateCommand::Prepare);
        assert!(recover_interrupted(&mut status, || unreachable!(), now()).unwrap());
        assert_eq!(status.update_state, UpdateState::Available);
        assert_eq!(status.staging_partition, None);
        assert_eq!(status.update_progress, None);
        assert!(status.active_partition.as_ref().unwrap().next_to_boot);
        let recent = &status.most_recent_command;
        assert_eq!(
            (recent.cmd_type, recent.cmd_status, recent.exit_status),
            (UpdateCommand::Prepare, CommandStatus::Failed, 1)
        );
        assert!(
            recent
                .stderr
                .starts_with("interrupted: thar-be-updates prepare (pid 77")
        );
    }

    #[test]
    fn an_interrupted_activate_takes_the_disks_word_for_what_boots_next() {
        for (next, state) in [(true, UpdateState::Ready), (false, UpdateState::Staged)] {
            let mut status = status(UpdateState::Staged);
            running(&mut status, UpdateCommand::Activate);
            assert!(recover_interrupted(&mut status, || Ok(next), now()).unwrap());
            assert_eq!(status.update_state, state);
            assert_eq!(
                status.staging_partition.as_ref().unwrap().next_to_boot,
                next
            );
            assert_eq!(
                status.active_partition.as_ref().unwrap().next_to_boot,
                !next
            );
        }
    }

    const ACTIVE_NEXT: BootNext = BootNext {
        active_is_next: true,
        inactive_is_next: false,
    };
    const INACTIVE_NEXT: BootNext = BootNext {
        active_is_next: false,
        inactive_is_next: true,
    };

    #[test]
    fn an_upgrade_marked_by_hand_in_staged_makes_it_ready_and_deactivate_allowed() {
        let mut status = status(UpdateState::Staged);
        assert!(check(UpdateCommand::Deactivate, &status).is_err());
        assert!(reconcile_with_disk(&mut status, INACTIVE_NEXT));
        assert_eq!(status.update_state, UpdateState::Ready);
        assert!(status.staging_partition.as_ref().unwrap().next_to_boot);
        assert!(!status.active_partition.as_ref().unwrap().next_to_boot);
        check(UpdateCommand::Deactivate, &status).unwrap();
    }

    #[test]
    fn an_upgrade_cancelled_by_hand_in_ready_makes_it_staged_and_activate_allowed() {
        let mut status = status(UpdateState::Ready);
        assert!(check(UpdateCommand::Activate, &status).is_err());
        assert!(reconcile_with_disk(&mut status, ACTIVE_NEXT));
        assert_eq!(status.update_state, UpdateState::Staged);
        assert!(!status.staging_partition.as_ref().unwrap().next_to_boot);
        assert!(status.active_partition.as_ref().unwrap().next_to_boot);
        check(UpdateCommand::Activate, &status).unwrap();
    }

    #[test]
    fn an_unconfirmed_boot_where_neither_set_is_the_running_one_says_so() {
        // Booted the new set, not marked good: the bootloader goes back to the other set next.
        let mut status = status(UpdateState::Available);
        assert!(reconcile_with_disk(&mut status, INACTIVE_NEXT));
        assert_eq!(status.update_state, UpdateState::Available);
        assert!(!status.active_partition.as_ref().unwrap().next_to_boot);
        assert_eq!(status.staging_partition, None);
    }

    #[test]
    fn a_status_that_agrees_with_the_disk_is_unchanged() {
        for (state, boot) in [
            (UpdateState::Idle, ACTIVE_NEXT),
            (UpdateState::Available, ACTIVE_NEXT),
            (UpdateState::Staged, ACTIVE_NEXT),
            (UpdateState::Ready, INACTIVE_NEXT),
        ] {
            let mut status = status(state);
            let before = status.clone();
            assert!(!reconcile_with_disk(&mut status, boot), "{state:?}");
            assert_eq!(status, before);
        }
    }

    #[test]
    fn a_status_without_progress_needs_no_recovery() {
        let mut status = status(UpdateState::Ready);
        let before = status.clone();
        assert!(!recover_interrupted(&mut status, || unreachable!(), now()).unwrap());
        assert_eq!(status, before);
    }
}
