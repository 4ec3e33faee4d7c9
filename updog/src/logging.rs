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

/// Parses `--log-level` as upstream does (its argument parser uses `LevelFilter`'s `FromStr`):
/// off, error, warn, info, debug or trace, in any case (`OFF`, `Debug`).
pub fn parse_level(s: &str) -> Result<LevelFilter, String> {
    s.parse().map_err(|_| {
        format!(
            "invalid log level '{s}' (expected off, error, warn, info, debug or trace, in any case)"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_parse_in_any_case_and_off_is_accepted_as_upstream() {
        for (text, level) in [
            ("off", LevelFilter::Off),
            ("OFF", LevelFilter::Off),
            ("error", LevelFilter::Error),
            ("Warn", LevelFilter::Warn),
            ("info", LevelFilter::Info),
            ("Debug", LevelFilter::Debug),
            ("TRACE", LevelFilter::Trace),
        ] {
            assert_eq!(parse_level(text), Ok(level), "{text}");
        }
    }

    #[test]
    fn an_unknown_level_names_the_value_and_the_choices() {
        assert_eq!(
            parse_level("loud"),
            Err("invalid log level 'loud' (expected off, error, warn, info, debug or trace, in any case)".into())
        );
        assert!(parse_level("").is_err());
        assert!(parse_level("warning").is_err());
    }
}
