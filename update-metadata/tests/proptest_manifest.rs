//! Hostile input: manifest.json and the waves in it never panic the parser or the waves math, and a manifest
//! round-trips through the JSON updata writes.

use chrono::{DateTime, TimeZone, Utc};
use proptest::prelude::*;
use semver::Version;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use update_metadata::manifest::{Images, Manifest, Update};
use update_metadata::waves::{MAX_SEED, ready_at, update_ready, update_wave};

/// Any instant chrono can hold, biased toward its ends and the present.
fn time() -> impl Strategy<Value = DateTime<Utc>> {
    let min = DateTime::<Utc>::MIN_UTC.timestamp();
    let max = DateTime::<Utc>::MAX_UTC.timestamp();
    prop_oneof![
        min..=max,
        Just(min),
        Just(max),
        1_500_000_000i64..2_500_000_000,
    ]
    .prop_map(|seconds| Utc.timestamp_opt(seconds, 0).unwrap())
}

/// Seeds across the whole `u32` range, often near the real ones (0..=MAX_SEED).
fn seed() -> impl Strategy<Value = u32> {
    prop_oneof![0..=MAX_SEED + 1, any::<u32>(), Just(u32::MAX)]
}

fn waves() -> impl Strategy<Value = BTreeMap<u32, DateTime<Utc>>> {
    prop::collection::btree_map(seed(), time(), 0..6)
}

fn version() -> impl Strategy<Value = Version> {
    (any::<u64>(), 0u64..100, 0u64..100, "(-[a-z][a-z0-9]{0,3})?").prop_map(
        |(major, minor, patch, pre)| {
            Version::parse(&format!("{major}.{minor}.{patch}{pre}")).unwrap()
        },
    )
}

fn update() -> impl Strategy<Value = Update> {
    (
        "[a-z-]{1,10}",
        "x86_64|aarch64",
        version(),
        version(),
        waves(),
        "[a-z0-9.-]{1,20}",
    )
        .prop_map(
            |(variant, arch, version, max_version, waves, name)| Update {
                variant,
                arch,
                version,
                max_version,
                waves,
                images: Images {
                    boot: format!("{name}-boot.ext4.lz4"),
                    root: format!("{name}-root.ext4.lz4"),
                    hash: format!("{name}-root.verity.lz4"),
                },
            },
        )
}

fn manifest() -> impl Strategy<Value = Manifest> {
    (
        prop::collection::vec(update(), 0..4),
        prop::collection::btree_map(
            (version(), version()),
            prop::collection::vec("[a-z0-9_-]{1,16}", 0..3),
            0..4,
        ),
    )
        .prop_map(|(updates, migrations)| Manifest {
            updates,
            migrations,
        })
}

/// A JSON string as a hostile publisher might put where a version, a wave key or time, or a migration key goes.
fn hostile_string() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        Just(String::new()),
        Just("1.0.0".to_string()),
        Just("4294967296".to_string()),
        Just("-1".to_string()),
        Just("+0".to_string()),
        Just("0x10".to_string()),
        Just("(1.0.0, 1.1.0)".to_string()),
        Just("(1.0.0,1.1.0".to_string()),
        Just("((, ))".to_string()),
        Just("+262143-12-31T23:59:59Z".to_string()),
        Just("-262144-01-01T00:00:00Z".to_string()),
        Just("2024-02-30T00:00:00Z".to_string()),
        Just("2024-01-01T00:00:00+99:99".to_string()),
        Just("2024-01-01T24:00:00Z".to_string()),
        "[0-9]{1,12}",
        "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,12})?(Z|[+-][0-9]{2}:[0-9]{2})",
        "\\(?[0-9.v -]{0,12},? ?[0-9.v -]{0,12}\\)?",
    ]
}

/// A manifest-shaped JSON document whose strings are hostile.
fn hostile_json() -> impl Strategy<Value = Vec<u8>> {
    let update = (
        hostile_string(),
        hostile_string(),
        prop::collection::vec((hostile_string(), hostile_string()), 0..4),
    )
        .prop_map(|(version, max_version, waves)| {
            let waves: serde_json::Map<String, Value> =
                waves.into_iter().map(|(k, v)| (k, json!(v))).collect();
            json!({
                "variant": "aws-k8s", "arch": "x86_64", "version": version, "max_version": max_version,
                "waves": waves,
                "images": {"boot": "b", "root": "r", "hash": "h"},
            })
        });
    (
        prop::collection::vec(update, 0..3),
        prop::collection::vec(
            (
                hostile_string(),
                prop::collection::vec(hostile_string(), 0..2),
            ),
            0..3,
        ),
    )
        .prop_map(|(updates, migrations)| {
            let migrations: serde_json::Map<String, Value> =
                migrations.into_iter().map(|(k, v)| (k, json!(v))).collect();
            serde_json::to_vec(&json!({"updates": updates, "migrations": migrations})).unwrap()
        })
}

/// Everything a node computes from a manifest it has read: none of it may panic.
fn use_manifest(manifest: &Manifest, seed: u32, now: DateTime<Utc>) -> Result<(), TestCaseError> {
    let _ = manifest.unordered_waves();
    for update in &manifest.updates {
        let _ = update.update_wave(seed);
        prop_assert_eq!(
            update.update_ready(seed, now),
            update_ready(&update.waves, seed, now)
        );
        check_waves(&update.waves, seed, now)?;
    }
    // What was read is written back and read again unchanged.
    let json = manifest.to_json_pretty().unwrap();
    prop_assert_eq!(&Manifest::from_slice(json.as_bytes()).unwrap(), manifest);
    Ok(())
}

/// The waves math on any waves: no panic, and `update_ready` is exactly `now >= ready_at`, which is one of the
/// waves' own times (a host never waits past the last wave, nor becomes ready before the first).
fn check_waves(
    waves: &BTreeMap<u32, DateTime<Utc>>,
    seed: u32,
    now: DateTime<Utc>,
) -> Result<(), TestCaseError> {
    let _ = update_wave(waves, seed);
    let at = ready_at(waves, seed);
    prop_assert_eq!(
        update_ready(waves, seed, now),
        at.is_none_or(|at| now >= at)
    );
    if let Some(at) = at {
        let earliest = waves.values().min().unwrap();
        let latest = waves.values().max().unwrap();
        prop_assert!(
            *earliest <= at && at <= *latest,
            "{at} outside {earliest}..{latest}"
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_are_refused_or_read(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        if let Ok(manifest) = Manifest::from_slice(&bytes) {
            use_manifest(&manifest, 0, Utc::now())?;
        }
    }

    #[test]
    fn hostile_versions_waves_and_migration_keys_are_refused_or_read(
        json in hostile_json(), seed in seed(), now in time(),
    ) {
        if let Ok(manifest) = Manifest::from_slice(&json) {
            use_manifest(&manifest, seed, now)?;
        }
    }

    #[test]
    fn a_manifest_round_trips_through_its_json(manifest in manifest(), seed in seed(), now in time()) {
        use_manifest(&manifest, seed, now)?;
    }

    #[test]
    fn the_waves_math_never_panics(waves in waves(), seed in seed(), now in time()) {
        check_waves(&waves, seed, now)?;
    }
}
