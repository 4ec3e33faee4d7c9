//! The command line, upstream's: `thar-be-updates refresh|prepare|activate|deactivate [--config-path P]
//! [--log-level L]`, plus `--sysroot DIR`; usage errors exit 2. Beyond upstream, the hidden `recover` (run by
//! apiserver, in the foreground): records a command whose worker died as Failed and makes the status agree with the
//! disk.

use crate::detach::{self, Invocation};
use crate::error::{EXIT_USAGE, Result};
use crate::status::UpdateCommand;
use clap::Parser;
use log::LevelFilter;
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "thar-be-updates",
    about = "Runs an update command in the background and records its outcome in the update status",
    disable_version_flag = true
)]
pub struct Cli {
    /// The command: refresh, prepare, activate or deactivate.
    #[arg(value_enum)]
    pub command: CliCommand,

    /// The config file [default: /etc/thar-be-updates.toml under the sysroot].
    #[arg(long, value_name = "PATH")]
    pub config_path: Option<PathBuf>,

    /// Logging verbosity (in the command's log, /run/cache/thar-be-updates/<cmd>.log).
    #[arg(long, default_value = "info", value_parser = updog::logging::parse_level, value_name = "off|error|warn|info|debug|trace")]
    pub log_level: LevelFilter,

    /// Resolve every node path under this directory.
    #[arg(long, default_value = "/", value_name = "DIR")]
    pub sysroot: PathBuf,

    /// Run as the detached child that does the work (internal).
    #[arg(long = "detached-child", hide = true)]
    pub detached_child: bool,
}

/// What the command line asks for: one of upstream's update commands, or `recover`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CliCommand {
    Refresh,
    Prepare,
    Activate,
    Deactivate,
    /// Beyond upstream, for apiserver: recover from a command whose worker died (runs in the foreground).
    #[value(hide = true)]
    Recover,
}

impl CliCommand {
    /// The update command; none for `recover`.
    #[must_use]
    pub fn update_command(self) -> Option<UpdateCommand> {
        match self {
            CliCommand::Refresh => Some(UpdateCommand::Refresh),
            CliCommand::Prepare => Some(UpdateCommand::Prepare),
            CliCommand::Activate => Some(UpdateCommand::Activate),
            CliCommand::Deactivate => Some(UpdateCommand::Deactivate),
            CliCommand::Recover => None,
        }
    }
}

impl Cli {
    /// The update command to run detached; none for `recover`.
    #[must_use]
    pub fn invocation(&self) -> Option<Invocation> {
        Some(Invocation {
            command: self.command.update_command()?,
            sysroot: self.sysroot.clone(),
            config_path: self.config_path.clone(),
            log_level: self.log_level,
        })
    }
}

/// Parses the process arguments: a usage error is its message and exit code 2 (`--help`: the help and 0).
pub fn parse() -> std::result::Result<Cli, (String, u8)> {
    Cli::try_parse().map_err(|e| {
        let code = if e.use_stderr() { EXIT_USAGE } else { 0 };
        (e.render().to_string(), code)
    })
}

/// The parent: starts the detached child and returns its verdict (exit code and message).
pub fn run(invocation: &Invocation) -> Result<detach::Verdict> {
    detach::start(invocation)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_from(args: &[&str]) -> std::result::Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("thar-be-updates").chain(args.iter().copied()))
    }

    #[test]
    fn upstreams_commands_and_flags_parse_in_any_order() {
        let cli = parse_from(&[
            "--log-level",
            "debug",
            "prepare",
            "--config-path",
            "/x.toml",
            "--sysroot",
            "/node",
        ])
        .unwrap();
        assert_eq!(cli.command, CliCommand::Prepare);
        assert_eq!(cli.invocation().unwrap().command, UpdateCommand::Prepare);
        assert_eq!(cli.log_level, LevelFilter::Debug);
        assert_eq!(cli.config_path, Some(PathBuf::from("/x.toml")));
        assert_eq!(cli.sysroot, PathBuf::from("/node"));
        assert!(!cli.detached_child);
        for (name, command) in [
            ("refresh", UpdateCommand::Refresh),
            ("activate", UpdateCommand::Activate),
            ("deactivate", UpdateCommand::Deactivate),
        ] {
            assert_eq!(
                parse_from(&[name]).unwrap().invocation().unwrap().command,
                command
            );
        }
    }

    #[test]
    fn recover_parses_but_is_no_update_command_and_is_not_in_the_help() {
        let cli = parse_from(&["recover", "--sysroot", "/node"]).unwrap();
        assert_eq!(cli.command, CliCommand::Recover);
        assert!(cli.invocation().is_none());
        let help = parse_from(&["--help"]).unwrap_err().render().to_string();
        assert!(help.contains("deactivate"), "{help}");
        assert!(!help.contains("recover"), "{help}");
    }

    #[test]
    fn anything_else_is_a_usage_error() {
        for args in [
            &[][..],
            &["reboot"][..],
            &["refresh", "prepare"][..],
            &["refresh", "--loud"][..],
        ] {
            let error = parse_from(args).unwrap_err();
            assert!(error.use_stderr(), "{args:?}");
        }
    }
}
