//! SIGTERM and SIGHUP around the steps that must not be cut short: marking the written set valid (and, for
//! `update`, making it the next boot) and the reboot command. There a signal is deferred: the step finishes, then
//! updog dies by the signal as it would have. Elsewhere the signal ends updog at once, as without a handler (exit by
//! the signal; a cleared inactive set stays cleared, and the kernel drops the locks): nothing updog writes is left
//! half-done by a kill, so there is nothing to clean up.
//!
//! The handler is installed once ([`install`]) and does only async-signal-safe things: store the signal, or reset
//! its disposition and raise it again. A child (the reboot command) gets the default dispositions back at exec.

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

const SIGNALS: [libc::c_int; 2] = [libc::SIGTERM, libc::SIGHUP];

/// Whether a [`Deferred`] is alive.
static DEFERRING: AtomicBool = AtomicBool::new(false);
/// The last signal received while deferring (0: none).
static PENDING: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(signal: libc::c_int) {
    // Recorded first, so a Deferred ending in between still sees it.
    PENDING.store(signal, Ordering::SeqCst);
    if !DEFERRING.load(Ordering::SeqCst) {
        die_by(signal);
    }
}

/// Ends the process by `signal`'s default action (terminate), as if no handler had been installed.
fn die_by(signal: libc::c_int) {
    // SAFETY: signal(2) and raise(3) are async-signal-safe and take plain integers; SIG_DFL is a valid disposition.
    #[allow(unsafe_code)]
    unsafe {
        libc::signal(signal, libc::SIG_DFL);
        libc::raise(signal);
    }
}

/// Installs the handler for SIGTERM and SIGHUP (idempotent). Until a [`Deferred`] exists it behaves as the default
/// action.
pub fn install() -> std::io::Result<()> {
    for signal in SIGNALS {
        // SAFETY: a zeroed sigaction is a valid starting value; the handler is an `extern "C" fn(c_int)` that only
        // touches atomics and async-signal-safe calls; the pointers passed are to live locals.
        #[allow(unsafe_code)]
        let result = unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
            action.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&raw mut action.sa_mask);
            libc::sigaction(signal, &raw const action, std::ptr::null_mut())
        };
        if result != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// While this lives, SIGTERM and SIGHUP wait; when it is dropped, one that came meanwhile ends the process.
#[must_use = "signals are deferred only while the guard lives"]
pub struct Deferred(());

impl Deferred {
    pub fn new() -> Self {
        PENDING.store(0, Ordering::SeqCst);
        DEFERRING.store(true, Ordering::SeqCst);
        Deferred(())
    }
}

impl Default for Deferred {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Deferred {
    fn drop(&mut self) {
        DEFERRING.store(false, Ordering::SeqCst);
        let signal = PENDING.swap(0, Ordering::SeqCst);
        if signal != 0 {
            log::info!("Exiting on signal {signal}, deferred until the step was done");
            die_by(signal);
        }
    }
}
