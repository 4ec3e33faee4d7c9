//! Hostile input: updog.toml text never panics the config parser, and every setting updog reads comes back as it
//! was written.

use proptest::prelude::*;
use std::path::Path;
use std::time::Duration;
use toml::{Table, Value};
use updog::config::Config;
use updog::select::VersionLock;

const KEYS: [&str; 13] = [
    "metadata_base_url",
    "targets_base_url",
    "seed",
    "version_lock",
    "ignore_waves",
    "https_proxy",
    "no_proxy",
    "disk",
    "reboot_command",
    "stall_timeout_seconds",
    "min_transfer_bytes",
    "download_retries",
    "unknown_key",
];

/// A value of any TOML type, with the strings and numbers near each key's limits.
fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        any::<String>().prop_map(Value::String),
        prop::sample::select(vec![
            "",
            "latest",
            "v1.2.3",
            "1.2",
            "https://example.com/metadata",
            "file:///x",
            "ftp://x",
            "/dev/sda",
            "relative",
            "http://[::1",
            "proxy:3128",
            "socks5://p:1",
            "https://",
            "://",
            "http://a b",
        ])
        .prop_map(|s| Value::String(s.to_string())),
        prop_oneof![
            any::<i64>(),
            Just(0i64),
            Just(-1),
            Just(1),
            Just(1000),
            Just(1001),
            Just(86_400),
            Just(86_401),
            Just(1 << 20),
            Just((1 << 20) + 1),
            Just(i64::from(u32::MAX) + 1),
        ]
        .prop_map(Value::Integer),
        prop_oneof![
            any::<f64>(),
            Just(f64::NAN),
            Just(f64::INFINITY),
            Just(0.0005),
            Just(0.001),
            Just(86_400.5)
        ]
        .prop_map(Value::Float),
        any::<bool>().prop_map(Value::Boolean),
    ];
    leaf.prop_recursive(2, 8, 4, |inner| {
        prop::collection::vec(inner, 0..4).prop_map(Value::Array)
    })
}

fn parse(text: &str) -> Result<Config, updog::config::ConfigError> {
    Config::from_toml_str(text, Path::new("/etc/updog.toml"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_text_is_read_or_refused(text in any::<String>()) {
        let _ = parse(&text);
    }

    #[test]
    fn any_value_under_any_key_is_read_or_refused(entries in prop::collection::vec((0..KEYS.len(), value()), 0..14)) {
        let mut table = Table::new();
        table.insert("metadata_base_url".into(), Value::String("https://example.com/metadata".into()));
        table.insert("targets_base_url".into(), Value::String("https://example.com/targets".into()));
        table.insert("seed".into(), Value::Integer(7));
        table.insert("version_lock".into(), Value::String("latest".into()));
        table.insert("ignore_waves".into(), Value::Boolean(false));
        for (key, value) in entries {
            table.insert(KEYS[key].into(), value);
        }
        if let Ok(config) = parse(&toml::to_string(&table).unwrap()) {
            // What is accepted is within the documented limits.
            prop_assert!(config.fetch.retries <= 1000);
            prop_assert!((1..=1 << 20).contains(&config.fetch.min_rate_bytes));
            prop_assert!(config.fetch.stall_timeout >= Duration::from_millis(1));
            prop_assert!(config.fetch.stall_timeout <= Duration::from_secs(86_400));
            prop_assert!(config.disk.as_deref().is_none_or(Path::is_absolute));
            prop_assert!(config.reboot_command.first().is_some_and(|p| !p.is_empty()));
        }
    }

    #[test]
    fn settings_round_trip(
        seed in any::<u32>(),
        lock in prop_oneof![Just(None), (0u64..100, 0u64..100, 0u64..100).prop_map(Some)],
        ignore_waves in any::<bool>(),
        disk in prop::option::of("/[a-z0-9/_-]{0,20}"),
        reboot in prop::collection::vec(any::<String>(), 0..4),
        stall in prop::option::of(1i64..=86_400),
        min_transfer in prop::option::of(1i64..=1 << 20),
        retries in prop::option::of(0i64..=1000),
    ) {
        let mut table = Table::new();
        table.insert("metadata_base_url".into(), Value::String("https://example.com/metadata/".into()));
        table.insert("targets_base_url".into(), Value::String("file:///srv/targets/".into()));
        table.insert("seed".into(), Value::Integer(i64::from(seed)));
        let lock_text = lock.map_or("latest".to_string(), |(a, b, c)| format!("v{a}.{b}.{c}"));
        table.insert("version_lock".into(), Value::String(lock_text));
        table.insert("ignore_waves".into(), Value::Boolean(ignore_waves));
        if let Some(disk) = &disk {
            table.insert("disk".into(), Value::String(disk.clone()));
        }
        // A reboot command needs a program: an empty first element or list is written as the default.
        let reboot = if reboot.first().is_some_and(|p| !p.is_empty()) { Some(reboot) } else { None };
        if let Some(reboot) = &reboot {
            table.insert("reboot_command".into(), Value::Array(reboot.iter().cloned().map(Value::String).collect()));
        }
        for (key, value) in [("stall_timeout_seconds", stall), ("min_transfer_bytes", min_transfer), ("download_retries", retries)] {
            if let Some(value) = value {
                table.insert(key.into(), Value::Integer(value));
            }
        }
        let config = parse(&toml::to_string(&table).unwrap()).unwrap();
        prop_assert_eq!(config.metadata_base_url.as_str(), "https://example.com/metadata/");
        prop_assert_eq!(config.targets_base_url.as_str(), "file:///srv/targets/");
        prop_assert_eq!(config.seed, seed);
        let expected_lock = lock.map_or(VersionLock::Latest, |(a, b, c)| VersionLock::Version(semver::Version::new(a, b, c)));
        prop_assert_eq!(config.version_lock, expected_lock);
        prop_assert_eq!(config.ignore_waves, ignore_waves);
        prop_assert_eq!(config.disk, disk.map(Into::into));
        prop_assert_eq!(config.reboot_command, reboot.unwrap_or_else(updog::config::default_reboot_command));
        let defaults = updog::fetch::FetchSettings::default();
        prop_assert_eq!(config.fetch.stall_timeout, stall.map_or(defaults.stall_timeout, |s| Duration::from_secs(s.unsigned_abs())));
        prop_assert_eq!(config.fetch.min_rate_bytes, min_transfer.map_or(defaults.min_rate_bytes, i64::unsigned_abs));
        prop_assert_eq!(config.fetch.retries, retries.map_or(defaults.retries, |r| u32::try_from(r).unwrap()));
    }
}
