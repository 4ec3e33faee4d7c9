//! `migrator-kill-points`: the `migrator` command with its crash-test hook switched on: it SIGKILLs
//! itself at the step `MIGRATOR_KILL_AT` names (see `migrator::killpoint`). Built only with the
//! `test-hooks` feature, for the tests; never shipped. Everything else is the released `migrator`:
//! the same [`migrator::cli::main`].

use migrator::killpoint::KillPoints;
use std::process::ExitCode;

fn main() -> ExitCode {
    migrator::cli::main(KillPoints::from_env())
}
