//! `updog update-image`, `update`, `update-apply`, `update-revert`: write the chosen update into the inactive
//! partition set, make it the next boot, or take that back.
//!
//! update-image, in upstream's order and crash-safe at every step (invariants I1, I2, I4 of docs/architecture.md):
//!
//! 0. the OS disk's lock ([`DiskLock`]) is held from before the table is first read to the end, so no other
//!    writer (signpost, another updog under another sysroot) changes the table or the set meanwhile;
//! 1. load the repository (the node's persisted trust, expiry enforced) through [`ResumingTransport`] and choose
//!    the update as check-update does;
//! 2. cache the migrations between the running and the new version, manifest.json, and the metadata (with the
//!    root chain) into `/var/lib/bottlerocket-migrations` and `/var/cache/bottlerocket-metadata`, TUF-verified,
//!    for migrator, which runs offline at boot; flushed to disk;
//! 3. the records of what the inactive set held (`staged-image.json`, `pending-upgrade.json`, [`crate::records`])
//!    are removed: that set is about to be overwritten, so a later fallback from it is no rollback of theirs;
//!    then `clear-inactive`, written to disk (flushed) before the first byte of an image: from here on the inactive set
//!    does not boot until step 5 (refused, before anything is fetched, while the running set is on trial: the
//!    inactive set is then the only fallback);
//! 4. ROOT, BOOT, HASH in turn: streamed from the repository (updog's TUF client checks length and hashes) through the lz4
//!    decoder into the inactive partition ([`crate::write`]), flushed, read back and compared with the sha256
//!    computed while writing;
//! 5. only when all three passed: `mark-inactive-valid` (one try), on a freshly read table (so a concurrent
//!    `mark-successful-boot` of the running set is not overwritten) of the same inactive set; then
//!    `staged-image.json` records the version and the set (for `update-apply`);
//! 6. `update` only: `upgrade-to-inactive`, then `pending-upgrade.json` (after the table: a crash between the two
//!    loses the record, so a fallback goes unrecorded, never a version recorded that was not tried). With `--reboot` the caller runs the reboot command ([`reboot`]) after
//!    releasing the locks, so a reboot command that blocks never keeps `mark-successful-boot` or a revert out.
//!
//! Any failure stops at once with the error; the inactive set stays as step 3 left it (priority 0, tries 0), and
//! the active set is never written (its partitions are not opened; its bits change only in step 6, as upstream).

use crate::check::{self, CheckOptions, Node, Output};
use crate::error::{self, Result};
use crate::fetch::ResumingTransport;
use crate::lock::UpdogLock;
use crate::progress::{Phase, PhaseReporter, ProgressEvent, ProgressSink};
use crate::records::{self, SetRecord};
use crate::select::{self, Decision};
use crate::sysroot::Sysroot;
use crate::transport::QueryParams;
use crate::tuf::{self, Repository, TufError};
use crate::write::{ImageWriter, WrittenImage};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use signpost::{DiskLock, Location, PartitionSet, PartitionTarget, State};
use snafu::{OptionExt, ResultExt, ensure};
use std::io::Write;
use std::path::Path;
use update_metadata::{Manifest, Update};

/// What an update command was asked.
#[derive(Debug, Clone, Default)]
pub struct UpdateOptions {
    /// The choice of update (`--image`, `--now`, hidden `--variant`/`--arch`) and `--json`.
    pub selection: CheckOptions,
    /// `update`: make the written set the next boot.
    pub apply: bool,
}

/// The three images of a set, in the order they are written (upstream's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageKind {
    Root,
    Boot,
    Hash,
}

impl ImageKind {
    pub const ALL: [ImageKind; 3] = [ImageKind::Root, ImageKind::Boot, ImageKind::Hash];

    pub fn name(self) -> &'static str {
        match self {
            ImageKind::Root => "root",
            ImageKind::Boot => "boot",
            ImageKind::Hash => "hash",
        }
    }

    /// The manifest's target name for this image of `update`.
    pub fn target(self, update: &Update) -> &str {
        match self {
            ImageKind::Root => &update.images.root,
            ImageKind::Boot => &update.images.boot,
            ImageKind::Hash => &update.images.hash,
        }
    }

    /// This image's partition in `set`.
    pub fn partition(self, set: &PartitionSet) -> &PartitionTarget {
        match self {
            ImageKind::Root => &set.root,
            ImageKind::Boot => &set.boot,
            ImageKind::Hash => &set.hash,
        }
    }
}

/// `update-image` (and `update` with `options.apply`): see the module documentation.
pub async fn update_image(
    node: &Node,
    location: &Location,
    options: &UpdateOptions,
    now: DateTime<Utc>,
    progress: &dyn ProgressSink,
    locks: (&UpdogLock, &DiskLock),
) -> Result<Output> {
    let (_, disk_lock) = locks;
    // Before anything is fetched: on an upgrade's trial boot the inactive set is the node's only fallback.
    State::load(location)
        .and_then(|state| state.require_confirmed_boot("overwritten by an update"))
        .context(error::DiskSnafu)?;
    let params = node.query_params();
    let transport = ResumingTransport::new(params.clone(), node.config.fetch.clone())
        .context(error::TransportSnafu)?;
    let mut repository = node.load_repository(transport).await?;
    let manifest = node.read_manifest(&mut repository).await?;
    let query = options.selection.query(node, now);
    let update = match select::decide(&manifest, &query) {
        Decision::Update(update) => update,
        Decision::NoUpdate(why) => {
            return error::NoUpdateRequiredSnafu {
                reason: check::explain(&why, &query),
            }
            .fail();
        }
    };
    announce(&format!("Starting update to {}\n", update.version));
    params.add("target", update.version.to_string());

    cache_migrations(node, &mut repository, &manifest, update, &params, progress).await?;

    for record in [node.sysroot.pending_upgrade(), node.sysroot.staged_image()] {
        records::remove_record(&record).context(error::RecordsSnafu)?;
    }
    let mut state = State::load(location).context(error::DiskSnafu)?;
    state.clear_inactive().context(error::DiskSnafu)?;
    state.write(disk_lock).context(error::DiskSnafu)?;
    let inactive = state
        .inactive_set()
        .cloned()
        .context(error::NoInactiveSetSnafu {
            disk: state.os_disk().path(),
        })?;
    log::info!(
        "Writing {} {} to the inactive set (BOOT {}), cleared for writing",
        update.variant,
        update.version,
        inactive.boot
    );

    for kind in ImageKind::ALL {
        let partition = kind.partition(&inactive);
        let written = write_image(
            &mut repository,
            kind,
            kind.target(update),
            partition,
            progress,
        )
        .await?;
        log::info!(
            "Wrote the {} image ({} bytes, XXH3-128 {}) to {partition}{}; flushed, read back and verified",
            kind.name(),
            written.len,
            written.checksum_hex(),
            if written.direct { " (direct I/O)" } else { "" }
        );
    }

    // Re-read the table: the running set's bits may have changed meanwhile (mark-successful-boot), and writing an
    // old copy would undo that.
    let mut state = State::load(location).context(error::DiskSnafu)?;
    let now_inactive = state.inactive_set();
    ensure!(
        now_inactive.is_some_and(|set| set.boot.partuuid == inactive.boot.partuuid),
        error::SetChangedSnafu {
            was: inactive.boot.to_string(),
            now: now_inactive.map_or_else(|| "none".to_string(), |set| set.boot.to_string()),
        }
    );
    state.mark_inactive_valid().context(error::DiskSnafu)?;
    state.write(disk_lock).context(error::DiskSnafu)?;
    let staged = SetRecord {
        version: update.version.clone(),
        boot_partuuid: inactive.boot.partuuid.to_string(),
    };
    records::write_set_record(&node.sysroot.staged_image(), &staged)
        .context(error::RecordsSnafu)?;

    if options.apply {
        state.upgrade_to_inactive().context(error::DiskSnafu)?;
        state.write(disk_lock).context(error::DiskSnafu)?;
        records::write_set_record(&node.sysroot.pending_upgrade(), &staged)
            .context(error::RecordsSnafu)?;
    }

    Ok(Output {
        stdout: if options.selection.json {
            check::pretty_json(update)?
        } else {
            format!("Update applied: {}\n", check::full_version(update))
        },
        stderr: String::new(),
    })
}

/// `update-apply`: signpost's `upgrade-to-inactive` (the written set boots next), then `pending-upgrade.json` from
/// the version update-image recorded for that set, so a fallback from it can be recorded as a rollback.
pub fn update_apply(
    sysroot: &Sysroot,
    location: &Location,
    disk_lock: &DiskLock,
) -> Result<Output> {
    let mut state = State::load(location).context(error::DiskSnafu)?;
    state.upgrade_to_inactive().context(error::DiskSnafu)?;
    state.write(disk_lock).context(error::DiskSnafu)?;
    let next = state
        .inactive_set()
        .map(|set| set.boot.partuuid.to_string())
        .unwrap_or_default();
    match records::read_set_record(&sysroot.staged_image()).context(error::RecordsSnafu)? {
        Some(staged) if staged.boot_partuuid == next => {
            records::write_set_record(&sysroot.pending_upgrade(), &staged)
                .context(error::RecordsSnafu)?;
        }
        // Images written by something else (or an older updog): the upgrade works, but a fallback from it
        // cannot name its version.
        _ => log::warn!(
            "No record of the version in the set now booting next (BOOT {next}) in {}; a fallback from it will              not be recorded as a rollback",
            sysroot.staged_image().display()
        ),
    }
    Ok(Output::default())
}

/// `update-revert`: signpost's `cancel-upgrade` (the running set boots next again; the written set keeps its
/// try, so `update-apply` can be run again). On an upgrade's trial boot it returns to the previous set instead
/// (see [`State::cancel_upgrade`]).
///
/// The pending upgrade is cleared: the operator took it back, so booting the other set is not a rollback.
pub fn update_revert(
    sysroot: &Sysroot,
    location: &Location,
    disk_lock: &DiskLock,
) -> Result<Output> {
    let mut state = State::load(location).context(error::DiskSnafu)?;
    state.cancel_upgrade().context(error::DiskSnafu)?;
    state.write(disk_lock).context(error::DiskSnafu)?;
    records::remove_record(&sysroot.pending_upgrade()).context(error::RecordsSnafu)?;
    Ok(Output::default())
}

/// Step 2: the migrations from the lower to the higher of the two versions (upstream's `find_migrations(min, max)`)
/// and manifest.json, with the metadata and root chain, cached where migrator finds them.
async fn cache_migrations(
    node: &Node,
    repository: &mut Repository,
    manifest: &Manifest,
    update: &Update,
    params: &QueryParams,
    progress: &dyn ProgressSink,
) -> Result<()> {
    let current = &node.release.version_id;
    let (from, to) = if *current <= update.version {
        (current, &update.version)
    } else {
        (&update.version, current)
    };
    let mut targets =
        update_metadata::find_migrations(from, to, manifest).context(error::MigrationsSnafu {
            from: from.clone(),
            to: to.clone(),
        })?;
    targets.push("manifest.json".to_string());
    params.add("migrations", targets.join(","));

    let cache_error = |source| error::Error::Cache {
        metadata_dir: node.sysroot.metadata_cache(),
        migrations_dir: node.sysroot.migrations_dir(),
        source: Box::new(source),
    };
    let mut total = 0;
    for name in &targets {
        total += repository
            .find_target(name)
            .await
            .map_err(cache_error)?
            .file
            .length;
    }
    let mut reporter = PhaseReporter::new(progress);
    let mut report = |done| {
        reporter.report(&ProgressEvent {
            phase: Phase::Migrations,
            image: None,
            target: None,
            done_bytes: done,
            total_bytes: total,
            written_bytes: None,
        });
    };
    report(0);

    let metadata_dir = node.sysroot.metadata_cache();
    let migrations_dir = node.sysroot.migrations_dir();
    create_dir(&migrations_dir, 0o700)?;
    create_dir(&metadata_dir, 0o755)?;
    // Exactly the metadata this run verified (not a second download, which a publish in between would make
    // inconsistent), then checked offline the way migrator will load it at boot.
    repository
        .cache(&metadata_dir, &migrations_dir, &targets)
        .await
        .map_err(cache_error)?;
    // migrator reads these after the reboot: they must be on disk before the set is marked valid.
    for dir in [&migrations_dir, &metadata_dir] {
        nodeio::sync_tree(dir).context(error::SyncCacheSnafu { path: dir })?;
    }
    let root = repository
        .client()
        .root_chain()
        .first()
        .map(|(_, bytes)| bytes.clone())
        .unwrap_or_default();
    tuf::repository::check_cache(&root, &metadata_dir, &migrations_dir, &targets)
        .await
        .map_err(cache_error)?;
    report(total);
    log::info!(
        "Cached {} migration(s) and manifest.json in {}, metadata in {}",
        targets.len() - 1,
        migrations_dir.display(),
        metadata_dir.display()
    );
    Ok(())
}

/// Step 4 for one image: stream, decode, write, flush, read back, compare.
async fn write_image(
    repository: &mut Repository,
    kind: ImageKind,
    name: &str,
    partition: &PartitionTarget,
    progress: &dyn ProgressSink,
) -> Result<WrittenImage> {
    let fetch_error = |source: TufError| error::Error::ImageFetch {
        image: kind.name(),
        target: name.to_string(),
        source: Box::new(source),
    };
    let target = repository.find_target(name).await.map_err(fetch_error)?;
    let total = target.file.length;
    let mut stream = repository
        .stream_target(&target)
        .await
        .map_err(fetch_error)?;

    let mut writer = ImageWriter::start(partition, kind.name()).context(error::ImageWriteSnafu)?;
    let mut reporter = PhaseReporter::new(progress);
    let mut done = 0u64;
    let event = |done, written| ProgressEvent {
        phase: Phase::Write,
        image: Some(kind.name()),
        target: Some(name),
        done_bytes: done,
        total_bytes: total,
        written_bytes: Some(written),
    };
    reporter.report(&event(0, 0));
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(bytes) => {
                done += bytes.len() as u64;
                writer.push(bytes).await.context(error::ImageWriteSnafu)?;
                // The last event waits for the end of the stream and the final length.
                if done < total {
                    reporter.report(&event(done, writer.written()));
                }
            }
            Err(e) => {
                // Never write on after a failed or unverified stream; the set stays cleared.
                writer.abort();
                return Err(fetch_error(e));
            }
        }
    }
    // The stream ended Ok: the TUF client has checked the length and sha256 of everything passed on. Finish writing and
    // flushing; the read-back (which followed the flushes) then finishes too.
    let mut verify_reporter = PhaseReporter::new(progress);
    let image_len = std::cell::Cell::new(0);
    let written = writer
        .finish(
            &mut |len| {
                image_len.set(len);
                reporter.report(&event(done.max(total), len));
            },
            &mut |verified| {
                verify_reporter.report(&ProgressEvent {
                    phase: Phase::Verify,
                    image: Some(kind.name()),
                    target: None,
                    done_bytes: verified,
                    total_bytes: image_len.get(),
                    written_bytes: None,
                });
            },
        )
        .context(error::ImageWriteSnafu)?;
    Ok(written)
}

/// Upstream's immediate lines on stderr ("Starting update to X"), before the work they announce.
fn announce(line: &str) {
    // Nothing to do if stderr is gone.
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// Runs the reboot command (upstream: `shutdown -r`); it must exit 0.
pub fn reboot(command: &[String]) -> Result<()> {
    let Some((program, args)) = command.split_first() else {
        return error::EmptyRebootCommandSnafu.fail();
    };
    log::info!("Rebooting: {}", command.join(" "));
    let status = std::process::Command::new(program)
        .args(args)
        .status()
        .map_err(|source| error::Error::RebootStart {
            command: command.join(" "),
            source,
        })?;
    ensure!(
        status.success(),
        error::RebootFailedSnafu {
            command: command.join(" "),
            status: status.to_string(),
        }
    );
    Ok(())
}

/// Creates `dir` (and parents) with `mode` for the new last component.
fn create_dir(dir: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(dir)
        .context(error::CreateCacheDirSnafu { path: dir })
}
