//! `signpost`: see `signpost::cli` for the commands.

use std::io;
use std::process::ExitCode;

fn main() -> ExitCode {
    let code = signpost::cli::main_with(
        std::env::args_os(),
        &mut io::stdout().lock(),
        &mut io::stderr().lock(),
    );
    // main_with returns 0 or 1.
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
