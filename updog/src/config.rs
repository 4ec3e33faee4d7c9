//! `/etc/updog.toml`, exactly upstream's keys:
//!
//! ```toml
//! metadata_base_url = "https://updates.example.com/2020-07-07/aws-dev/x86_64/"
//! targets_base_url = "https://updates.example.com/targets/"
//! seed = 1234                 # 0..2048 on a real node (bork); any u32 is accepted
//! version_lock = "latest"     # or "1.2.3" / "v1.2.3"
//! ignore_waves = false
//! https_proxy = "http://proxy:3128"   # optional
//! no_proxy = ["localhost", ".internal"]  # optional, used only with https_proxy
//! ```
//!
//! Every required key must be present (as upstream); unknown keys are ignored (as upstream's
//! serde). Unlike upstream, the URLs and `version_lock` are checked when the file is read, and
//! every error names the file, the key and what was expected.
//!
//! Optional keys of ours (upstream ignores them, so one file serves both):
//!
//! ```toml
//! disk = "/dev/nvme0n1"                 # the OS disk (default: the disk under the root filesystem)
//! reboot_command = ["shutdown", "-r"]   # what --reboot runs (default: upstream's `shutdown -r`)
//! stall_timeout_seconds = 30            # a download fails when fewer than min_transfer_bytes arrive in this long
//! min_transfer_bytes = 1024             # the bytes that must arrive in every stall_timeout_seconds window
//! download_retries = 5                  # retries without progress before a download fails
//! health_check_timeout_seconds = 60     # each check in /etc/updog/health.d may run this long (mark-successful-boot)
//! max_rate = 1048576                    # download at most this many bytes per second (default: no limit)
//! checkpoint_interval_bytes = 16777216  # compressed bytes between download checkpoints (crash resume)
//! ```

use crate::fetch::{FetchSettings, HttpsProxy};
use crate::select::VersionLock;
use snafu::{ResultExt, Snafu};
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Value;
use url::Url;

#[derive(Debug, Snafu)]
#[snafu(visibility(pub(crate)))]
pub enum ConfigError {
    #[snafu(display("Failed to read config file {}: {source}", path.display()))]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },

    #[snafu(display("Failed to parse config file {} (expected TOML): {source}", path.display()))]
    Syntax {
        path: PathBuf,
        #[snafu(source(from(toml::de::Error, Box::new)))]
        source: Box<toml::de::Error>,
    },

    #[snafu(display("Config file {}: missing key '{key}' (expected {expected})", path.display()))]
    MissingKey {
        path: PathBuf,
        key: &'static str,
        expected: &'static str,
    },

    #[snafu(display(
        "Config file {}: key '{key}' must be {expected}, found {found}",
        path.display()
    ))]
    InvalidKey {
        path: PathBuf,
        key: &'static str,
        expected: &'static str,
        found: String,
    },
}

/// updog's settings (upstream's `Config`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Base URL of the TUF metadata (`timestamp.json`, `N.root.json`, …).
    pub metadata_base_url: Url,
    /// Base URL of the TUF targets (`<sha256>.<name>`).
    pub targets_base_url: Url,
    /// This node's place in the rollout waves.
    pub seed: u32,
    pub version_lock: VersionLock,
    /// Take updates whatever their wave (as `--now`).
    pub ignore_waves: bool,
    /// Proxy for HTTPS requests when non-empty (upstream exports it as `HTTPS_PROXY`; here it is
    /// `fetch.https_proxy`, given to the HTTP client).
    pub https_proxy: Option<String>,
    /// Hosts that bypass the proxy, only with a proxy (upstream's `NO_PROXY`, comma-joined).
    pub no_proxy: Option<Vec<String>>,
    /// Ours: the OS disk, instead of the disk under the root filesystem.
    pub disk: Option<PathBuf>,
    /// Ours: the command `--reboot` runs (program and arguments).
    pub reboot_command: Vec<String>,
    /// Ours: how long each health check of `mark-successful-boot` may run before its process group is killed.
    pub health_check_timeout: Duration,
    /// Ours: the download policy (minimum rate over the stall timeout, retries, `max_rate`), and the proxy from
    /// `https_proxy`/`no_proxy`.
    pub fetch: FetchSettings,
    /// Ours: compressed bytes between two download checkpoints (`checkpoint_interval_bytes`).
    pub checkpoint_interval: u64,
}

/// `health_check_timeout_seconds` when absent.
pub const DEFAULT_HEALTH_CHECK_TIMEOUT: Duration = Duration::from_secs(60);

/// Upstream's reboot: `shutdown -r`.
pub fn default_reboot_command() -> Vec<String> {
    vec!["shutdown".into(), "-r".into()]
}

const URL_EXPECTED: &str = "an absolute URL string (http://, https:// or file://)";
/// The URL schemes updog fetches from.
const URL_SCHEMES: [&str; 3] = ["http", "https", "file"];
const SEED_EXPECTED: &str = "an integer from 0 to 4294967295 (nodes use 0..2048)";
const LOCK_EXPECTED: &str = "\"latest\" or a version like \"1.2.3\" or \"v1.2.3\"";
const BOOL_EXPECTED: &str = "true or false";
const PROXY_EXPECTED: &str = "a string naming an HTTP proxy, like \"http://proxy:3128\", \"https://proxy:3128\" or \"proxy:3128\"";
const NO_PROXY_EXPECTED: &str = "an array of strings";
const DISK_EXPECTED: &str = "an absolute path string";
const REBOOT_EXPECTED: &str = "a non-empty array of strings (the program and its arguments)";
const STALL_EXPECTED: &str = "a number of seconds from 0.001 to 86400";
const HEALTH_TIMEOUT_EXPECTED: &str = "a number of seconds from 0.001 to 86400";
const RETRIES_EXPECTED: &str = "an integer from 0 to 1000";
const MIN_TRANSFER_EXPECTED: &str =
    "an integer from 1 to 1048576 (bytes per stall_timeout_seconds)";
/// `min_transfer_bytes` at most 1 MiB: a higher floor would fail healthy but modest links.
const MIN_TRANSFER_MAX: u64 = 1024 * 1024;
const CHECKPOINT_EXPECTED: &str =
    "an integer from 4096 to 1073741824 (compressed bytes between checkpoints)";
/// Each checkpoint costs a flush of the partition: not more often than every 4 KiB, nor rarer than every GiB.
const CHECKPOINT_MIN: u64 = 4096;
const CHECKPOINT_MAX: u64 = 1 << 30;
const MAX_RATE_EXPECTED: &str = "an integer from 1 to 1099511627776 (bytes per second)";
const MAX_RATE_MAX: u64 = 1 << 40;

impl Config {
    /// Reads and checks the config file at `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = nodeio::read_small_text_file(path, nodeio::SMALL_FILE_LIMIT)
            .context(ReadSnafu { path })?;
        Self::from_toml_str(&text, path)
    }

    /// Parses and checks config text; `path` is only used in error messages.
    pub fn from_toml_str(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let table: toml::Table = text.parse().context(SyntaxSnafu { path })?;
        let keys = Keys {
            table: &table,
            path,
        };

        let metadata_base_url = keys.url("metadata_base_url")?;
        let targets_base_url = keys.url("targets_base_url")?;

        let seed = match keys.required("seed", SEED_EXPECTED)? {
            Value::Integer(n) => {
                u32::try_from(*n).map_err(|_| keys.invalid("seed", SEED_EXPECTED, n))?
            }
            other => return Err(keys.invalid("seed", SEED_EXPECTED, other)),
        };

        let version_lock = match keys.required("version_lock", LOCK_EXPECTED)? {
            Value::String(s) => s.parse::<VersionLock>().map_err(|_| {
                keys.invalid("version_lock", LOCK_EXPECTED, Value::String(s.clone()))
            })?,
            other => return Err(keys.invalid("version_lock", LOCK_EXPECTED, other)),
        };

        let ignore_waves = match keys.required("ignore_waves", BOOL_EXPECTED)? {
            Value::Boolean(b) => *b,
            other => return Err(keys.invalid("ignore_waves", BOOL_EXPECTED, other)),
        };

        let https_proxy = match table.get("https_proxy") {
            None => None,
            // Without a scheme a proxy is HTTP (upstream's reading); with one it must be a scheme the client speaks.
            Some(Value::String(s))
                if s.split_once("://")
                    .is_none_or(|(scheme, _)| matches!(scheme, "http" | "https")) =>
            {
                Some(s.clone())
            }
            Some(other) => return Err(keys.invalid("https_proxy", PROXY_EXPECTED, other)),
        };

        let no_proxy = match table.get("no_proxy") {
            None => None,
            Some(Value::Array(items)) => Some(
                items
                    .iter()
                    .map(|item| match item {
                        Value::String(s) => Ok(s.clone()),
                        other => Err(keys.invalid("no_proxy", NO_PROXY_EXPECTED, other)),
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            ),
            Some(other) => return Err(keys.invalid("no_proxy", NO_PROXY_EXPECTED, other)),
        };

        let disk = match table.get("disk") {
            None => None,
            Some(Value::String(s)) if Path::new(s).is_absolute() => Some(PathBuf::from(s)),
            Some(other) => return Err(keys.invalid("disk", DISK_EXPECTED, other)),
        };

        let reboot_command = match table.get("reboot_command") {
            None => default_reboot_command(),
            // A program to run: the first element names it and may not be empty.
            Some(Value::Array(items))
                if items
                    .first()
                    .and_then(Value::as_str)
                    .is_some_and(|p| !p.is_empty()) =>
            {
                items
                    .iter()
                    .map(|item| match item {
                        Value::String(s) => Ok(s.clone()),
                        other => Err(keys.invalid("reboot_command", REBOOT_EXPECTED, other)),
                    })
                    .collect::<Result<Vec<_>, _>>()?
            }
            Some(other) => return Err(keys.invalid("reboot_command", REBOOT_EXPECTED, other)),
        };

        let mut fetch = FetchSettings::default();
        match table.get("stall_timeout_seconds") {
            None => {}
            Some(Value::Integer(n)) if (1..=86_400).contains(n) => {
                fetch.stall_timeout = Duration::from_secs(n.unsigned_abs());
            }
            Some(Value::Float(f)) if (0.001..=86_400.0).contains(f) => {
                fetch.stall_timeout = Duration::from_secs_f64(*f);
            }
            Some(other) => {
                return Err(keys.invalid("stall_timeout_seconds", STALL_EXPECTED, other));
            }
        }
        if let Some(value) = table.get("min_transfer_bytes") {
            fetch.min_rate_bytes = value
                .as_integer()
                .and_then(|n| u64::try_from(n).ok())
                .filter(|n| (1..=MIN_TRANSFER_MAX).contains(n))
                .ok_or_else(|| keys.invalid("min_transfer_bytes", MIN_TRANSFER_EXPECTED, value))?;
        }
        if let Some(value) = table.get("download_retries") {
            fetch.retries = value
                .as_integer()
                .and_then(|n| u32::try_from(n).ok())
                .filter(|n| *n <= 1000)
                .ok_or_else(|| keys.invalid("download_retries", RETRIES_EXPECTED, value))?;
        }

        let health_check_timeout = match table.get("health_check_timeout_seconds") {
            None => DEFAULT_HEALTH_CHECK_TIMEOUT,
            Some(Value::Integer(n)) if (1..=86_400).contains(n) => {
                Duration::from_secs(n.unsigned_abs())
            }
            Some(Value::Float(f)) if (0.001..=86_400.0).contains(f) => Duration::from_secs_f64(*f),
            Some(other) => {
                return Err(keys.invalid(
                    "health_check_timeout_seconds",
                    HEALTH_TIMEOUT_EXPECTED,
                    other,
                ));
            }
        };
        if let Some(value) = table.get("max_rate") {
            fetch.max_rate = Some(
                value
                    .as_integer()
                    .and_then(|n| u64::try_from(n).ok())
                    .filter(|n| (1..=MAX_RATE_MAX).contains(n))
                    .ok_or_else(|| keys.invalid("max_rate", MAX_RATE_EXPECTED, value))?,
            );
        }
        let mut checkpoint_interval = crate::checkpoint::DEFAULT_INTERVAL;
        if let Some(value) = table.get("checkpoint_interval_bytes") {
            checkpoint_interval = value
                .as_integer()
                .and_then(|n| u64::try_from(n).ok())
                .filter(|n| (CHECKPOINT_MIN..=CHECKPOINT_MAX).contains(n))
                .ok_or_else(|| {
                    keys.invalid("checkpoint_interval_bytes", CHECKPOINT_EXPECTED, value)
                })?;
        }

        fetch.https_proxy = HttpsProxy::from_config(https_proxy.as_deref(), no_proxy.as_deref());
        if let Some(proxy) = &fetch.https_proxy {
            // Checked now, so that a bad value is reported against its key, not at the first download.
            proxy.to_reqwest().map_err(|e| {
                keys.invalid(
                    "https_proxy",
                    PROXY_EXPECTED,
                    format!("'{}' ({})", proxy.url, innermost_cause(&e)),
                )
            })?;
        }

        Ok(Self {
            metadata_base_url,
            targets_base_url,
            seed,
            version_lock,
            ignore_waves,
            https_proxy,
            no_proxy,
            disk,
            reboot_command,
            health_check_timeout,
            fetch,
            checkpoint_interval,
        })
    }
}

/// The deepest cause of an error: reqwest wraps a bad proxy URL's parse error in a bare
/// "builder error".
fn innermost_cause(error: &dyn std::error::Error) -> String {
    let mut cause = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}

/// Looks keys up in the table and builds errors that name them.
struct Keys<'a> {
    table: &'a toml::Table,
    path: &'a Path,
}

impl Keys<'_> {
    fn required(&self, key: &'static str, expected: &'static str) -> Result<&Value, ConfigError> {
        self.table.get(key).ok_or_else(|| ConfigError::MissingKey {
            path: self.path.to_owned(),
            key,
            expected,
        })
    }

    fn invalid(
        &self,
        key: &'static str,
        expected: &'static str,
        found: impl std::fmt::Display,
    ) -> ConfigError {
        ConfigError::InvalidKey {
            path: self.path.to_owned(),
            key,
            expected,
            found: found.to_string(),
        }
    }

    fn url(&self, key: &'static str) -> Result<Url, ConfigError> {
        match self.required(key, URL_EXPECTED)? {
            Value::String(s) => {
                let url = Url::parse(s)
                    .map_err(|e| self.invalid(key, URL_EXPECTED, format!("'{s}' ({e})")))?;
                // The transport fetches only these; anything else would fail later, at the first fetch, with a
                // message about the transport rather than the config.
                if !URL_SCHEMES.contains(&url.scheme()) {
                    return Err(self.invalid(
                        key,
                        URL_EXPECTED,
                        format!("'{s}' (scheme '{}' is not supported)", url.scheme()),
                    ));
                }
                Ok(url)
            }
            other => Err(self.invalid(key, URL_EXPECTED, other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use semver::Version;

    const GOOD: &str = r#"
metadata_base_url = "https://updates.example.com/2020-07-07/aws-dev/x86_64/"
targets_base_url = "https://updates.example.com/targets/"
seed = 1487
version_lock = "latest"
ignore_waves = false
"#;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::from_toml_str(text, Path::new("/etc/updog.toml"))
    }

    #[test]
    fn upstreams_config_parses() {
        let config = parse(GOOD).unwrap();
        assert_eq!(
            config.metadata_base_url.as_str(),
            "https://updates.example.com/2020-07-07/aws-dev/x86_64/"
        );
        assert_eq!(config.seed, 1487);
        assert_eq!(config.version_lock, VersionLock::Latest);
        assert!(!config.ignore_waves);
        assert_eq!(config.https_proxy, None);
        assert_eq!(config.fetch.https_proxy, None);
    }

    #[test]
    fn a_versioned_lock_with_or_without_v_parses() {
        for lock in ["1.2.3", "v1.2.3"] {
            let config = parse(&GOOD.replace("\"latest\"", &format!("\"{lock}\""))).unwrap();
            assert_eq!(
                config.version_lock,
                VersionLock::Version(Version::new(1, 2, 3))
            );
        }
    }

    #[test]
    fn unknown_keys_are_ignored_as_upstream() {
        assert!(parse(&format!("{GOOD}\nsomething_new = 3\n")).is_ok());
    }

    #[test]
    fn a_missing_key_is_named_with_what_was_expected() {
        let text = GOOD.replace("seed = 1487\n", "");
        let message = parse(&text).unwrap_err().to_string();
        assert_eq!(
            message,
            "Config file /etc/updog.toml: missing key 'seed' (expected an integer from 0 to 4294967295 (nodes use 0..2048))"
        );
    }

    #[test]
    fn a_value_of_the_wrong_type_is_named() {
        let message = parse(&GOOD.replace("seed = 1487", "seed = \"abc\""))
            .unwrap_err()
            .to_string();
        assert!(message.contains("/etc/updog.toml"), "{message}");
        assert!(
            message.contains("key 'seed' must be an integer"),
            "{message}"
        );
        assert!(message.contains("found \"abc\""), "{message}");

        let message = parse(&GOOD.replace("seed = 1487", "seed = -1"))
            .unwrap_err()
            .to_string();
        assert!(message.contains("key 'seed'"), "{message}");

        let message = parse(&GOOD.replace("ignore_waves = false", "ignore_waves = \"no\""))
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("key 'ignore_waves' must be true or false"),
            "{message}"
        );
    }

    #[test]
    fn a_malformed_version_lock_is_refused_with_the_key() {
        for lock in ["1.2", "newest", "v", ""] {
            let message = parse(&GOOD.replace("\"latest\"", &format!("\"{lock}\"")))
                .unwrap_err()
                .to_string();
            assert!(
                message.contains("key 'version_lock' must be \"latest\" or a version"),
                "{lock}: {message}"
            );
        }
    }

    #[test]
    fn a_relative_url_is_refused_with_the_key() {
        let message =
            parse(&GOOD.replace("\"https://updates.example.com/targets/\"", "\"targets/\""))
                .unwrap_err()
                .to_string();
        assert!(
            message.contains("key 'targets_base_url' must be an absolute URL"),
            "{message}"
        );
    }

    #[test]
    fn a_url_of_another_scheme_is_refused_naming_key_url_and_schemes() {
        for (key, url) in [
            ("metadata_base_url", "ftp://updates.example.com/metadata/"),
            ("targets_base_url", "s3://bucket/targets/"),
            ("targets_base_url", "mailto:updates@example.com"),
        ] {
            let text = GOOD
                .lines()
                .map(|line| {
                    if line.starts_with(key) {
                        format!("{key} = \"{url}\"")
                    } else {
                        line.to_string()
                    }
                })
                .collect::<Vec<_>>()
                .join("\n");
            let message = parse(&text).unwrap_err().to_string();
            let scheme = url.split(':').next().unwrap();
            assert_eq!(
                message,
                format!(
                    "Config file /etc/updog.toml: key '{key}' must be an absolute URL string (http://, https:// or \
                     file://), found '{url}' (scheme '{scheme}' is not supported)"
                )
            );
        }
        for url in ["http://h/m/", "https://h/m/", "file:///srv/repo/metadata/"] {
            let text = GOOD.replace(
                "https://updates.example.com/2020-07-07/aws-dev/x86_64/",
                url,
            );
            assert_eq!(parse(&text).unwrap().metadata_base_url.as_str(), url);
        }
    }

    #[test]
    fn toml_syntax_errors_name_the_file() {
        let message = parse("seed = ").unwrap_err().to_string();
        assert!(
            message.starts_with("Failed to parse config file /etc/updog.toml (expected TOML)"),
            "{message}"
        );
    }

    #[test]
    fn our_optional_keys_have_defaults_and_are_checked() {
        let config = parse(GOOD).unwrap();
        assert_eq!(config.disk, None);
        assert_eq!(config.reboot_command, ["shutdown", "-r"]);
        assert_eq!(config.fetch, FetchSettings::default());
        assert_eq!(config.health_check_timeout, Duration::from_secs(60));
        assert_eq!(
            parse(&format!("{GOOD}health_check_timeout_seconds = 0.25\n"))
                .unwrap()
                .health_check_timeout,
            Duration::from_millis(250)
        );

        let config = parse(&format!(
            "{GOOD}disk = \"/dev/loop3\"\nreboot_command = [\"/bin/true\", \"x\"]\nstall_timeout_seconds = 0.5\ndownload_retries = 0\nmin_transfer_bytes = 4096\n"
        ))
        .unwrap();
        assert_eq!(config.fetch.min_rate_bytes, 4096);
        assert_eq!(FetchSettings::default().min_rate_bytes, 1024);
        assert_eq!(
            config.fetch.deadline, None,
            "no total deadline from updog.toml"
        );
        assert_eq!(config.disk.as_deref(), Some(Path::new("/dev/loop3")));
        assert_eq!(config.reboot_command, ["/bin/true", "x"]);
        assert_eq!(config.fetch.stall_timeout, Duration::from_millis(500));
        assert_eq!(config.fetch.retries, 0);
        assert_eq!(
            parse(&format!("{GOOD}stall_timeout_seconds = 90\n"))
                .unwrap()
                .fetch
                .stall_timeout,
            Duration::from_secs(90)
        );
        // The bounds are inclusive.
        let bounds = parse(&format!(
            "{GOOD}stall_timeout_seconds = 86400\ndownload_retries = 1000\nmin_transfer_bytes = 1048576\n"
        ))
        .unwrap();
        assert_eq!(bounds.fetch.min_rate_bytes, 1024 * 1024);
        assert_eq!(
            parse(&format!("{GOOD}min_transfer_bytes = 1\n"))
                .unwrap()
                .fetch
                .min_rate_bytes,
            1
        );
        assert_eq!(bounds.fetch.stall_timeout, Duration::from_secs(86_400));
        assert_eq!(bounds.fetch.retries, 1000);

        // A download rate limit and the checkpoint interval: none and 16 MiB by default.
        assert_eq!(parse(GOOD).unwrap().fetch.max_rate, None);
        assert_eq!(parse(GOOD).unwrap().checkpoint_interval, 16 << 20);
        let limited = parse(&format!(
            "{GOOD}max_rate = 1048576\ncheckpoint_interval_bytes = 4096\n"
        ))
        .unwrap();
        assert_eq!(limited.fetch.max_rate, Some(1 << 20));
        assert_eq!(limited.checkpoint_interval, 4096);

        for (extra, key) in [
            ("disk = \"loop3\"", "disk"),
            ("reboot_command = []", "reboot_command"),
            ("reboot_command = [\"\"]", "reboot_command"),
            ("reboot_command = [\"\", \"-r\"]", "reboot_command"),
            ("https_proxy = \"file:///etc/passwd\"", "https_proxy"),
            ("https_proxy = \"socks5://proxy:1080\"", "https_proxy"),
            ("reboot_command = \"reboot\"", "reboot_command"),
            ("stall_timeout_seconds = 0", "stall_timeout_seconds"),
            ("stall_timeout_seconds = 86401", "stall_timeout_seconds"),
            ("stall_timeout_seconds = -5", "stall_timeout_seconds"),
            ("download_retries = -1", "download_retries"),
            ("download_retries = 1001", "download_retries"),
            ("download_retries = 4294967297", "download_retries"),
            ("download_retries = \"3\"", "download_retries"),
            (
                "health_check_timeout_seconds = 0",
                "health_check_timeout_seconds",
            ),
            (
                "health_check_timeout_seconds = \"60\"",
                "health_check_timeout_seconds",
            ),
            ("min_transfer_bytes = 0", "min_transfer_bytes"),
            ("min_transfer_bytes = 1048577", "min_transfer_bytes"),
            ("min_transfer_bytes = -1", "min_transfer_bytes"),
            ("min_transfer_bytes = 1.5", "min_transfer_bytes"),
            ("min_transfer_bytes = \"1024\"", "min_transfer_bytes"),
            ("max_rate = 0", "max_rate"),
            ("max_rate = -1", "max_rate"),
            ("max_rate = 1099511627777", "max_rate"),
            ("max_rate = \"1M\"", "max_rate"),
            (
                "checkpoint_interval_bytes = 4095",
                "checkpoint_interval_bytes",
            ),
            (
                "checkpoint_interval_bytes = 1073741825",
                "checkpoint_interval_bytes",
            ),
            (
                "checkpoint_interval_bytes = 1.5",
                "checkpoint_interval_bytes",
            ),
        ] {
            let message = parse(&format!("{GOOD}{extra}\n")).unwrap_err().to_string();
            assert!(
                message.contains(&format!("key '{key}' must be")),
                "{extra}: {message}"
            );
        }
    }

    #[test]
    fn the_proxy_follows_upstreams_rules() {
        let with = |extra: &str| parse(&format!("{GOOD}{extra}")).unwrap().fetch.https_proxy;
        assert_eq!(
            with(
                "https_proxy = \"http://proxy:3128\"\nno_proxy = [\"localhost\", \".internal\"]\n"
            ),
            Some(HttpsProxy {
                url: "http://proxy:3128".into(),
                no_proxy: Some("localhost,.internal".into())
            })
        );
        // Without a proxy, no_proxy does nothing; an empty proxy is no proxy.
        assert_eq!(with("no_proxy = [\"localhost\"]\n"), None);
        assert_eq!(
            with("https_proxy = \"\"\nno_proxy = [\"localhost\"]\n"),
            None
        );
        // No list (or an empty one): the environment's NO_PROXY still applies, as upstream.
        assert_eq!(
            with("https_proxy = \"proxy:3128\"\nno_proxy = []\n"),
            Some(HttpsProxy {
                url: "proxy:3128".into(),
                no_proxy: None
            })
        );
    }

    #[test]
    fn a_proxy_that_is_not_a_url_is_refused_naming_the_key() {
        let message = parse(&format!("{GOOD}https_proxy = \"http://[::1\"\n"))
            .unwrap_err()
            .to_string();
        assert!(
            message.starts_with(
                "Config file /etc/updog.toml: key 'https_proxy' must be a string naming an HTTP proxy, like \
                 \"http://proxy:3128\", \"https://proxy:3128\" or \"proxy:3128\", found 'http://[::1' (invalid IPv6 \
                 address)"
            ),
            "{message}"
        );
        let message = parse(&format!("{GOOD}https_proxy = 3128\n"))
            .unwrap_err()
            .to_string();
        assert!(message.contains("key 'https_proxy' must be"), "{message}");
    }
}
