//! `migrator`: parse the command, run it, print the error, exit with the right code.

use clap::Parser;
use migrator::cli::{Cli, init_logging, run};
use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_level);
    match run(cli) {
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
