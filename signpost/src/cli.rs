//! The `signpost` command line: upstream's nine subcommands, plus `--sysroot`, `--disk` and `status --json`.
//!
//! Exit codes as upstream: 0 on success, 1 for every error and every usage problem (with the message on stderr);
//! `--help` and `--version` exit 0.

use crate::disk::Location;
use crate::error::{self, Error};
use crate::state::State;
use clap::error::ErrorKind;
use clap::{Args, Parser, Subcommand};
use snafu::ResultExt;
use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "signpost",
    version,
    about = "Show and change the A/B partition state (GPT priority bits) of the OS disk"
)]
pub struct Cli {
    /// The node's root directory: /proc/cmdline is read under it, and without --disk the OS disk is the one under
    /// the filesystem mounted there.
    #[arg(long, global = true, default_value = "/", value_name = "DIR")]
    pub sysroot: PathBuf,

    /// The OS disk: a block device, a loop device or a disk-image file.
    #[arg(long, global = true, value_name = "PATH")]
    pub disk: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show partition sets and priority status
    Status(StatusArgs),
    /// Mark the active partitions as successfully booted
    MarkSuccessfulBoot,
    /// Clears inactive priority information to prepare writing images to disk
    ClearInactive,
    /// Marks the inactive partition as having a valid image
    MarkInactiveValid,
    /// Sets the inactive partitions as new upgrade partitions if marked valid
    UpgradeToInactive,
    /// Reverse upgrade-to-inactive
    CancelUpgrade,
    /// Deprioritizes the inactive partitions
    RollbackToInactive,
    /// Checks whether boot has ever succeeded
    HasBootEverSucceeded,
    /// Rewrite the partition table with no changes to disk (used for testing this code)
    RewriteTable,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print the status as JSON (see docs/signpost.md).
    #[arg(long)]
    pub json: bool,
}

impl Cli {
    pub fn location(&self) -> Location {
        let location = Location::new(&self.sysroot);
        match &self.disk {
            Some(disk) => location.disk(disk),
            None => location,
        }
    }
}

/// Runs a parsed command; output goes to `stdout`.
pub fn run(cli: &Cli, stdout: &mut dyn Write) -> Result<(), Error> {
    let location = cli.location();
    let Some(change) = table_change(&cli.command) else {
        let state = State::load(&location)?;
        return match &cli.command {
            Command::Status(args) if args.json => {
                let json = serde_json::to_string_pretty(&state.status())
                    .context(error::SerializeStatusSnafu)?;
                writeln!(stdout, "{json}").context(error::OutputSnafu)
            }
            Command::HasBootEverSucceeded if !state.has_boot_succeeded() => Ok(()),
            Command::HasBootEverSucceeded => writeln!(stdout, "true").context(error::OutputSnafu),
            _ => writeln!(stdout, "{state}").context(error::OutputSnafu),
        };
    };
    // A command that writes the table holds the disk's lock from before the table is read until it is written,
    // so it never acts on a state another writer (updog streaming into a set) is about to change.
    let lock = location.lock_disk()?;
    let mut state = State::load(&location)?;
    change(&mut state)?;
    state.write(&lock)
}

/// A change to the loaded table, made before it is written back.
type TableChange = fn(&mut State) -> Result<(), Error>;

/// What a command changes in the table before writing it; none for the commands that only read.
fn table_change(command: &Command) -> Option<TableChange> {
    Some(match command {
        Command::Status(_) | Command::HasBootEverSucceeded => return None,
        Command::MarkSuccessfulBoot => |state| {
            state.mark_successful_boot();
            Ok(())
        },
        Command::ClearInactive => State::clear_inactive,
        Command::MarkInactiveValid => State::mark_inactive_valid,
        Command::UpgradeToInactive => State::upgrade_to_inactive,
        Command::CancelUpgrade => State::cancel_upgrade,
        Command::RollbackToInactive => State::rollback_to_inactive,
        Command::RewriteTable => |_| Ok(()),
    })
}

/// The whole program: parse `args` (the first is the program name), run, report; returns the exit code.
pub fn main_with<I, T>(args: I, stdout: &mut dyn Write, stderr: &mut dyn Write) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            return report(stdout, &e.render().to_string(), 0);
        }
        Err(e) => return report(stderr, &e.render().to_string(), 1),
    };
    match run(&cli, stdout) {
        Ok(()) => 0,
        Err(e) => report(stderr, &format!("{e}\n"), 1),
    }
}

/// Writes `text` and returns `code`; when even that write fails there is nowhere left to report to, and the exit
/// code still tells.
fn report(out: &mut dyn Write, text: &str, code: i32) -> i32 {
    if out
        .write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .is_err()
    {
        return 1;
    }
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_args(args: &[&str]) -> (i32, String, String) {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = main_with(
            std::iter::once("signpost").chain(args.iter().copied()),
            &mut out,
            &mut err,
        );
        (
            code,
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    }

    #[test]
    fn usage_problems_exit_1_on_stderr() {
        for args in [
            &[][..],
            &["frobnicate"],
            &["status", "extra"],
            &["status", "--bogus"],
        ] {
            let (code, out, err) = run_args(args);
            assert_eq!(code, 1, "{args:?}");
            assert!(out.is_empty());
            assert!(err.contains("Usage"), "{err}");
        }
    }

    #[test]
    fn help_lists_upstreams_subcommands_and_exits_0() {
        let (code, out, _) = run_args(&["--help"]);
        assert_eq!(code, 0);
        for command in [
            "status",
            "mark-successful-boot",
            "clear-inactive",
            "mark-inactive-valid",
            "upgrade-to-inactive",
            "cancel-upgrade",
            "rollback-to-inactive",
            "has-boot-ever-succeeded",
            "rewrite-table",
        ] {
            assert!(out.contains(command), "{command} in {out}");
        }
    }

    #[test]
    fn a_missing_disk_is_an_error_naming_it() {
        let (code, out, err) = run_args(&["--disk", "/nonexistent/disk.img", "status"]);
        assert_eq!(code, 1);
        assert!(out.is_empty());
        assert!(
            err.starts_with("Failed to stat /nonexistent/disk.img: "),
            "{err}"
        );
    }

    #[test]
    fn global_flags_go_before_or_after_the_subcommand() {
        let cli = Cli::try_parse_from([
            "signpost",
            "status",
            "--json",
            "--disk",
            "d.img",
            "--sysroot",
            "/n",
        ])
        .unwrap();
        assert_eq!(cli.disk.as_deref(), Some(std::path::Path::new("d.img")));
        assert_eq!(
            cli.location().cmdline_path(),
            std::path::Path::new("/n/proc/cmdline")
        );
    }
}
