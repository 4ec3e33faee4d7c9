//! `updog`: parse, run, print, exit (0 success, 1 any error or "No update available").

use std::io::Write;
use std::process::ExitCode;
use updog::check::Output;

fn main() -> ExitCode {
    let cli = match updog::cli::parse() {
        Ok(cli) => cli,
        Err((output, code)) => return finish(&output, code),
    };
    updog::logging::init(cli.log_level);
    match updog::cli::run(&cli) {
        Ok(output) => finish(&output, 0),
        Err(error) => finish(&Output::from(error), 1),
    }
}

fn finish(output: &Output, code: u8) -> ExitCode {
    // If stdout or stderr is gone there is no one left to tell.
    let _ = std::io::stdout().write_all(output.stdout.as_bytes());
    let _ = std::io::stderr().write_all(output.stderr.as_bytes());
    ExitCode::from(code)
}
