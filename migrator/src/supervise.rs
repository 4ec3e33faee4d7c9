//! Running one migration to its end, whatever it does: in its own process group, with a timeout,
//! its output read without ever waiting on a pipe that a descendant may hold, and the whole group
//! killed once the migration has exited or run out of time.
//!
//! ```text
//!   migrator ──spawn (setpgid 0: own group; stdin /dev/null; stdout, stderr: pipes)──► migration ──fork──► …
//!      │
//!      │ poll(stdout pipe, stderr pipe, pidfd of the migration; deadline = start + timeout)
//!      │   pipe readable: read what is there (kept up to OUTPUT_LIMIT, the rest discarded)
//!      │   pidfd readable (the migration exited) or deadline passed: stop polling
//!      ▼
//!   SIGKILL the group (kill -pgid) ─► wait until no process of the group is left ─► reap the migration
//!      ─► read what is already in the pipes (bounded; never block) ─► close them
//! ```
//!
//! Why each step:
//! - The migration's own process group lets one `kill(-pgid, SIGKILL)` reach every descendant it
//!   forked (they inherit the group), also after the migration itself has exited.
//! - The migration's exit is seen through a pidfd, not through EOF on its pipes: a descendant
//!   holding stdout or stderr open would otherwise keep migrator (and so the boot) waiting forever.
//! - Killing the group after a successful exit too: a migration that exits 0 has done its work;
//!   a stray descendant still running could write into the new copy after it is fsynced and
//!   flipped, so it dies before migrator goes on.
//! - Waiting until no process of the group is left (zombies aside) makes "killed" mean dead: no
//!   member can still be inside a write into the copy when it is synced or removed.
//! - A descendant that left the group (`setsid`, `setpgid`) is out of reach of the group kill; it
//!   is never waited for: the pipes are read only while data is already there, then closed (a
//!   later write of its gets EPIPE).

use crate::error::{self, Result};
use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::process::{Pid, PidfdFlags, Signal};
use snafu::ResultExt;
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStderr, ChildStdout, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How much of each of the migration's output streams is kept (the rest is read and dropped, so
/// a chatty migration never blocks on a full pipe and never fills memory).
pub const OUTPUT_LIMIT: usize = 1024 * 1024;

/// How long to wait for the processes of a killed group to be gone. SIGKILL cannot be caught; a
/// process still there after this is stuck in the kernel (an uninterruptible wait on a device).
const GROUP_EXIT_LIMIT: Duration = Duration::from_secs(10);

/// At most this much is read from each pipe after the group is gone (what a pipe can hold when
/// enlarged to the kernel's default maximum), so a writer outside the group cannot keep the
/// drain going.
const DRAIN_LIMIT: usize = 1024 * 1024;

/// How a migration ended: its exit status and what it printed.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// A migration that has been started; [`RunningMigration::finish`] waits for it. Dropped
/// unfinished (an error, a panic), it kills the group and reaps the migration.
#[derive(Debug)]
pub struct RunningMigration {
    name: String,
    child: Child,
    pgid: Pid,
    pidfd: OwnedFd,
    started: Instant,
    stdout: Output<ChildStdout>,
    stderr: Output<ChildStderr>,
    reaped: bool,
}

impl RunningMigration {
    /// Starts `command` in a new process group, stdin from /dev/null, stdout and stderr piped.
    pub fn spawn(name: &str, mut command: Command) -> Result<Self> {
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut child = command
            .spawn()
            .context(error::StartMigrationSnafu { name })?;
        let started = Instant::now();
        let pid = Pid::from_child(&child);
        let pidfd = match rustix::process::pidfd_open(pid, PidfdFlags::empty()) {
            Ok(fd) => fd,
            Err(e) => {
                // Not ours to supervise without it: stop it at once.
                kill_group(pid);
                if let Err(wait) = child.wait() {
                    log::error!("Failed to reap migration '{name}' (pid {pid}): {wait}");
                }
                return Err(io::Error::from(e)).context(error::SuperviseMigrationSnafu {
                    name,
                    action: "open a pidfd for",
                });
            }
        };
        let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
            // Cannot happen (both were set to Stdio::piped()), but never leave it running.
            kill_group(pid);
            if let Err(wait) = child.wait() {
                log::error!("Failed to reap migration '{name}' (pid {pid}): {wait}");
            }
            return Err(io::Error::other("stdout or stderr is not a pipe")).context(
                error::SuperviseMigrationSnafu {
                    name,
                    action: "capture the output of",
                },
            );
        };
        Ok(Self {
            name: name.to_string(),
            child,
            pgid: pid,
            pidfd,
            started,
            stdout: Output::new(stdout),
            stderr: Output::new(stderr),
            reaped: false,
        })
    }

    /// The migration's process id, which is also its process group id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until the migration exits or `timeout` (counted from the start) passes, reading its
    /// output meanwhile; then kills its whole process group, waits until no process of the group
    /// is left, and reaps it. A timeout is an error naming the migration and the timeout.
    pub fn finish(mut self, timeout: Duration) -> Result<Finished> {
        // A timeout too large to add is no deadline in practice: a year from now.
        let deadline = self
            .started
            .checked_add(timeout)
            .unwrap_or_else(|| self.started + Duration::from_secs(365 * 86_400));
        let exited = self.wait_for_exit(deadline)?;
        kill_group(self.pgid);
        // The migration is reaped only once the rest of its group is gone: until then its zombie
        // keeps its pid, which is the group's id, so no new process can take that id and be hit
        // by the kills of this group.
        let survivors = wait_for_group_exit(self.pgid);
        let status = self.child.wait();
        self.reaped = true;
        let status = status.context(error::SuperviseMigrationSnafu {
            name: &self.name,
            action: "reap",
        })?;
        self.stdout.drain();
        self.stderr.drain();
        for (stream, output) in [
            ("stdout", self.stdout.dropped),
            ("stderr", self.stderr.dropped),
        ] {
            if output > 0 {
                log::warn!(
                    "Migration '{}' wrote {output} more bytes on {stream} than the {OUTPUT_LIMIT} kept",
                    self.name
                );
            }
        }
        let stderr = self.stderr.text();
        if !survivors.is_empty() {
            return error::MigrationSurvivorsSnafu {
                name: &self.name,
                pids: survivors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
            }
            .fail();
        }
        if !exited {
            return error::MigrationTimeoutSnafu {
                name: &self.name,
                timeout,
                stderr,
            }
            .fail();
        }
        Ok(Finished {
            status,
            stdout: std::mem::take(&mut self.stdout.kept),
            stderr: std::mem::take(&mut self.stderr.kept),
        })
    }

    /// Reads output until the migration exits (`true`) or the deadline passes (`false`).
    fn wait_for_exit(&mut self, deadline: Instant) -> Result<bool> {
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Ok(false);
            }
            let remaining = Timespec::try_from(deadline - now).unwrap_or(Timespec {
                tv_sec: i64::MAX,
                tv_nsec: 0,
            });
            let readable = PollFlags::IN | PollFlags::HUP | PollFlags::ERR;
            let mut fds = vec![PollFd::new(&self.pidfd, PollFlags::IN)];
            let watch_stdout = self.stdout.open();
            let watch_stderr = self.stderr.open();
            if let Some(pipe) = self.stdout.pipe.as_ref() {
                fds.push(PollFd::new(pipe, PollFlags::IN));
            }
            if let Some(pipe) = self.stderr.pipe.as_ref() {
                fds.push(PollFd::new(pipe, PollFlags::IN));
            }
            match rustix::event::poll(&mut fds, Some(&remaining)) {
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => {
                    return Err(io::Error::from(e)).context(error::SuperviseMigrationSnafu {
                        name: &self.name,
                        action: "wait for",
                    });
                }
            }
            let ready: Vec<bool> = fds
                .iter()
                .map(|fd| fd.revents().intersects(readable))
                .collect();
            drop(fds);
            let mut index = 1;
            if watch_stdout {
                if ready[index] {
                    self.stdout.read_once();
                }
                index += 1;
            }
            if watch_stderr && ready[index] {
                self.stderr.read_once();
            }
            if ready[0] {
                return Ok(true);
            }
        }
    }
}

impl Drop for RunningMigration {
    fn drop(&mut self) {
        if !self.reaped {
            kill_group(self.pgid);
            if let Err(e) = self.child.wait() {
                log::error!("Failed to reap migration '{}': {e}", self.name);
            }
        }
    }
}

/// One of the migration's output pipes and what was read from it.
#[derive(Debug)]
struct Output<P> {
    pipe: Option<P>,
    kept: Vec<u8>,
    dropped: usize,
}

impl<P: Read + std::os::fd::AsFd> Output<P> {
    fn new(pipe: P) -> Self {
        Self {
            pipe: Some(pipe),
            kept: Vec::new(),
            dropped: 0,
        }
    }

    fn open(&self) -> bool {
        self.pipe.is_some()
    }

    /// One read (poll said there is data or the writers are gone); returns the bytes read, 0
    /// once the pipe is closed (or failed: a read error is logged and ends the stream).
    fn read_once(&mut self) -> usize {
        let Some(pipe) = self.pipe.as_mut() else {
            return 0;
        };
        let mut buffer = [0u8; 64 * 1024];
        match pipe.read(&mut buffer) {
            Ok(0) => {
                self.pipe = None;
                0
            }
            Ok(n) => {
                let keep = n.min(OUTPUT_LIMIT.saturating_sub(self.kept.len()));
                self.kept.extend_from_slice(&buffer[..keep]);
                self.dropped += n - keep;
                n
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => 1,
            Err(e) => {
                log::warn!("Failed to read a migration's output: {e}");
                self.pipe = None;
                0
            }
        }
    }

    /// Reads what is already in the pipe, without waiting, at most [`DRAIN_LIMIT`] bytes; then
    /// closes it.
    fn drain(&mut self) {
        let mut drained = 0;
        while drained < DRAIN_LIMIT {
            let Some(pipe) = self.pipe.as_ref() else {
                break;
            };
            let mut fds = [PollFd::new(pipe, PollFlags::IN)];
            let zero = Timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            match rustix::event::poll(&mut fds, Some(&zero)) {
                Ok(0) => break,
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => continue,
                Err(_) => break,
            }
            let n = self.read_once();
            if n == 0 {
                break;
            }
            drained += n;
        }
        self.pipe = None;
    }

    /// What was kept, as text (lossy), with a note of what was dropped.
    fn text(&self) -> String {
        let mut text = String::from_utf8_lossy(&self.kept).trim_end().to_string();
        if self.dropped > 0 {
            text.push_str(&format!(" [… {} more bytes not kept]", self.dropped));
        }
        text
    }
}

/// SIGKILLs every process of group `pgid`. A group already gone is fine; any other failure is
/// logged (the survivors check that follows names what is left).
fn kill_group(pgid: Pid) {
    match rustix::process::kill_process_group(pgid, Signal::KILL) {
        Ok(()) | Err(rustix::io::Errno::SRCH) => {}
        Err(e) => log::error!("Failed to SIGKILL process group {pgid}: {e}"),
    }
}

/// Waits (up to [`GROUP_EXIT_LIMIT`]) until no live process of group `pgid` is left; returns the
/// ones still alive then (empty: all gone).
fn wait_for_group_exit(pgid: Pid) -> Vec<u32> {
    let deadline = Instant::now() + GROUP_EXIT_LIMIT;
    loop {
        let alive = live_members(pgid);
        if alive.is_empty() || Instant::now() >= deadline {
            return alive;
        }
        // SIGKILLed processes go within microseconds; this is a back-off, not a guess.
        std::thread::sleep(Duration::from_millis(5));
        kill_group(pgid);
    }
}

/// The processes of group `pgid` that are not zombies (a zombie runs nothing, and it is its
/// parent's to reap, not ours), from `/proc/<pid>/stat`.
pub fn live_members(pgid: Pid) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let wanted = pgid.as_raw_nonzero().get();
    entries
        .flatten()
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            let (state, pgrp) = parse_stat(&stat)?;
            (pgrp == wanted && !matches!(state, 'Z' | 'X' | 'x')).then_some(pid)
        })
        .collect()
}

/// (state, process group) from `/proc/<pid>/stat`: `pid (comm) state ppid pgrp …`, where comm
/// may hold spaces and parentheses, so the fields are counted from the last `)`.
fn parse_stat(stat: &str) -> Option<(char, i32)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let _ppid = fields.next()?;
    let pgrp = fields.next()?.parse().ok()?;
    Some((state, pgrp))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut command = Command::new("/bin/sh");
        command.args(["-c", script]);
        command
    }

    #[test]
    fn parses_stat_with_awkward_command_names() {
        assert_eq!(
            parse_stat("42 (a) b (c)) S 1 42 42 0 -1 4194560"),
            Some(('S', 42))
        );
        assert_eq!(parse_stat("7 (sleep) Z 1 99 99"), Some(('Z', 99)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn collects_output_and_status() {
        let running =
            RunningMigration::spawn("echo", sh("echo out; echo err >&2; exit 3")).unwrap();
        let finished = running.finish(Duration::from_secs(60)).unwrap();
        assert_eq!(finished.status.code(), Some(3));
        assert_eq!(finished.stdout, b"out\n");
        assert_eq!(finished.stderr, b"err\n");
    }

    #[test]
    fn a_descendant_holding_the_pipes_does_not_block_and_is_killed() {
        // The shell exits at once; its background child keeps stdout and stderr open.
        let running =
            RunningMigration::spawn("forks", sh("sleep 1000000 & echo started; exit 0")).unwrap();
        let pgid = Pid::from_raw(i32::try_from(running.pid()).unwrap()).unwrap();
        let finished = running.finish(Duration::from_secs(60)).unwrap();
        assert!(finished.status.success());
        assert_eq!(finished.stdout, b"started\n");
        assert_eq!(live_members(pgid), Vec::<u32>::new());
    }

    #[test]
    fn a_migration_running_past_its_timeout_is_killed_with_its_group() {
        let running = RunningMigration::spawn(
            "hangs",
            sh("sleep 1000000 & echo about to hang >&2; sleep 1000000"),
        )
        .unwrap();
        let pgid = Pid::from_raw(i32::try_from(running.pid()).unwrap()).unwrap();
        let err = running.finish(Duration::from_millis(300)).unwrap_err();
        let message = err.to_string();
        assert!(
            matches!(err, error::Error::MigrationTimeout { .. }),
            "{message}"
        );
        assert!(message.contains("'hangs'"), "{message}");
        assert!(message.contains("0.3 s"), "{message}");
        assert_eq!(live_members(pgid), Vec::<u32>::new());
    }

    #[test]
    fn output_beyond_the_limit_is_read_and_dropped() {
        let running = RunningMigration::spawn(
            "chatty",
            sh("head -c 3000000 /dev/zero; head -c 10 /dev/zero >&2"),
        )
        .unwrap();
        let finished = running.finish(Duration::from_secs(60)).unwrap();
        assert!(finished.status.success());
        assert_eq!(finished.stdout.len(), OUTPUT_LIMIT);
        assert_eq!(finished.stderr.len(), 10);
    }

    #[test]
    fn a_program_that_cannot_start_is_an_error_naming_it() {
        let err =
            RunningMigration::spawn("missing", Command::new("/nonexistent/program")).unwrap_err();
        assert!(err.to_string().contains("'missing'"), "{err}");
    }
}
