//! `/etc/thar-be-updates.toml`: only `version-lock` (`"latest"` or a version), as upstream. A missing file means
//! `latest`; a malformed one is an error naming the file.

use crate::error::{self, Result};
use serde::Deserialize;
use snafu::ResultExt;
use std::path::Path;
use updog::select::VersionLock;

/// Where the config is, under the sysroot (upstream's path).
pub const CONFIG_PATH: &str = "/etc/thar-be-updates.toml";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(rename = "version-lock")]
    version_lock: Option<String>,
}

/// thar-be-updates' config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub version_lock: VersionLock,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            version_lock: VersionLock::Latest,
        }
    }
}

impl Config {
    /// Reads `path` (bounded, regular files only); a missing file is the default.
    pub fn load(path: &Path) -> Result<Self> {
        let text = match nodeio::read_small_text_file(path, nodeio::SMALL_FILE_LIMIT) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(source) => return Err(source).context(error::ConfigReadSnafu { path }),
        };
        Self::parse(&text, path)
    }

    /// Parses the config's text (`path` only names it in errors).
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        let raw: RawConfig = toml::from_str(text).context(error::ConfigParseSnafu { path })?;
        let version_lock = match raw.version_lock {
            None => VersionLock::Latest,
            Some(lock) => lock
                .parse()
                .context(error::ConfigVersionLockSnafu { path })?,
        };
        Ok(Self { version_lock })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_file_or_key_means_latest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("thar-be-updates.toml");
        assert_eq!(Config::load(&path).unwrap(), Config::default());
        assert_eq!(Config::parse("", &path).unwrap(), Config::default());
    }

    #[test]
    fn a_version_lock_is_latest_or_a_version() {
        let path = Path::new("/etc/thar-be-updates.toml");
        assert_eq!(
            Config::parse("version-lock = \"v1.1.0\"\n", path)
                .unwrap()
                .version_lock,
            VersionLock::Version("1.1.0".parse().unwrap())
        );
        assert_eq!(
            Config::parse("version-lock = \"latest\"\n", path)
                .unwrap()
                .version_lock,
            VersionLock::Latest
        );
    }

    #[test]
    fn a_malformed_config_is_an_error_naming_the_file() {
        let path = Path::new("/etc/thar-be-updates.toml");
        for text in [
            "version-lock = \"soon\"\n",
            "version-lock = 3\n",
            "version_lock = \"1.1.0\"\n",
            "version-lock = \n",
        ] {
            let error = Config::parse(text, path).unwrap_err().to_string();
            assert!(
                error.starts_with("Invalid thar-be-updates config /etc/thar-be-updates.toml: "),
                "{text:?}: {error}"
            );
        }
    }
}
