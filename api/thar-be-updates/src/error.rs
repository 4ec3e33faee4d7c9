//! thar-be-updates' errors, one enum for the crate; each variant names what was wrong and maps to upstream's exit
//! code ([`Error::exit_code`]).

use crate::status::{UpdateCommand, UpdateState};
use snafu::Snafu;
use std::path::PathBuf;

/// Another update command holds the lock.
pub const EXIT_LOCKED: u8 = 64;
/// The command is not allowed in the current update state.
pub const EXIT_NOT_ALLOWED: u8 = 65;
/// `prepare` without a chosen update.
pub const EXIT_NO_CHOSEN_UPDATE: u8 = 66;
/// `activate` without a staged image.
pub const EXIT_NOTHING_STAGED: u8 = 67;
/// Any other error.
pub const EXIT_OTHER: u8 = 1;
/// A usage error (clap).
pub const EXIT_USAGE: u8 = 2;

#[derive(Debug, Snafu)]
#[snafu(visibility(pub(crate)))]
pub enum Error {
    /// The lock is held: the message names the holder's pid and command line.
    #[snafu(display("{source}"))]
    Locked { source: nodeio::LockError },

    #[snafu(display("{source}"))]
    Lock { source: nodeio::LockError },

    #[snafu(display("'{command}' is not allowed in update state {state:?}"))]
    NotAllowed {
        command: UpdateCommand,
        state: UpdateState,
    },

    #[snafu(display(
        "No update has been chosen to prepare: refresh first (update state {state:?})"
    ))]
    NoChosenUpdate { state: UpdateState },

    #[snafu(display(
        "No update has been staged to activate: prepare first (update state {state:?})"
    ))]
    NothingStaged { state: UpdateState },

    #[snafu(display("Failed to read thar-be-updates config {}: {source}", path.display()))]
    ConfigRead {
        path: PathBuf,
        source: std::io::Error,
    },

    #[snafu(display("Invalid thar-be-updates config {}: {source}", path.display()))]
    ConfigParse {
        path: PathBuf,
        source: toml::de::Error,
    },

    #[snafu(display("Invalid thar-be-updates config {}: version-lock {source}", path.display()))]
    ConfigVersionLock {
        path: PathBuf,
        source: updog::select::BadVersionLock,
    },

    #[snafu(display("Failed to read update status {}: {source}", path.display()))]
    StatusRead {
        path: PathBuf,
        source: std::io::Error,
    },

    #[snafu(display(
        "Corrupt update status {}: {source} (remove it to start over from the node's state)",
        path.display()
    ))]
    StatusParse {
        path: PathBuf,
        source: serde_json::Error,
    },

    #[snafu(display("Failed to serialize the update status for {}: {source}", path.display()))]
    StatusSerialize {
        path: PathBuf,
        source: serde_json::Error,
    },

    #[snafu(display("Failed to create directory {}: {source}", path.display()))]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },

    #[snafu(display("{} is {found}, not a directory", path.display()))]
    NotADirectory { path: PathBuf, found: &'static str },

    #[snafu(display("Failed to write update status: {source}"))]
    StatusWrite { source: nodeio::AtomicWriteError },

    #[snafu(display("Failed to read the running release {}: {source}", path.display()))]
    Release {
        path: PathBuf,
        source: updog::release::ReleaseError,
    },

    #[snafu(display("Failed to read the boot state of the OS disk: {source}"))]
    BootState { source: signpost::Error },

    #[snafu(display("updog {command} failed: {source}"))]
    Updog {
        command: &'static str,
        source: updog::Error,
    },

    #[snafu(display("Failed to find this program to run it detached: {source}"))]
    CurrentExe { source: std::io::Error },

    #[snafu(display("Failed to start the detached {} (thar-be-updates {command}): {source}", exe.display()))]
    Spawn {
        exe: PathBuf,
        command: UpdateCommand,
        source: std::io::Error,
    },

    #[snafu(display(
        "Failed to read the verdict of the detached thar-be-updates {command}: {source}"
    ))]
    ReadVerdict {
        command: UpdateCommand,
        source: std::io::Error,
    },

    #[snafu(display(
        "The detached thar-be-updates {command} (pid {pid}) ended before accepting or refusing the command: {status}"
    ))]
    ChildDied {
        command: UpdateCommand,
        pid: u32,
        status: String,
    },

    #[snafu(display(
        "The detached thar-be-updates {command} sent a malformed verdict {line:?}: {source}"
    ))]
    BadVerdict {
        command: UpdateCommand,
        line: String,
        source: serde_json::Error,
    },

    #[snafu(display("Failed to open log file {}: {source}", path.display()))]
    OpenLog {
        path: PathBuf,
        source: std::io::Error,
    },

    #[snafu(display("Refusing log file {}: {found}, not a regular file", path.display()))]
    LogNotRegular { path: PathBuf, found: &'static str },

    #[snafu(display("Failed to redirect the detached command's {what}: {source}"))]
    Redirect {
        what: &'static str,
        source: std::io::Error,
    },
}

impl Error {
    /// Upstream's exit code for this error (what the apiserver maps to an HTTP status).
    #[must_use]
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Locked { .. } => EXIT_LOCKED,
            Error::NotAllowed { .. } => EXIT_NOT_ALLOWED,
            Error::NoChosenUpdate { .. } => EXIT_NO_CHOSEN_UPDATE,
            Error::NothingStaged { .. } => EXIT_NOTHING_STAGED,
            _ => EXIT_OTHER,
        }
    }

    /// A lock error: [`Error::Locked`] (64) when another command holds it, [`Error::Lock`] (1) otherwise.
    pub(crate) fn from_lock(source: nodeio::LockError) -> Self {
        match source {
            nodeio::LockError::Held { .. } => Error::Locked { source },
            source => Error::Lock { source },
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
