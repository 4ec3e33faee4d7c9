//! `updog mark-successful-boot`: the last step of every boot (docs/updog.md, "Health checks and rolled-back
//! versions").
//!
//! 1. Settle a pending upgrade ([`crate::records`]): when the node runs another set than the one `update` /
//!    `update-apply` made the next boot, and that set is no longer the next boot either, the boot fell back from it
//!    (its try was spent unmarked): its version is recorded as rolled back, so selection never takes it again by
//!    itself, and the pending record goes. This happens whatever the checks below say: the fallback has happened.
//! 2. Run every executable in `/etc/updog/health.d/`, sorted by name, one at a time, each in its own process group
//!    with stdin from /dev/null, `UPDOG_SYSROOT` set to the sysroot, its output captured and logged, and the whole
//!    group killed when it exits or when `health_check_timeout_seconds` passes. Anything in the directory that is
//!    not a regular executable file is skipped with a warning; no directory or no checks is a pass.
//! 3. Only when every check passed: signpost's mark-successful-boot of the running set, under the disk's lock
//!    (invariant I6), and the pending record of this set is cleared (the upgrade is confirmed).
//!
//! A failing or timed-out check is an error naming it and why; the table is not written, so the bootloader falls
//! back to the other set once the running set's tries are spent.

use crate::check::Output;
use crate::error::{self, Result};
use crate::lock::UpdogLock;
use crate::records::{self, RolledBack};
use crate::sysroot::Sysroot;
use chrono::{DateTime, Utc};
use rustix::process::{Pid, Signal};
use signpost::{Location, State};
use snafu::{ResultExt, Snafu};
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How much of each output stream of a check is kept (the rest is read and dropped, so a chatty check never blocks
/// on a full pipe).
const OUTPUT_LIMIT: usize = 64 * 1024;

/// How much of a failed check's output its error message quotes (the end, where the reason usually is).
const QUOTED_OUTPUT: usize = 2048;

/// After a check's group is killed, how long its pipes may take to reach EOF. A descendant that left the group
/// (`setsid`) can hold them open for ever; it is not waited for beyond this.
const DRAIN_WAIT: Duration = Duration::from_secs(2);

/// How often a running check is polled for its exit.
const POLL: Duration = Duration::from_millis(10);

/// How long `mark-successful-boot` waits for updog's lock or the disk's while another holds it (a check-update from
/// the API, a signpost command): a short overlap must not cost the boot its mark.
pub const LOCK_WAIT: Duration = Duration::from_secs(60);

/// The environment variable a check finds the node's root in (`/` on a real node).
pub const SYSROOT_ENV: &str = "UPDOG_SYSROOT";

#[derive(Debug, Snafu)]
#[snafu(visibility(pub(crate)))]
pub enum HealthError {
    #[snafu(display("Failed to list the health checks in {}: {source}", dir.display()))]
    ListChecks {
        dir: PathBuf,
        source: std::io::Error,
    },

    #[snafu(display("Failed to start health check {}: {source}", path.display()))]
    StartCheck {
        path: PathBuf,
        source: std::io::Error,
    },

    #[snafu(display("Failed to wait for health check {}: {source}", path.display()))]
    WaitCheck {
        path: PathBuf,
        source: std::io::Error,
    },

    #[snafu(display(
        "Health check '{name}' failed ({status}); the boot is not marked successful{}",
        quote(output)
    ))]
    CheckFailed {
        name: String,
        status: String,
        output: String,
    },

    #[snafu(display(
        "Health check '{name}' timed out after {:.3} s (health_check_timeout_seconds) and was killed; the boot is not \
         marked successful{}",
        timeout.as_secs_f64(),
        quote(output)
    ))]
    CheckTimedOut {
        name: String,
        timeout: Duration,
        output: String,
    },
}

fn quote(output: &str) -> String {
    if output.trim().is_empty() {
        String::new()
    } else {
        format!(":\n{}", output.trim_end())
    }
}

/// How one check ended.
#[derive(Debug)]
pub struct CheckRun {
    pub name: String,
    /// `None` when it ran out of time and was killed.
    pub status: Option<ExitStatus>,
    pub elapsed: Duration,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// The checks in `dir`, sorted by name: regular files with an execute bit (links are not followed). Anything else
/// is skipped with a warning. A missing directory has none.
pub fn list_checks(dir: &Path) -> Result<Vec<PathBuf>, HealthError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(source).context(ListChecksSnafu { dir }),
    };
    let mut checks = Vec::new();
    for entry in entries {
        let entry = entry.context(ListChecksSnafu { dir })?;
        let path = entry.path();
        let metadata = std::fs::symlink_metadata(&path).context(ListChecksSnafu { dir })?;
        if !metadata.file_type().is_file() {
            log::warn!(
                "Skipping {}: not a regular file (health checks are regular executable files)",
                path.display()
            );
        } else if metadata.permissions().mode() & 0o111 == 0 {
            log::warn!("Skipping {}: not executable", path.display());
        } else {
            checks.push(path);
        }
    }
    checks.sort();
    Ok(checks)
}

/// Runs the check at `path` to its end or `timeout`, then kills its process group (stray descendants included).
pub fn run_check(path: &Path, sysroot: &Path, timeout: Duration) -> Result<CheckRun, HealthError> {
    let name = path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let mut child = Command::new(path)
        .env(SYSROOT_ENV, sysroot)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .context(StartCheckSnafu { path })?;
    let started = Instant::now();
    let pgid = Pid::from_child(&child);
    let stdout = Captured::start(child.stdout.take());
    let stderr = Captured::start(child.stderr.take());

    let status = wait_until(&mut child, started + timeout);
    // Its own exit or the timeout: either way nothing of the group outlives the check.
    kill_group(pgid);
    let status = match status {
        Ok(Some(status)) => Some(status),
        Ok(None) => {
            child.wait().context(WaitCheckSnafu { path })?;
            None
        }
        Err(source) => {
            // Reap what was killed; the wait error is the one reported.
            let _ = child.wait();
            return Err(source).context(WaitCheckSnafu { path });
        }
    };
    let drain_until = Instant::now() + DRAIN_WAIT;
    Ok(CheckRun {
        name,
        status,
        elapsed: started.elapsed(),
        stdout: stdout.finish(drain_until),
        stderr: stderr.finish(drain_until),
    })
}

/// The child's exit status, or `None` once `deadline` has passed.
fn wait_until(child: &mut Child, deadline: Instant) -> std::io::Result<Option<ExitStatus>> {
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        std::thread::sleep(POLL);
    }
}

/// SIGKILLs group `pgid`; a group already gone is fine.
fn kill_group(pgid: Pid) {
    match rustix::process::kill_process_group(pgid, Signal::KILL) {
        Ok(()) | Err(rustix::io::Errno::SRCH) => {}
        Err(e) => log::error!("Failed to SIGKILL process group {pgid}: {e}"),
    }
}

/// One output stream, read by a thread into a shared buffer (bounded), so that a descendant holding the pipe can
/// delay the result by at most [`DRAIN_WAIT`], never block it.
struct Captured {
    buffer: Arc<Mutex<Vec<u8>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Captured {
    fn start(pipe: Option<impl Read + Send + 'static>) -> Self {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let reader = pipe.map(|mut pipe| {
            let buffer = Arc::clone(&buffer);
            std::thread::spawn(move || {
                let mut chunk = [0u8; 8192];
                while let Ok(n @ 1..) = pipe.read(&mut chunk) {
                    let mut kept = buffer
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    let room = OUTPUT_LIMIT.saturating_sub(kept.len());
                    kept.extend_from_slice(&chunk[..n.min(room)]);
                }
            })
        });
        Self { buffer, reader }
    }

    /// What was read by the time the pipe closed, or by `until`.
    fn finish(self, until: Instant) -> Vec<u8> {
        if let Some(reader) = self.reader {
            while !reader.is_finished() && Instant::now() < until {
                std::thread::sleep(POLL);
            }
            if reader.is_finished() {
                let _ = reader.join();
            }
        }
        let kept = self
            .buffer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        kept.clone()
    }
}

/// The end of a check's output for an error message: stderr, else stdout, at most [`QUOTED_OUTPUT`] bytes.
fn tail(run: &CheckRun) -> String {
    let bytes = if run.stderr.iter().any(|b| !b.is_ascii_whitespace()) {
        &run.stderr
    } else {
        &run.stdout
    };
    let text = String::from_utf8_lossy(bytes);
    let start = text.len().saturating_sub(QUOTED_OUTPUT);
    let start = (start..text.len())
        .find(|i| text.is_char_boundary(*i))
        .unwrap_or(text.len());
    text[start..].to_string()
}

/// Logs a check's output, line by line.
fn log_output(run: &CheckRun) {
    for (stream, bytes) in [("stdout", &run.stdout), ("stderr", &run.stderr)] {
        for line in String::from_utf8_lossy(bytes).lines() {
            log::info!("health check '{}' {stream}: {line}", run.name);
        }
    }
}

/// Runs every check in `dir` in order; the first that fails or times out is the error (the rest are not run: the
/// boot is unmarked either way).
pub fn run_checks(
    dir: &Path,
    sysroot: &Path,
    timeout: Duration,
) -> Result<Vec<CheckRun>, HealthError> {
    let checks = list_checks(dir)?;
    if checks.is_empty() {
        log::info!("No health checks in {}", dir.display());
    }
    let mut runs = Vec::new();
    for path in checks {
        let run = run_check(&path, sysroot, timeout)?;
        log_output(&run);
        match run.status {
            Some(status) if status.success() => {
                log::info!(
                    "Health check '{}' passed in {:.3} s",
                    run.name,
                    run.elapsed.as_secs_f64()
                );
                runs.push(run);
            }
            Some(status) => {
                return CheckFailedSnafu {
                    name: run.name.clone(),
                    status: status.to_string(),
                    output: tail(&run),
                }
                .fail();
            }
            None => {
                return CheckTimedOutSnafu {
                    name: run.name.clone(),
                    timeout,
                    output: tail(&run),
                }
                .fail();
            }
        }
    }
    Ok(runs)
}

/// Runs `take` until it gives something other than a lock held by another process, or [`LOCK_WAIT`] has passed.
fn wait_for_lock<T, E>(
    what: &str,
    mut take: impl FnMut() -> Result<T, E>,
    held: impl Fn(&E) -> bool,
) -> Result<T, E> {
    let deadline = Instant::now() + LOCK_WAIT;
    let mut said = false;
    loop {
        match take() {
            Err(e) if held(&e) && Instant::now() < deadline => {
                if !said {
                    log::info!("Waiting (up to {} s) for {what}", LOCK_WAIT.as_secs());
                    said = true;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            other => return other,
        }
    }
}

/// updog's lock for `mark-successful-boot`: waited for (up to [`LOCK_WAIT`]) when another updog holds it.
pub fn wait_for_updog_lock(path: &Path) -> Result<UpdogLock, nodeio::LockError> {
    wait_for_lock(
        "updog's lock",
        || UpdogLock::acquire(path),
        |e| matches!(e, nodeio::LockError::Held { .. }),
    )
}

/// Step 1 of the module documentation: records a fallback from the pending upgrade, if the boot fell back.
pub fn settle_pending(sysroot: &Sysroot, state: &State, now: DateTime<Utc>) -> Result<()> {
    let path = sysroot.pending_upgrade();
    let Some(pending) = records::read_set_record(&path).context(error::RecordsSnafu)? else {
        return Ok(());
    };
    let booted = state.active_set().boot.partuuid.to_string();
    if pending.boot_partuuid == booted {
        // Booted into it: the checks decide (the pending record goes with the mark).
        return Ok(());
    }
    let next_is_pending = state
        .next()
        .and_then(|next| state.sets().get(next))
        .is_some_and(|set| set.boot.partuuid.to_string() == pending.boot_partuuid);
    if next_is_pending {
        // Not rebooted yet since update-apply: still to come.
        log::info!(
            "Version {} (BOOT {}) boots next; not booted yet",
            pending.version,
            pending.boot_partuuid
        );
        return Ok(());
    }
    log::warn!(
        "The node fell back from version {} (BOOT {}) to the running set (BOOT {booted}): recording it as rolled \
         back in {}",
        pending.version,
        pending.boot_partuuid,
        sysroot.rolled_back().display()
    );
    records::append_rolled_back(
        &sysroot.rolled_back(),
        RolledBack {
            version: pending.version,
            boot_partuuid: pending.boot_partuuid,
            recorded_at: now,
        },
    )
    .context(error::RecordsSnafu)?;
    records::remove_record(&path).context(error::RecordsSnafu)
}

/// `updog mark-successful-boot`: see the module documentation.
pub fn mark_successful_boot(
    sysroot: &Sysroot,
    location: &Location,
    timeout: Duration,
    now: DateTime<Utc>,
    _lock: &UpdogLock,
) -> Result<Output> {
    let state = State::load(location).context(error::DiskSnafu)?;
    settle_pending(sysroot, &state, now)?;
    run_checks(&sysroot.health_dir(), sysroot.root(), timeout).context(error::HealthSnafu)?;

    let disk_lock = wait_for_lock(
        "the OS disk's lock",
        || location.lock_disk(),
        |e| {
            matches!(
                e,
                signpost::Error::Lock {
                    source: nodeio::LockError::Held { .. }
                }
            )
        },
    )
    .context(error::DiskSnafu)?;
    // Read again under the lock: another writer may have changed the table while the checks ran.
    let mut state = State::load(location).context(error::DiskSnafu)?;
    state.mark_successful_boot();
    state.write(&disk_lock).context(error::DiskSnafu)?;
    let booted = state.active_set().boot.partuuid.to_string();
    log::info!("Marked the running set (BOOT {booted}) successfully booted");

    let path = sysroot.pending_upgrade();
    if let Some(pending) = records::read_set_record(&path).context(error::RecordsSnafu)?
        && pending.boot_partuuid == booted
    {
        log::info!("Upgrade to {} confirmed", pending.version);
        records::remove_record(&path).context(error::RecordsSnafu)?;
    }
    Ok(Output::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    #[test]
    fn updogs_lock_is_waited_for_while_another_holds_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run/abupdate/updog.lock");
        let held = UpdogLock::acquire(&path).unwrap();
        let releaser = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            drop(held);
        });
        let started = Instant::now();
        let lock = wait_for_updog_lock(&path).unwrap();
        assert!(
            started.elapsed() >= Duration::from_millis(250),
            "{:?}",
            started.elapsed()
        );
        releaser.join().unwrap();
        assert_eq!(lock.path(), path);
    }

    #[test]
    fn only_regular_executable_files_are_checks_in_name_order() {
        let dir = tempfile::tempdir().unwrap();
        assert!(list_checks(&dir.path().join("absent")).unwrap().is_empty());
        script(dir.path(), "20-b", "true");
        script(dir.path(), "10-a", "true");
        std::fs::write(dir.path().join("15-not-executable"), "#!/bin/sh\n").unwrap();
        std::fs::create_dir(dir.path().join("12-dir")).unwrap();
        std::os::unix::fs::symlink("/bin/true", dir.path().join("11-link")).unwrap();
        let names: Vec<_> = list_checks(dir.path())
            .unwrap()
            .into_iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["10-a", "20-b"]);
    }

    #[test]
    fn a_failing_check_is_named_with_its_status_and_output_and_stops_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("ran");
        script(dir.path(), "10-ok", "echo fine");
        script(
            dir.path(),
            "20-disk",
            "echo checking; echo 'disk /data missing' >&2; exit 3",
        );
        script(
            dir.path(),
            "30-later",
            &format!("touch {}", marker.display()),
        );
        let error = run_checks(dir.path(), Path::new("/"), Duration::from_secs(10)).unwrap_err();
        let message = error.to_string();
        assert!(
            message.starts_with("Health check '20-disk' failed (exit status: 3)"),
            "{message}"
        );
        assert!(message.ends_with("disk /data missing"), "{message}");
        assert!(!marker.exists(), "checks after a failure do not run");
    }

    #[test]
    fn a_check_past_its_timeout_is_killed_with_its_whole_group() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("child.pid");
        script(
            dir.path(),
            "10-hang",
            &format!(
                "sleep 300 & echo $! > {}; echo waiting >&2; wait",
                pidfile.display()
            ),
        );
        let started = Instant::now();
        let error = run_checks(dir.path(), Path::new("/"), Duration::from_millis(300)).unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        let message = error.to_string();
        assert!(
            message.starts_with("Health check '10-hang' timed out after 0.300 s"),
            "{message}"
        );
        assert!(message.ends_with("waiting"), "{message}");
        // The background sleep, in the check's group, is gone too (a zombie at most, until init reaps it).
        let pid: u32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // SIGKILL takes effect when the process is next scheduled: on a loaded machine it may still show running
        // for a moment, so wait (bounded) for it to die rather than read its state once.
        let state_of = || {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next())
                .unwrap_or("gone")
                .to_string()
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut state = state_of();
        while !matches!(state.as_str(), "gone" | "Z" | "X") && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
            state = state_of();
        }
        assert!(
            matches!(state.as_str(), "gone" | "Z" | "X"),
            "sleep {pid} is {state} 10 s after the group kill"
        );
    }

    #[test]
    fn a_passing_check_sees_the_sysroot_and_a_stray_child_does_not_hold_it_up() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("seen");
        // The background sleep keeps the pipes open; the group kill after the check's exit ends it.
        script(
            dir.path(),
            "10-env",
            &format!(
                "echo \"${SYSROOT_ENV}\" > {}; sleep 300 & exit 0",
                out.display()
            ),
        );
        let started = Instant::now();
        let runs = run_checks(dir.path(), Path::new("/node"), Duration::from_secs(30)).unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(runs.len(), 1);
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "/node\n");
    }
}
