//! updog's command line: upstream's subcommand and flag names (`check-update`, its alias
//! `whats`, `-a/--all`, `-j/--json`, `-i/--image`, `-n/--now`/`--ignore-waves`, `--log-level`,
//! hidden `--variant`), the update commands (`update-image`, `update`, `update-apply`,
//! `update-revert`, `-r/--reboot`), `mark-successful-boot` (ours: health checks, then the mark), plus `--sysroot`,
//! `--disk` and a hidden `--arch`.
//! As upstream, flags may come before or after the subcommand, and usage errors exit 1.

use crate::check::{self, CheckOptions, Node, Output};
use crate::config::{self, Config};
use crate::error::{self, Result};
use crate::health;
use crate::lock::UpdogLock;
use crate::progress;
use crate::sysroot::Sysroot;
use crate::update::{self, UpdateOptions};
use clap::{Parser, Subcommand};
use log::LevelFilter;
use semver::Version;
use signpost::Location;
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
    /// /var/lib/updog/tuf, /run/abupdate/updog.lock) under this directory.
    #[arg(long, global = true, default_value = "/", value_name = "DIR")]
    pub sysroot: PathBuf,

    /// Logging verbosity (on stderr).
    #[arg(long, global = true, default_value = "info", value_parser = crate::logging::parse_level, value_name = "off|error|warn|info|debug|trace")]
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

    /// Reboot into the new image after `update` or `update-apply`.
    #[arg(short, long, global = true)]
    pub reboot: bool,

    /// The OS disk (block device, loop device or disk-image file), instead of updog.toml's `disk` or the
    /// disk under the root filesystem.
    #[arg(long, global = true, value_name = "PATH")]
    pub disk: Option<PathBuf>,

    /// Download at most this many bytes per second (instead of updog.toml's `max_rate`).
    #[arg(long, global = true, value_name = "BYTES_PER_SEC", value_parser = clap::value_parser!(u64).range(1..=1_099_511_627_776))]
    pub max_rate: Option<u64>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Subcommand)]
pub enum Command {
    /// Show if an update is available.
    #[command(alias = "whats")]
    CheckUpdate,
    /// Perform an update if available (update-image, then update-apply).
    Update,
    /// Download & write an update but do not update flags.
    UpdateImage,
    /// Update boot flags (after having called update-image).
    UpdateApply,
    /// Revert actions done by 'update-apply'.
    UpdateRevert,
    /// Run the health checks in /etc/updog/health.d; if all pass, mark the running set successfully booted.
    MarkSuccessfulBoot,
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

/// Runs a parsed command line: the command under its locks, then (`--reboot` after `update` or `update-apply`) the
/// reboot command, once the locks are released.
pub fn run(cli: &Cli) -> Result<Output> {
    // Only deferring needs the handler; until then it acts as the default action.
    if let Err(e) = crate::signals::install() {
        log::warn!("Cannot handle SIGTERM/SIGHUP ({e}); they will not be deferred");
    }
    let (output, reboot_command) = run_locked(cli)?;
    if let Some(command) = reboot_command {
        update::reboot(&command)?;
    }
    Ok(output)
}

/// The command itself. Takes updog's lock first, then reads the node's config (whose proxy settings go to the HTTP
/// client directly, see `fetch::HttpsProxy`); the commands that write the disk take its lock too. Both are released
/// when this returns. Returns the reboot command to run, if one is due.
fn run_locked(cli: &Cli) -> Result<(Output, Option<Vec<String>>)> {
    let sysroot = Sysroot::new(&cli.sysroot);
    let lock = if cli.command == Command::MarkSuccessfulBoot {
        // The boot's mark waits out a short overlap with another updog instead of being lost to it.
        health::wait_for_updog_lock(&sysroot.lock_file())
    } else {
        UpdogLock::acquire(&sysroot.lock_file())
    }
    .context(error::LockSnafu)?;
    if let Command::UpdateApply | Command::UpdateRevert | Command::MarkSuccessfulBoot = cli.command
    {
        // Upstream needs no config for these: they only change the boot flags. updog.toml is read
        // when present, for `disk` and `reboot_command`.
        let config = optional_config(&sysroot);
        let location = location(cli, config.as_ref());
        if cli.command == Command::MarkSuccessfulBoot {
            // The disk's lock is taken for the mark only, after the checks, which may run for minutes.
            let timeout = config
                .as_ref()
                .map_or(config::DEFAULT_HEALTH_CHECK_TIMEOUT, |c| {
                    c.health_check_timeout
                });
            return health::mark_successful_boot(
                &sysroot,
                &location,
                timeout,
                chrono::Utc::now(),
                &lock,
            )
            .map(|output| (output, None));
        }
        let disk_lock = location.lock_disk().context(error::DiskSnafu)?;
        return match cli.command {
            Command::UpdateApply => {
                let reboot = cli.reboot.then(|| {
                    config
                        .as_ref()
                        .map_or_else(config::default_reboot_command, |c| c.reboot_command.clone())
                });
                Ok((
                    update::update_apply(&sysroot, &location, &disk_lock)?,
                    reboot,
                ))
            }
            _ => Ok((
                update::update_revert(&sysroot, &location, &disk_lock)?,
                None,
            )),
        };
    }

    let mut node = Node::load(sysroot)?;
    if let Some(rate) = cli.max_rate {
        node.config.fetch.max_rate = Some(rate);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context(error::RuntimeSnafu)?;
    let selection = CheckOptions {
        all: cli.all,
        json: cli.json,
        ignore_waves: cli.now,
        image: cli.image.clone(),
        variant: cli.variant.clone(),
        arch: cli.arch.clone(),
    };
    match cli.command {
        Command::CheckUpdate => runtime
            .block_on(check::check_update(
                &node,
                &selection,
                chrono::Utc::now(),
                &lock,
            ))
            .map(|output| (output, None)),
        Command::Update | Command::UpdateImage => {
            let apply = cli.command == Command::Update;
            let location = location(cli, Some(&node.config));
            let disk_lock = location.lock_disk().context(error::DiskSnafu)?;
            let options = UpdateOptions { selection, apply };
            let sink = progress::sink_for(cli.json);
            let output = runtime.block_on(update::update_image(
                &node,
                &location,
                &options,
                chrono::Utc::now(),
                sink.as_ref(),
                (&lock, &disk_lock),
            ))?;
            let reboot = (apply && cli.reboot).then(|| node.config.reboot_command.clone());
            Ok((output, reboot))
        }
        Command::UpdateApply | Command::UpdateRevert | Command::MarkSuccessfulBoot => {
            unreachable!("handled above")
        }
    }
}

/// Where the OS disk is: `--disk`, else updog.toml's `disk`, else the disk under the sysroot's filesystem.
fn location(cli: &Cli, config: Option<&Config>) -> Location {
    let location = Location::new(&cli.sysroot);
    match cli
        .disk
        .as_ref()
        .or_else(|| config.and_then(|c| c.disk.as_ref()))
    {
        Some(disk) => location.disk(disk),
        None => location,
    }
}

/// updog.toml if it exists and reads; a broken one must not keep `update-revert` from working.
fn optional_config(sysroot: &Sysroot) -> Option<Config> {
    let path = sysroot.updog_toml();
    if !path.exists() {
        return None;
    }
    Config::load(&path)
        .map_err(|e| log::warn!("ignoring the config ({e}); using the defaults"))
        .ok()
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
        for level in [
            "trace", "debug", "info", "warn", "error", "off", "OFF", "Debug",
        ] {
            assert!(parse_from(&["--log-level", level, "check-update"]).is_ok());
        }
        assert!(parse_from(&["--log-level", "loud", "check-update"]).is_err());
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
    fn the_update_commands_have_upstreams_names_and_flags() {
        for (name, command) in [
            ("update", Command::Update),
            ("update-image", Command::UpdateImage),
            ("update-apply", Command::UpdateApply),
            ("update-revert", Command::UpdateRevert),
            ("mark-successful-boot", Command::MarkSuccessfulBoot),
        ] {
            assert_eq!(parse_from(&[name]).unwrap().command, command);
        }
        let cli =
            parse_from(&["update", "-r", "--now", "-i", "1.2.0", "--disk", "/dev/vda"]).unwrap();
        assert!(cli.reboot && cli.now);
        assert_eq!(cli.disk, Some(PathBuf::from("/dev/vda")));
        assert!(parse_from(&["--reboot", "update-apply"]).unwrap().reboot);
        assert!(parse_from(&["update-image", "--json"]).unwrap().json);
        assert_eq!(
            parse_from(&["update-image", "--max-rate", "65536"])
                .unwrap()
                .max_rate,
            Some(65536)
        );
        assert!(parse_from(&["update-image", "--max-rate", "0"]).is_err());
    }

    #[test]
    fn unknown_subcommands_and_flags_are_usage_errors() {
        for args in [
            &[][..],
            &["prepare"][..],
            &["check-update", "--timestamp", "x"][..],
            &["check-update", "check-update"][..],
        ] {
            assert!(parse_from(args).is_err(), "{args:?}");
        }
    }
}
