//! The `manifest.json` model: the list of available updates and the migration chain, with the
//! exact field names, key formats and checks of upstream Bottlerocket's `update_metadata`.
//!
//! Reading is two-step: serde reads a raw form that keeps map entries in file order (duplicates
//! included, see `de.rs`), then the raw form is checked and converted, so every error can
//! name the offending key and the update it belongs to.

use crate::atomic;
use crate::de::Entries;
use crate::migration_key;
use crate::migrations;
use crate::waves::{self, Wave, WavePolicy};
use chrono::{DateTime, Utc};
use semver::Version;
use serde::{Deserialize, Serialize};
use snafu::{ResultExt, Snafu, ensure};
use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Errors reading, checking, changing or writing a manifest.
#[derive(Debug, Snafu)]
#[snafu(visibility(pub(crate)))]
pub enum Error {
    #[snafu(display(
        "Failed to read manifest '{}' (do you need `updata init`?): {source}",
        path.display()
    ))]
    ReadManifest {
        path: PathBuf,
        source: std::io::Error,
    },

    #[snafu(display("Invalid manifest '{}': {source}", path.display()))]
    InvalidManifest {
        path: PathBuf,
        #[snafu(source(from(Error, Box::new)))]
        source: Box<Error>,
    },

    #[snafu(display("Failed to parse manifest JSON: {source}"))]
    Json { source: serde_json::Error },

    #[snafu(display("{update}: {field} '{value}' is not a semantic version: {source}"))]
    BadVersion {
        update: String,
        field: &'static str,
        value: String,
        source: semver::Error,
    },

    #[snafu(display(
        "{update}: wave key '{key}' is not a seed (an unsigned 32-bit integer): {source}"
    ))]
    BadWaveKey {
        update: String,
        key: String,
        source: std::num::ParseIntError,
    },

    #[snafu(display(
        "{update}: duplicate wave key '{key}': seed {seed} is already given by key '{first}'"
    ))]
    DuplicateWaveKey {
        update: String,
        key: String,
        seed: u32,
        first: String,
    },

    #[snafu(display("{update}: wave '{key}' has time '{value}', which is not RFC3339: {source}"))]
    BadWaveTime {
        update: String,
        key: String,
        value: String,
        source: chrono::ParseError,
    },

    #[snafu(display("Invalid migrations: {source}"))]
    Migrations { source: migration_key::Error },

    #[snafu(display("Failed to serialize manifest: {source}"))]
    Serialize { source: serde_json::Error },

    #[snafu(display("{source}"))]
    Write { source: atomic::Error },

    #[snafu(display("The manifest already has an update for {selector}"))]
    DuplicateUpdate { selector: UpdateSelector },

    #[snafu(display("No update in the manifest matches {selector}"))]
    NoMatchingUpdate { selector: UpdateSelector },

    #[snafu(display("Cannot set waves for {selector}: {source}"))]
    SetWaves {
        selector: UpdateSelector,
        #[snafu(source(from(waves::Error, Box::new)))]
        source: Box<waves::Error>,
    },
}

type Result<T, E = Error> = std::result::Result<T, E>;

/// The three images of an update, as TUF target names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Images {
    /// The BOOT partition image, e.g. `…-boot.ext4.lz4`.
    pub boot: String,
    /// The ROOT partition image, e.g. `…-root.ext4.lz4`.
    pub root: String,
    /// The dm-verity HASH partition image, e.g. `…-root.verity.lz4`.
    pub hash: String,
}

/// One available update: an OS image for a variant and architecture.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawUpdate")]
pub struct Update {
    pub variant: String,
    pub arch: String,
    pub version: Version,
    /// Hosts above this version are moved back down to the newest update at or below it.
    pub max_version: Version,
    /// First seed of each wave → the time that wave starts. Times should strictly increase
    /// with the seed (`updata set-waves` only writes such waves), but, as upstream, a manifest
    /// whose times do not is read and used: see [`Manifest::unordered_waves`]. Empty: no waves,
    /// everyone may update at once.
    pub waves: BTreeMap<u32, DateTime<Utc>>,
    pub images: Images,
}

/// The whole `manifest.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawManifest")]
pub struct Manifest {
    pub updates: Vec<Update>,
    /// `(from, to)` → the migration targets to run, in order, to go from `from` to `to`.
    /// Written with `"(X, Y)"` keys.
    #[serde(serialize_with = "migration_key::serialize_migrations")]
    pub migrations: BTreeMap<(Version, Version), Vec<String>>,
}

/// Identifies an update the way `updata` does: variant, arch and version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateSelector {
    pub variant: String,
    pub arch: String,
    pub version: Version,
}

impl UpdateSelector {
    #[must_use]
    pub fn new(variant: impl Into<String>, arch: impl Into<String>, version: Version) -> Self {
        Self {
            variant: variant.into(),
            arch: arch.into(),
            version,
        }
    }

    /// Whether `update` is the one this selector names.
    #[must_use]
    pub fn matches(&self, update: &Update) -> bool {
        update.variant == self.variant && update.arch == self.arch && update.version == self.version
    }
}

impl fmt::Display for UpdateSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "variant '{}', arch '{}', version {}",
            self.variant, self.arch, self.version
        )
    }
}

/// Two waves of an update whose start times do not strictly increase with the seed: wave
/// `next_seed` starts at or before wave `seed`. Accepted (as upstream accepts it) and reported
/// as a warning; see [`Manifest::unordered_waves`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnorderedWaves {
    /// The update, named as errors name it: `updates[i] (variant '…', arch '…', version '…')`.
    pub update: String,
    pub seed: u32,
    pub time: DateTime<Utc>,
    pub next_seed: u32,
    pub next_time: DateTime<Utc>,
}

impl fmt::Display for UnorderedWaves {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let order = if self.next_time == self.time {
            "at the same time as"
        } else {
            "before"
        };
        write!(
            f,
            "{}: wave {} starts at {}, {order} wave {} at {}; wave times should strictly \
             increase with the seed (the waves are used as upstream uses them)",
            self.update,
            self.next_seed,
            waves::rfc3339(&self.next_time),
            self.seed,
            waves::rfc3339(&self.time)
        )
    }
}

/// A new update for [`Manifest::add_update`]; waves are set separately.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUpdate {
    pub variant: String,
    pub arch: String,
    pub version: Version,
    /// `None`: the greater of `version` and the first update's `max_version`, as upstream.
    pub max_version: Option<Version>,
    pub images: Images,
}

// ---- reading ------------------------------------------------------------------------------

#[derive(Deserialize)]
struct RawUpdate {
    variant: String,
    arch: String,
    version: String,
    max_version: String,
    waves: Entries<String>,
    images: Images,
}

#[derive(Deserialize)]
struct RawManifest {
    updates: Vec<RawUpdate>,
    migrations: Entries<Vec<String>>,
}

impl RawUpdate {
    /// How errors name this update: its position (when in a manifest) and identity, as
    /// written (the version may be the thing that is wrong).
    fn describe(&self, index: Option<usize>) -> String {
        let position = index.map_or_else(|| "update".to_string(), |i| format!("updates[{i}]"));
        format!(
            "{position} (variant '{}', arch '{}', version '{}')",
            self.variant, self.arch, self.version
        )
    }

    fn into_update(self, index: Option<usize>) -> Result<Update> {
        let update = self.describe(index);
        let parse_version = |field: &'static str, value: &str| {
            Version::parse(value).context(BadVersionSnafu {
                update: &update,
                field,
                value,
            })
        };
        let version = parse_version("version", &self.version)?;
        let max_version = parse_version("max_version", &self.max_version)?;

        let mut waves = BTreeMap::new();
        let mut keys: BTreeMap<u32, String> = BTreeMap::new();
        for (key, value) in self.waves.0 {
            let seed: u32 = key.parse().context(BadWaveKeySnafu {
                update: &update,
                key: &key,
            })?;
            if let Some(first) = keys.get(&seed) {
                return DuplicateWaveKeySnafu {
                    update: &update,
                    key,
                    seed,
                    first: first.clone(),
                }
                .fail();
            }
            // The same parser serde uses for chrono's DateTime<Utc>, so the times upstream
            // accepts (RFC3339, leniently) are accepted here.
            let time: DateTime<Utc> = value.parse().context(BadWaveTimeSnafu {
                update: &update,
                key: &key,
                value: &value,
            })?;
            keys.insert(seed, key);
            waves.insert(seed, time);
        }

        Ok(Update {
            variant: self.variant,
            arch: self.arch,
            version,
            max_version,
            waves,
            images: self.images,
        })
    }
}

impl TryFrom<RawUpdate> for Update {
    type Error = Error;

    fn try_from(raw: RawUpdate) -> Result<Self> {
        raw.into_update(None)
    }
}

impl TryFrom<RawManifest> for Manifest {
    type Error = Error;

    fn try_from(raw: RawManifest) -> Result<Self> {
        let updates = raw
            .updates
            .into_iter()
            .enumerate()
            .map(|(index, update)| update.into_update(Some(index)))
            .collect::<Result<Vec<_>>>()?;
        let migrations =
            migration_key::migrations_from_entries(raw.migrations.0).context(MigrationsSnafu)?;
        Ok(Self {
            updates,
            migrations,
        })
    }
}

impl Manifest {
    /// Parses and checks a manifest from JSON.
    pub fn from_json<R: Read>(reader: R) -> Result<Self> {
        let raw: RawManifest = serde_json::from_reader(reader).context(JsonSnafu)?;
        Self::try_from(raw)
    }

    /// Parses and checks a manifest from JSON bytes.
    pub fn from_slice(json: &[u8]) -> Result<Self> {
        let raw: RawManifest = serde_json::from_slice(json).context(JsonSnafu)?;
        Self::try_from(raw)
    }

    /// The manifest as upstream writes it: pretty JSON, no trailing newline.
    pub fn to_json_pretty(&self) -> Result<String> {
        serde_json::to_string_pretty(self).context(SerializeSnafu)
    }

    /// Every update whose wave times do not strictly increase with the seed, with the first
    /// pair of waves out of order. Upstream reads and uses such manifests (its own updog test
    /// data has two waves at one time) and checks the order only in `updata set-waves`; so do
    /// we, and callers report these as warnings.
    #[must_use]
    pub fn unordered_waves(&self) -> Vec<UnorderedWaves> {
        self.updates
            .iter()
            .enumerate()
            .filter_map(|(index, update)| {
                let ((seed, time), (next_seed, next_time)) =
                    waves::first_unordered_pair(&update.waves)?;
                Some(UnorderedWaves {
                    update: format!(
                        "updates[{index}] (variant '{}', arch '{}', version '{}')",
                        update.variant, update.arch, update.version
                    ),
                    seed,
                    time,
                    next_seed,
                    next_time,
                })
            })
            .collect()
    }

    // ---- changes, as `updata` makes them --------------------------------------------------

    /// Appends an update. Like upstream, a missing `max_version` defaults to the greater of the
    /// new version and the *first* update's `max_version`, and the resulting `max_version` is
    /// then applied to every update of the same arch and variant. Unlike upstream, adding an
    /// update that is already there (same variant, arch and version) is an error.
    pub fn add_update(&mut self, new: NewUpdate) -> Result<()> {
        let selector = UpdateSelector::new(&new.variant, &new.arch, new.version.clone());
        ensure!(
            !self.updates.iter().any(|u| selector.matches(u)),
            DuplicateUpdateSnafu { selector }
        );
        let max_version = match new.max_version {
            Some(max_version) => max_version,
            None => match self.updates.first() {
                Some(first) => std::cmp::max(&new.version, &first.max_version).clone(),
                None => new.version.clone(),
            },
        };
        self.update_max_version(&max_version, Some(&new.arch), Some(&new.variant));
        self.updates.push(Update {
            variant: new.variant,
            arch: new.arch,
            version: new.version,
            max_version,
            waves: BTreeMap::new(),
            images: new.images,
        });
        Ok(())
    }

    /// Sets `max_version` on every update matching `arch` and `variant` (`None` matches all),
    /// returning how many were changed.
    pub fn update_max_version(
        &mut self,
        version: &Version,
        arch: Option<&str>,
        variant: Option<&str>,
    ) -> usize {
        let mut changed = 0;
        for update in self.updates.iter_mut().filter(|u| {
            arch.is_none_or(|arch| u.arch == arch)
                && variant.is_none_or(|variant| u.variant == variant)
        }) {
            update.max_version = version.clone();
            changed += 1;
        }
        changed
    }

    /// Removes every update `selector` matches, returning how many were removed. Like upstream,
    /// the other updates' `max_version` is left as it is.
    pub fn remove_update(&mut self, selector: &UpdateSelector) -> usize {
        let before = self.updates.len();
        self.updates.retain(|update| !selector.matches(update));
        before - self.updates.len()
    }

    /// Replaces the waves of the update(s) `selector` matches with `policy` scheduled from
    /// `start_at` (see [`WavePolicy::schedule`]), returning how many updates matched. Unlike
    /// upstream, matching nothing is an error rather than a silent no-op.
    pub fn set_waves(
        &mut self,
        selector: &UpdateSelector,
        start_at: DateTime<Utc>,
        policy: &WavePolicy,
    ) -> Result<usize> {
        let schedule = policy.schedule(start_at).context(SetWavesSnafu {
            selector: selector.clone(),
        })?;
        let mut matched = 0;
        for update in self.updates.iter_mut().filter(|u| selector.matches(u)) {
            update.waves = schedule.clone();
            matched += 1;
        }
        ensure!(
            matched > 0,
            NoMatchingUpdateSnafu {
                selector: selector.clone()
            }
        );
        Ok(matched)
    }

    /// The migrations to run from `from` to `to`; see [`migrations::find_migrations`].
    pub fn find_migrations(
        &self,
        from: &Version,
        to: &Version,
    ) -> std::result::Result<Vec<String>, migrations::Error> {
        migrations::find_migrations(from, to, self)
    }
}

impl Update {
    /// The wave a host with `seed` is in; see [`waves::update_wave`].
    #[must_use]
    pub fn update_wave(&self, seed: u32) -> Option<Wave> {
        waves::update_wave(&self.waves, seed)
    }

    /// Whether a host with `seed` may take this update at `now`; see [`waves::update_ready`]
    /// (including its absolute-seed quirk).
    #[must_use]
    pub fn update_ready(&self, seed: u32, now: DateTime<Utc>) -> bool {
        waves::update_ready(&self.waves, seed, now)
    }
}

/// Reads and checks a manifest file. Every error names the file.
pub fn load_file(path: &Path) -> Result<Manifest> {
    let bytes = std::fs::read(path).context(ReadManifestSnafu { path })?;
    Manifest::from_slice(&bytes).context(InvalidManifestSnafu { path })
}

/// Writes a manifest file atomically (temporary file, fsync, rename, directory
/// fsync). Every error names the file.
pub fn write_file(path: &Path, manifest: &Manifest) -> Result<()> {
    let json = manifest
        .to_json_pretty()
        .context(InvalidManifestSnafu { path })?;
    atomic::write_atomically(path, json.as_bytes()).context(WriteSnafu)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;

    /// The manifest.json example of docs/formats.md (upstream's format).
    const UPSTREAM_EXAMPLE: &str = r#"{"updates":[{"variant":"aws-k8s-1.30","arch":"x86_64","version":"1.26.1","max_version":"1.26.1",
  "waves":{"0":"2024-10-24T20:00:00Z","20":"2024-10-24T23:00:00Z"},
  "images":{"boot":"bottlerocket-aws-k8s-1.30-x86_64-1.26.1-943d9a41-boot.ext4.lz4","root":"bottlerocket-aws-k8s-1.30-x86_64-1.26.1-943d9a41-root.ext4.lz4","hash":"bottlerocket-aws-k8s-1.30-x86_64-1.26.1-943d9a41-root.verity.lz4"}}],
 "migrations":{"(1.25.0, 1.26.0)":[],"(1.26.0, 1.26.1)":["migrate_v1.26.1_foo.lz4"]}}"#;

    /// The same manifest as upstream's `serde_json::to_string_pretty` writes it.
    const UPSTREAM_EXAMPLE_PRETTY: &str = r#"{
  "updates": [
    {
      "variant": "aws-k8s-1.30",
      "arch": "x86_64",
      "version": "1.26.1",
      "max_version": "1.26.1",
      "waves": {
        "0": "2024-10-24T20:00:00Z",
        "20": "2024-10-24T23:00:00Z"
      },
      "images": {
        "boot": "bottlerocket-aws-k8s-1.30-x86_64-1.26.1-943d9a41-boot.ext4.lz4",
        "root": "bottlerocket-aws-k8s-1.30-x86_64-1.26.1-943d9a41-root.ext4.lz4",
        "hash": "bottlerocket-aws-k8s-1.30-x86_64-1.26.1-943d9a41-root.verity.lz4"
      }
    }
  ],
  "migrations": {
    "(1.25.0, 1.26.0)": [],
    "(1.26.0, 1.26.1)": [
      "migrate_v1.26.1_foo.lz4"
    ]
  }
}"#;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn parse_err(json: &str) -> Error {
        Manifest::from_slice(json.as_bytes()).unwrap_err()
    }

    /// A manifest with one update whose `waves` object is `waves` and `migrations` object is
    /// `migrations`.
    fn with_maps(waves: &str, migrations: &str) -> String {
        format!(
            r#"{{"updates":[{{"variant":"aws-dev","arch":"x86_64","version":"1.2.3","max_version":"1.2.3",
            "waves":{waves},"images":{{"boot":"b","root":"r","hash":"h"}}}}],"migrations":{migrations}}}"#
        )
    }

    #[test]
    fn upstream_example_parses_into_the_model() {
        let m = Manifest::from_slice(UPSTREAM_EXAMPLE.as_bytes()).unwrap();
        assert_eq!(m.updates.len(), 1);
        let u = &m.updates[0];
        assert_eq!(u.variant, "aws-k8s-1.30");
        assert_eq!(u.arch, "x86_64");
        assert_eq!(u.version, v("1.26.1"));
        assert_eq!(u.max_version, v("1.26.1"));
        assert_eq!(
            u.waves,
            BTreeMap::from([
                (0, t("2024-10-24T20:00:00Z")),
                (20, t("2024-10-24T23:00:00Z"))
            ])
        );
        assert!(u.images.boot.ends_with("-boot.ext4.lz4"));
        assert!(u.images.root.ends_with("-root.ext4.lz4"));
        assert!(u.images.hash.ends_with("-root.verity.lz4"));
        assert_eq!(
            m.migrations,
            BTreeMap::from([
                ((v("1.25.0"), v("1.26.0")), vec![]),
                (
                    (v("1.26.0"), v("1.26.1")),
                    vec!["migrate_v1.26.1_foo.lz4".to_string()]
                ),
            ])
        );
    }

    #[test]
    fn upstream_example_is_written_exactly_as_upstream_writes_it() {
        let m = Manifest::from_slice(UPSTREAM_EXAMPLE.as_bytes()).unwrap();
        assert_eq!(m.to_json_pretty().unwrap(), UPSTREAM_EXAMPLE_PRETTY);
        let again = Manifest::from_slice(UPSTREAM_EXAMPLE_PRETTY.as_bytes()).unwrap();
        assert_eq!(again, m);
    }

    #[test]
    fn serde_deserialize_applies_the_same_checks() {
        let m: Manifest = serde_json::from_str(UPSTREAM_EXAMPLE).unwrap();
        assert_eq!(
            m,
            Manifest::from_slice(UPSTREAM_EXAMPLE.as_bytes()).unwrap()
        );
        let err = serde_json::from_str::<Manifest>(&with_maps(r#"{"0":"x"}"#, "{}")).unwrap_err();
        assert!(err.to_string().contains("wave '0' has time 'x'"), "{err}");
        let update: Update = serde_json::to_value(&m.updates[0])
            .and_then(serde_json::from_value)
            .unwrap();
        assert_eq!(update, m.updates[0]);
    }

    #[test]
    fn unknown_fields_such_as_status_are_ignored() {
        let json = r#"{"updates":[{"variant":"v","arch":"a","version":"1.0.0","status":"Ready",
            "max_version":"1.0.0","waves":{},"images":{"boot":"b","root":"r","hash":"h","extra":1}}],
            "migrations":{},"datastore_versions":{"1.0.0":"1.0"}}"#;
        let m = Manifest::from_slice(json.as_bytes()).unwrap();
        assert_eq!(m.updates[0].version, v("1.0.0"));
        assert!(!m.to_json_pretty().unwrap().contains("status"));
    }

    #[test]
    fn migration_keys_sort_as_strings_when_written_like_upstream() {
        let m = Manifest {
            updates: vec![],
            migrations: BTreeMap::from([
                ((v("1.9.0"), v("1.10.0")), vec!["a".into()]),
                ((v("1.10.0"), v("1.11.0")), vec!["b".into()]),
            ]),
        };
        let json = m.to_json_pretty().unwrap();
        let first = json.find("(1.10.0, 1.11.0)").unwrap();
        let second = json.find("(1.9.0, 1.10.0)").unwrap();
        assert!(first < second, "{json}");
    }

    #[test]
    fn waves_are_written_with_numeric_keys_in_seed_order() {
        let json = with_maps(
            r#"{"1843":"2024-10-30T20:00:00Z","0":"2024-10-24T21:00:00Z","307":"2024-10-26T20:00:00Z"}"#,
            "{}",
        );
        let m = Manifest::from_slice(json.as_bytes()).unwrap();
        let out = m.to_json_pretty().unwrap();
        let positions: Vec<usize> = ["\"0\":", "\"307\":", "\"1843\":"]
            .iter()
            .map(|k| out.find(k).unwrap())
            .collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{out}");
    }

    #[test]
    fn lenient_times_upstream_accepts_are_accepted() {
        // Upstream's own test data has "2019-8-06T15:00:00Z"; chrono's serde parser takes it.
        let m = Manifest::from_slice(
            with_maps(
                r#"{"0":"2019-8-06T15:00:00Z","500":"2019-08-07 15:00:00+00:00"}"#,
                "{}",
            )
            .as_bytes(),
        )
        .unwrap();
        assert_eq!(m.updates[0].waves[&0], t("2019-08-06T15:00:00Z"));
        assert_eq!(m.updates[0].waves[&500], t("2019-08-07T15:00:00Z"));
    }

    #[test]
    fn duplicate_wave_key_is_an_error_naming_key_and_update() {
        let err = parse_err(&with_maps(
            r#"{"0":"2024-01-01T00:00:00Z","20":"2024-01-02T00:00:00Z","20":"2024-01-03T00:00:00Z"}"#,
            "{}",
        ));
        let msg = err.to_string();
        assert!(
            matches!(err, Error::DuplicateWaveKey { seed: 20, .. }),
            "{msg}"
        );
        assert!(
            msg.contains("updates[0] (variant 'aws-dev', arch 'x86_64', version '1.2.3')")
                && msg.contains("duplicate wave key '20'"),
            "{msg}"
        );
    }

    #[test]
    fn wave_keys_equal_as_numbers_are_duplicates() {
        let err = parse_err(&with_maps(
            r#"{"20":"2024-01-02T00:00:00Z","020":"2024-01-03T00:00:00Z"}"#,
            "{}",
        ));
        assert!(
            err.to_string()
                .contains("duplicate wave key '020': seed 20 is already given by key '20'"),
            "{err}"
        );
    }

    #[test]
    fn non_u32_wave_keys_are_errors_naming_the_key() {
        for key in ["-1", "4294967296", "1.5", "seed", ""] {
            let err = parse_err(&with_maps(
                &format!(r#"{{"{key}":"2024-01-01T00:00:00Z"}}"#),
                "{}",
            ));
            let msg = err.to_string();
            assert!(matches!(err, Error::BadWaveKey { .. }), "{key}: {msg}");
            assert!(msg.contains(&format!("wave key '{key}'")), "{msg}");
            assert!(msg.contains("version '1.2.3'"), "{msg}");
        }
    }

    #[test]
    fn bad_wave_times_are_errors_naming_key_and_value() {
        for value in ["tomorrow", "2024-13-01T00:00:00Z", "2024-01-01", ""] {
            let err = parse_err(&with_maps(&format!(r#"{{"0":"{value}"}}"#), "{}"));
            let msg = err.to_string();
            assert!(matches!(err, Error::BadWaveTime { .. }), "{value}: {msg}");
            assert!(
                msg.contains(&format!("wave '0' has time '{value}'")),
                "{msg}"
            );
        }
    }

    #[test]
    fn wave_times_that_do_not_increase_are_read_as_upstream_reads_them() {
        for (waves, order) in [
            (
                r#"{"0":"2024-01-02T00:00:00Z","20":"2024-01-01T00:00:00Z"}"#,
                "before",
            ),
            (
                r#"{"20":"2024-01-01T00:00:00Z","0":"2024-01-02T00:00:00Z"}"#,
                "before",
            ),
            (
                r#"{"0":"2024-01-01T00:00:00Z","20":"2024-01-01T00:00:00Z"}"#,
                "at the same time as",
            ),
        ] {
            let m = Manifest::from_slice(with_maps(waves, "{}").as_bytes()).unwrap();
            assert_eq!(m.updates[0].waves.len(), 2, "{waves}");
            let unordered = m.unordered_waves();
            assert_eq!(unordered.len(), 1, "{waves}");
            let warning = &unordered[0];
            assert_eq!((warning.seed, warning.next_seed), (0, 20), "{waves}");
            let msg = warning.to_string();
            assert!(
                msg.starts_with(
                    "updates[0] (variant 'aws-dev', arch 'x86_64', version '1.2.3'): wave 20 starts at 2024-01-0"
                ) && msg.contains(&format!(", {order} wave 0 at 2024-01-0")),
                "{msg}"
            );
        }
        let ordered = Manifest::from_slice(UPSTREAM_EXAMPLE.as_bytes()).unwrap();
        assert_eq!(ordered.unordered_waves(), []);
    }

    #[test]
    fn upstreams_updog_test_data_with_two_waves_at_one_time_loads() {
        // Upstream's updog tests/data/example_3_x86_64.json (first update).
        let json = r#"{"updates":[{"variant":"aws-k8s-1.15","arch":"x86_64","version":"0.1.1",
            "max_version":"0.1.2","waves":{"0":"2019-09-20T23:00:00Z","2047":"2019-09-20T23:00:00Z"},
            "images":{"boot":"b","root":"r","hash":"h"}}],"migrations":{}}"#;
        let m = Manifest::from_slice(json.as_bytes()).unwrap();
        let at = t("2019-09-20T23:00:00Z");
        assert!(!m.updates[0].update_ready(1000, at - TimeDelta::seconds(1)));
        assert!(m.updates[0].update_ready(1000, at));
        assert_eq!(m.unordered_waves().len(), 1);
    }

    #[test]
    fn the_second_update_is_named_by_its_index() {
        let json = r#"{"updates":[
            {"variant":"a","arch":"x86_64","version":"1.0.0","max_version":"1.0.0","waves":{},"images":{"boot":"b","root":"r","hash":"h"}},
            {"variant":"b","arch":"aarch64","version":"1.0.1","max_version":"1.0.1","waves":{"x":"2024-01-01T00:00:00Z"},"images":{"boot":"b","root":"r","hash":"h"}}],
            "migrations":{}}"#;
        let msg = parse_err(json).to_string();
        assert!(
            msg.starts_with("updates[1] (variant 'b', arch 'aarch64', version '1.0.1')"),
            "{msg}"
        );
    }

    #[test]
    fn bad_versions_name_the_field_and_update() {
        let json =
            with_maps("{}", "{}").replace(r#""max_version":"1.2.3""#, r#""max_version":"1.2""#);
        let err = parse_err(&json);
        assert!(
            matches!(&err, Error::BadVersion { field: "max_version", value, .. } if value == "1.2"),
            "{err}"
        );
    }

    #[test]
    fn duplicate_migration_key_is_an_error_naming_the_key() {
        let err = parse_err(&with_maps(
            "{}",
            r#"{"(1.0.0, 1.1.0)":["a"],"(1.0.0, 1.1.0)":["b"]}"#,
        ));
        let msg = err.to_string();
        assert!(
            matches!(
                err,
                Error::Migrations {
                    source: migration_key::Error::DuplicateKey { .. }
                }
            ),
            "{msg}"
        );
        assert!(
            msg.contains("Duplicate migration key '(1.0.0, 1.1.0)'"),
            "{msg}"
        );
    }

    #[test]
    fn malformed_migration_keys_are_errors_naming_the_key() {
        for key in ["1.0.0 -> 1.1.0", "(1.0.0 1.1.0)", "(1.0, 1.1.0)"] {
            let err = parse_err(&with_maps("{}", &format!(r#"{{"{key}":[]}}"#)));
            let msg = err.to_string();
            assert!(matches!(err, Error::Migrations { .. }), "{msg}");
            assert!(msg.contains(&format!("'{key}'")), "{msg}");
        }
    }

    #[test]
    fn missing_required_fields_are_json_errors() {
        let err = parse_err(r#"{"updates":[]}"#);
        assert!(matches!(err, Error::Json { .. }));
        assert!(
            err.to_string().contains("missing field `migrations`"),
            "{err}"
        );
        let err = parse_err(&with_maps("{}", "{}").replace(r#""waves":{},"#, ""));
        assert!(err.to_string().contains("missing field `waves`"), "{err}");
    }

    #[test]
    fn load_file_errors_name_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.json");
        let msg = load_file(&missing).unwrap_err().to_string();
        assert!(
            msg.contains(&missing.display().to_string()) && msg.contains("updata init"),
            "{msg}"
        );

        let bad = dir.path().join("bad.json");
        std::fs::write(&bad, with_maps(r#"{"0":"x"}"#, "{}")).unwrap();
        let msg = load_file(&bad).unwrap_err().to_string();
        assert!(
            msg.starts_with(&format!("Invalid manifest '{}': updates[0]", bad.display())),
            "{msg}"
        );
    }

    #[test]
    fn write_then_load_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("manifest.json");
        let m = Manifest::from_slice(UPSTREAM_EXAMPLE.as_bytes()).unwrap();
        write_file(&path, &m).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            UPSTREAM_EXAMPLE_PRETTY
        );
        assert_eq!(load_file(&path).unwrap(), m);
    }

    #[test]
    fn a_manifest_with_unordered_waves_is_written_and_read_back_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("manifest.json");
        let mut m = Manifest::from_slice(UPSTREAM_EXAMPLE.as_bytes()).unwrap();
        m.updates[0].waves.insert(30, t("2000-01-01T00:00:00Z"));
        write_file(&path, &m).unwrap();
        assert_eq!(load_file(&path).unwrap(), m);
    }

    fn images() -> Images {
        Images {
            boot: "boot".into(),
            root: "root".into(),
            hash: "hash".into(),
        }
    }

    fn new_update(variant: &str, arch: &str, version: &str, max: Option<&str>) -> NewUpdate {
        NewUpdate {
            variant: variant.into(),
            arch: arch.into(),
            version: v(version),
            max_version: max.map(v),
            images: images(),
        }
    }

    #[test]
    fn add_update_defaults_max_version_and_applies_it_to_its_arch_and_variant() {
        let mut m = Manifest::default();
        m.add_update(new_update("yum", "x86_64", "1.2.3", None))
            .unwrap();
        assert_eq!(m.updates[0].max_version, v("1.2.3"));
        m.add_update(new_update("other", "x86_64", "1.0.0", None))
            .unwrap();
        // Default = max(1.0.0, first update's max 1.2.3): upstream looks at updates[0] only.
        assert_eq!(m.updates[1].max_version, v("1.2.3"));
        m.add_update(new_update("yum", "x86_64", "1.2.5", None))
            .unwrap();
        assert_eq!(m.updates[2].max_version, v("1.2.5"));
        assert_eq!(m.updates[0].max_version, v("1.2.5"), "same arch+variant");
        assert_eq!(
            m.updates[1].max_version,
            v("1.2.3"),
            "other variant untouched"
        );
    }

    #[test]
    fn add_update_explicit_max_version_can_lower_the_others() {
        // Upstream's `max_versions` test: the last add sets 1.2.4 on all three.
        let mut m = Manifest::default();
        m.add_update(new_update("yum", "x86_64", "1.2.3", Some("1.2.3")))
            .unwrap();
        m.add_update(new_update("yum", "x86_64", "1.2.5", Some("1.2.3")))
            .unwrap();
        m.add_update(new_update("yum", "x86_64", "1.2.4", Some("1.2.4")))
            .unwrap();
        assert!(m.updates.iter().all(|u| u.max_version == v("1.2.4")));
        m.add_update(new_update("yum", "aarch64", "1.3.0", Some("1.3.0")))
            .unwrap();
        assert_eq!(m.updates[0].max_version, v("1.2.4"), "other arch untouched");
    }

    #[test]
    fn adding_the_same_update_twice_is_an_error() {
        let mut m = Manifest::default();
        m.add_update(new_update("yum", "x86_64", "1.2.3", None))
            .unwrap();
        let err = m
            .add_update(new_update("yum", "x86_64", "1.2.3", None))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "The manifest already has an update for variant 'yum', arch 'x86_64', version 1.2.3"
        );
        assert_eq!(m.updates.len(), 1);
    }

    #[test]
    fn remove_update_removes_only_the_exact_match() {
        let mut m = Manifest::default();
        m.add_update(new_update("yum", "x86_64", "1.2.3", None))
            .unwrap();
        m.add_update(new_update("yum", "aarch64", "1.2.3", None))
            .unwrap();
        m.add_update(new_update("yum", "x86_64", "1.2.4", None))
            .unwrap();
        let removed = m.remove_update(&UpdateSelector::new("yum", "x86_64", v("1.2.3")));
        assert_eq!(removed, 1);
        let left: Vec<(&str, String)> = m
            .updates
            .iter()
            .map(|u| (u.arch.as_str(), u.version.to_string()))
            .collect();
        assert_eq!(
            left,
            [("aarch64", "1.2.3".into()), ("x86_64", "1.2.4".into())]
        );
        // The max version is not reverted on removal, as upstream.
        assert_eq!(m.updates[1].max_version, v("1.2.4"));
        assert_eq!(
            m.remove_update(&UpdateSelector::new("yum", "x86_64", v("9.9.9"))),
            0
        );
    }

    #[test]
    fn set_waves_replaces_the_schedule_of_the_matching_update_only() {
        let mut m = Manifest::default();
        m.add_update(new_update("yum", "x86_64", "1.2.3", None))
            .unwrap();
        m.add_update(new_update("yum", "x86_64", "1.2.4", None))
            .unwrap();
        let start = t("2024-10-24T20:00:00Z");
        let policy = waves::builtin_policy("default").unwrap().policy().unwrap();
        let selector = UpdateSelector::new("yum", "x86_64", v("1.2.4"));
        assert_eq!(m.set_waves(&selector, start, &policy).unwrap(), 1);
        assert!(m.updates[0].waves.is_empty());
        assert_eq!(
            m.updates[1].waves.keys().copied().collect::<Vec<_>>(),
            [0, 20, 102, 307, 819, 1228, 1843]
        );
        assert_eq!(m.updates[1].waves[&0], start + TimeDelta::hours(1));

        // A second set replaces, not merges.
        let ohno = waves::builtin_policy("ohno").unwrap().policy().unwrap();
        m.set_waves(&selector, start, &ohno).unwrap();
        assert_eq!(
            m.updates[1].waves.keys().copied().collect::<Vec<_>>(),
            [0, 102, 512, 1024, 1843]
        );
    }

    #[test]
    fn set_waves_without_a_matching_update_is_an_error() {
        let mut m = Manifest::default();
        m.add_update(new_update("yum", "x86_64", "1.2.3", None))
            .unwrap();
        let policy = waves::builtin_policy("default").unwrap().policy().unwrap();
        let err = m
            .set_waves(
                &UpdateSelector::new("yum", "aarch64", v("1.2.3")),
                Utc::now(),
                &policy,
            )
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "No update in the manifest matches variant 'yum', arch 'aarch64', version 1.2.3"
        );
    }

    #[test]
    fn update_max_version_filters_by_arch_and_variant() {
        let mut m = Manifest::default();
        m.add_update(new_update("a", "x86_64", "1.0.0", Some("1.0.0")))
            .unwrap();
        m.add_update(new_update("b", "aarch64", "1.0.0", Some("1.0.0")))
            .unwrap();
        assert_eq!(m.update_max_version(&v("2.0.0"), Some("aarch64"), None), 1);
        assert_eq!(m.updates[1].max_version, v("2.0.0"));
        assert_eq!(m.updates[0].max_version, v("1.0.0"));
        assert_eq!(m.update_max_version(&v("3.0.0"), None, None), 2);
        assert!(m.updates.iter().all(|u| u.max_version == v("3.0.0")));
    }

    #[test]
    fn update_ready_on_an_update_uses_its_waves() {
        let m = Manifest::from_slice(UPSTREAM_EXAMPLE.as_bytes()).unwrap();
        let u = &m.updates[0];
        // Seeds above the last key (20) are in the last wave, open from 23:00.
        assert!(!u.update_ready(1000, t("2024-10-24T22:59:59Z")));
        assert!(u.update_ready(1000, t("2024-10-24T23:00:00Z")));
        assert_eq!(
            u.update_wave(1000),
            Some(Wave::Last {
                start_seed: 20,
                start_time: t("2024-10-24T23:00:00Z")
            })
        );
    }
}
