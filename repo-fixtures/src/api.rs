//! The node's API on a simulated node: `apiserver` started on the node's sysroot (its socket
//! `<sysroot>/run/api.sock`, its log beside the sysroot), stopped as a reboot stops it.

use crate::lifecycle::Binaries;
use crate::node::Node;
use rustix::process::{Pid, Signal};
use snafu::{ResultExt, Snafu, ensure};
use std::fs::File;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long the server may take to listen, and to exit after SIGTERM.
const START_TIMEOUT: Duration = Duration::from_secs(30);
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Snafu)]
pub enum ApiError {
    #[snafu(display("Failed to create the apiserver's log {}: {source}", path.display()))]
    Log {
        path: PathBuf,
        source: std::io::Error,
    },
    #[snafu(display("Failed to start {}: {source}", program.display()))]
    Start {
        program: PathBuf,
        source: std::io::Error,
    },
    #[snafu(display("apiserver exited before listening on {} ({status}); its log:\n{log}", socket.display()))]
    ExitedEarly {
        socket: PathBuf,
        status: String,
        log: String,
    },
    #[snafu(display("apiserver did not listen on {} within {START_TIMEOUT:?}; its log:\n{log}", socket.display()))]
    NotListening { socket: PathBuf, log: String },
    #[snafu(display("Failed to wait for apiserver: {source}"))]
    Wait { source: std::io::Error },
    #[snafu(display(
        "apiserver did not exit within {STOP_TIMEOUT:?} of SIGTERM; killed. Its log:\n{log}"
    ))]
    StopTimeout { log: String },
}

/// A running apiserver; killed when dropped (use [`ApiServer::stop`] to stop it as systemd does).
#[derive(Debug)]
pub struct ApiServer {
    child: Option<Child>,
    socket: PathBuf,
    log: PathBuf,
}

impl ApiServer {
    /// Starts `binaries.apiserver` on `node` and waits until its socket accepts connections.
    pub fn start(binaries: &Binaries, node: &Node) -> Result<Self, ApiError> {
        Self::start_with(&binaries.apiserver, node, &[])
    }

    /// Starts `program` on `node` with extra arguments and waits until its socket accepts connections.
    pub fn start_with(program: &Path, node: &Node, args: &[&str]) -> Result<Self, ApiError> {
        let socket = node.sysroot().join("run/api.sock");
        let log = node
            .sysroot()
            .parent()
            .unwrap_or(node.sysroot())
            .join("apiserver.log");
        let log_file = File::options()
            .create(true)
            .append(true)
            .open(&log)
            .context(LogSnafu { path: &log })?;
        let stderr = log_file.try_clone().context(LogSnafu { path: &log })?;
        let child = Command::new(program)
            .arg("--sysroot")
            .arg(node.sysroot())
            .args(args)
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(stderr)
            .spawn()
            .context(StartSnafu { program })?;
        let mut server = Self {
            child: Some(child),
            socket,
            log,
        };
        server.wait_listening()?;
        Ok(server)
    }

    fn wait_listening(&mut self) -> Result<(), ApiError> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if UnixStream::connect(&self.socket).is_ok() {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait().context(WaitSnafu)?
            {
                self.child = None;
                return ExitedEarlySnafu {
                    socket: &self.socket,
                    status: status.to_string(),
                    log: self.log_text(),
                }
                .fail();
            }
            ensure!(
                Instant::now() < deadline,
                NotListeningSnafu {
                    socket: &self.socket,
                    log: self.log_text(),
                }
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The socket it listens on.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// What it logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Stops it as a reboot does (SIGTERM, then SIGKILL after a grace period) and waits for it.
    pub fn stop(mut self) -> Result<(), ApiError> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        if let Some(pid) = i32::try_from(child.id()).ok().and_then(Pid::from_raw) {
            // It may have exited already; then there is nothing to signal.
            let _ = rustix::process::kill_process(pid, Signal::TERM);
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        while child.try_wait().context(WaitSnafu)?.is_none() {
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return StopTimeoutSnafu {
                    log: self.log_text(),
                }
                .fail();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
