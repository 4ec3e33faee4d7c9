//! Fork-and-return without `fork` (and without unsafe code): the command runs in a detached copy of this program,
//! and the caller waits only for its verdict.
//!
//! ```text
//!  caller (apiserver) ──spawn, stdout piped──► parent: thar-be-updates CMD
//!                                                │ spawns itself with --detached-child: new process group,
//!                                                │ stdin and stderr /dev/null, stdout a pipe
//!                                                ▼
//!                                              child: lock ─► status ─► transition check
//!                                                │ writes one verdict line {"code":N,"message":"…"} on the pipe,
//!                                                │ then puts /dev/null over its stdout (the pipe closes)
//!  parent ◄── verdict ───────────────────────────┤
//!  exits N, message on stderr                    └─► (code 0) runs the command, writes status.json at the end
//! ```
//! The child never holds the caller's stdout or stderr, so a caller reading the parent's output to EOF returns as
//! soon as the parent exits, however long the command runs. A child that dies before its verdict makes the parent
//! exit 1 saying so.

use crate::error::{self, Error, Result};
use crate::status::UpdateCommand;
use log::LevelFilter;
use serde::{Deserialize, Serialize};
use snafu::ResultExt;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The hidden flag that makes this program the detached child.
pub const CHILD_FLAG: &str = "--detached-child";

/// The child's answer: the exit code the parent exits with, and what it prints on stderr.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    pub code: u8,
    pub message: String,
}

impl Verdict {
    #[must_use]
    pub fn accepted() -> Self {
        Self {
            code: 0,
            message: String::new(),
        }
    }

    #[must_use]
    pub fn refused(error: &Error) -> Self {
        Self {
            code: error.exit_code(),
            message: error.to_string(),
        }
    }
}

/// What the child is asked to run.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub command: UpdateCommand,
    pub sysroot: PathBuf,
    pub config_path: Option<PathBuf>,
    pub log_level: LevelFilter,
}

/// The parent's side: starts the detached child and returns its verdict.
pub fn start(invocation: &Invocation) -> Result<Verdict> {
    start_program(
        &std::env::current_exe().context(error::CurrentExeSnafu)?,
        invocation,
    )
}

fn start_program(exe: &Path, invocation: &Invocation) -> Result<Verdict> {
    let command = invocation.command;
    let mut child_command = Command::new(exe);
    child_command
        .arg(command.name())
        .arg("--sysroot")
        .arg(&invocation.sysroot)
        .arg("--log-level")
        .arg(invocation.log_level.as_str())
        .arg(CHILD_FLAG);
    if let Some(path) = &invocation.config_path {
        child_command.arg("--config-path").arg(path);
    }
    let mut child = child_command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        // Its own process group: a signal to the caller's group (a Ctrl-C, a killed apiserver) does not end it.
        .process_group(0)
        .spawn()
        .context(error::SpawnSnafu { exe, command })?;
    let mut line = String::new();
    if let Some(stdout) = child.stdout.take() {
        // One line, not to EOF: the verdict is all the parent needs.
        BufReader::new(stdout)
            .read_line(&mut line)
            .context(error::ReadVerdictSnafu { command })?;
    }
    if line.trim().is_empty() {
        let status = child
            .wait()
            .map_or_else(|e| format!("cannot wait for it: {e}"), |s| s.to_string());
        return error::ChildDiedSnafu {
            command,
            pid: child.id(),
            status,
        }
        .fail();
    }
    serde_json::from_str(line.trim_end()).context(error::BadVerdictSnafu { command, line })
}

/// The child's side: sends the verdict on stdout, then closes the pipe by putting /dev/null over stdout.
pub fn send_verdict(verdict: &Verdict) -> Result<()> {
    let mut line = serde_json::to_string(verdict).unwrap_or_else(|_| {
        format!(
            "{{\"code\":{},\"message\":\"(unprintable message)\"}}",
            verdict.code
        )
    });
    line.push('\n');
    let mut stdout = std::io::stdout().lock();
    // A parent that is gone needs no verdict; the command goes on either way.
    if let Err(e) = stdout
        .write_all(line.as_bytes())
        .and_then(|()| stdout.flush())
    {
        log::warn!("Failed to send the verdict to the parent: {e}");
    }
    drop(stdout);
    let null = std::fs::File::open("/dev/null").context(error::RedirectSnafu { what: "stdout" })?;
    rustix::stdio::dup2_stdout(&null)
        .map_err(std::io::Error::from)
        .context(error::RedirectSnafu { what: "stdout" })
}

/// The child's side: its stderr (the log) goes to `file` from now on.
pub fn redirect_stderr(file: &std::fs::File) -> Result<()> {
    rustix::stdio::dup2_stderr(file)
        .map_err(std::io::Error::from)
        .context(error::RedirectSnafu { what: "stderr" })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invocation() -> Invocation {
        Invocation {
            command: UpdateCommand::Refresh,
            sysroot: "/".into(),
            config_path: None,
            log_level: LevelFilter::Info,
        }
    }

    #[test]
    fn a_child_that_dies_before_its_verdict_is_an_error_saying_so() {
        let error = start_program(Path::new("/bin/false"), &invocation()).unwrap_err();
        assert_eq!(error.exit_code(), 1);
        assert!(
            error
                .to_string()
                .starts_with("The detached thar-be-updates refresh (pid "),
            "{error}"
        );
        assert!(error.to_string().ends_with("exit status: 1"), "{error}");
    }

    #[test]
    fn a_malformed_verdict_is_an_error_quoting_it() {
        let error = start_program(Path::new("/bin/echo"), &invocation()).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("The detached thar-be-updates refresh sent a malformed verdict \"refresh --sysroot / --log-level INFO --detached-child\\n\""),
            "{error}"
        );
    }
}
