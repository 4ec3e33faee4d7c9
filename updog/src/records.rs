//! updog's records of the boot chain under `/var/lib/updog/` (docs/updog.md, "Health checks and rolled-back
//! versions"):
//!
//! - `staged-image.json`: the version update-image wrote into the inactive set, and that set's BOOT PARTUUID, so
//!   that a later `update-apply` knows what it makes the next boot;
//! - `pending-upgrade.json`: the version (and set) `update`/`update-apply` made the next boot, until a boot of it
//!   passes the health checks, or the node is found running the other set (a fallback);
//! - `rolled-back.json`: the versions the node fell back from, which selection skips unless named with `--image`.
//!
//! Every write is atomic and durable (nodeio: temporary file, fsync, rename, fsync of the directory), and so is
//! every removal (the directory is fsynced after it). A file that cannot be read or parsed is an error naming it,
//! never taken as absent: an empty rolled-back list read from a damaged file would re-apply a broken release.

use chrono::{DateTime, Utc};
use semver::Version;
use serde::{Deserialize, Serialize};
use snafu::{ResultExt, Snafu};
use std::path::{Path, PathBuf};

/// The largest record file read (a rolled-back list of thousands of versions fits).
const RECORD_LIMIT: u64 = 1024 * 1024;

#[derive(Debug, Snafu)]
#[snafu(visibility(pub(crate)))]
pub enum RecordError {
    #[snafu(display("Failed to read {}: {source}", path.display()))]
    ReadRecord {
        path: PathBuf,
        source: std::io::Error,
    },

    #[snafu(display("{} is damaged (expected updog's JSON record; remove it only if you know what it held): {source}", path.display()))]
    ParseRecord {
        path: PathBuf,
        source: serde_json::Error,
    },

    #[snafu(display("Failed to serialize the record for {}: {source}", path.display()))]
    SerializeRecord {
        path: PathBuf,
        source: serde_json::Error,
    },

    #[snafu(display("Failed to create {}: {source}", path.display()))]
    CreateRecordDir {
        path: PathBuf,
        source: std::io::Error,
    },

    #[snafu(display("{source}"))]
    WriteRecord { source: nodeio::AtomicWriteError },

    #[snafu(display("Failed to remove {}: {source}", path.display()))]
    RemoveRecord {
        path: PathBuf,
        source: std::io::Error,
    },

    #[snafu(display("Failed to fsync {} after removing {}: {source}", dir.display(), path.display()))]
    SyncRecordDir {
        dir: PathBuf,
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A version written to (or made the next boot in) one partition set, named by its BOOT partition's PARTUUID (what
/// the kernel command line names, so what the booted set is known by).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetRecord {
    pub version: Version,
    pub boot_partuuid: String,
}

/// A version the node fell back from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolledBack {
    pub version: Version,
    /// The set it was in when the node fell back.
    pub boot_partuuid: String,
    /// When the fallback was found (the first `mark-successful-boot` after it).
    pub recorded_at: DateTime<Utc>,
}

/// `rolled-back.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolledBackList {
    pub versions: Vec<RolledBack>,
}

impl RolledBackList {
    /// The entry for `version`, if it was rolled back.
    #[must_use]
    pub fn find(&self, version: &Version) -> Option<&RolledBack> {
        self.versions.iter().find(|r| r.version == *version)
    }
}

/// Reads a JSON record; `None` when nothing is at `path`. A symlink, a non-regular file, an oversized or
/// unparsable file is an error naming it.
fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, RecordError> {
    let text = match nodeio::read_small_text_file_nofollow(path, RECORD_LIMIT) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(source).context(ReadRecordSnafu { path }),
    };
    serde_json::from_str(&text)
        .map(Some)
        .context(ParseRecordSnafu { path })
}

/// Writes a JSON record atomically and durably (0644: nothing secret), creating `/var/lib/updog` if needed.
fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), RecordError> {
    let mut text = serde_json::to_string_pretty(value).context(SerializeRecordSnafu { path })?;
    text.push('\n');
    let dir = nodeio::atomic::parent_dir(path);
    if !dir.is_dir() {
        std::fs::create_dir_all(&dir).context(CreateRecordDirSnafu { path: &dir })?;
    }
    nodeio::AtomicWrite::new(path)
        .mode(0o644)
        .write(text.as_bytes())
        .context(WriteRecordSnafu)
}

/// Reads `staged-image.json` or `pending-upgrade.json`.
pub fn read_set_record(path: &Path) -> Result<Option<SetRecord>, RecordError> {
    read_json(path)
}

/// Writes `staged-image.json` or `pending-upgrade.json`.
pub fn write_set_record(path: &Path, record: &SetRecord) -> Result<(), RecordError> {
    write_json(path, record)
}

/// Removes a record durably; nothing there is fine.
pub fn remove_record(path: &Path) -> Result<(), RecordError> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => return Err(source).context(RemoveRecordSnafu { path }),
    }
    let dir = nodeio::atomic::parent_dir(path);
    nodeio::sync_dir(&dir).context(SyncRecordDirSnafu { dir: &dir, path })
}

/// Reads `rolled-back.json` (empty when absent).
pub fn read_rolled_back(path: &Path) -> Result<RolledBackList, RecordError> {
    Ok(read_json(path)?.unwrap_or_default())
}

/// Adds `entry` to `rolled-back.json` (once per version: a second fallback from it keeps the first entry).
pub fn append_rolled_back(path: &Path, entry: RolledBack) -> Result<(), RecordError> {
    let mut list = read_rolled_back(path)?;
    if list.find(&entry.version).is_none() {
        list.versions.push(entry);
        write_json(path, &list)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn record(version: &str) -> SetRecord {
        SetRecord {
            version: version.parse().unwrap(),
            boot_partuuid: "6b2f0a3e-0b1c-4d5e-8f90-123456789abc".into(),
        }
    }

    fn rolled_back(version: &str) -> RolledBack {
        RolledBack {
            version: version.parse().unwrap(),
            boot_partuuid: "6b2f0a3e-0b1c-4d5e-8f90-123456789abc".into(),
            recorded_at: "2030-01-01T00:00:00Z".parse().unwrap(),
        }
    }

    /// Files in `dir` other than `keep` (a leftover temporary file would show here).
    fn others(dir: &Path, keep: &str) -> Vec<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n != keep)
            .collect()
    }

    #[test]
    fn a_set_record_round_trips_and_creates_its_directory() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("var/lib/updog/pending-upgrade.json");
        assert_eq!(read_set_record(&path).unwrap(), None);
        write_set_record(&path, &record("1.2.0")).unwrap();
        assert_eq!(read_set_record(&path).unwrap(), Some(record("1.2.0")));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644);
        // Replaced whole, no temporary file left beside it.
        write_set_record(&path, &record("1.3.0")).unwrap();
        assert_eq!(read_set_record(&path).unwrap(), Some(record("1.3.0")));
        assert!(
            others(path.parent().unwrap(), "pending-upgrade.json").is_empty(),
            "{:?}",
            others(path.parent().unwrap(), "pending-upgrade.json")
        );
        remove_record(&path).unwrap();
        assert!(!path.exists());
        assert_eq!(read_set_record(&path).unwrap(), None);
        remove_record(&path).unwrap();
    }

    #[test]
    fn a_damaged_record_is_an_error_naming_it_not_an_empty_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rolled-back.json");
        for damaged in [
            &b""[..],
            b"{\"versions\": [",
            b"{\"versions\": [{\"version\": \"1.2\"}]}",
            b"[]",
        ] {
            std::fs::write(&path, damaged).unwrap();
            let error = read_rolled_back(&path).unwrap_err();
            assert!(
                matches!(error, RecordError::ParseRecord { .. }),
                "{error:?}"
            );
            let message = error.to_string();
            assert!(
                message.contains(&path.display().to_string()) && message.contains("damaged"),
                "{message}"
            );
            // Appending to a damaged list does not replace it with a fresh one.
            assert!(append_rolled_back(&path, rolled_back("1.2.0")).is_err());
            assert_eq!(std::fs::read(&path).unwrap(), damaged);
        }
        let pending = dir.path().join("pending-upgrade.json");
        std::fs::write(&pending, "{\"version\": \"1.2.0\"}").unwrap();
        let error = read_set_record(&pending).unwrap_err();
        assert!(
            error.to_string().contains("pending-upgrade.json"),
            "{error}"
        );
    }

    #[test]
    fn a_symlink_or_directory_at_a_record_path_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("elsewhere.json");
        write_json(&target, &RolledBackList::default()).unwrap();
        let link = dir.path().join("rolled-back.json");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let error = read_rolled_back(&link).unwrap_err();
        assert!(matches!(error, RecordError::ReadRecord { .. }), "{error:?}");
        assert!(error.to_string().contains("rolled-back.json"), "{error}");

        let as_dir = dir.path().join("pending-upgrade.json");
        std::fs::create_dir(&as_dir).unwrap();
        assert!(read_set_record(&as_dir).is_err());
    }

    #[test]
    fn rolled_back_versions_are_appended_once_each() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rolled-back.json");
        assert_eq!(read_rolled_back(&path).unwrap(), RolledBackList::default());
        append_rolled_back(&path, rolled_back("1.2.0")).unwrap();
        let mut later = rolled_back("1.2.0");
        later.recorded_at = "2031-01-01T00:00:00Z".parse().unwrap();
        append_rolled_back(&path, later).unwrap();
        append_rolled_back(&path, rolled_back("1.3.0")).unwrap();
        let list = read_rolled_back(&path).unwrap();
        assert_eq!(list.versions, [rolled_back("1.2.0"), rolled_back("1.3.0")]);
        assert_eq!(
            list.find(&"1.2.0".parse().unwrap()).unwrap().recorded_at,
            rolled_back("1.2.0").recorded_at
        );
        assert!(list.find(&"1.1.0".parse().unwrap()).is_none());
        assert!(others(dir.path(), "rolled-back.json").is_empty());
    }
}
