//! The command line every migration takes from migrator, as upstream:
//! `( --forward | --backward ) --source-datastore PATH --target-datastore PATH`.
//! Usage errors (including the same path twice) exit 2.

use crate::MigrationType;
use clap::{ArgGroup, CommandFactory, Parser, error::ErrorKind};
use std::ffi::OsString;
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(group(ArgGroup::new("direction").required(true).args(["forward", "backward"])))]
struct Cli {
    /// The datastore to read (never changed).
    #[arg(long, value_name = "PATH")]
    source_datastore: PathBuf,
    /// Where to write the migrated datastore (must not exist yet).
    #[arg(long, value_name = "PATH")]
    target_datastore: PathBuf,
    /// Migrate from the previous version to this migration's version.
    #[arg(long)]
    forward: bool,
    /// Migrate from this migration's version back to the previous one.
    #[arg(long)]
    backward: bool,
}

/// What migrator asked a migration to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    pub source_datastore: PathBuf,
    pub target_datastore: PathBuf,
    pub migration_type: MigrationType,
}

impl Args {
    /// Parses a migration's arguments; the error prints usage and exits 2 with `.exit()`.
    pub fn try_parse_from<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let cli = Cli::try_parse_from(args)?;
        if cli.source_datastore == cli.target_datastore {
            return Err(Cli::command().error(
                ErrorKind::ArgumentConflict,
                "--source-datastore and --target-datastore cannot be the same",
            ));
        }
        Ok(Self {
            source_datastore: cli.source_datastore,
            target_datastore: cli.target_datastore,
            migration_type: if cli.forward {
                MigrationType::Forward
            } else {
                MigrationType::Backward
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_upstream_arguments() {
        let args = Args::try_parse_from([
            "m",
            "--forward",
            "--source-datastore",
            "/a",
            "--target-datastore",
            "/b",
        ])
        .unwrap();
        assert_eq!(args.migration_type, MigrationType::Forward);
        assert_eq!(args.source_datastore, PathBuf::from("/a"));
        let args = Args::try_parse_from([
            "m",
            "--source-datastore",
            "/a",
            "--target-datastore",
            "/b",
            "--backward",
        ])
        .unwrap();
        assert_eq!(args.migration_type, MigrationType::Backward);
    }

    #[test]
    fn usage_errors_exit_2() {
        for bad in [
            vec!["m", "--source-datastore", "/a", "--target-datastore", "/b"],
            vec![
                "m",
                "--forward",
                "--backward",
                "--source-datastore",
                "/a",
                "--target-datastore",
                "/b",
            ],
            vec![
                "m",
                "--forward",
                "--source-datastore",
                "/a",
                "--target-datastore",
                "/a",
            ],
            vec!["m", "--forward", "--source-datastore", "/a"],
            vec![
                "m",
                "--forward",
                "--source-datastore",
                "/a",
                "--target-datastore",
                "/b",
                "--x",
            ],
        ] {
            let err = Args::try_parse_from(&bad).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{bad:?}");
        }
    }
}
