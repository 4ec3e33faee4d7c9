//! The commands' work, through updog's library (not its process): refresh is `updog whats --all --json` plus
//! upstream's choice by version-lock; prepare is `update-image` of exactly the chosen version; activate is
//! `update-apply`; deactivate is `update-revert`. updog takes its own lock and the OS disk's, as its binary does.

use crate::config::Config;
use crate::error::{self, Result};
use crate::node::NodePaths;
use crate::status::UpdateImage;
use chrono::{DateTime, Utc};
use semver::Version;
use snafu::ResultExt;
use updog::check::{CheckOptions, Node};
use updog::lock::UpdogLock;
use updog::progress::ProgressSink;
use updog::select::{self, UpdateQuery};
use updog::update::UpdateOptions;

/// What a refresh found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refreshed {
    /// Every applicable update's version, newest first.
    pub available: Vec<Version>,
    /// The update upstream's rule chooses: with `latest`, the first listed update newer than the running version
    /// (or any, when the running version is above its `max_version`); with a lock, the update of exactly that
    /// version unless it is the running one.
    pub chosen: Option<UpdateImage>,
}

fn updog_lock(paths: &NodePaths) -> updog::Result<UpdogLock> {
    UpdogLock::acquire(&paths.sysroot().lock_file()).map_err(|source| updog::Error::Lock { source })
}

fn runtime() -> updog::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| updog::Error::Runtime { source })
}

/// Lists the applicable updates and chooses one by `config`'s version-lock.
pub fn refresh(paths: &NodePaths, config: &Config, now: DateTime<Utc>) -> Result<Refreshed> {
    let check = || -> updog::Result<Refreshed> {
        let _lock = updog_lock(paths)?;
        let node = Node::load(paths.sysroot().clone())?;
        let manifest = runtime()?.block_on(node.load_manifest(node.query_params()))?;
        let options = CheckOptions::default();
        let query = UpdateQuery {
            version_lock: &config.version_lock,
            ..options.query(&node, now)
        };
        let available = select::applicable_updates(&manifest, &query)
            .iter()
            .map(|update| update.version.clone())
            .collect();
        let chosen = select::update_required(&manifest, &query).map(|update| UpdateImage {
            arch: update.arch.clone(),
            version: update.version.clone(),
            variant: update.variant.clone(),
        });
        Ok(Refreshed { available, chosen })
    };
    check().context(error::UpdogSnafu {
        command: "check-update --all",
    })
}

/// Writes exactly `chosen` into the inactive set (update-image with `--image`), reporting to `progress`.
pub fn prepare(
    paths: &NodePaths,
    chosen: &UpdateImage,
    now: DateTime<Utc>,
    progress: &dyn ProgressSink,
) -> Result<()> {
    let write = || -> updog::Result<()> {
        let lock = updog_lock(paths)?;
        let node = Node::load(paths.sysroot().clone())?;
        let location = paths.location();
        let disk_lock = location.lock_disk().map_err(|source| updog::Error::Disk {
            source: Box::new(source),
        })?;
        let options = UpdateOptions {
            selection: CheckOptions {
                image: Some(chosen.version.clone()),
                ..CheckOptions::default()
            },
            apply: false,
        };
        runtime()?.block_on(updog::update::update_image(
            &node,
            &location,
            &options,
            now,
            progress,
            (&lock, &disk_lock),
        ))?;
        Ok(())
    };
    write().context(error::UpdogSnafu {
        command: "update-image",
    })
}

/// Makes the staged set boot next (`update-apply`).
pub fn activate(paths: &NodePaths) -> Result<()> {
    run_updog(paths, updog::cli::Command::UpdateApply, "update-apply")
}

/// Makes the running set boot next again (`update-revert`).
pub fn deactivate(paths: &NodePaths) -> Result<()> {
    run_updog(paths, updog::cli::Command::UpdateRevert, "update-revert")
}

fn run_updog(paths: &NodePaths, command: updog::cli::Command, name: &'static str) -> Result<()> {
    let cli = updog::cli::Cli {
        sysroot: paths.sysroot().root().to_path_buf(),
        log_level: log::max_level(),
        json: false,
        all: false,
        image: None,
        now: false,
        variant: None,
        arch: None,
        reboot: false,
        disk: None,
        max_rate: None,
        command,
    };
    updog::cli::run(&cli)
        .map(drop)
        .context(error::UpdogSnafu { command: name })
}
