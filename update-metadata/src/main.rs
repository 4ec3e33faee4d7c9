//! `updata`: create and edit update manifests. Parsing and dispatch only; the commands live in
//! `update_metadata::updata`.

use clap::Parser;
use std::process::ExitCode;
use update_metadata::updata::{self, Cli};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            // Help and --version go to stdout and succeed; usage errors exit 1 like upstream's
            // argh parser (clap's own default would be 2).
            let code = if err.use_stderr() { 1 } else { 0 };
            // If even this print fails there is nowhere left to report it; the exit code stands.
            err.print().ok();
            return ExitCode::from(code);
        }
    };
    match updata::run(cli.command) {
        Ok(outcome) => {
            for message in outcome.messages {
                println!("{message}");
            }
            for warning in outcome.warnings {
                eprintln!("Warning: {warning}");
            }
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("Error: {err}");
            ExitCode::from(1)
        }
    }
}
