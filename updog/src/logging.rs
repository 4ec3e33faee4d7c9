//! Log lines on stderr (upstream's SimpleLogger put info and below on stdout; here stdout is only
//! for results, so `--json` output stays parseable).

use log::LevelFilter;
use std::io::Write;

/// Sends log records at `level` and above to stderr (once per process; later calls do nothing).
pub fn init(level: LevelFilter) {
    // Err means a logger is already installed: keep it.
    let _ = env_logger::Builder::new()
        .filter_level(level)
        .target(env_logger::Target::Stderr)
        .format(|out, record| {
            writeln!(
                out,
                "[{}] {}: {}",
                record.level(),
                record.target(),
                record.args()
            )
        })
        .try_init();
}

/// Parses upstream's `--log-level` values: trace, debug, info, warn, error.
pub fn parse_level(s: &str) -> Result<LevelFilter, String> {
    match s {
        "trace" | "debug" | "info" | "warn" | "error" => {
            s.parse().map_err(|_| format!("invalid log level '{s}'"))
        }
        _ => Err(format!(
            "invalid log level '{s}' (expected trace, debug, info, warn or error)"
        )),
    }
}
