//! The server's stop signal: every wait a connection makes (a stall, rate pacing) ends early when the server stops,
//! so dropping a `FaultServer` never waits out a long stall.

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

#[derive(Default)]
pub(crate) struct StopSignal {
    stopping: Mutex<bool>,
    wake: Condvar,
}

impl StopSignal {
    pub(crate) fn stop(&self) {
        *self.lock() = true;
        self.wake.notify_all();
    }

    pub(crate) fn is_stopping(&self) -> bool {
        *self.lock()
    }

    /// Waits for `duration`; returns true, early, if the server is stopping.
    pub(crate) fn sleep(&self, duration: Duration) -> bool {
        let deadline = Instant::now() + duration;
        let mut stopping = self.lock();
        loop {
            if *stopping {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            stopping = self
                .wake
                .wait_timeout(stopping, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    fn lock(&self) -> MutexGuard<'_, bool> {
        // A bool cannot be left half-written by a panicking holder.
        self.stopping.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::thread;

    #[test]
    fn sleep_runs_its_course_unless_stopped() {
        let signal = Arc::new(StopSignal::default());
        assert!(!signal.sleep(Duration::from_millis(5)));

        let sleeper = {
            let signal = Arc::clone(&signal);
            thread::spawn(move || signal.sleep(Duration::from_secs(600)))
        };
        signal.stop();
        assert!(sleeper.join().expect("sleeper thread panicked"));
        assert!(signal.is_stopping());
    }
}
