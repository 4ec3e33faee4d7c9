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
//!    `staged-image.json` records the version and the set (for `update-apply`). SIGTERM and SIGHUP are deferred
//!    from here to the end of step 6, and around the reboot command ([`crate::signals`]); elsewhere they end updog
//!    at once, which leaves the set cleared.
//! 6. `update` only: `upgrade-to-inactive`, then `pending-upgrade.json` (after the table: a crash between the two
//!    loses the record, so a fallback goes unrecorded, never a version recorded that was not tried). With `--reboot`
//!    the caller runs the reboot command ([`reboot`]) after
//!    releasing the locks, so a reboot command that blocks never keeps `mark-successful-boot` or a revert out.
//!
//! Crash-resumable downloads ([`crate::checkpoint`]): during step 4, every checkpoint interval of compressed input,
//! at an lz4 block boundary whose bytes were flushed to the partition, `/var/lib/updog/download-checkpoint.json` is
//! written atomically (and again when an image is complete). A later run that finds it, with the freshly verified
//! metadata listing the same targets (name, length, sha256) and the same inactive set still cleared (priority 0,
//! tries 0: nothing marked it valid meanwhile), skips the complete images after reading each back whole against
//! its recorded checksum, and continues the image in progress with a Range request from the checkpointed
//! compressed offset (sha256 continued from the recorded midstate, so the whole stream is checked), writing from
//! the checkpointed image offset after reading the prefix back against its recorded checksum; the image is then
//! read back whole as usual. Anything else starts over and removes the checkpoint; so does step 5.
//!
//! Any failure stops at once with the error; the inactive set stays as step 3 left it (priority 0, tries 0), and
//! the active set is never written (its partitions are not opened; its bits change only in step 6, as upstream).

use crate::check::{self, CheckOptions, Node, Output};
use crate::checkpoint::{
    self, Checkpoint, CompleteImage, PartialImage, ResumableSha256, SignedTarget,
};
use crate::error::{self, Result};
use crate::fetch::ResumingTransport;
use crate::lock::UpdogLock;
use crate::progress::{Phase, PhaseReporter, ProgressEvent, ProgressSink};
use crate::records::{self, SetRecord};
use crate::select::{self, Decision};
use crate::sysroot::Sysroot;
use crate::transport::QueryParams;
use crate::tuf::repository::FoundTarget;
use crate::tuf::{self, Repository, TufError};
use crate::write::{self, ImageWriter, Resumable, Start, WriteError, WrittenImage};
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
    let mut repository = node.load_repository(transport.clone()).await?;
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
    // Whether the inactive set is still as an interrupted update left it (cleared), before clearing it again.
    let was_cleared = state
        .inactive()
        .and_then(|set| state.gptprio(set))
        .is_some_and(|bits| bits.priority() == 0 && bits.tries_left() == 0 && !bits.successful());
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

    let mut targets = Vec::new();
    for kind in ImageKind::ALL {
        let name = kind.target(update);
        let target =
            repository
                .find_target(name)
                .await
                .map_err(|source| error::Error::ImageFetch {
                    image: kind.name(),
                    target: name.to_string(),
                    source: Box::new(source),
                })?;
        targets.push(target);
    }
    let mut resumer = Resumer::new(
        checkpoint::path(&node.sysroot),
        node.config.checkpoint_interval,
        Checkpoint {
            version: update.version.to_string(),
            inactive_boot: inactive.boot.partuuid.to_string(),
            complete: Vec::new(),
            current: None,
        },
        &targets,
        was_cleared,
    );

    for (kind, target) in ImageKind::ALL.into_iter().zip(&targets) {
        let partition = kind.partition(&inactive);
        if resumer.already_written(kind, target, partition) {
            continue;
        }
        let written = match write_image(
            &mut repository,
            &transport,
            kind,
            target,
            partition,
            progress,
            &mut resumer,
        )
        .await
        {
            // A checkpoint whose prefix is no longer on the partition: this image from its start.
            Err(error::Error::ImageWrite { source })
                if matches!(*source, WriteError::PrefixMismatch { .. }) =>
            {
                log::warn!("{source}; writing the {} image from its start", kind.name());
                resumer.forget_current();
                write_image(
                    &mut repository,
                    &transport,
                    kind,
                    target,
                    partition,
                    progress,
                    &mut resumer,
                )
                .await?
            }
            result => result?,
        };
        log::info!(
            "Wrote the {} image ({} bytes, XXH3-128 {}) to {partition}{}; flushed, read back and verified",
            kind.name(),
            written.len,
            written.checksum_hex(),
            if written.direct { " (direct I/O)" } else { "" }
        );
        resumer.complete(kind, target, &written);
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
    {
        // A SIGTERM/SIGHUP waits for these steps (crate::signals).
        let _deferred = crate::signals::Deferred::new();
        state.mark_inactive_valid().context(error::DiskSnafu)?;
        state.write(disk_lock).context(error::DiskSnafu)?;
        // The set is whole and valid: nothing is left to resume (a leftover would not match a cleared set anyway).
        resumer.finished();
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

/// Step 4 for one image: stream (from the checkpoint, if `resumer` has one for it), decode, write, flush, read
/// back, compare; durable positions go to `resumer` as they come.
async fn write_image(
    repository: &mut Repository,
    transport: &ResumingTransport,
    kind: ImageKind,
    target: &FoundTarget,
    partition: &PartitionTarget,
    progress: &dyn ProgressSink,
    resumer: &mut Resumer,
) -> Result<WrittenImage> {
    let name = target.name.as_str();
    let fetch_error = |source: TufError| error::Error::ImageFetch {
        image: kind.name(),
        target: name.to_string(),
        source: Box::new(source),
    };
    let total = target.file.length;
    let resume = resumer.resume_for(kind, target);
    let mut stream = match &resume {
        Some(resume) => {
            log::info!(
                "Resuming the {} image from a checkpoint: byte {} of {total} of {name} (image byte {})",
                kind.name(),
                resume.position.compressed,
                resume.position.decompressed
            );
            repository
                .stream_target_from(
                    target,
                    transport,
                    resume.position.compressed,
                    resume.sha256.clone(),
                )
                .await
        }
        None => repository.stream_target(target).await,
    }
    .map_err(fetch_error)?;

    let start = Start {
        checkpoint_every: resumer.interval(),
        resume: resume.clone(),
    };
    let mut writer =
        ImageWriter::start_with(partition, kind.name(), start).context(error::ImageWriteSnafu)?;
    let mut reporter = PhaseReporter::new(progress);
    let mut done = resume.as_ref().map_or(0, |r| r.position.compressed);
    let event = |done, written| ProgressEvent {
        phase: Phase::Write,
        image: Some(kind.name()),
        target: Some(name),
        done_bytes: done,
        total_bytes: total,
        written_bytes: Some(written),
    };
    reporter.report(&event(done, writer.written()));
    loop {
        // A durable point is recorded as soon as the writer has one, also while the download waits.
        let chunk = tokio::select! {
            chunk = stream.next() => chunk,
            () = writer.durable_changed() => {
                if let Some(durable) = writer.durable() {
                    resumer.durable(kind, target, &durable);
                }
                continue;
            }
        };
        let Some(chunk) = chunk else { break };
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
                if resume.is_some()
                    && matches!(e, TufError::HashMismatch { .. } | TufError::TooLarge { .. })
                {
                    // The checkpointed prefix and the rest do not make the signed target: start over next time.
                    resumer.forget_current();
                }
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

/// The download checkpoint of one update-image run (see the module documentation): what it found, what it
/// records. Failing to record one is logged, not fatal: it only saves a later run some downloading.
struct Resumer {
    path: std::path::PathBuf,
    interval: u64,
    checkpoint: Checkpoint,
    /// What the found checkpoint offers: complete images and the position in the one after them.
    found: Option<Checkpoint>,
    /// The compressed offset of the last position recorded for the current image.
    recorded: Option<u64>,
}

impl Resumer {
    /// Reads the checkpoint at `path` and keeps it only if it matches this run (see the module documentation);
    /// one that does not is removed. `fresh` is this run's checkpoint so far (no image written).
    fn new(
        path: std::path::PathBuf,
        interval: u64,
        fresh: Checkpoint,
        targets: &[FoundTarget],
        was_cleared: bool,
    ) -> Self {
        let found = Checkpoint::load(&path);
        let mut this = Self {
            path,
            interval,
            checkpoint: fresh,
            found: None,
            recorded: None,
        };
        let Some(found) = found else {
            return this;
        };
        let signed: Vec<Option<SignedTarget>> = ImageKind::ALL
            .into_iter()
            .zip(targets)
            .map(|(kind, target)| signed(kind, target))
            .collect();
        let listed = |s: &SignedTarget| signed.iter().flatten().any(|t| t == s);
        let why_not = if found.inactive_boot != this.checkpoint.inactive_boot {
            Some("it was for another inactive set".to_string())
        } else if !was_cleared {
            Some("the inactive set was changed since (it is not cleared)".to_string())
        } else if !found
            .complete
            .iter()
            .map(|c| &c.signed)
            .chain(found.current.as_ref().map(|c| &c.signed))
            .all(listed)
        {
            Some(format!(
                "the repository no longer lists the same images as {} did (name, length, sha256)",
                found.version
            ))
        } else {
            None
        };
        match why_not {
            Some(why) => {
                log::info!(
                    "Not resuming from the download checkpoint {}: {why}; starting over",
                    this.path.display()
                );
                this.remove();
            }
            None => {
                log::info!(
                    "Found a download checkpoint for {} ({} image(s) complete{})",
                    found.version,
                    found.complete.len(),
                    if found.current.is_some() {
                        ", one in progress"
                    } else {
                        ""
                    }
                );
                this.found = Some(found);
            }
        }
        this
    }

    /// The interval to offer checkpoints at (updog.toml's `checkpoint_interval_bytes`).
    fn interval(&self) -> Option<u64> {
        Some(self.interval)
    }

    /// Whether `kind` was complete at the checkpoint and its partition still holds it (read back whole against
    /// the recorded length and XXH3-128); it is then recorded as complete in this run's checkpoint.
    fn already_written(
        &mut self,
        kind: ImageKind,
        target: &FoundTarget,
        partition: &PartitionTarget,
    ) -> bool {
        let Some(signed) = signed(kind, target) else {
            return false;
        };
        let Some(done) = self
            .found
            .as_ref()
            .and_then(|f| f.complete.iter().find(|c| c.signed == signed))
            .cloned()
        else {
            return false;
        };
        let Ok(checksum) = u128::from_str_radix(&done.checksum, 16) else {
            return false;
        };
        let image = WrittenImage {
            len: done.len,
            checksum,
            direct: false,
        };
        match write::verify_image(partition, kind.name(), &image, &mut |_| {}) {
            Ok(()) => {
                log::info!(
                    "The {} image ({} bytes, XXH3-128 {}) was written before the checkpoint; read back from \
                     {partition} and verified",
                    kind.name(),
                    done.len,
                    done.checksum
                );
                self.checkpoint.complete.push(done);
                true
            }
            Err(e) => {
                log::warn!("{e}; writing the {} image again", kind.name());
                false
            }
        }
    }

    /// Where to continue `kind`, if the checkpoint has it in progress.
    fn resume_for(&self, kind: ImageKind, target: &FoundTarget) -> Option<Resumable> {
        let signed = signed(kind, target)?;
        let current = self.found.as_ref()?.current.as_ref()?;
        if current.signed != signed {
            return None;
        }
        let resume = &current.resume;
        Some(Resumable {
            position: resume.position,
            sha256: ResumableSha256::restore(&resume.sha256)?,
            prefix_checksum: u128::from_str_radix(&resume.prefix_checksum, 16).ok()?,
        })
    }

    /// The checkpoint's position for the image in progress is not to be used again.
    fn forget_current(&mut self) {
        if let Some(found) = &mut self.found {
            found.current = None;
        }
        self.checkpoint.current = None;
        self.recorded = None;
        self.store();
    }

    /// `durable` of `kind` is on the partition: record it when it is new.
    fn durable(&mut self, kind: ImageKind, target: &FoundTarget, durable: &Resumable) {
        let Some(signed) = signed(kind, target) else {
            return;
        };
        if self.recorded == Some(durable.position.compressed) {
            return;
        }
        self.recorded = Some(durable.position.compressed);
        self.checkpoint.current = Some(PartialImage {
            signed,
            resume: checkpoint::Resume {
                position: durable.position,
                sha256: durable.sha256.save(),
                prefix_checksum: format!("{:032x}", durable.prefix_checksum),
            },
        });
        self.store();
    }

    /// `kind` is written and verified whole.
    fn complete(&mut self, kind: ImageKind, target: &FoundTarget, written: &WrittenImage) {
        self.recorded = None;
        self.checkpoint.current = None;
        if let Some(found) = &mut self.found {
            found.current = None;
        }
        let Some(signed) = signed(kind, target) else {
            return;
        };
        self.checkpoint.complete.push(CompleteImage {
            signed,
            len: written.len,
            checksum: written.checksum_hex(),
        });
        self.store();
    }

    /// The update is done: no checkpoint is left behind.
    fn finished(&mut self) {
        self.remove();
    }

    fn store(&self) {
        if let Err(e) = self.checkpoint.store(&self.path) {
            log::warn!("{e}; the download goes on without a checkpoint");
        }
    }

    fn remove(&self) {
        if let Err(e) = Checkpoint::remove(&self.path) {
            log::warn!("{e}");
        }
    }
}

/// A target's signed identity for the checkpoint; none without a sha256 (its download cannot be resumed).
fn signed(kind: ImageKind, target: &FoundTarget) -> Option<SignedTarget> {
    Some(SignedTarget {
        image: kind.name().to_string(),
        target: target.name.clone(),
        length: target.file.length,
        sha256: target.file.hashes.get("sha256")?.to_ascii_lowercase(),
    })
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
    // A SIGTERM/SIGHUP (the shutdown itself sends one) waits until the command has returned (crate::signals).
    let _deferred = crate::signals::Deferred::new();
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
