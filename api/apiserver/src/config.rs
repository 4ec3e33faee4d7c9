//! The command line and the optional `<sysroot>/etc/apiserver.toml`; flags override the file.
//!
//! ```toml
//! thar_be_updates = "/usr/bin/thar-be-updates"                       # the program the update actions run
//! reboot_command = ["systemctl", "reboot", "--check-inhibitors=yes"]   # what POST /actions/reboot runs
//! update_answer_timeout_seconds = 60   # thar-be-updates must accept or refuse an action within this (0: default)
//! ```

use crate::error::{self, StartError};
use clap::Parser;
use serde::Deserialize;
use snafu::{ResultExt, ensure};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The default thar-be-updates program (a host path, not resolved under the sysroot).
pub const DEFAULT_THAR_BE_UPDATES: &str = "/usr/bin/thar-be-updates";

/// The default reboot command, as upstream.
pub const DEFAULT_REBOOT_COMMAND: [&str; 3] = ["systemctl", "reboot", "--check-inhibitors=yes"];

/// `apiserver [--sysroot DIR] [--socket-path P] [--thar-be-updates PATH] [--log-level L]`
#[derive(Debug, Parser)]
#[command(
    name = "apiserver",
    about = "The node's API server (HTTP/1.1 over a unix socket)"
)]
pub struct Cli {
    /// Root under which every well-known path is resolved.
    #[arg(long, default_value = "/")]
    pub sysroot: PathBuf,

    /// The socket to listen on (default: <sysroot>/run/api.sock).
    #[arg(long)]
    pub socket_path: Option<PathBuf>,

    /// The thar-be-updates program the update actions run (default: from apiserver.toml, else
    /// /usr/bin/thar-be-updates).
    #[arg(long)]
    pub thar_be_updates: Option<PathBuf>,

    /// Log level: error, warn, info, debug, trace.
    #[arg(long, default_value = "info")]
    pub log_level: log::LevelFilter,
}

/// `<sysroot>/etc/apiserver.toml`; every key optional, unknown keys refused (a typo would otherwise be ignored).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    thar_be_updates: Option<PathBuf>,
    reboot_command: Option<Vec<String>>,
    update_answer_timeout_seconds: Option<u64>,
}

/// What the server runs with.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub sysroot: PathBuf,
    pub socket_path: PathBuf,
    pub thar_be_updates: PathBuf,
    pub reboot_command: Vec<String>,
    /// How long thar-be-updates may take to accept or refuse an update action before it is killed (500).
    pub update_answer_timeout: Duration,
}

/// The default of `update_answer_timeout_seconds`: thar-be-updates answers in well under a second (the work goes on
/// in its detached child), so a minute means it hangs.
pub const DEFAULT_UPDATE_ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

impl ServerConfig {
    /// The configuration from the command line and `<sysroot>/etc/apiserver.toml` (if present).
    pub fn load(cli: &Cli) -> Result<Self, StartError> {
        let file = read_file_config(&config_path(&cli.sysroot))?;
        let reboot_command = file.reboot_command.unwrap_or_else(|| {
            DEFAULT_REBOOT_COMMAND
                .iter()
                .map(ToString::to_string)
                .collect()
        });
        ensure!(
            !reboot_command.is_empty(),
            error::EmptyRebootCommandSnafu {
                path: config_path(&cli.sysroot)
            }
        );
        Ok(Self {
            sysroot: cli.sysroot.clone(),
            socket_path: cli
                .socket_path
                .clone()
                .unwrap_or_else(|| cli.sysroot.join("run/api.sock")),
            thar_be_updates: cli
                .thar_be_updates
                .clone()
                .or(file.thar_be_updates)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_THAR_BE_UPDATES)),
            reboot_command,
            update_answer_timeout: file
                .update_answer_timeout_seconds
                .filter(|&seconds| seconds > 0)
                .map_or(DEFAULT_UPDATE_ANSWER_TIMEOUT, Duration::from_secs),
        })
    }
}

/// `<sysroot>/etc/apiserver.toml`.
#[must_use]
pub fn config_path(sysroot: &Path) -> PathBuf {
    sysroot.join("etc/apiserver.toml")
}

fn read_file_config(path: &Path) -> Result<FileConfig, StartError> {
    let text = match nodeio::read_small_text_file(path, nodeio::SMALL_FILE_LIMIT) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(FileConfig::default()),
        Err(source) => return Err(source).context(error::ReadConfigSnafu { path }),
    };
    toml::from_str(&text).context(error::ParseConfigSnafu { path })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("apiserver").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn defaults_resolve_the_socket_under_the_sysroot() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_str().unwrap();
        let config = ServerConfig::load(&cli(&["--sysroot", root])).unwrap();
        assert_eq!(config.socket_path, dir.path().join("run/api.sock"));
        assert_eq!(config.thar_be_updates, Path::new(DEFAULT_THAR_BE_UPDATES));
        assert_eq!(config.reboot_command, DEFAULT_REBOOT_COMMAND);
    }

    #[test]
    fn flags_override_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        std::fs::write(
            config_path(dir.path()),
            "thar_be_updates = \"/opt/tbu\"\nreboot_command = [\"true\"]\n",
        )
        .unwrap();
        let root = dir.path().to_str().unwrap();
        let from_file = ServerConfig::load(&cli(&["--sysroot", root])).unwrap();
        assert_eq!(from_file.thar_be_updates, Path::new("/opt/tbu"));
        assert_eq!(from_file.reboot_command, ["true"]);
        let overridden = ServerConfig::load(&cli(&[
            "--sysroot",
            root,
            "--thar-be-updates",
            "/x/tbu",
            "--socket-path",
            "/x/s",
        ]))
        .unwrap();
        assert_eq!(overridden.thar_be_updates, Path::new("/x/tbu"));
        assert_eq!(overridden.socket_path, Path::new("/x/s"));
    }

    #[test]
    fn unknown_keys_and_an_empty_reboot_command_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        let root = dir.path().to_str().unwrap();
        std::fs::write(config_path(dir.path()), "reboot = [\"true\"]\n").unwrap();
        let err = ServerConfig::load(&cli(&["--sysroot", root])).unwrap_err();
        assert!(err.to_string().contains("apiserver.toml"), "{err}");
        assert!(err.to_string().contains("reboot"), "{err}");
        std::fs::write(config_path(dir.path()), "reboot_command = []\n").unwrap();
        let err = ServerConfig::load(&cli(&["--sysroot", root])).unwrap_err();
        assert!(err.to_string().contains("reboot_command is empty"), "{err}");
    }
}
