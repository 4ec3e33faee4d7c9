//! The `migrator` command line: upstream's flags (`--datastore-path`, `--migration-directory`,
//! `--root-path`, `--metadata-directory`, `--migrate-to-version` |
//! `--migrate-to-version-from-os-release`, `--log-level`) plus `--sysroot`, `--dry-run` and
//! `--migration-timeout`.
//! Exit codes as upstream: 0 success (also: no datastore yet, already at the version), 1 failure,
//! 2 usage.

use crate::error::{self, Result};
use crate::killpoint::KillPoints;
use crate::run::{DEFAULT_MIGRATION_TIMEOUT, Migrator, Outcome};

/// The longest `--migration-timeout`: a week. A boot that waits longer for one migration is as good as hung, and a
/// bound keeps the deadline arithmetic far from overflow.
pub const MAX_MIGRATION_TIMEOUT_SECS: u64 = 7 * 86_400;
use clap::{ArgGroup, Parser};
use semver::Version;
use snafu::{OptionExt, ResultExt};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

/// Migrate the datastore to the booted OS version, using migrations verified against the locally
/// cached, signed repository.
#[derive(Debug, Parser)]
#[command(
    name = "migrator",
    version,
    group(ArgGroup::new("target").required(true).args(["migrate_to_version", "migrate_to_version_from_os_release"]))
)]
pub struct Cli {
    /// The datastore to migrate: usually the `current` link in the datastore directory.
    #[arg(long, value_name = "PATH")]
    pub datastore_path: PathBuf,
    /// Where the cached migration targets (`<sha256>.<name>`) and manifest.json are.
    #[arg(long, value_name = "PATH")]
    pub migration_directory: PathBuf,
    /// The trusted root.json (of the image being booted).
    #[arg(long, value_name = "PATH")]
    pub root_path: PathBuf,
    /// Where the cached TUF metadata is.
    #[arg(long, value_name = "PATH")]
    pub metadata_directory: PathBuf,
    /// The version to migrate to.
    #[arg(long, value_name = "X.Y.Z")]
    pub migrate_to_version: Option<Version>,
    /// Migrate to VERSION_ID of the booted image's os-release (under --sysroot).
    #[arg(long)]
    pub migrate_to_version_from_os_release: bool,
    /// Log level: off, error, warn, info, debug, trace.
    #[arg(long, default_value = "info", value_parser = parse_level)]
    pub log_level: log::LevelFilter,
    /// The root of the node's filesystem, for os-release (etc/os-release, else usr/lib/os-release).
    #[arg(long, default_value = "/", value_name = "DIR")]
    pub sysroot: PathBuf,
    /// Run the migrations into a scratch copy, print what would change, and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// How long each migration may run, in seconds; past it, the migration and every process it
    /// started are killed and migrator fails, changing nothing.
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = DEFAULT_MIGRATION_TIMEOUT.as_secs(),
        value_parser = clap::value_parser!(u64).range(1..=MAX_MIGRATION_TIMEOUT_SECS)
    )]
    pub migration_timeout: u64,
}

fn parse_level(s: &str) -> std::result::Result<log::LevelFilter, String> {
    s.parse().map_err(|_| {
        format!("unknown log level '{s}': expected off, error, warn, info, debug or trace")
    })
}

/// The os-release of a sysroot: `etc/os-release`, else `usr/lib/os-release`.
pub fn os_release_path(sysroot: &Path) -> Option<PathBuf> {
    ["etc/os-release", "usr/lib/os-release"]
        .into_iter()
        .map(|p| sysroot.join(p))
        .find(|p| p.is_file())
}

/// The version in an os-release file's VERSION_ID.
pub fn version_from_os_release(path: &Path) -> Result<Version> {
    let value = migration_helpers::os_release::version_id(path)
        .map_err(|e| match e {
            migration_helpers::Error::OsRelease { path, source } => {
                error::Error::OsRelease { path, source }
            }
            other => error::Error::OsRelease {
                path: path.to_owned(),
                source: std::io::Error::other(other.to_string()),
            },
        })?
        .context(error::NoVersionIdSnafu { path })?;
    Version::parse(&value).context(error::BadVersionIdSnafu { path, value })
}

/// The whole program: parses the command line, runs it with `kill` (the released `migrator`
/// passes [`KillPoints::none`]; only the test build's `migrator-kill-points` reads
/// `MIGRATOR_KILL_AT`), prints the report or the error, and returns the exit code (2 for usage
/// errors, from clap).
pub fn main(kill: KillPoints) -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_level);
    match run(cli, kill) {
        Ok(report) => {
            if !report.is_empty() {
                let mut stdout = std::io::stdout().lock();
                if let Err(e) = stdout
                    .write_all(report.as_bytes())
                    .and_then(|()| stdout.flush())
                {
                    eprintln!("Error: failed to print the report: {e}");
                    return ExitCode::FAILURE;
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("Error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the command; returns the text for stdout.
pub fn run(cli: Cli, kill: KillPoints) -> Result<String> {
    let os_release = os_release_path(&cli.sysroot);
    let target = match cli.migrate_to_version {
        Some(version) => version,
        None => {
            let path = os_release.as_deref().context(error::NoOsReleaseSnafu {
                sysroot: &cli.sysroot,
            })?;
            version_from_os_release(path)?
        }
    };
    let mut migrator = Migrator::new(
        &cli.datastore_path,
        &cli.migration_directory,
        &cli.root_path,
        &cli.metadata_directory,
        target,
    )
    .migration_timeout(Duration::from_secs(cli.migration_timeout))
    .kill_points(kill);
    if let Some(path) = os_release {
        migrator = migrator.os_release(path);
    }
    if cli.dry_run {
        return Ok(match migrator.dry_run()? {
            Some(report) => format!("{report}\n"),
            None => no_datastore(&cli.datastore_path),
        });
    }
    match migrator.run()? {
        Outcome::NoDatastore { path } => Ok(no_datastore(&path)),
        Outcome::UpToDate { .. } | Outcome::Migrated { .. } => Ok(String::new()),
    }
}

fn no_datastore(path: &Path) -> String {
    // On first boot the datastore does not exist yet (storewolf creates it after migrator).
    log::info!(
        "Data store does not exist at given path, exiting ({})",
        path.display()
    );
    String::new()
}

/// Sends `log` records at `level` and above to stderr.
pub fn init_logging(level: log::LevelFilter) {
    // Err means a logger is already installed: keep it.
    let _ = env_logger::Builder::new()
        .filter_level(level)
        .target(env_logger::Target::Stderr)
        .try_init();
}
