//! `apiclient`: parse, run, print the error, exit (0 success, 1 any error, 2 usage).

use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = apiclient::cli::parse();
    apiclient::cli::init_logging(&cli);
    match apiclient::cli::run_blocking(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{error}");
            ExitCode::FAILURE
        }
    }
}
