//! The update status, `/run/cache/thar-be-updates/status.json`: upstream's field names and shapes (plus our
//! `update_progress`), read with a size bound and written atomically (temporary file, fsync, rename: a reader sees the
//! old status or the new one; a symlink planted at the path is replaced, never written through or read).
//!
//! Only the holder of thar-be-updates' lock writes it.

use crate::error::{self, Result};
use chrono::{DateTime, Utc};
use semver::Version;
use serde::{Deserialize, Serialize};
use snafu::ResultExt;
use std::fmt;
use std::path::{Path, PathBuf};

/// Where the status lives, under the sysroot (upstream's path).
pub const STATUS_PATH: &str = "/run/cache/thar-be-updates/status.json";

/// Upstream's update states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum UpdateState {
    Idle,
    Available,
    Staged,
    Ready,
}

/// The four commands (upstream's `cmd_type` values, also the CLI's subcommands).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum UpdateCommand {
    Refresh,
    Prepare,
    Activate,
    Deactivate,
}

impl UpdateCommand {
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            UpdateCommand::Refresh => "refresh",
            UpdateCommand::Prepare => "prepare",
            UpdateCommand::Activate => "activate",
            UpdateCommand::Deactivate => "deactivate",
        }
    }
}

impl fmt::Display for UpdateCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How the most recent command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommandStatus {
    Success,
    Failed,
    Unknown,
}

/// An OS image, as upstream names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateImage {
    pub arch: String,
    pub version: Version,
    pub variant: String,
}

/// A partition set's image and whether it boots next.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StagedImage {
    pub image: UpdateImage,
    pub next_to_boot: bool,
}

/// The last finished command (upstream's `most_recent_command`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandResult {
    pub cmd_type: UpdateCommand,
    pub cmd_status: CommandStatus,
    pub timestamp: DateTime<Utc>,
    pub exit_status: i32,
    pub stderr: String,
}

/// The command running now (ours; upstream clients ignore it). Only `cmd_type`, `started` and `pid` for commands
/// without byte counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateProgress {
    pub cmd_type: UpdateCommand,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_done: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_total: Option<u64>,
    pub started: DateTime<Utc>,
    pub pid: u32,
}

/// status.json.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateStatus {
    pub update_state: UpdateState,
    pub available_updates: Vec<Version>,
    pub chosen_update: Option<UpdateImage>,
    pub active_partition: Option<StagedImage>,
    pub staging_partition: Option<StagedImage>,
    pub most_recent_command: CommandResult,
    #[serde(default)]
    pub update_progress: Option<UpdateProgress>,
}

impl UpdateStatus {
    /// A node's first status: Idle, the running image active, no command finished yet (upstream's initial
    /// `most_recent_command`: refresh, Unknown).
    #[must_use]
    pub fn new(active: UpdateImage, active_is_next: bool, now: DateTime<Utc>) -> Self {
        Self {
            update_state: UpdateState::Idle,
            available_updates: Vec::new(),
            chosen_update: None,
            active_partition: Some(StagedImage {
                image: active,
                next_to_boot: active_is_next,
            }),
            staging_partition: None,
            most_recent_command: CommandResult {
                cmd_type: UpdateCommand::Refresh,
                cmd_status: CommandStatus::Unknown,
                timestamp: now,
                exit_status: 0,
                stderr: String::new(),
            },
            update_progress: None,
        }
    }

    /// Records a finished command (its timestamp is what clients wait on) and clears the progress.
    pub fn finish(
        &mut self,
        command: UpdateCommand,
        outcome: Result<(), String>,
        now: DateTime<Utc>,
    ) {
        let (cmd_status, exit_status, stderr) = match outcome {
            Ok(()) => (CommandStatus::Success, 0, String::new()),
            Err(message) => (CommandStatus::Failed, 1, message),
        };
        self.most_recent_command = CommandResult {
            cmd_type: command,
            cmd_status,
            timestamp: now,
            exit_status,
            stderr,
        };
        self.update_progress = None;
    }

    /// Sets which set boots next: the staged one when `staged_is_next`, else the active one.
    pub fn set_next_to_boot(&mut self, staged_is_next: bool) {
        if let Some(staging) = &mut self.staging_partition {
            staging.next_to_boot = staged_is_next;
        }
        if let Some(active) = &mut self.active_partition {
            active.next_to_boot = !staged_is_next;
        }
    }
}

/// The status file.
#[derive(Debug, Clone)]
pub struct StatusFile {
    path: PathBuf,
}

impl StatusFile {
    #[must_use]
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The status, or none when there is no status file yet. A symlink at the path is not a status file (it is
    /// never followed: the next write replaces it); a file that does not parse is an error naming it.
    pub fn load(&self) -> Result<Option<UpdateStatus>> {
        let path = &self.path;
        match std::fs::symlink_metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(source).context(error::StatusReadSnafu { path }),
            Ok(metadata) if metadata.file_type().is_symlink() => {
                log::warn!(
                    "{} is a symlink, not a status file; it will be replaced",
                    path.display()
                );
                return Ok(None);
            }
            Ok(_) => {}
        }
        let text = nodeio::read_small_text_file(path, nodeio::SMALL_FILE_LIMIT)
            .context(error::StatusReadSnafu { path })?;
        serde_json::from_str(&text)
            .map(Some)
            .context(error::StatusParseSnafu { path })
    }

    /// Replaces the status atomically and durably (0644: every local user may read it, as the API serves it).
    pub fn write(&self, status: &UpdateStatus) -> Result<()> {
        let path = &self.path;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).context(error::CreateDirSnafu { path: dir })?;
        }
        let mut text =
            serde_json::to_string_pretty(status).context(error::StatusSerializeSnafu { path })?;
        text.push('\n');
        nodeio::AtomicWrite::new(path)
            .mode(0o644)
            .write(text.as_bytes())
            .context(error::StatusWriteSnafu)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(version: &str) -> UpdateImage {
        UpdateImage {
            arch: "x86_64".into(),
            version: version.parse().unwrap(),
            variant: "aws-k8s-1.29".into(),
        }
    }

    fn now() -> DateTime<Utc> {
        "2026-12-03T12:00:00.123456789Z".parse().unwrap()
    }

    #[test]
    fn the_json_is_upstreams_shape_with_update_progress() {
        let mut status = UpdateStatus::new(image("1.0.0"), true, now());
        status.update_state = UpdateState::Available;
        status.available_updates = vec!["1.2.0".parse().unwrap(), "1.1.0".parse().unwrap()];
        status.chosen_update = Some(image("1.2.0"));
        status.finish(UpdateCommand::Refresh, Ok(()), now());
        let json: serde_json::Value = serde_json::to_value(&status).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "update_state": "Available",
                "available_updates": ["1.2.0", "1.1.0"],
                "chosen_update": {"arch": "x86_64", "version": "1.2.0", "variant": "aws-k8s-1.29"},
                "active_partition": {
                    "image": {"arch": "x86_64", "version": "1.0.0", "variant": "aws-k8s-1.29"},
                    "next_to_boot": true
                },
                "staging_partition": null,
                "most_recent_command": {
                    "cmd_type": "refresh", "cmd_status": "Success",
                    "timestamp": "2026-12-03T12:00:00.123456789Z", "exit_status": 0, "stderr": ""
                },
                "update_progress": null
            })
        );
    }

    #[test]
    fn progress_shows_only_the_fields_it_has() {
        let progress = UpdateProgress {
            cmd_type: UpdateCommand::Activate,
            phase: None,
            image: None,
            bytes_done: None,
            bytes_total: None,
            started: now(),
            pid: 42,
        };
        assert_eq!(
            serde_json::to_value(&progress).unwrap(),
            serde_json::json!({"cmd_type": "activate", "started": "2026-12-03T12:00:00.123456789Z", "pid": 42})
        );
    }

    #[test]
    fn a_status_written_is_read_back_and_a_corrupt_one_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = StatusFile::new(dir.path().join("run/cache/thar-be-updates/status.json"));
        assert_eq!(file.load().unwrap(), None);
        let status = UpdateStatus::new(image("1.0.0"), true, now());
        file.write(&status).unwrap();
        assert_eq!(file.load().unwrap(), Some(status));

        std::fs::write(file.path(), "{\"update_state\": \"Idle\"").unwrap();
        let error = file.load().unwrap_err().to_string();
        assert!(
            error.starts_with(&format!(
                "Corrupt update status {}: ",
                file.path().display()
            )),
            "{error}"
        );
    }

    #[test]
    fn a_symlink_at_the_path_is_neither_read_nor_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        let file = StatusFile::new(dir.path().join("status.json"));
        std::os::unix::fs::symlink(&victim, file.path()).unwrap();
        assert_eq!(file.load().unwrap(), None);
        file.write(&UpdateStatus::new(image("1.0.0"), true, now()))
            .unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        assert!(std::fs::symlink_metadata(file.path()).unwrap().is_file());
    }
}
