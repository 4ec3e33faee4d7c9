//! `migrator`: parse the command, run it, print the error, exit with the right code
//! ([`migrator::cli::main`]). The released binary: it obeys no test hook (no kill points, whatever
//! the environment says; the fixture migrations are separate binaries built only for tests).

use migrator::killpoint::KillPoints;
use std::process::ExitCode;

fn main() -> ExitCode {
    migrator::cli::main(KillPoints::none())
}
