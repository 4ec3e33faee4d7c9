//! The update actions: each runs `<thar-be-updates> --sysroot <sysroot> <command>` and waits for it. The real
//! program returns at once (it forks; a detached child runs the command under its lock), so the request is not held
//! open for a long prepare. Its exit code maps to the HTTP status as upstream (0→204, 64→423, 65→409, 66/67→404,
//! anything else or a signal →500), and its stderr is the error body.
//!
//! stderr goes to an anonymous temporary file, not a pipe: the detached child inherits the descriptor, and reading
//! a pipe to its end would wait for the child, the whole prepare.
//!
//! `GET /updates/status` serves status.json as thar-be-updates wrote it (never through a symlink planted there). When
//! it names a running command (`update_progress.pid`) whose process is gone, a killed worker left it behind: the
//! server first runs thar-be-updates' hidden `recover` (bounded like an action), which owns the recovery logic, then
//! serves the file (as it is, when `recover` finds the lock held or fails).
//!
//! The reboot action starts the configured reboot command and answers 204 once it has started; a thread reaps it and
//! logs how it ended (a reboot command that works never returns to be awaited).

use crate::error::{self, RequestError};
use snafu::ResultExt;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Where thar-be-updates writes its status, under the sysroot.
pub const STATUS_PATH: &str = "run/cache/thar-be-updates/status.json";

/// The most of thar-be-updates' stderr put into an error body.
const STDERR_LIMIT: u64 = 64 * 1024;

/// An update action and the thar-be-updates command it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateCommand {
    Refresh,
    Prepare,
    Activate,
    Deactivate,
    /// Not an action: the hidden recovery `GET /updates/status` runs when the status names a dead worker.
    Recover,
}

impl UpdateCommand {
    /// The thar-be-updates subcommand.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Refresh => "refresh",
            Self::Prepare => "prepare",
            Self::Activate => "activate",
            Self::Deactivate => "deactivate",
            Self::Recover => "recover",
        }
    }
}

/// Runs thar-be-updates `command` and waits for it; `Ok` when it exited 0.
pub fn run(
    program: &Path,
    sysroot: &Path,
    command: UpdateCommand,
    timeout: Duration,
) -> Result<(), RequestError> {
    let name = command.name();
    let mut stderr = tempfile::tempfile().context(error::CaptureStderrSnafu {
        program,
        command: name,
    })?;
    let stderr_handle = stderr.try_clone().context(error::CaptureStderrSnafu {
        program,
        command: name,
    })?;
    let mut child = Command::new(program)
        .arg("--sysroot")
        .arg(sysroot)
        .arg(name)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr_handle)
        .spawn()
        .context(error::SpawnUpdateSnafu {
            program,
            command: name,
        })?;
    let status = wait_bounded(&mut child, program, name, timeout)?;
    if status.success() {
        return Ok(());
    }
    let mut text = Vec::new();
    stderr
        .seek(SeekFrom::Start(0))
        .and_then(|_| (&mut stderr).take(STDERR_LIMIT).read_to_end(&mut text))
        .context(error::CaptureStderrSnafu {
            program,
            command: name,
        })?;
    let stderr = String::from_utf8_lossy(&text).trim_end().to_string();
    let outcome = match (status.code(), exit_signal(&status)) {
        (Some(code), _) => format!("exited with {code}"),
        (None, Some(signal)) => format!("was killed by signal {signal}"),
        (None, None) => "ended abnormally".to_string(),
    };
    error::UpdateCommandSnafu {
        command: name,
        outcome,
        code: status.code(),
        stderr: if stderr.is_empty() {
            "(no message on stderr)".to_string()
        } else {
            stderr
        },
    }
    .fail()
}

/// Waits for thar-be-updates to answer, at most `timeout`: it only checks the state and hands the work to
/// its detached child, so a longer wait means it hangs; it is killed (the child, in its own process group, is not)
/// and the request fails instead of holding a server thread forever.
fn wait_bounded(
    child: &mut std::process::Child,
    program: &Path,
    command: &'static str,
    timeout: Duration,
) -> Result<std::process::ExitStatus, RequestError> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child
            .try_wait()
            .context(error::WaitUpdateSnafu { program, command })?
        {
            return Ok(status);
        }
        if Instant::now() >= deadline {
            // Already gone is fine: then the wait below returns at once.
            let _ = child.kill();
            let _ = child.wait();
            return error::UpdateTimeoutSnafu {
                program,
                command,
                timeout,
            }
            .fail();
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn exit_signal(status: &std::process::ExitStatus) -> Option<i32> {
    use std::os::unix::process::ExitStatusExt;
    status.signal()
}

/// The status to serve: the file, after `recover` when it names a running command whose worker is gone.
pub fn current_status(
    program: &Path,
    sysroot: &Path,
    timeout: Duration,
) -> Result<String, RequestError> {
    let text = read_status(sysroot)?;
    let Some(pid) = running_pid(&text) else {
        return Ok(text);
    };
    if is_live_thar_be_updates(pid, program) {
        return Ok(text);
    }
    log::warn!(
        "The update status names a running command in pid {pid}, which is not a live {}: recovering",
        program.display()
    );
    match run(program, sysroot, UpdateCommand::Recover, timeout) {
        Ok(()) => {}
        // Another command holds the lock: it owns the status now.
        Err(RequestError::UpdateCommand { code: Some(64), .. }) => {
            log::info!("recover found the lock held: serving the status as it is");
        }
        Err(e) => log::error!("Failed to recover the update status: {e}"),
    }
    read_status(sysroot)
}

/// `update_progress.pid` of a status, when it has one (a status that does not parse is served as it is).
fn running_pid(text: &str) -> Option<u32> {
    let status: serde_json::Value = serde_json::from_str(text).ok()?;
    let pid = status.get("update_progress")?.get("pid")?.as_u64()?;
    u32::try_from(pid).ok()
}

/// Whether `pid` is a live process of `program` (by file name: its argv[0], or argv[1] under an interpreter). A
/// zombie has an empty command line: dead.
fn is_live_thar_be_updates(pid: u32, program: &Path) -> bool {
    let Some(name) = program.file_name() else {
        return false;
    };
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    cmdline
        .split(|&b| b == 0)
        .take(2)
        .any(|arg| Path::new(std::ffi::OsStr::from_bytes(arg)).file_name() == Some(name))
}

/// The status file's bytes (at most 1 MiB, a regular file only, not through a symlink: thar-be-updates replaces a
/// link planted there on its next command; until then it is a 500 naming the path).
pub fn read_status(sysroot: &Path) -> Result<String, RequestError> {
    let path = sysroot.join(STATUS_PATH);
    match nodeio::read_small_text_file_nofollow(&path, nodeio::SMALL_FILE_LIMIT) {
        Ok(text) => Ok(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => error::NoStatusSnafu { path }.fail(),
        Err(source) => Err(source).context(error::ReadStatusSnafu { path }),
    }
}

/// Starts the reboot command; a thread reaps it and logs its end.
pub fn reboot(command: &[String]) -> Result<(), RequestError> {
    let Some((program, args)) = command.split_first() else {
        // The config refuses an empty command; this only guards the invariant.
        return error::InternalSnafu {
            message: "the reboot command is empty",
        }
        .fail();
    };
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .spawn()
        .context(error::RebootSnafu { command })?;
    log::info!("Started reboot command {command:?} (pid {})", child.id());
    let command: Vec<String> = command.to_vec();
    std::thread::spawn(move || match child.wait() {
        Ok(status) if status.success() => log::info!("Reboot command {command:?} finished"),
        Ok(status) => log::error!("Reboot command {command:?} failed: {status}"),
        Err(e) => log::error!("Failed to wait for reboot command {command:?}: {e}"),
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_running_pid_is_update_progress_pid() {
        assert_eq!(
            running_pid(r#"{"update_progress": {"cmd_type": "prepare", "pid": 42}}"#),
            Some(42)
        );
        for text in [
            r#"{"update_progress": null}"#,
            r#"{"update_state": "Idle"}"#,
            r#"{"update_progress": {"pid": -1}}"#,
            "not json",
        ] {
            assert_eq!(running_pid(text), None, "{text}");
        }
    }

    #[test]
    fn a_live_process_counts_only_when_it_runs_the_program() {
        let mut sleeper = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = sleeper.id();
        // Until it has exec'd, the child's command line is this test's.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !is_live_thar_be_updates(pid, Path::new("/usr/bin/sleep")) {
            assert!(std::time::Instant::now() < deadline, "sleep never ran");
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(!is_live_thar_be_updates(
            pid,
            Path::new("/usr/bin/thar-be-updates")
        ));
        sleeper.kill().unwrap();
        // Not yet reaped: a zombie, whose command line is empty.
        std::thread::sleep(Duration::from_millis(100));
        assert!(!is_live_thar_be_updates(pid, Path::new("/usr/bin/sleep")));
        sleeper.wait().unwrap();
        assert!(!is_live_thar_be_updates(pid, Path::new("/usr/bin/sleep")));
    }
}
