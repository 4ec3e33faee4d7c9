//! The server's errors: [`StartError`] stops it from starting; [`RequestError`] answers one request, with the HTTP
//! status its variant maps to ([`RequestError::status`]) and a message naming what was wrong.

use hyper::StatusCode;
use snafu::Snafu;
use std::path::PathBuf;

/// Why the server did not start (or did not exit cleanly).
#[derive(Debug, Snafu)]
#[snafu(visibility(pub(crate)))]
pub enum StartError {
    #[snafu(display("Failed to read apiserver config {}: {source}", path.display()))]
    ReadConfig {
        path: PathBuf,
        source: std::io::Error,
    },

    #[snafu(display("Failed to parse apiserver config {}: {source}", path.display()))]
    ParseConfig {
        path: PathBuf,
        #[snafu(source(from(toml::de::Error, Box::new)))]
        source: Box<toml::de::Error>,
    },

    #[snafu(display("apiserver config {}: reboot_command is empty; it needs at least a program", path.display()))]
    EmptyRebootCommand { path: PathBuf },

    #[snafu(display("Failed to create socket directory {}: {source}", dir.display()))]
    CreateSocketDir {
        dir: PathBuf,
        source: std::io::Error,
    },

    #[snafu(display("Failed to inspect socket path {}: {source}", path.display()))]
    InspectSocket {
        path: PathBuf,
        source: std::io::Error,
    },

    #[snafu(display("Refusing socket path {}: it is {kind}, not a socket; remove it if it is not needed", path.display()))]
    NotASocket { path: PathBuf, kind: String },

    #[snafu(display("Refusing socket path {}: a server is already listening on it", path.display()))]
    LiveServer { path: PathBuf },

    #[snafu(display("Refusing socket path {}: cannot tell whether a server listens on it: {source}", path.display()))]
    ProbeSocket {
        path: PathBuf,
        source: std::io::Error,
    },

    #[snafu(display("Failed to remove stale socket {}: {source}", path.display()))]
    RemoveStaleSocket {
        path: PathBuf,
        source: std::io::Error,
    },

    #[snafu(display("Failed to bind socket {}: {source}", path.display()))]
    Bind {
        path: PathBuf,
        source: std::io::Error,
    },

    #[snafu(display("Failed to set up the listener on {}: {source}", path.display()))]
    Listen {
        path: PathBuf,
        source: std::io::Error,
    },

    #[snafu(display("Failed to start the async runtime: {source}"))]
    Runtime { source: std::io::Error },

    #[snafu(display("Failed to install the {signal} handler: {source}"))]
    Signal {
        signal: &'static str,
        source: std::io::Error,
    },

    #[snafu(display("Failed to accept a connection on {}: {source}", path.display()))]
    Accept {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Why one request failed; every variant names the key, value, file or program concerned.
#[derive(Debug, Snafu)]
#[snafu(visibility(pub(crate)))]
pub enum RequestError {
    #[snafu(display("Request body is larger than the limit of {limit} bytes"))]
    BodyTooLarge { limit: usize },

    #[snafu(display("Failed to read the request body: {message}"))]
    ReadBody { message: String },

    #[snafu(display("Request body is not UTF-8 (invalid byte at offset {offset})"))]
    NotUtf8 { offset: usize },

    #[snafu(display("Request body is not valid JSON: {source}"))]
    MalformedJson { source: serde_json::Error },

    #[snafu(display("Request body must be a JSON object of settings, found {found}"))]
    NotAnObject { found: String },

    #[snafu(display("Unknown setting '{name}'{hint}"))]
    UnknownSetting { name: String, hint: String },

    #[snafu(display("Invalid value for '{key}': {reason}"))]
    InvalidValue { key: String, reason: String },

    #[snafu(display("Invalid key '{key}': {reason}"))]
    InvalidKey { key: String, reason: String },

    #[snafu(display("Setting '{key}' conflicts with existing setting '{existing}': {reason}"))]
    KeyConflict {
        key: String,
        existing: String,
        reason: &'static str,
    },

    #[snafu(display("Invalid query: {reason}"))]
    BadQuery { reason: String },

    #[snafu(display("Invalid transaction name {name:?}: {source}"))]
    BadTransaction {
        name: String,
        source: datastore::Error,
    },

    #[snafu(display("No such endpoint: {path}"))]
    NoRoute { path: String },

    #[snafu(display("Method {method} is not allowed on {path} (allowed: {allowed})"))]
    MethodNotAllowed {
        method: String,
        path: String,
        allowed: String,
    },

    #[snafu(display("Forbidden: peer {peer} is neither the server's uid {server_uid} nor root"))]
    Forbidden { peer: String, server_uid: u32 },

    #[snafu(display("Datastore busy: {source}"))]
    DatastoreBusy { source: nodeio::LockError },

    #[snafu(display("Failed to lock the datastore: {source}"))]
    DatastoreLock { source: nodeio::LockError },

    #[snafu(display("Failed to {action}: {source}"))]
    Datastore {
        action: String,
        source: datastore::Error,
    },

    #[snafu(display(
        "Datastore key '{key}' holds a value that cannot be shown as settings: {reason}"
    ))]
    CorruptSetting { key: String, reason: String },

    #[snafu(display("Committed the settings, but failed to render {}: {reason}", path.display()))]
    Render { path: PathBuf, reason: String },

    #[snafu(display("Failed to read os-release: {source}"))]
    OsRelease {
        source: nodeio::os_release::OsReleaseError,
    },

    #[snafu(display("os-release file {} has no {key}", path.display()))]
    OsReleaseKey { path: PathBuf, key: &'static str },

    #[snafu(display("No update status yet ({} does not exist): run refresh-updates first", path.display()))]
    NoStatus { path: PathBuf },

    #[snafu(display("Failed to read update status {}: {source}", path.display()))]
    ReadStatus {
        path: PathBuf,
        source: std::io::Error,
    },

    #[snafu(display("Failed to run {} {command}: {source}", program.display()))]
    SpawnUpdate {
        program: PathBuf,
        command: &'static str,
        source: std::io::Error,
    },

    #[snafu(display("Failed to capture the stderr of {} {command}: {source}", program.display()))]
    CaptureStderr {
        program: PathBuf,
        command: &'static str,
        source: std::io::Error,
    },

    /// thar-be-updates refused or failed the command; `outcome` says how, `stderr` is its own message.
    #[snafu(display("thar-be-updates {command} {outcome}: {stderr}"))]
    UpdateCommand {
        command: &'static str,
        outcome: String,
        code: Option<i32>,
        stderr: String,
    },

    #[snafu(display("Failed to wait for {} {command}: {source}", program.display()))]
    WaitUpdate {
        program: PathBuf,
        command: &'static str,
        source: std::io::Error,
    },

    #[snafu(display("{} {command} did not answer within {timeout:?}; it was killed", program.display()))]
    UpdateTimeout {
        program: PathBuf,
        command: &'static str,
        timeout: std::time::Duration,
    },

    #[snafu(display("Failed to start the reboot command {command:?}: {source}"))]
    Reboot {
        command: Vec<String>,
        source: std::io::Error,
    },

    #[snafu(display("Request handler failed: {message}"))]
    Internal { message: String },
}

impl RequestError {
    /// The HTTP status this error answers with.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        use RequestError as E;
        match self {
            E::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            E::ReadBody { .. }
            | E::NotUtf8 { .. }
            | E::MalformedJson { .. }
            | E::NotAnObject { .. }
            | E::UnknownSetting { .. }
            | E::InvalidValue { .. }
            | E::InvalidKey { .. }
            | E::KeyConflict { .. }
            | E::BadQuery { .. }
            | E::BadTransaction { .. } => StatusCode::BAD_REQUEST,
            E::NoRoute { .. } | E::NoStatus { .. } => StatusCode::NOT_FOUND,
            E::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            E::Forbidden { .. } => StatusCode::FORBIDDEN,
            E::DatastoreBusy { .. } => StatusCode::LOCKED,
            E::UpdateCommand { code, .. } => update_exit_status(*code),
            E::DatastoreLock { .. }
            | E::Datastore { .. }
            | E::CorruptSetting { .. }
            | E::Render { .. }
            | E::OsRelease { .. }
            | E::OsReleaseKey { .. }
            | E::ReadStatus { .. }
            | E::SpawnUpdate { .. }
            | E::WaitUpdate { .. }
            | E::UpdateTimeout { .. }
            | E::CaptureStderr { .. }
            | E::Reboot { .. }
            | E::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// Upstream's mapping of thar-be-updates' exit code to an HTTP status (exit 0 is a success, 204, not an error).
#[must_use]
pub fn update_exit_status(code: Option<i32>) -> StatusCode {
    match code {
        Some(0) => StatusCode::NO_CONTENT,
        Some(64) => StatusCode::LOCKED,
        Some(65) => StatusCode::CONFLICT,
        Some(66 | 67) => StatusCode::NOT_FOUND,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_map_as_upstream() {
        assert_eq!(update_exit_status(Some(0)), StatusCode::NO_CONTENT);
        assert_eq!(update_exit_status(Some(64)), StatusCode::LOCKED);
        assert_eq!(update_exit_status(Some(65)), StatusCode::CONFLICT);
        assert_eq!(update_exit_status(Some(66)), StatusCode::NOT_FOUND);
        assert_eq!(update_exit_status(Some(67)), StatusCode::NOT_FOUND);
        for other in [Some(1), Some(2), Some(63), Some(68), Some(255), None] {
            assert_eq!(update_exit_status(other), StatusCode::INTERNAL_SERVER_ERROR);
        }
    }
}
