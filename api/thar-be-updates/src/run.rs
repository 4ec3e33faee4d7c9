//! The detached child's work, under the lock: accept the command (status loaded, created or recovered, made to agree
//! with the disk; the transition checked; `update_progress` recorded), send the verdict, run the command, record how
//! it ended (again checked against the disk). And `recover`, apiserver's way to clear a dead command from the status.

use crate::command;
use crate::config::{CONFIG_PATH, Config};
use crate::detach::{self, Invocation, Verdict};
use crate::error::{self, Result};
use crate::node::NodePaths;
use crate::progress::StatusProgress;
use crate::status::{
    StagedImage, StatusFile, UpdateCommand, UpdateProgress, UpdateState, UpdateStatus,
};
use crate::transition;
use chrono::Utc;
use snafu::ResultExt;
use std::fs::OpenOptions;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// What thar-be-updates' lock protects, as a refusal names it.
const LOCK_RESOURCE: &str = "thar-be-updates (an update command is running)";

/// A command accepted to run: the lock held, the status with its `update_progress` written.
#[derive(Debug)]
pub struct Accepted {
    _lock: nodeio::Lock,
    command: UpdateCommand,
    paths: NodePaths,
    config: Config,
    file: StatusFile,
    status: UpdateStatus,
}

/// The detached child: returns its exit code (which no one waits for; the status says how the command ended).
pub fn run_detached(invocation: &Invocation) -> u8 {
    let accepted = match accept(invocation) {
        Ok(accepted) => accepted,
        Err(e) => {
            log::error!("{e}");
            let verdict = Verdict::refused(&e);
            if let Err(e) = detach::send_verdict(&verdict) {
                log::error!("{e}");
            }
            return verdict.code;
        }
    };
    if let Err(e) = detach::send_verdict(&Verdict::accepted()) {
        // The command still runs; only the parent's output is affected.
        log::error!("{e}");
    }
    match execute(accepted) {
        Ok(()) => 0,
        Err(e) => {
            log::error!("{e}");
            e.exit_code()
        }
    }
}

/// How long a command waits for a holder whose command has already ended (its final status written, the process
/// exiting) before answering "busy".
const FINISHING_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// The lock. Held by a running command: refused at once (64). Held by one whose command has ended — the status
/// says so, the process is on its way out — waited for, briefly: a client that saw the command finish and sends
/// the next one is not told "busy" by the previous one's exit.
fn take_lock(paths: &NodePaths) -> Result<nodeio::Lock> {
    let deadline = std::time::Instant::now() + FINISHING_GRACE;
    loop {
        match nodeio::Lock::at(&paths.lock(), LOCK_RESOURCE) {
            Ok(lock) => return Ok(lock),
            Err(held @ nodeio::LockError::Held { .. }) => {
                let finishing = StatusFile::new(paths.status())
                    .load()
                    .ok()
                    .flatten()
                    .is_some_and(|status| status.update_progress.is_none());
                if !finishing || std::time::Instant::now() >= deadline {
                    return Err(error::Error::from_lock(held));
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(other) => return Err(error::Error::from_lock(other)),
        }
    }
}

/// Takes the lock (64 when held by a running command), sends the log to `<cmd>.log`, reads the config, loads the status (creating it,
/// or recording a command that died mid-way), checks the transition (65, 66, 67) and records the command as running.
pub fn accept(invocation: &Invocation) -> Result<Accepted> {
    let command = invocation.command;
    let paths = NodePaths::new(&invocation.sysroot);
    let lock = take_lock(&paths)?;
    paths.ensure_status_dir()?;
    open_log(&paths, command)?;
    updog::logging::init(invocation.log_level);
    log::info!("thar-be-updates {command} (pid {})", std::process::id());

    let config_path = invocation
        .config_path
        .clone()
        .unwrap_or_else(|| paths.sysroot().resolve(CONFIG_PATH));
    let config = Config::load(&config_path)?;

    let file = StatusFile::new(paths.status());
    let now = Utc::now();
    let (mut status, mut changed) = match file.load()? {
        Some(status) => (status, false),
        None => (
            UpdateStatus::new(paths.running_image()?, paths.active_is_next()?, now),
            true,
        ),
    };
    // We hold the lock: a command still marked as running has died.
    if transition::recover_interrupted(&mut status, || paths.staged_is_next(), now)? {
        log::warn!("{}", status.most_recent_command.stderr);
        changed = true;
    }
    // The GPT may have been changed behind our back (signpost by hand, an unconfirmed boot): the check below must
    // judge the state the disk is in.
    if reconcile_or_warn(&paths, &mut status) {
        log::info!(
            "The update status now agrees with the disk: {:?}",
            status.update_state
        );
        changed = true;
    }
    if let Err(refusal) = transition::check(command, &status) {
        if changed {
            file.write(&status)?;
        }
        return Err(refusal);
    }
    status.update_progress = Some(UpdateProgress {
        cmd_type: command,
        phase: None,
        image: None,
        bytes_done: None,
        bytes_total: None,
        started: now,
        pid: std::process::id(),
    });
    file.write(&status)?;
    Ok(Accepted {
        _lock: lock,
        command,
        paths,
        config,
        file,
        status,
    })
}

/// `<sysroot>/run/cache/thar-be-updates/<cmd>.log` becomes stderr: created fresh by the lock holder (so a refused
/// command never truncates a running one's log), only a regular file (the caller made the directory real). Opened
/// non-blocking and without following a link, so a FIFO or a device planted there is refused at once instead of
/// blocking the lock holder forever; truncated only once it is known to be a regular file.
fn open_log(paths: &NodePaths, command: UpdateCommand) -> Result<()> {
    let path = paths.log(command.name());
    let flags = rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK;
    let opened = OpenOptions::new()
        .write(true)
        .create(true)
        .mode(0o644)
        .custom_flags(flags.bits().cast_signed())
        .open(&path);
    let file = match opened {
        Ok(file) => file,
        Err(source) => {
            // A FIFO without a reader (ENXIO), a symlink (ELOOP): say what is there, not only the errno.
            if let Ok(metadata) = std::fs::symlink_metadata(&path)
                && !metadata.is_file()
            {
                let found = describe(metadata.file_type());
                return error::LogNotRegularSnafu { path, found }.fail();
            }
            return Err(source).context(error::OpenLogSnafu { path: &path });
        }
    };
    let file_type = file
        .metadata()
        .context(error::OpenLogSnafu { path: &path })?
        .file_type();
    if !file_type.is_file() {
        let found = describe(file_type);
        return error::LogNotRegularSnafu { path, found }.fail();
    }
    file.set_len(0)
        .context(error::OpenLogSnafu { path: &path })?;
    detach::redirect_stderr(&file)
}

/// What a file that is not a regular one is, for an error.
fn describe(file_type: std::fs::FileType) -> &'static str {
    if file_type.is_fifo() {
        "a FIFO"
    } else if file_type.is_symlink() {
        "a symlink"
    } else if file_type.is_dir() {
        "a directory"
    } else if file_type.is_char_device() || file_type.is_block_device() {
        "a device"
    } else if file_type.is_socket() {
        "a socket"
    } else {
        "a special file"
    }
}

/// `thar-be-updates recover` (beyond upstream): apiserver runs it when the status names a running command whose
/// worker is gone. Without waiting for the lock (held: 64, a command runs and owns the status), it records a command
/// that died as Failed ([`transition::recover_interrupted`]) and makes the status agree with the disk
/// ([`transition::reconcile_with_disk`]), writing it only when that changed anything. Returns whether it did.
pub fn recover(sysroot: &Path) -> Result<bool> {
    let paths = NodePaths::new(sysroot);
    let _lock = nodeio::Lock::at(&paths.lock(), LOCK_RESOURCE).map_err(error::Error::from_lock)?;
    paths.ensure_status_dir()?;
    let file = StatusFile::new(paths.status());
    let Some(mut status) = file.load()? else {
        return Ok(false);
    };
    let recovered =
        transition::recover_interrupted(&mut status, || paths.staged_is_next(), Utc::now())?;
    if recovered {
        log::warn!("{}", status.most_recent_command.stderr);
    }
    let reconciled = reconcile_or_warn(&paths, &mut status);
    if recovered || reconciled {
        file.write(&status)?;
    }
    Ok(recovered || reconciled)
}

/// [`transition::reconcile_with_disk`] with what the disk says now; a disk that cannot be read leaves the status as
/// it is (said in the log): the commands that need the disk report it themselves. Returns whether anything changed.
fn reconcile_or_warn(paths: &NodePaths, status: &mut UpdateStatus) -> bool {
    match paths.boot_next() {
        Ok(boot) => transition::reconcile_with_disk(status, boot),
        Err(e) => {
            log::warn!("The update status may not say what boots next: {e}");
            false
        }
    }
}

/// Runs an accepted command and records how it ended (`most_recent_command`, the new state).
pub fn execute(accepted: Accepted) -> Result<()> {
    let Accepted {
        _lock,
        command,
        paths,
        config,
        file,
        mut status,
    } = accepted;
    let now = Utc::now();
    let outcome = match command {
        UpdateCommand::Refresh => {
            let outcome = command::refresh(&paths, &config, now);
            let idle_or_available = matches!(
                status.update_state,
                UpdateState::Idle | UpdateState::Available
            );
            match &outcome {
                Ok(found) => {
                    status.available_updates.clone_from(&found.available);
                    status.chosen_update.clone_from(&found.chosen);
                    if idle_or_available {
                        status.update_state = if found.chosen.is_some() {
                            UpdateState::Available
                        } else {
                            UpdateState::Idle
                        };
                    }
                }
                Err(_) if idle_or_available => {
                    status.update_state = UpdateState::Idle;
                    status.chosen_update = None;
                }
                Err(_) => {}
            }
            outcome.map(drop)
        }
        UpdateCommand::Prepare => {
            let Some(chosen) = status.chosen_update.clone() else {
                // accept() checked it; a status without one cannot get here.
                return error::NoChosenUpdateSnafu {
                    state: status.update_state,
                }
                .fail();
            };
            let sink = StatusProgress::new(file.clone(), status);
            let outcome = command::prepare(&paths, &chosen, now, &sink);
            status = sink.into_status();
            match &outcome {
                Ok(()) => {
                    status.update_state = UpdateState::Staged;
                    status.staging_partition = Some(StagedImage {
                        image: chosen,
                        next_to_boot: false,
                    });
                }
                // update-image clears the inactive set before writing it: nothing is staged any more. (A prepare
                // refused before it cleared anything, e.g. on an unconfirmed boot, leaves the disk as it was: what
                // boots next is read back below.)
                Err(_) => {
                    status.update_state = UpdateState::Available;
                    status.staging_partition = None;
                }
            }
            outcome
        }
        UpdateCommand::Activate => {
            let outcome = command::activate(&paths);
            if outcome.is_ok() {
                status.update_state = UpdateState::Ready;
                status.set_next_to_boot(true);
            }
            outcome
        }
        UpdateCommand::Deactivate => {
            let outcome = command::deactivate(&paths);
            if outcome.is_ok() {
                status.update_state = UpdateState::Staged;
                status.set_next_to_boot(false);
            }
            outcome
        }
    };
    match &outcome {
        Ok(()) => log::info!("thar-be-updates {command} succeeded"),
        Err(e) => log::error!("thar-be-updates {command} failed: {e}"),
    }
    // Whatever the command did or failed to do, the status says what boots next as the disk says it.
    reconcile_or_warn(&paths, &mut status);
    status.finish(command, outcome.map_err(|e| e.to_string()), Utc::now());
    file.write(&status)
}
