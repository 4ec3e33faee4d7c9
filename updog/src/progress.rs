//! Progress of an update (beyond upstream): bytes done and total, per image and phase.
//!
//! Phases, in order: `migrations` (the migrations and manifest.json cached for migrator; bytes of the listed
//! targets), then for each image `root`, `boot`, `hash`: `write` (bytes of the compressed target downloaded and
//! passed on, out of its signed length; `written_bytes` is the image decompressed and written so far) and `verify`
//! (bytes read back from the partition and hashed, out of the image's length).
//!
//! Where it goes: a live one-line bar on stderr when stderr is a terminal; one JSON object per line on stderr with
//! `--json` (the schema is in docs/updog.md); nowhere otherwise. Events are throttled to a few per second, but
//! the first and the last of every phase are always sent.

use serde::Serialize;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often a phase reports at most (its first and last events are always reported).
const INTERVAL: Duration = Duration::from_millis(250);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    Migrations,
    Write,
    Verify,
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::Migrations => "migrations",
            Phase::Write => "write",
            Phase::Verify => "verify",
        }
    }
}

/// One progress report (also the JSON line's schema).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProgressEvent<'a> {
    pub phase: Phase,
    /// `root`, `boot` or `hash`; absent for `migrations`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<&'a str>,
    /// The target being fetched (absent for `migrations` and `verify`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<&'a str>,
    pub done_bytes: u64,
    pub total_bytes: u64,
    /// `write` only: the decompressed bytes written to the partition so far.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub written_bytes: Option<u64>,
}

impl ProgressEvent<'_> {
    fn is_last(&self) -> bool {
        self.done_bytes >= self.total_bytes
    }
}

/// Where progress goes.
pub trait ProgressSink: Send + Sync {
    fn report(&self, event: &ProgressEvent<'_>);
}

/// Reports nothing.
#[derive(Debug, Default)]
pub struct Quiet;

impl ProgressSink for Quiet {
    fn report(&self, _event: &ProgressEvent<'_>) {}
}

/// JSON lines on stderr.
#[derive(Debug, Default)]
pub struct JsonLines;

impl ProgressSink for JsonLines {
    fn report(&self, event: &ProgressEvent<'_>) {
        if let Ok(mut line) = serde_json::to_string(event) {
            line.push('\n');
            // One write per line, so lines from log messages never split one. Nothing to do if stderr is gone.
            let _ = std::io::stderr().lock().write_all(line.as_bytes());
        }
    }
}

/// A bar on the terminal: one line per image and phase, redrawn in place.
#[derive(Debug, Default)]
pub struct TerminalBar {
    started: Mutex<Option<Instant>>,
}

impl ProgressSink for TerminalBar {
    fn report(&self, event: &ProgressEvent<'_>) {
        let mut started = self
            .started
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let start = *started.get_or_insert_with(Instant::now);
        let line = bar_line(event, start.elapsed());
        let end = if event.is_last() {
            *started = None;
            "\n"
        } else {
            ""
        };
        let _ = write!(std::io::stderr().lock(), "\r\x1b[2K{line}{end}");
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1 << 20)
}

/// `root  write   45%  12.0/26.7 MiB  (written 22.1 MiB, 310 MB/s)`.
fn bar_line(event: &ProgressEvent<'_>, elapsed: Duration) -> String {
    let percent = (event.done_bytes * 100)
        .checked_div(event.total_bytes)
        .unwrap_or(100);
    let mut line = format!(
        "{:<10} {:<7} {percent:>3}%  {:.1}/{:.1} MiB",
        event.image.unwrap_or(""),
        event.phase.name(),
        mib(event.done_bytes),
        mib(event.total_bytes)
    );
    let moved = event.written_bytes.unwrap_or(event.done_bytes);
    let secs = elapsed.as_secs_f64();
    if let Some(written) = event.written_bytes {
        line.push_str(&format!("  (written {:.1} MiB", mib(written)));
    } else {
        line.push_str("  (");
    }
    if secs > 0.0 {
        let rate = moved as f64 / secs / 1e6;
        if event.written_bytes.is_some() {
            line.push_str(", ");
        }
        line.push_str(&format!("{rate:.0} MB/s)"));
    } else {
        line.push(')');
    }
    line
}

/// The sink for a command line: JSON lines with `--json`, a bar when stderr is a terminal, else nothing.
pub fn sink_for(json: bool) -> Box<dyn ProgressSink> {
    if json {
        Box::new(JsonLines)
    } else if std::io::stderr().is_terminal() {
        Box::new(TerminalBar::default())
    } else {
        Box::new(Quiet)
    }
}

/// Throttles one phase's events into a sink: the first, the last, and at most one per [`INTERVAL`] between.
pub struct PhaseReporter<'a> {
    sink: &'a dyn ProgressSink,
    last: Option<Instant>,
}

impl<'a> PhaseReporter<'a> {
    pub fn new(sink: &'a dyn ProgressSink) -> Self {
        Self { sink, last: None }
    }

    pub fn report(&mut self, event: &ProgressEvent<'_>) {
        let now = Instant::now();
        let due = self.last.is_none_or(|last| now - last >= INTERVAL);
        if due || event.is_last() {
            self.last = Some(now);
            self.sink.report(event);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Recorder(Mutex<Vec<String>>);

    impl ProgressSink for Recorder {
        fn report(&self, event: &ProgressEvent<'_>) {
            self.0
                .lock()
                .unwrap()
                .push(serde_json::to_string(event).unwrap());
        }
    }

    fn write_event(done: u64, total: u64) -> ProgressEvent<'static> {
        ProgressEvent {
            phase: Phase::Write,
            image: Some("root"),
            target: Some("root.ext4.lz4"),
            done_bytes: done,
            total_bytes: total,
            written_bytes: Some(done * 2),
        }
    }

    #[test]
    fn the_json_schema_is_flat_and_stable() {
        assert_eq!(
            serde_json::to_string(&write_event(5, 10)).unwrap(),
            r#"{"phase":"write","image":"root","target":"root.ext4.lz4","done_bytes":5,"total_bytes":10,"written_bytes":10}"#
        );
        let verify = ProgressEvent {
            phase: Phase::Verify,
            image: Some("hash"),
            target: None,
            done_bytes: 1,
            total_bytes: 2,
            written_bytes: None,
        };
        assert_eq!(
            serde_json::to_string(&verify).unwrap(),
            r#"{"phase":"verify","image":"hash","done_bytes":1,"total_bytes":2}"#
        );
    }

    #[test]
    fn a_phase_reports_its_first_and_last_event_and_few_between() {
        let recorder = Recorder::default();
        let mut reporter = PhaseReporter::new(&recorder);
        for done in 0..=1000 {
            reporter.report(&write_event(done, 1000));
        }
        let events = recorder.0.lock().unwrap().clone();
        assert!(events.len() <= 3, "{events:?}");
        assert!(events[0].contains(r#""done_bytes":0,"#));
        assert!(events.last().unwrap().contains(r#""done_bytes":1000,"#));
    }

    #[test]
    fn the_bar_shows_percent_sizes_and_rate() {
        let line = bar_line(&write_event(1 << 20, 4 << 20), Duration::from_secs(1));
        assert_eq!(
            line,
            "root       write    25%  1.0/4.0 MiB  (written 2.0 MiB, 2 MB/s)"
        );
    }
}
