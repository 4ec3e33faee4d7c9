//! updog's command line: upstream's subcommand and flag names (`check-update`, its alias
//! `whats`, `-a/--all`, `-j/--json`, `-i/--image`, `-n/--now`/`--ignore-waves`, `--log-level`,
//! hidden `--variant`), plus `--sysroot` (DESIGN.md §4) and a hidden `--arch`. As upstream, flags
//! may come before or after the subcommand, and usage errors exit 1.

use crate::check::{self, CheckOptions, Node, Output};
use crate::error::{self, Result};
use crate::lock::UpdogLock;
use crate::sysroot::Sysroot;
use clap::{Parser, Subcommand};
use log::LevelFilter;
use semver::Version;
use snafu::ResultExt;
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "updog",
    about = "Checks for and applies OS image updates from a TUF repository",
    disable_version_flag = true
)]
pub struct Cli {
    /// Resolve every node path (/etc/updog.toml, /usr/share/updog/root.json, /usr/lib/os-release,
    /// /var/lib/updog/tuf, /run/lock/updog.lock) under this directory.
    #[arg(long, global = true, default_value = "/", value_name = "DIR")]
    pub sysroot: PathBuf,

    /// Logging verbosity (on stderr).
    #[arg(long, global = true, default_value = "info", value_parser = crate::logging::parse_level, value_name = "trace|debug|info|warn|error")]
    pub log_level: LevelFilter,

    /// JSON-formatted output.
    #[arg(short, long, global = true)]
    pub json: bool,

    /// Output all available updates, even if they're not upgrades.
    #[arg(short, long, global = true)]
    pub all: bool,

    /// Check for this specific image version (strict semver).
    #[arg(short, long, global = true, value_name = "VERSION", value_parser = parse_version)]
    pub image: Option<Version>,

    /// Ignore the release schedule (waves).
    #[arg(
        short = 'n',
        long = "now",
        visible_alias = "ignore-waves",
        global = true
    )]
    pub now: bool,

    /// Use this variant instead of VARIANT_ID from os-release (upstream's hidden flag).
    #[arg(long, global = true, hide = true)]
    pub variant: Option<String>,

    /// Use this architecture instead of the build's (hidden; for tests).
    #[arg(long, global = true, hide = true)]
    pub arch: Option<String>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Subcommand)]
pub enum Command {
    /// Show if an update is available.
    #[command(alias = "whats")]
    CheckUpdate,
}

fn parse_version(s: &str) -> std::result::Result<Version, String> {
    Version::parse(s).map_err(|e| format!("'{s}' is not a semantic version like 1.2.3: {e}"))
}

/// Parses the process arguments. Usage errors give exit code 1 (upstream's), `--help` 0.
pub fn parse() -> std::result::Result<Cli, (Output, u8)> {
    Cli::try_parse().map_err(|e| {
        let text = e.render().to_string();
        if e.use_stderr() {
            (
                Output {
                    stdout: String::new(),
                    stderr: text,
                },
                1,
            )
        } else {
            (
                Output {
                    stdout: text,
                    stderr: String::new(),
                },
                0,
            )
        }
    })
}

/// Runs a parsed command line. Takes updog's lock first, then reads the node's config.
///
/// Like upstream, this exports updog.toml's proxy settings as `HTTPS_PROXY`/`NO_PROXY` for
/// tough's HTTP client, before it starts the async runtime: call it from `main` while the
/// process is single-threaded.
pub fn run(cli: Cli) -> Result<Output> {
    let sysroot = Sysroot::new(&cli.sysroot);
    let lock = UpdogLock::acquire(&sysroot.lock_file()).context(error::LockSnafu)?;
    let node = Node::load(sysroot)?;
    for (key, value) in node.config.proxy_environment() {
        log::debug!("setting {key}={value}");
        // SAFETY: updog's process has a single thread here (the runtime starts below, and
        // nothing before this spawns threads), so no other thread reads the environment.
        unsafe { std::env::set_var(key, value) };
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context(error::RuntimeSnafu)?;
    match cli.command {
        Command::CheckUpdate => {
            let options = CheckOptions {
                all: cli.all,
                json: cli.json,
                ignore_waves: cli.now,
                image: cli.image,
                variant: cli.variant,
                arch: cli.arch,
            };
            runtime.block_on(check::check_update(
                &node,
                &options,
                chrono::Utc::now(),
                &lock,
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_from(args: &[&str]) -> std::result::Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("updog").chain(args.iter().copied()))
    }

    #[test]
    fn flags_may_come_before_or_after_the_subcommand() {
        for args in [
            &["check-update", "-a", "-j"][..],
            &["-a", "-j", "check-update"][..],
            &["-aj", "check-update"][..],
            &["--all", "check-update", "--json"][..],
        ] {
            let cli = parse_from(args).unwrap();
            assert!(cli.all && cli.json, "{args:?}");
            assert_eq!(cli.command, Command::CheckUpdate);
        }
    }

    #[test]
    fn whats_is_check_update() {
        assert_eq!(
            parse_from(&["whats"]).unwrap().command,
            Command::CheckUpdate
        );
    }

    #[test]
    fn now_has_upstreams_three_spellings() {
        for flag in ["-n", "--now", "--ignore-waves"] {
            assert!(parse_from(&["check-update", flag]).unwrap().now, "{flag}");
        }
    }

    #[test]
    fn image_must_be_strict_semver() {
        let cli = parse_from(&["check-update", "-i", "1.2.3"]).unwrap();
        assert_eq!(cli.image, Some(Version::new(1, 2, 3)));
        assert!(parse_from(&["check-update", "--image", "1.2"]).is_err());
        assert!(parse_from(&["check-update", "--image", "v1.2.3"]).is_err());
    }

    #[test]
    fn log_levels_are_upstreams() {
        for level in ["trace", "debug", "info", "warn", "error"] {
            assert!(parse_from(&["--log-level", level, "check-update"]).is_ok());
        }
        assert!(parse_from(&["--log-level", "off", "check-update"]).is_err());
        assert_eq!(
            parse_from(&["check-update"]).unwrap().log_level,
            LevelFilter::Info
        );
    }

    #[test]
    fn hidden_overrides_and_sysroot_parse() {
        let cli = parse_from(&[
            "check-update",
            "--variant",
            "metal-dev",
            "--arch",
            "aarch64",
            "--sysroot",
            "/tmp/node",
        ])
        .unwrap();
        assert_eq!(cli.variant.as_deref(), Some("metal-dev"));
        assert_eq!(cli.arch.as_deref(), Some("aarch64"));
        assert_eq!(cli.sysroot, PathBuf::from("/tmp/node"));
    }

    #[test]
    fn unknown_subcommands_and_flags_are_usage_errors() {
        for args in [
            &[][..],
            &["update"][..],
            &["check-update", "--timestamp", "x"][..],
            &["check-update", "check-update"][..],
        ] {
            assert!(parse_from(args).is_err(), "{args:?}");
        }
    }
}
