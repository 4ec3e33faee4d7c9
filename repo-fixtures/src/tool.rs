//! Running a system tool (`losetup`, `partx`, `cgpt`, `sgdisk`): its output when it exits 0, else an error with the
//! command line, the exit status and its stderr.

use snafu::{ResultExt, Snafu, ensure};
use std::ffi::OsStr;
use std::process::{Command, ExitStatus, Output};

#[derive(Debug, Snafu)]
pub enum ToolRunError {
    #[snafu(display("Failed to run {program}"))]
    Spawn {
        program: &'static str,
        source: std::io::Error,
    },

    #[snafu(display("`{command}` failed ({status}): {stderr}"))]
    Failed {
        command: String,
        status: ExitStatus,
        stderr: String,
    },
}

/// Runs `program args` to completion.
pub fn run_tool<S: AsRef<OsStr>>(
    program: &'static str,
    args: &[S],
) -> Result<Output, ToolRunError> {
    let output = Command::new(program)
        .args(args)
        .output()
        .context(SpawnSnafu { program })?;
    ensure!(
        output.status.success(),
        FailedSnafu {
            command: command_line(program, args),
            status: output.status,
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        }
    );
    Ok(output)
}

/// `program args` as one string, for messages.
pub fn command_line<S: AsRef<OsStr>>(program: &str, args: &[S]) -> String {
    let mut line = program.to_string();
    for arg in args {
        line.push(' ');
        line.push_str(&arg.as_ref().to_string_lossy());
    }
    line
}
