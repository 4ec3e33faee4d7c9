//! `repo-fixtures`: see `repo_fixtures::cli` for the commands.

use clap::Parser;
use repo_fixtures::cli::{self, Cli};
use std::process::ExitCode;

fn main() -> ExitCode {
    match cli::run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("repo-fixtures: {}", snafu::Report::from_error(e));
            ExitCode::FAILURE
        }
    }
}
