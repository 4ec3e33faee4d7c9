//! Building or updating a signed repository: `RepoBuild`.
//!
//! A build into an empty directory creates a repository; a build into an existing one is an
//! update: its targets are kept, new ones added (a new file with an existing name replaces it in
//! targets.json; the old file stays for clients still on the previous snapshot), and the
//! versions of targets, snapshot and timestamp go up. Without new targets it is a refresh.

use crate::canonical::sign_role;
use crate::durable::RepoLock;
use crate::error::{self, Result};
use crate::expiry::{ExpirationPolicy, Expirations, RoleExpirations};
use crate::keys::RoleKeys;
use crate::publish::Staging;
use crate::published::{PublishedRepo, dir_url, load, metadata_dir, targets_dir};
use crate::role::Role;
use crate::root::SignedRoot;
use crate::targets::{consistent_name, gather, manifest_references};
use crate::validate::{Depth, check_target, error_chain, role_states};
use jiff::Timestamp;
use snafu::{ResultExt, ensure};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::num::NonZeroU64;
use std::path::{Path, PathBuf};
use tough::schema::{Hashes, Metafile, Snapshot, Target, Targets, Timestamp as TimestampRole};
use tough::{FilesystemTransport, TargetName};

const SPEC_VERSION: &str = "1.0.0";

/// Versions for the three roles a build signs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoleVersions {
    /// targets.json version.
    pub targets: NonZeroU64,
    /// snapshot.json version.
    pub snapshot: NonZeroU64,
    /// timestamp.json version.
    pub timestamp: NonZeroU64,
}

impl RoleVersions {
    /// The default for a build at `now`: for each role, max(previous + 1, now as UNIX seconds),
    /// as Bottlerocket's pubsys does, so versions always increase and say when they were made.
    pub fn derived(previous: Option<RoleVersions>, now: Timestamp) -> Self {
        let clock = u64::try_from(now.as_second()).unwrap_or(0);
        let next = |prev: Option<NonZeroU64>| {
            let v = prev.map_or(1, |p| p.get().saturating_add(1)).max(clock);
            NonZeroU64::new(v).unwrap_or(NonZeroU64::MIN)
        };
        Self {
            targets: next(previous.map(|p| p.targets)),
            snapshot: next(previous.map(|p| p.snapshot)),
            timestamp: next(previous.map(|p| p.timestamp)),
        }
    }

    fn get(&self, role: Role) -> NonZeroU64 {
        match role {
            Role::Targets => self.targets,
            Role::Snapshot => self.snapshot,
            _ => self.timestamp,
        }
    }
}

/// What a build, refresh or rotation published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildSummary {
    /// The repository directory.
    pub repository: PathBuf,
    /// The root version the repository is signed under.
    pub root_version: u64,
    /// The root version this run published, if it published one (first build, rotation).
    pub published_root: Option<u64>,
    /// The new role versions.
    pub versions: RoleVersions,
    /// The new role expiry times.
    pub expirations: RoleExpirations,
    /// Targets added by this run.
    pub added: Vec<String>,
    /// Targets whose content this run replaced (same name, new file).
    pub replaced: Vec<String>,
    /// How many targets the repository lists now.
    pub targets: usize,
}

/// Whether a run may create a repository or needs an existing one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Create or update.
    Build,
    /// Re-sign an existing repository; no new targets.
    Refresh,
}

/// Builds (or updates) a signed repository. Required things in [`RepoBuild::new`], optional ones
/// as methods; nothing happens until [`RepoBuild::write`].
#[derive(Debug, Clone)]
pub struct RepoBuild {
    root_path: PathBuf,
    keys: RoleKeys,
    now: Timestamp,
    targets_dir: Option<PathBuf>,
    target_files: Vec<PathBuf>,
    manifest: Option<PathBuf>,
    versions: Option<RoleVersions>,
    expirations: Expirations,
}

impl RepoBuild {
    /// A build signed under the root.json at `root_path` (the newest root: a version newer than
    /// the repository's is published with it), with `keys` for the targets, snapshot and
    /// timestamp roles, at time `now`.
    #[must_use]
    pub fn new(root_path: impl Into<PathBuf>, keys: RoleKeys, now: Timestamp) -> Self {
        Self {
            root_path: root_path.into(),
            keys,
            now,
            targets_dir: None,
            target_files: Vec::new(),
            manifest: None,
            versions: None,
            expirations: Expirations::Policy(ExpirationPolicy::default()),
        }
    }

    /// Adds every regular file at the top of `dir` as a target.
    #[must_use]
    pub fn targets_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.targets_dir = Some(dir.into());
        self
    }

    /// Adds one file as a target (named by its file name).
    #[must_use]
    pub fn target_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.target_files.push(path.into());
        self
    }

    /// Adds `path` as the target `manifest.json`; every image and migration it names must be a
    /// target (new or already in the repository).
    #[must_use]
    pub fn manifest(mut self, path: impl Into<PathBuf>) -> Self {
        self.manifest = Some(path.into());
        self
    }

    /// Sets explicit role versions; each must be greater than the repository's current one.
    /// Default: [`RoleVersions::derived`].
    #[must_use]
    pub fn versions(mut self, versions: RoleVersions) -> Self {
        self.versions = Some(versions);
        self
    }

    /// Sets the expiry policy or fixed expiry times. Default: [`ExpirationPolicy::default`].
    #[must_use]
    pub fn expirations(mut self, expirations: impl Into<Expirations>) -> Self {
        self.expirations = expirations.into();
        self
    }

    /// Builds, verifies and atomically publishes the repository into `out`
    /// (`out/metadata`, `out/targets`). On any error `out` is left as it was.
    pub async fn write(self, out: impl AsRef<Path>) -> Result<BuildSummary> {
        self.run(out.as_ref(), Mode::Build).await
    }

    pub(crate) async fn run(self, out: &Path, mode: Mode) -> Result<BuildSummary> {
        std::fs::create_dir_all(out).context(error::CreateDirSnafu { path: out })?;
        let _lock = RepoLock::acquire(out)?;
        let now = self.now;

        // The root, and the keys against it.
        let root = SignedRoot::read(&self.root_path)?;
        ensure!(
            root.expires() > now,
            error::RootExpiredSnafu {
                root: root.to_string(),
                expires: root.expires().to_string(),
                now: now.to_string()
            }
        );
        for role in Role::REPO {
            root.check_keys(role, self.keys.get(role))?;
        }

        // What is published now, and the root chain to publish.
        let published = PublishedRepo::open(out).await?;
        if mode == Mode::Refresh && published.repo.is_none() {
            return error::NothingToRefreshSnafu { path: out }.fail();
        }
        let chain = root_chain(&published, &root, out)?;

        // Targets: the published ones, plus what this build adds.
        let mut targets: BTreeMap<String, (TargetName, Target)> = BTreeMap::new();
        let mut previous = None;
        let mut old_targets_extra = HashMap::new();
        let (mut snapshot_extra, mut timestamp_extra) = (HashMap::new(), HashMap::new());
        if let Some(repo) = &published.repo {
            let t = &repo.targets().signed;
            ensure!(
                t.delegations.as_ref().is_none_or(|d| d.roles.is_empty()),
                error::DelegationsUnsupportedSnafu { path: out }
            );
            for (name, target) in &t.targets {
                targets.insert(name.raw().to_string(), (name.clone(), target.clone()));
            }
            old_targets_extra.clone_from(&t._extra);
            snapshot_extra.clone_from(&repo.snapshot().signed._extra);
            timestamp_extra.clone_from(&repo.timestamp().signed._extra);
            previous = Some(RoleVersions {
                targets: t.version,
                snapshot: repo.snapshot().signed.version,
                timestamp: repo.timestamp().signed.version,
            });
        }
        let new_targets = match mode {
            Mode::Build => {
                gather(
                    self.targets_dir.as_deref(),
                    &self.target_files,
                    self.manifest.as_deref(),
                )
                .await?
            }
            Mode::Refresh => Vec::new(),
        };
        let published_files: BTreeSet<String> = targets
            .values()
            .map(|(name, target)| consistent_name(name, target))
            .collect();
        let (mut added, mut replaced) = (Vec::new(), Vec::new());
        for new in &new_targets {
            let key = new.name.raw().to_string();
            match targets.get(&key) {
                Some((_, old)) if old.hashes.sha256 == new.target.hashes.sha256 => {}
                Some(_) => replaced.push(key.clone()),
                None => added.push(key.clone()),
            }
            targets.insert(key, (new.name.clone(), new.target.clone()));
        }
        if let Some(manifest) = &self.manifest {
            for name in manifest_references(manifest)? {
                ensure!(
                    targets.contains_key(&name),
                    error::TargetMissingSnafu {
                        name,
                        manifest: manifest.clone(),
                        targets_dir: self.targets_dir.clone()
                    }
                );
            }
        }

        // Versions and expiry times.
        let versions = match self.versions {
            None => RoleVersions::derived(previous, now),
            Some(given) => {
                if let Some(prev) = previous {
                    for role in Role::REPO {
                        ensure!(
                            given.get(role) > prev.get(role),
                            error::VersionNotIncreasingSnafu {
                                role,
                                given: given.get(role).get(),
                                previous: prev.get(role).get(),
                            }
                        );
                    }
                }
                given
            }
        };
        let expirations = self.expirations.resolve(now)?;
        let latest_expiry = expirations
            .targets
            .max(expirations.snapshot)
            .max(expirations.timestamp);
        if root.expires() < latest_expiry {
            // Clients stop at the earliest expiry of all roles: the root's sets the real limit.
            log::warn!(
                "{root} expires at {}, before the metadata signed now ({latest_expiry}); rotate the root in time",
                root.expires()
            );
        }

        // Sign: targets, then snapshot over its bytes, then timestamp over the snapshot's.
        let mut targets_role = Targets::new(
            SPEC_VERSION.to_string(),
            versions.targets,
            expirations.targets,
        );
        targets_role._extra = old_targets_extra;
        for (name, target) in targets.values() {
            targets_role.add_target(name.clone(), target.clone());
        }
        let (_, targets_bytes) = sign_role(
            targets_role,
            root.root(),
            self.keys.get(Role::Targets),
            Role::Targets,
        )
        .await?;
        let mut snapshot = Snapshot::new(
            SPEC_VERSION.to_string(),
            versions.snapshot,
            expirations.snapshot,
        );
        snapshot._extra = snapshot_extra;
        snapshot.meta.insert(
            "targets.json".to_string(),
            metafile(&targets_bytes, versions.targets),
        );
        let (_, snapshot_bytes) = sign_role(
            snapshot,
            root.root(),
            self.keys.get(Role::Snapshot),
            Role::Snapshot,
        )
        .await?;
        let mut timestamp = TimestampRole::new(
            SPEC_VERSION.to_string(),
            versions.timestamp,
            expirations.timestamp,
        );
        timestamp._extra = timestamp_extra;
        timestamp.meta.insert(
            "snapshot.json".to_string(),
            metafile(&snapshot_bytes, versions.snapshot),
        );
        let (_, timestamp_bytes) = sign_role(
            timestamp,
            root.root(),
            self.keys.get(Role::Timestamp),
            Role::Timestamp,
        )
        .await?;

        // Stage.
        let staging = Staging::new(out)?;
        for (version, bytes) in &chain.roots {
            staging.write_metadata(&format!("{version}.root.json"), bytes)?;
        }
        let targets_file = format!("{}.targets.json", versions.targets);
        let snapshot_file = format!("{}.snapshot.json", versions.snapshot);
        staging.write_metadata(&targets_file, &targets_bytes)?;
        staging.write_metadata(&snapshot_file, &snapshot_bytes)?;
        staging.write_metadata("timestamp.json", &timestamp_bytes)?;
        // Files this repository did not list before: copied into staging unless a file of that
        // content-addressed name is already in OUT/targets (another repository sharing the
        // directory, say); either way hashed in full below.
        let mut fresh = FreshTargets::default();
        for new in &new_targets {
            let file = new.file_name();
            if published_files.contains(&file) || fresh.is_known(&file) {
                continue;
            }
            if targets_dir(out).join(&file).exists() {
                fresh.in_repository.insert(file);
            } else {
                staging.copy_target(&new.path, &file)?;
                fresh.staged.insert(file);
            }
        }

        // Prove it: load the staged repository as a client would, with the state trusted from
        // the published one (so rollbacks are refused), and check every target.
        verify_staged(&staging, &chain, &published, out, &fresh, now).await?;

        // Publish: targets, then targets/snapshot metadata, then a new root, timestamp last.
        let mut order = vec![targets_file, snapshot_file];
        if let Some(v) = chain.new_root {
            order.push(format!("{v}.root.json"));
        }
        order.push("timestamp.json".to_string());
        staging.publish(&order)?;
        log::info!(
            "Published {} (root {}, targets {}, snapshot {}, timestamp {})",
            out.display(),
            root.version(),
            versions.targets,
            versions.snapshot,
            versions.timestamp
        );
        Ok(BuildSummary {
            repository: out.to_path_buf(),
            root_version: root.version(),
            published_root: chain.new_root,
            versions,
            expirations,
            added,
            replaced,
            targets: targets.len(),
        })
    }
}

fn metafile(bytes: &[u8], version: NonZeroU64) -> Metafile {
    let sha256 = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    Metafile {
        hashes: Some(Hashes {
            sha256: sha256.as_ref().to_vec().into(),
            _extra: HashMap::new(),
        }),
        length: Some(bytes.len() as u64),
        version,
        _extra: HashMap::new(),
    }
}

/// The whole root chain for the staged metadata, and which version (if any) is new.
struct RootChain {
    roots: Vec<(u64, Vec<u8>)>,
    new_root: Option<u64>,
}

impl RootChain {
    /// What a fresh client trusts: the first root of the chain.
    fn trusted(&self) -> &[u8] {
        &self.roots[0].1
    }
}

fn root_chain(published: &PublishedRepo, root: &SignedRoot, out: &Path) -> Result<RootChain> {
    let latest = published.latest_root_version();
    let n = root.version();
    let mut roots = Vec::new();
    for (version, path) in &published.roots {
        roots.push((
            *version,
            std::fs::read(path).context(error::ReadRootSnafu { path })?,
        ));
    }
    if n < latest {
        return error::RootOutdatedSnafu {
            root: root.to_string(),
            published: latest,
            path: out,
        }
        .fail();
    }
    if n == latest {
        let path = &published.roots[&latest];
        let same = SignedRoot::read(path)?;
        ensure!(
            same.signed() == root.signed(),
            error::RootDiffersSnafu {
                root: root.to_string(),
                published: path.clone()
            }
        );
        return Ok(RootChain {
            roots,
            new_root: None,
        });
    }
    // n > latest: n is published now, and must follow on without a gap.
    let first_missing = if latest == 0 { 1 } else { latest + 1 };
    ensure!(
        n == first_missing,
        error::RootChainGapSnafu {
            root: root.to_string(),
            missing: first_missing,
            path: metadata_dir(out)
        }
    );
    roots.push((n, root.bytes().to_vec()));
    Ok(RootChain {
        roots,
        new_root: Some(n),
    })
}

/// Target files (`<sha256>.<name>`) this build adds to the repository's targets.json.
#[derive(Debug, Default)]
struct FreshTargets {
    /// Copied into the staging directory.
    staged: BTreeSet<String>,
    /// Already present in `OUT/targets`.
    in_repository: BTreeSet<String>,
}

impl FreshTargets {
    fn is_known(&self, file: &str) -> bool {
        self.staged.contains(file) || self.in_repository.contains(file)
    }
}

async fn verify_staged(
    staging: &Staging,
    chain: &RootChain,
    published: &PublishedRepo,
    out: &Path,
    fresh: &FreshTargets,
    now: Timestamp,
) -> Result<()> {
    let staged = staging.path();
    let invalid = |message: String| error::Error::StagedInvalid {
        path: out.to_path_buf(),
        message,
    };
    let repo = load(
        chain.trusted(),
        dir_url(&metadata_dir(staged))?,
        dir_url(&targets_dir(staged))?,
        published.datastore.path(),
    )
    .await
    .map_err(|e| invalid(error_chain(&e)))?;
    let (_, expired) = role_states(&repo, now);
    if let Some(problem) = expired.into_iter().next() {
        return Err(invalid(problem.to_string()));
    }
    let (staged_url, out_url) = (dir_url(&targets_dir(staged))?, dir_url(&targets_dir(out))?);
    let mut problems = Vec::new();
    for (name, target) in repo.all_targets() {
        // New files are hashed in full; files published before are checked for presence and
        // length only (they were hashed when they were published; re-hashing every image on
        // every timestamp refresh would make refreshes slow).
        let file = consistent_name(name, target);
        let (url, depth) = if fresh.staged.contains(&file) {
            (&staged_url, Depth::Full)
        } else if fresh.in_repository.contains(&file) {
            (&out_url, Depth::Full)
        } else {
            (&out_url, Depth::Length)
        };
        let problem = check_target(&FilesystemTransport, url, name, target, depth).await;
        problems.extend(problem);
    }
    ensure!(
        problems.is_empty(),
        error::StagedInvalidSnafu {
            path: out,
            message: problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
        }
    );
    Ok(())
}
