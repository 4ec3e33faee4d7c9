//! `thar-be-updates`: parse, start the detached command (or be it), exit with the verdict's code; `recover` runs in
//! the foreground.

use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match thar_be_updates::cli::parse() {
        Ok(cli) => cli,
        Err((message, code)) => {
            eprint!("{message}");
            return ExitCode::from(code);
        }
    };
    let Some(invocation) = cli.invocation() else {
        updog::logging::init(cli.log_level);
        return match thar_be_updates::run::recover(&cli.sysroot) {
            Ok(_) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("{error}");
                ExitCode::from(error.exit_code())
            }
        };
    };
    if cli.detached_child {
        return ExitCode::from(thar_be_updates::run::run_detached(&invocation));
    }
    match thar_be_updates::cli::run(&invocation) {
        Ok(verdict) => {
            if !verdict.message.is_empty() {
                eprintln!("{}", verdict.message);
            }
            ExitCode::from(verdict.code)
        }
        Err(error) => {
            eprintln!("{error}");
            ExitCode::from(error.exit_code())
        }
    }
}
