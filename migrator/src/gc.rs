//! Garbage collection of old datastore copies (upstream never removes them: bottlerocket#2589).
//!
//! What is kept, exactly:
//! - the data directory `current` resolves to;
//! - the data directory it was migrated from, as recorded in its [`SOURCE_RECORD`] file when
//!   migrator created it: the previous version's settings, so a rollback still finds them;
//! - every version link (`current`, `vX`, `vX.Y`, `vX.Y.Z`) whose chain ends at one of those two;
//! - anything in the datastore directory that is not a version link, a data directory
//!   (`v<version>_<suffix>`) or a leftover of migrator (`.flip-*` temporary links, `.gc-*`).
//!
//! Everything else of those kinds is removed: older data directories, copies left by interrupted
//! or failed migrations, links that dangle or lead only to removed data, temporary links.
//! A data directory is first renamed to `.gc-<name>` and then deleted, so a crash mid-delete
//! leaves nothing that looks like a datastore. When `current`'s data has no source record (it was
//! created by storewolf or by upstream's migrator), the previous datastore is unknown and no
//! data directory or version link is removed.

use crate::chain::{self, CURRENT, TEMP_LINK_PREFIX};
use crate::error::{self, Result};
use crate::killpoint::KillPoints;
use snafu::ResultExt;
use std::collections::BTreeSet;
use std::path::Path;

/// The file in a migrated data directory naming the data directory it was migrated from.
pub const SOURCE_RECORD: &str = ".migrated-from";

/// Prefix of a data directory being deleted.
const DELETING_PREFIX: &str = ".gc-";

/// What a collection kept and removed (entry names in the datastore directory).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    pub kept: BTreeSet<String>,
    pub removed: BTreeSet<String>,
    /// Why data directories were not considered, when they were not.
    pub skipped: Option<String>,
}

/// What kind of entry of the datastore directory a name is.
#[derive(Debug, PartialEq, Eq)]
enum Entry {
    VersionLink,
    DataDir,
    TempLink,
    Deleting,
    Other,
}

fn classify(name: &str) -> Entry {
    if name == CURRENT {
        return Entry::VersionLink;
    }
    if name.starts_with(TEMP_LINK_PREFIX) {
        return Entry::TempLink;
    }
    if name.starts_with(DELETING_PREFIX) {
        return Entry::Deleting;
    }
    let Some(rest) = name.strip_prefix('v') else {
        return Entry::Other;
    };
    if rest.contains('_') {
        return match chain::data_dir_version(name) {
            Some(_) => Entry::DataDir,
            None => Entry::Other,
        };
    }
    let parts: Vec<&str> = rest.split('.').collect();
    if (1..=3).contains(&parts.len())
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
    {
        Entry::VersionLink
    } else {
        Entry::Other
    }
}

/// The data directory name recorded as `data_dir`'s source, if any.
pub fn recorded_source(data_dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(data_dir.join(SOURCE_RECORD)).ok()?;
    let name = text.trim();
    (!name.is_empty() && !name.contains('/')).then(|| name.to_string())
}

/// Writes the source record into a new data directory (fsynced with the rest of the copy).
pub fn record_source(data_dir: &Path, source_name: &str) -> Result<()> {
    let path = data_dir.join(SOURCE_RECORD);
    std::fs::write(&path, source_name).context(error::IoSnafu {
        action: "write source record",
        path: &path,
    })
}

/// Collects garbage in `datastore_dir`. Removal failures are logged, not returned: a datastore
/// that could not be cleaned is still a good datastore.
pub fn collect_garbage(datastore_dir: &Path, kill: &KillPoints) -> Result<GcReport> {
    let mut report = GcReport::default();
    let entries = std::fs::read_dir(datastore_dir).context(error::IoSnafu {
        action: "list datastore directory",
        path: datastore_dir,
    })?;
    let mut names = BTreeSet::new();
    for entry in entries {
        let entry = entry.context(error::IoSnafu {
            action: "list datastore directory",
            path: datastore_dir,
        })?;
        names.insert(entry.file_name().to_string_lossy().into_owned());
    }

    let current = chain::resolve_in(datastore_dir, CURRENT);
    let source = current
        .as_deref()
        .and_then(|c| recorded_source(&datastore_dir.join(c)))
        .filter(|s| datastore_dir.join(s).is_dir());
    let keep_data: BTreeSet<String> = match (&current, &source) {
        (Some(current), Some(source)) => [current.clone(), source.clone()].into(),
        (Some(current), None) => {
            report.skipped = Some(format!(
                "{current} has no record of the datastore it was migrated from; keeping every datastore"
            ));
            BTreeSet::new()
        }
        (None, _) => {
            report.skipped = Some("current does not resolve to a datastore".into());
            BTreeSet::new()
        }
    };
    let collect_data = !keep_data.is_empty();

    let mut removals = 0;
    let mut remove = |name: &str, report: &mut GcReport| {
        let path = datastore_dir.join(name);
        let result = if path.is_symlink() || path.is_file() {
            std::fs::remove_file(&path)
        } else {
            std::fs::remove_dir_all(&path)
        };
        match result {
            Ok(()) => {
                log::info!("Removed old datastore entry {}", path.display());
                report.removed.insert(name.to_string());
                removals += 1;
                kill.checkpoint(&format!("gc-removed-{removals}"));
            }
            Err(e) => log::error!("Failed to remove {}: {e}", path.display()),
        }
    };

    // Links first, so no link ever leads into a directory being deleted.
    for name in &names {
        match classify(name) {
            Entry::TempLink => remove(name, &mut report),
            Entry::VersionLink if collect_data => {
                let ends_at = chain::resolve_in(datastore_dir, name);
                if ends_at.is_some_and(|d| keep_data.contains(&d)) {
                    report.kept.insert(name.clone());
                } else {
                    remove(name, &mut report);
                }
            }
            Entry::DataDir | Entry::Deleting | Entry::VersionLink | Entry::Other => {}
        }
    }
    for name in &names {
        match classify(name) {
            Entry::Deleting => remove(name, &mut report),
            Entry::DataDir if collect_data && !keep_data.contains(name) => {
                let from = datastore_dir.join(name);
                let doomed = format!("{DELETING_PREFIX}{name}");
                match std::fs::rename(&from, datastore_dir.join(&doomed)) {
                    Ok(()) => {
                        if let Err(e) = datastore::sync_dir(datastore_dir) {
                            log::warn!("{e}");
                        }
                        remove(&doomed, &mut report);
                        if report.removed.remove(&doomed) {
                            report.removed.insert(name.clone());
                        }
                    }
                    Err(e) => log::error!("Failed to remove {}: {e}", from.display()),
                }
            }
            Entry::DataDir | Entry::Other => {
                report.kept.insert(name.clone());
            }
            Entry::VersionLink if !collect_data => {
                report.kept.insert(name.clone());
            }
            Entry::VersionLink | Entry::TempLink => {}
        }
    }
    if let Err(e) = datastore::sync_dir(datastore_dir) {
        log::warn!("{e}");
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn classifies_datastore_entries() {
        assert_eq!(classify("current"), Entry::VersionLink);
        assert_eq!(classify("v1"), Entry::VersionLink);
        assert_eq!(classify("v1.2"), Entry::VersionLink);
        assert_eq!(classify("v1.2.3"), Entry::VersionLink);
        assert_eq!(classify("v1.2.3_abcdefghijklmnop"), Entry::DataDir);
        assert_eq!(classify("v1.2.3-rc1_abc"), Entry::DataDir);
        assert_eq!(classify(".flip-abc"), Entry::TempLink);
        assert_eq!(classify(".gc-v1.0.0_x"), Entry::Deleting);
        for other in ["README", "v1.2.3.4", "vx", "v1.2.x_abc", "v1.2.3_", "v"] {
            assert_eq!(classify(other), Entry::Other, "{other}");
        }
    }

    fn data_dir(dir: &Path, name: &str, source: Option<&str>) {
        std::fs::create_dir_all(dir.join(name).join("live/settings")).unwrap();
        std::fs::write(dir.join(name).join("live/settings/motd"), "\"x\"").unwrap();
        if let Some(source) = source {
            record_source(&dir.join(name), source).unwrap();
        }
    }

    fn names(dir: &Path) -> BTreeSet<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn keeps_exactly_current_and_its_source_with_their_links() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        data_dir(dir, "v1.0.0_aaaaaaaaaaaaaaaa", None);
        data_dir(
            dir,
            "v1.1.0_bbbbbbbbbbbbbbbb",
            Some("v1.0.0_aaaaaaaaaaaaaaaa"),
        );
        data_dir(
            dir,
            "v1.2.0_cccccccccccccccc",
            Some("v1.1.0_bbbbbbbbbbbbbbbb"),
        );
        data_dir(
            dir,
            "v1.2.0_orphanorphanorph",
            Some("v1.1.0_bbbbbbbbbbbbbbbb"),
        );
        for (link, target) in [
            ("current", "v1"),
            ("v1", "v1.2"),
            ("v1.2", "v1.2.0"),
            ("v1.2.0", "v1.2.0_cccccccccccccccc"),
            ("v1.1", "v1.1.0"),
            ("v1.1.0", "v1.1.0_bbbbbbbbbbbbbbbb"),
            ("v1.0", "v1.0.0"),
            ("v1.0.0", "v1.0.0_aaaaaaaaaaaaaaaa"),
            ("v0.9.0", "v0.9.0_gone"),
            (".flip-0123456789abcdef", "v1.2.0_cccccccccccccccc"),
        ] {
            symlink(target, dir.join(link)).unwrap();
        }
        std::fs::create_dir(dir.join(".gc-v0.8.0_half")).unwrap();
        std::fs::write(dir.join("README"), "not ours").unwrap();

        let report = collect_garbage(dir, &KillPoints::none()).unwrap();
        let expected: BTreeSet<String> = [
            "current",
            "v1",
            "v1.2",
            "v1.2.0",
            "v1.2.0_cccccccccccccccc",
            "v1.1",
            "v1.1.0",
            "v1.1.0_bbbbbbbbbbbbbbbb",
            "README",
        ]
        .map(String::from)
        .into();
        assert_eq!(names(dir), expected);
        assert_eq!(report.kept, expected);
        let removed: BTreeSet<String> = [
            "v1.0",
            "v1.0.0",
            "v1.0.0_aaaaaaaaaaaaaaaa",
            "v1.2.0_orphanorphanorph",
            "v0.9.0",
            ".flip-0123456789abcdef",
            ".gc-v0.8.0_half",
        ]
        .map(String::from)
        .into();
        assert_eq!(report.removed, removed);
        assert_eq!(report.skipped, None);
        // The kept data is untouched.
        assert_eq!(
            std::fs::read(dir.join("v1.1.0_bbbbbbbbbbbbbbbb/live/settings/motd")).unwrap(),
            b"\"x\""
        );
        // Collecting again removes nothing more.
        let again = collect_garbage(dir, &KillPoints::none()).unwrap();
        assert!(again.removed.is_empty());
        assert_eq!(names(dir), expected);
    }

    #[test]
    fn without_a_source_record_no_datastore_is_removed() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        data_dir(dir, "v1.0.0_aaaaaaaaaaaaaaaa", None);
        data_dir(dir, "v1.1.0_bbbbbbbbbbbbbbbb", None);
        for (link, target) in [
            ("current", "v1"),
            ("v1", "v1.1"),
            ("v1.1", "v1.1.0"),
            ("v1.1.0", "v1.1.0_bbbbbbbbbbbbbbbb"),
            ("v1.0.0", "v1.0.0_aaaaaaaaaaaaaaaa"),
            (".flip-0123456789abcdef", "v1"),
        ] {
            symlink(target, dir.join(link)).unwrap();
        }
        let report = collect_garbage(dir, &KillPoints::none()).unwrap();
        assert!(report.skipped.is_some());
        assert_eq!(
            report.removed,
            BTreeSet::from([".flip-0123456789abcdef".to_string()])
        );
        assert!(dir.join("v1.0.0_aaaaaaaaaaaaaaaa").is_dir());
        assert!(dir.join("v1.0.0").is_symlink());
    }
}
