//! Log lines on stderr (upstream's SimpleLogger put info and below on stdout; here stdout is only
//! for results, so `--json` output stays parseable).

use log::{LevelFilter, Log, Metadata, Record};
use std::io::Write;

struct StderrLogger;

impl Log for StderrLogger {
    fn enabled(&self, _metadata: &Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &Record<'_>) {
        if self.enabled(record.metadata()) {
            // A failed write to stderr has nowhere better to be reported.
            let _ = writeln!(
                std::io::stderr(),
                "[{}] {}: {}",
                record.level(),
                record.target(),
                record.args()
            );
        }
    }

    fn flush(&self) {}
}

/// Sends log records at `level` and above to stderr (once per process; later calls do nothing).
pub fn init(level: LevelFilter) {
    static LOGGER: StderrLogger = StderrLogger;
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(level);
    }
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
