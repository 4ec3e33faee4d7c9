//! Write datastore migrations for the updater, compatible with Bottlerocket's `migration-helpers`:
//! implement [`Migration`] (forward and backward over [`MigrationData`]) and hand it to
//! [`migrate`] from `main`. migrator runs the binary with
//! `( --forward | --backward ) --source-datastore S --target-datastore D`; the migration reads
//! `S` (never changing it) and writes the migrated copy to the fresh directory `D`.
//!
//! ```no_run
//! use migration_helpers::common_migrations::AddSettingsMigration;
//! use migration_helpers::{migrate, exit_on_error};
//!
//! fn main() {
//!     exit_on_error(migrate(AddSettingsMigration(&["settings.motd"])));
//! }
//! ```
//!
//! - [`common_migrations`]: the usual changes (add/remove settings, add prefixes, replace a
//!   string, a list, a template, metadata; rename; no-op), each forward and backward;
//! - [`run_migration`]: the work behind [`migrate`], for tests and other callers;
//! - [`os_release`]: the `os.*` values injected into every input.

mod args;
pub mod common_migrations;
pub mod datastore_helper;
pub mod error;
pub mod os_release;
pub mod template;

pub use args::Args;
pub use error::{Error, Result};

use datastore::{Committed, Durability, FilesystemDataStore};
use snafu::{ResultExt, ensure};
use std::collections::HashMap;
use std::fmt;

/// A value of a setting or of its metadata: any JSON value the datastore holds.
pub type Value = serde_json::Value;

/// Metadata of one data key: metadata key name → value.
pub type Metadata = HashMap<String, Value>;

/// What a migration transforms: every data key (dotted name, quoted segments as stored) with its
/// value, and for the live datastore every data key's metadata.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MigrationData {
    pub data: HashMap<String, Value>,
    pub metadata: HashMap<String, Metadata>,
}

/// A migration between this release and the one before it.
///
/// Migrations run over live data and over each pending transaction, so they must not assume a
/// key exists, and must not add a key everywhere it is missing (that would add it to unrelated
/// transactions).
pub trait Migration {
    /// From the previous version to this migration's version.
    fn forward(&mut self, input: MigrationData) -> Result<MigrationData>;
    /// From this migration's version back to the previous one; undoes `forward`.
    fn backward(&mut self, input: MigrationData) -> Result<MigrationData>;
}

impl<M: Migration + ?Sized> Migration for &mut M {
    fn forward(&mut self, input: MigrationData) -> Result<MigrationData> {
        (**self).forward(input)
    }
    fn backward(&mut self, input: MigrationData) -> Result<MigrationData> {
        (**self).backward(input)
    }
}

/// Which way to migrate.
#[derive(Debug, Copy, Clone, PartialEq, Eq)]
pub enum MigrationType {
    Forward,
    Backward,
}

impl fmt::Display for MigrationType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MigrationType::Forward => f.write_str("forward"),
            MigrationType::Backward => f.write_str("backward"),
        }
    }
}

/// The entry point of a migration binary: parses the arguments migrator passes (a usage error
/// prints usage and exits 2) and runs the migration.
pub fn migrate(migration: impl Migration) -> Result<()> {
    let args = Args::try_parse_from(std::env::args_os()).unwrap_or_else(|e| e.exit());
    run_migration(migration, &args)
}

/// Prints the error of a migration on stderr and exits 1 (upstream migrations' `main`).
pub fn exit_on_error(result: Result<()>) {
    if let Err(e) = result {
        eprintln!("{e}");
        std::process::exit(1);
    }
}

/// Migrates `args.source_datastore` into the new directory `args.target_datastore`: live data
/// and metadata, then each pending transaction. The `os.*` values (see [`os_release`]) are added
/// to every input; they are a view, not data: unless the migration changed one, the output keeps
/// the source's own value of that key (or none), so a datastore that never held `os.*` keys does
/// not gain them.
pub fn run_migration(mut migration: impl Migration, args: &Args) -> Result<()> {
    ensure!(
        args.source_datastore != args.target_datastore,
        error::SameDatastoreSnafu {
            path: &args.source_datastore
        }
    );
    ensure!(
        !args.target_datastore.exists(),
        error::TargetExistsSnafu {
            path: &args.target_datastore
        }
    );
    let source = FilesystemDataStore::new(&args.source_datastore);
    // migrator fsyncs the final copy before anything points at it; per-write fsyncs buy nothing.
    let target = FilesystemDataStore::create(&args.target_datastore)
        .context(error::CreateTargetSnafu {
            path: &args.target_datastore,
        })?
        .durability(Durability::Deferred);
    let os_values = os_release::os_values()?;

    let mut committeds = vec![Committed::Live];
    let transactions = source
        .list_transactions()
        .context(error::ListTransactionsSnafu {
            path: &args.source_datastore,
        })?;
    committeds.extend(transactions.into_iter().map(Committed::pending));

    for committed in committeds {
        let stored = datastore_helper::get_input_data(&source, &committed)?;
        let mut input = stored.clone();
        input.data.extend(os_values.clone());
        let mut migrated = match args.migration_type {
            MigrationType::Forward => migration.forward(input)?,
            MigrationType::Backward => migration.backward(input)?,
        };
        for (key, injected) in &os_values {
            if migrated.data.get(key) == Some(injected) {
                match stored.data.get(key) {
                    Some(own) => migrated.data.insert(key.clone(), own.clone()),
                    None => migrated.data.remove(key),
                };
            }
        }
        datastore_helper::set_output_data(&target, &migrated, &committed)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common_migrations::{NoOpMigration, RenameSettingMigration};
    use datastore::{Key, KeyType};
    use std::path::Path;

    fn key(name: &str) -> Key {
        Key::new(KeyType::Data, name).unwrap()
    }

    fn args(source: &Path, target: &Path, migration_type: MigrationType) -> Args {
        Args {
            source_datastore: source.to_owned(),
            target_datastore: target.to_owned(),
            migration_type,
        }
    }

    fn tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    walk(root, &path, out);
                } else {
                    let rel = path.strip_prefix(root).unwrap().display().to_string();
                    out.push((rel, std::fs::read(&path).unwrap()));
                }
            }
        }
        walk(dir, dir, &mut out);
        out.sort();
        out
    }

    fn sample(dir: &Path) -> FilesystemDataStore {
        let store = FilesystemDataStore::create(dir.join("v1.0.0_a")).unwrap();
        let live = Committed::Live;
        store
            .set_key(&key("settings.hostname"), "\"node-1\"", &live)
            .unwrap();
        store
            .set_key(&key("settings.motd"), "\"hi\"", &live)
            .unwrap();
        store
            .set_key(
                &key(r#"settings.kernel.sysctl."net.ipv4.ip_forward""#),
                "\"1\"",
                &live,
            )
            .unwrap();
        store
            .set_metadata(
                &Key::new(KeyType::Meta, "affected-services").unwrap(),
                &key("settings.hostname"),
                r#"["hostname"]"#,
                &live,
            )
            .unwrap();
        store
            .set_key(
                &key("settings.hostname"),
                "\"pending-name\"",
                &Committed::pending("default"),
            )
            .unwrap();
        store
    }

    #[test]
    fn noop_copies_live_metadata_and_transactions_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let source = sample(dir.path());
        let target = dir.path().join("v1.1.0_b");
        run_migration(
            NoOpMigration,
            &args(source.base_path(), &target, MigrationType::Forward),
        )
        .unwrap();
        assert_eq!(tree(source.base_path()), tree(&target));
    }

    #[test]
    fn forward_then_backward_restores_the_source_and_never_changes_it() {
        let dir = tempfile::tempdir().unwrap();
        let source = sample(dir.path());
        let before = tree(source.base_path());
        let rename = || RenameSettingMigration {
            from: "settings.hostname",
            to: "settings.network.hostname",
        };
        let forward = dir.path().join("v1.1.0_b");
        run_migration(
            rename(),
            &args(source.base_path(), &forward, MigrationType::Forward),
        )
        .unwrap();
        assert_eq!(tree(source.base_path()), before);
        let moved = FilesystemDataStore::new(&forward);
        assert_eq!(
            moved
                .get_key(&key("settings.network.hostname"), &Committed::Live)
                .unwrap()
                .as_deref(),
            Some("\"node-1\"")
        );
        assert_eq!(
            moved
                .get_key(
                    &key("settings.network.hostname"),
                    &Committed::pending("default")
                )
                .unwrap()
                .as_deref(),
            Some("\"pending-name\"")
        );
        assert_eq!(
            moved
                .get_key(&key("settings.hostname"), &Committed::Live)
                .unwrap(),
            None
        );

        let back = dir.path().join("v1.0.0_c");
        run_migration(rename(), &args(&forward, &back, MigrationType::Backward)).unwrap();
        assert_eq!(tree(&back), before);
    }

    #[test]
    fn os_values_are_visible_to_migrations_but_not_written() {
        struct SeesOs(Option<Value>);
        impl Migration for SeesOs {
            fn forward(&mut self, input: MigrationData) -> Result<MigrationData> {
                self.0 = input.data.get("os.arch").cloned();
                Ok(input)
            }
            fn backward(&mut self, input: MigrationData) -> Result<MigrationData> {
                Ok(input)
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let source = sample(dir.path());
        let target = dir.path().join("v1.1.0_b");
        let mut seen = SeesOs(None);
        run_migration(
            &mut seen,
            &args(source.base_path(), &target, MigrationType::Forward),
        )
        .unwrap();
        assert_eq!(seen.0, Some(Value::from(std::env::consts::ARCH)));
        assert!(!target.join("live/os").exists());
    }

    #[test]
    fn an_existing_target_or_same_paths_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let source = sample(dir.path());
        let err = run_migration(
            NoOpMigration,
            &args(
                source.base_path(),
                source.base_path(),
                MigrationType::Forward,
            ),
        )
        .unwrap_err();
        assert!(matches!(err, Error::SameDatastore { .. }), "{err}");
        let existing = dir.path().join("exists");
        std::fs::create_dir(&existing).unwrap();
        let err = run_migration(
            NoOpMigration,
            &args(source.base_path(), &existing, MigrationType::Forward),
        )
        .unwrap_err();
        assert!(matches!(err, Error::TargetExists { .. }), "{err}");
    }

    #[test]
    fn a_failing_migration_is_an_error() {
        struct Fails;
        impl Migration for Fails {
            fn forward(&mut self, _: MigrationData) -> Result<MigrationData> {
                error::MigrationSnafu { message: "no" }.fail()
            }
            fn backward(&mut self, input: MigrationData) -> Result<MigrationData> {
                Ok(input)
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let source = sample(dir.path());
        let target = dir.path().join("v1.1.0_b");
        assert!(
            run_migration(
                Fails,
                &args(source.base_path(), &target, MigrationType::Forward)
            )
            .is_err()
        );
    }
}
