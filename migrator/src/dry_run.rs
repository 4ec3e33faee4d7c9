//! `--dry-run`: the migrations run into a scratch copy outside the datastore directory, and the
//! report lists every key, metadata value and pending-transaction key that would change.

use crate::error::{self, Result};
use crate::run::MigrationPlan;
use datastore::{Committed, FilesystemDataStore};
use migration_helpers::MigrationType;
use semver::Version;
use snafu::ResultExt;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

/// What a migration would do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DryRunReport {
    pub plan: MigrationPlan,
    /// The data directory that would be migrated (only read).
    pub datastore: PathBuf,
    pub changes: Vec<Change>,
}

/// Where a changed value lives.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Place {
    Live,
    Metadata { meta: String },
    Pending { tx: String },
}

/// One value that would change (values are the stored JSON text).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Change {
    Added {
        place: Place,
        key: String,
        value: String,
    },
    Removed {
        place: Place,
        key: String,
        value: String,
    },
    Changed {
        place: Place,
        key: String,
        old: String,
        new: String,
    },
}

impl DryRunReport {
    pub(crate) fn up_to_date(version: Version, datastore: &Path) -> Self {
        Self {
            plan: MigrationPlan {
                from: version.clone(),
                to: version,
                direction: MigrationType::Forward,
                migrations: Vec::new(),
            },
            datastore: datastore.to_owned(),
            changes: Vec::new(),
        }
    }
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Place::Live => f.write_str("live"),
            Place::Metadata { meta } => write!(f, "metadata '{meta}'"),
            Place::Pending { tx } => write!(f, "pending '{tx}'"),
        }
    }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::Added { place, key, value } => write!(f, "{place}: + {key} = {value}"),
            Change::Removed { place, key, value } => write!(f, "{place}: - {key} (was {value})"),
            Change::Changed {
                place,
                key,
                old,
                new,
            } => {
                write!(f, "{place}: ~ {key}: {old} -> {new}")
            }
        }
    }
}

impl fmt::Display for DryRunReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plan = &self.plan;
        if plan.from == plan.to {
            writeln!(
                f,
                "Dry run: the datastore at {} is already at version {}; nothing would change.",
                self.datastore.display(),
                plan.to
            )?;
            return Ok(());
        }
        writeln!(
            f,
            "Dry run: would migrate the datastore at {} from {} to {} ({}) with {} migration(s):",
            self.datastore.display(),
            plan.from,
            plan.to,
            plan.direction,
            plan.migrations.len()
        )?;
        for name in &plan.migrations {
            writeln!(f, "  {name}")?;
        }
        if self.changes.is_empty() {
            writeln!(f, "No setting, metadata or pending value would change.")?;
        } else {
            writeln!(f, "{} change(s):", self.changes.len())?;
            for change in &self.changes {
                writeln!(f, "  {change}")?;
            }
        }
        write!(f, "Nothing was changed.")
    }
}

/// Every value of a datastore, by place and key name.
fn contents(dir: &Path) -> Result<BTreeMap<(Place, String), String>> {
    let store = FilesystemDataStore::new(dir);
    let read = |e| error::Error::ReadDatastore {
        path: dir.to_owned(),
        source: Box::new(e),
    };
    let mut out = BTreeMap::new();
    for (key, value) in store.get_prefix("", &Committed::Live).map_err(read)? {
        out.insert((Place::Live, key.name().to_string()), value);
    }
    for (key, metas) in store
        .get_metadata_prefix("", &Committed::Live, None)
        .map_err(read)?
    {
        for (meta, value) in metas {
            out.insert(
                (
                    Place::Metadata {
                        meta: meta.name().to_string(),
                    },
                    key.name().to_string(),
                ),
                value,
            );
        }
    }
    for tx in store.list_transactions().map_err(read)? {
        for (key, value) in store
            .get_prefix("", &Committed::pending(tx.clone()))
            .map_err(read)?
        {
            out.insert(
                (Place::Pending { tx: tx.clone() }, key.name().to_string()),
                value,
            );
        }
    }
    Ok(out)
}

/// The changes from datastore `before` to datastore `after`.
pub fn diff(before: &Path, after: &Path) -> Result<Vec<Change>> {
    let old = contents(before)?;
    let new = contents(after)?;
    let places: BTreeSet<&(Place, String)> = old.keys().chain(new.keys()).collect();
    let mut changes = Vec::new();
    for entry in places {
        let (place, key) = entry.clone();
        match (old.get(entry), new.get(entry)) {
            (Some(o), Some(n)) if o != n => changes.push(Change::Changed {
                place,
                key,
                old: o.clone(),
                new: n.clone(),
            }),
            (Some(o), None) => changes.push(Change::Removed {
                place,
                key,
                value: o.clone(),
            }),
            (None, Some(n)) => changes.push(Change::Added {
                place,
                key,
                value: n.clone(),
            }),
            _ => {}
        }
    }
    Ok(changes)
}

/// Copies a datastore directory (directories and regular files; nothing else is a datastore).
pub fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir(to).context(error::IoSnafu {
        action: "create",
        path: to,
    })?;
    let entries = std::fs::read_dir(from).context(error::IoSnafu {
        action: "list",
        path: from,
    })?;
    for entry in entries {
        let entry = entry.context(error::IoSnafu {
            action: "list",
            path: from,
        })?;
        let source = entry.path();
        let target = to.join(entry.file_name());
        let kind = entry.file_type().context(error::IoSnafu {
            action: "inspect",
            path: &source,
        })?;
        if kind.is_dir() {
            copy_tree(&source, &target)?;
        } else if kind.is_file() {
            std::fs::copy(&source, &target).context(error::IoSnafu {
                action: "copy",
                path: &source,
            })?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use datastore::{Key, KeyType};

    #[test]
    fn diff_lists_every_kind_of_change() {
        let tmp = tempfile::tempdir().unwrap();
        let a = FilesystemDataStore::create(tmp.path().join("a")).unwrap();
        let key = |n: &str| Key::new(KeyType::Data, n).unwrap();
        let meta = Key::new(KeyType::Meta, "affected-services").unwrap();
        a.set_key(&key("settings.same"), "1", &Committed::Live)
            .unwrap();
        a.set_key(&key("settings.gone"), "\"x\"", &Committed::Live)
            .unwrap();
        a.set_key(&key("settings.changed"), "1", &Committed::Live)
            .unwrap();
        a.set_metadata(&meta, &key("settings.same"), "[\"a\"]", &Committed::Live)
            .unwrap();
        copy_tree(a.base_path(), &tmp.path().join("b")).unwrap();
        let b = FilesystemDataStore::new(tmp.path().join("b"));
        b.unset_key(&key("settings.gone"), &Committed::Live)
            .unwrap();
        b.set_key(&key("settings.changed"), "2", &Committed::Live)
            .unwrap();
        b.set_key(&key("settings.new"), "true", &Committed::pending("default"))
            .unwrap();
        b.set_metadata(&meta, &key("settings.same"), "[\"b\"]", &Committed::Live)
            .unwrap();

        let changes = diff(a.base_path(), b.base_path()).unwrap();
        let lines: Vec<String> = changes.iter().map(ToString::to_string).collect();
        assert_eq!(
            lines,
            [
                "live: ~ settings.changed: 1 -> 2",
                "live: - settings.gone (was \"x\")",
                "metadata 'affected-services': ~ settings.same: [\"a\"] -> [\"b\"]",
                "pending 'default': + settings.new = true",
            ]
        );
        assert!(diff(a.base_path(), a.base_path()).unwrap().is_empty());
    }
}
