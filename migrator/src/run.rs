//! A migrator run: lock, read the version chain, plan from the verified local manifest, run each
//! verified migration from sealed memory into a fresh sibling directory, make the result durable,
//! flip the links, collect garbage.
//!
//! Crash safety (invariant I3): the source datastore is only ever read; every new directory is
//! invisible to `current` until the flip; the flip changes what `current` resolves to in exactly
//! one rename; a failure before that removes every directory this run created and leaves the old
//! chain as it was; a crash leaves at most unreferenced directories that the next successful run
//! collects.

use crate::chain;
use crate::dry_run::{self, DryRunReport};
use crate::error::{self, Result};
use crate::gc::{self, GcReport};
use crate::killpoint::KillPoints;
use crate::lock::DatastoreLock;
use crate::repo::LocalRepo;
use crate::sealed::SealedProgram;
use crate::supervise::RunningMigration;
use migration_helpers::MigrationType;
use migration_helpers::os_release::OS_RELEASE_ENV;
use semver::Version;
use snafu::{OptionExt, ResultExt};
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long one migration may run before it is killed (with every process it started) and the
/// run fails. Real migrations take well under a second on a datastore of a few thousand keys,
/// seconds on a slow disk; five minutes is far above that, and still bounds how long a hung
/// migration holds up the boot (everything after migrator waits for it). See
/// docs/migrations.md.
pub const DEFAULT_MIGRATION_TIMEOUT: Duration = Duration::from_secs(300);

/// What to migrate, where the verified migrations come from, and to which version.
#[derive(Debug, Clone)]
pub struct Migrator {
    datastore_path: PathBuf,
    migration_directory: PathBuf,
    root_path: PathBuf,
    metadata_directory: PathBuf,
    target_version: Version,
    os_release: Option<PathBuf>,
    migration_timeout: Duration,
    kill: KillPoints,
}

/// The migrations between two versions, in the order they run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationPlan {
    pub from: Version,
    pub to: Version,
    pub direction: MigrationType,
    /// Target names, as manifest.json lists them.
    pub migrations: Vec<String>,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The datastore path does not exist (first boot: storewolf creates it later).
    NoDatastore { path: PathBuf },
    /// The datastore is already at the target version.
    UpToDate { version: Version, gc: GcReport },
    /// The links now lead to `datastore` at version `to`.
    Migrated {
        plan: MigrationPlan,
        datastore: PathBuf,
        gc: GcReport,
    },
}

impl Migrator {
    /// `datastore_path` is the `current` link (or any path resolving to the data directory);
    /// `root_path` the root.json of the image being booted; `metadata_directory` and
    /// `migration_directory` the node's cached repository.
    #[must_use]
    pub fn new(
        datastore_path: impl Into<PathBuf>,
        migration_directory: impl Into<PathBuf>,
        root_path: impl Into<PathBuf>,
        metadata_directory: impl Into<PathBuf>,
        target_version: Version,
    ) -> Self {
        Self {
            datastore_path: datastore_path.into(),
            migration_directory: migration_directory.into(),
            root_path: root_path.into(),
            metadata_directory: metadata_directory.into(),
            target_version,
            os_release: None,
            migration_timeout: DEFAULT_MIGRATION_TIMEOUT,
            kill: KillPoints::none(),
        }
    }

    /// The os-release migrations read their `os.*` values from (passed to them in
    /// `MIGRATION_OS_RELEASE`).
    #[must_use]
    pub fn os_release(mut self, path: impl Into<PathBuf>) -> Self {
        self.os_release = Some(path.into());
        self
    }

    /// How long each migration may run (default [`DEFAULT_MIGRATION_TIMEOUT`]); past it, the
    /// migration and every process it started are killed and the run fails.
    #[must_use]
    pub fn migration_timeout(mut self, timeout: Duration) -> Self {
        self.migration_timeout = timeout;
        self
    }

    /// Where to die, for crash tests (default: nowhere).
    #[must_use]
    pub fn kill_points(mut self, kill: KillPoints) -> Self {
        self.kill = kill;
        self
    }

    /// Migrates the datastore to the target version (see the module docs).
    pub fn run(&self) -> Result<Outcome> {
        if !chain::datastore_exists(&self.datastore_path)? {
            return Ok(Outcome::NoDatastore {
                path: self.datastore_path.clone(),
            });
        }
        let (datastore_dir, _lock) = self.lock()?;
        self.kill.checkpoint("locked");
        // Resolved under the lock: another migrator may have flipped before we got it.
        let source = self.source_data_dir()?;
        let from = chain::current_version(&datastore_dir)?;
        let to = self.target_version.clone();
        if from == to {
            log::info!(
                "Datastore at {} is already at version {to}; nothing to migrate",
                source.display()
            );
            let gc = collect_garbage(&datastore_dir, &self.kill);
            return Ok(Outcome::UpToDate { version: to, gc });
        }

        let (plan, programs) = self.load_plan(from)?;
        self.kill.checkpoint("planned");
        let source_name = chain::dir_name(&source)?;
        let final_dir = if programs.is_empty() {
            // Not every release changes the datastore: point the new version at the same data
            // (the resolved directory, so link chains never nest).
            log::info!(
                "No migrations from {} to {}; linking to the existing datastore",
                plan.from,
                plan.to
            );
            source.clone()
        } else {
            let settings = RunSettings {
                direction: plan.direction,
                to: &plan.to,
                os_release: self.os_release.as_deref(),
                timeout: self.migration_timeout,
                kill: &self.kill,
            };
            let final_dir = run_chain(&programs, &source, &datastore_dir, &settings)?;
            if let Err(e) = make_durable(&final_dir, &source_name, &datastore_dir) {
                remove_datastore(&final_dir);
                return Err(e);
            }
            self.kill.checkpoint("synced");
            final_dir
        };
        let final_name = chain::dir_name(&final_dir)?;
        if let Err(e) = chain::flip(&datastore_dir, &plan.to, &final_name, &self.kill) {
            // Before the one rename that switches, `current` still leads to the source: the new
            // copy is then an orphan and goes. After it, the copy is the datastore in use.
            if final_dir != source
                && chain::resolve_in(&datastore_dir, chain::CURRENT).as_deref() != Some(&final_name)
            {
                remove_datastore(&final_dir);
            }
            return Err(e);
        }
        log::info!(
            "Migrated datastore from {} to {}: {}",
            plan.from,
            plan.to,
            final_dir.display()
        );
        let gc = collect_garbage(&datastore_dir, &self.kill);
        Ok(Outcome::Migrated {
            plan,
            datastore: final_dir,
            gc,
        })
    }

    /// Runs the migrations into a scratch copy outside the datastore directory and reports what
    /// would change; nothing under the datastore directory is written. `None` when there is no
    /// datastore.
    pub fn dry_run(&self) -> Result<Option<DryRunReport>> {
        if !chain::datastore_exists(&self.datastore_path)? {
            return Ok(None);
        }
        let (datastore_dir, _lock) = self.lock()?;
        let source = self.source_data_dir()?;
        let from = chain::current_version(&datastore_dir)?;
        if from == self.target_version {
            return Ok(Some(DryRunReport::up_to_date(from, &source)));
        }
        let (plan, programs) = self.load_plan(from)?;
        let scratch = tempfile::Builder::new()
            .prefix("migrator-dry-run-")
            .tempdir()
            .context(error::ScratchSnafu)?;
        // A copy, so even a misbehaving migration cannot touch the real datastore.
        let copy = scratch.path().join(chain::dir_name(&source)?);
        dry_run::copy_tree(&source, &copy)?;
        let final_dir = if programs.is_empty() {
            copy.clone()
        } else {
            let settings = RunSettings {
                direction: plan.direction,
                to: &plan.to,
                os_release: self.os_release.as_deref(),
                timeout: self.migration_timeout,
                kill: &KillPoints::none(),
            };
            run_chain(&programs, &copy, scratch.path(), &settings)?
        };
        let changes = dry_run::diff(&source, &final_dir)?;
        Ok(Some(DryRunReport {
            plan,
            datastore: source,
            changes,
        }))
    }

    /// Loads the plan from the verified local repository and seals every migration it names
    /// (all are verified before the first one runs).
    pub fn load_plan(&self, from: Version) -> Result<(MigrationPlan, Vec<SealedProgram>)> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context(error::RuntimeSnafu)?;
        let to = self.target_version.clone();
        let (migrations, binaries) = runtime.block_on(async {
            let repo = LocalRepo::load(
                &self.root_path,
                &self.metadata_directory,
                &self.migration_directory,
            )
            .await?;
            let manifest = repo.manifest().await?;
            let migrations = update_metadata::find_migrations(&from, &to, &manifest).context(
                error::FindMigrationsSnafu {
                    from: from.to_string(),
                    to: to.to_string(),
                },
            )?;
            let mut binaries = Vec::new();
            for name in &migrations {
                binaries.push(repo.read_migration(name).await?);
            }
            Ok::<_, error::Error>((migrations, binaries))
        })?;
        let mut programs = Vec::new();
        for (name, binary) in migrations.iter().zip(binaries) {
            let program_name = name.strip_suffix(".lz4").unwrap_or(name);
            programs.push(
                SealedProgram::new(program_name, &binary)
                    .context(error::SealMigrationSnafu { name })?,
            );
        }
        let direction = if from < to {
            MigrationType::Forward
        } else {
            MigrationType::Backward
        };
        log::info!(
            "Migrating {direction} from {from} to {to}: {}",
            if migrations.is_empty() {
                "no migrations".to_string()
            } else {
                migrations.join(", ")
            }
        );
        Ok((
            MigrationPlan {
                from,
                to,
                direction,
                migrations,
            },
            programs,
        ))
    }

    fn lock(&self) -> Result<(PathBuf, DatastoreLock)> {
        let data = self.source_data_dir()?;
        let datastore_dir = data
            .parent()
            .context(error::NoParentSnafu { path: &data })?
            .to_path_buf();
        let lock = DatastoreLock::acquire(&datastore_dir)?;
        Ok((datastore_dir, lock))
    }

    fn source_data_dir(&self) -> Result<PathBuf> {
        std::fs::canonicalize(&self.datastore_path).context(error::CanonicalizeSnafu {
            path: &self.datastore_path,
        })
    }
}

/// How each migration of a chain runs.
#[derive(Debug, Clone, Copy)]
pub struct RunSettings<'a> {
    pub direction: MigrationType,
    /// The version the chain migrates to (names the new directories).
    pub to: &'a Version,
    /// Passed to migrations in `MIGRATION_OS_RELEASE`.
    pub os_release: Option<&'a Path>,
    /// How long each migration may run.
    pub timeout: Duration,
    pub kill: &'a KillPoints,
}

/// Runs `programs` in order: the first reads `source`, each writes a new `v<to>_<rand>` in
/// `out_dir` that the next reads. Each intermediate is removed once the next migration
/// succeeded; on a failure (non-zero exit, crash, timeout, failure to start or to kill) every
/// directory this chain created is removed, after every process of the failed migration is
/// gone. Returns the last one.
pub fn run_chain(
    programs: &[SealedProgram],
    source: &Path,
    out_dir: &Path,
    settings: &RunSettings<'_>,
) -> Result<PathBuf> {
    let mut input = source.to_path_buf();
    let mut created: Option<PathBuf> = None;
    for (index, program) in programs.iter().enumerate() {
        let target = chain::new_datastore_location(out_dir, settings.to)?;
        if let Err(e) = run_one(index + 1, program, &input, &target, settings) {
            remove_datastore(&target);
            if let Some(previous) = &created {
                remove_datastore(previous);
            }
            return Err(e);
        }
        settings
            .kill
            .checkpoint(&format!("migration-done-{}", index + 1));
        if let Some(previous) = created.replace(target.clone()) {
            remove_datastore(&previous);
        }
        input = target;
    }
    Ok(input)
}

fn run_one(
    number: usize,
    program: &SealedProgram,
    source: &Path,
    target: &Path,
    settings: &RunSettings<'_>,
) -> Result<()> {
    let name = program.name();
    let direction = settings.direction;
    let mut command = program.command();
    command
        .arg(format!("--{direction}"))
        .arg("--source-datastore")
        .arg(source)
        .arg("--target-datastore")
        .arg(target);
    if let Some(path) = settings.os_release {
        command.env(OS_RELEASE_ENV, path);
    }
    log::info!(
        "Running migration '{name}' --{direction}: {} -> {}",
        source.display(),
        target.display()
    );
    let running = RunningMigration::spawn(name, command)?;
    settings
        .kill
        .checkpoint(&format!("migration-started-{number}"));
    let output = running.finish(settings.timeout)?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !stdout.trim().is_empty() {
        log::debug!("Migration '{name}' stdout: {}", stdout.trim_end());
    }
    if !stderr.trim().is_empty() {
        // Upstream logs a migration's stderr at error level so it reaches the console.
        log::error!("Migration '{name}' stderr: {}", stderr.trim_end());
    }
    if !output.status.success() {
        use std::os::unix::process::ExitStatusExt;
        let status = match (output.status.code(), output.status.signal()) {
            (Some(code), _) => format!("exit code {code}"),
            (None, Some(signal)) => format!("killed by signal {signal}"),
            _ => output.status.to_string(),
        };
        return error::MigrationFailureSnafu {
            name,
            status,
            stderr: stderr.trim_end().to_string(),
        }
        .fail();
    }
    if !target.join("live").is_dir() {
        return error::MigrationFailureSnafu {
            name,
            status: "exit code 0".to_string(),
            stderr: format!("but it wrote no datastore at {}", target.display()),
        }
        .fail();
    }
    Ok(())
}

/// fsyncs the final copy (and the record of its source) and its entry in the datastore
/// directory, before any link may point at it.
fn make_durable(final_dir: &Path, source_name: &str, datastore_dir: &Path) -> Result<()> {
    gc::record_source(final_dir, source_name)?;
    datastore::sync_tree(final_dir).context(error::SyncDatastoreSnafu { path: final_dir })?;
    datastore::sync_dir(datastore_dir).context(error::SyncDatastoreSnafu {
        path: datastore_dir,
    })
}

/// Removes a datastore copy this run created; failures are logged (an orphan is collected later).
fn remove_datastore(path: &Path) {
    match std::fs::remove_dir_all(path) {
        Ok(()) => log::debug!("Removed datastore copy {}", path.display()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => log::error!("Failed to remove datastore copy {}: {e}", path.display()),
    }
}

fn collect_garbage(datastore_dir: &Path, kill: &KillPoints) -> GcReport {
    match gc::collect_garbage(datastore_dir, kill) {
        Ok(report) => {
            if let Some(reason) = &report.skipped {
                log::info!("Garbage collection kept every datastore: {reason}");
            }
            report
        }
        Err(e) => {
            log::error!("Garbage collection failed: {e}");
            GcReport::default()
        }
    }
}
