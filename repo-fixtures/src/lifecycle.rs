//! The main job: one whole update lifecycle on a simulated node, with the real binaries as a node runs them.
//!
//! A signed repository (the fixture chain, with the real fixture migrations) is served over HTTP; a node (sysroot +
//! disk-image file) is installed with release 1.0.0 in set A and a datastore of settings; then, as on a real node:
//! boot → `signpost mark-successful-boot` → `updog check-update` → `updog update` (images streamed into set B,
//! verified, set B made next) → boot (GRUB rule, dm-verity check, the new os-release) → `migrator` (settings carried
//! forward) → `signpost mark-successful-boot`. No root is needed: the disk is a file.

use crate::chain::{
    self, ARCHES, ChainOptions, FixtureRepo, MigrationPayloads, RELEASES, VARIANTS,
};
use crate::http::{FaultServer, FaultServerError};
use crate::node::{BootError, Node, NodeError};
use datastore::{Committed, FilesystemDataStore, Key, KeyType};
use signpost::SetSelect;
use snafu::{OptionExt, ResultExt, Snafu, ensure};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The fixture migrations' binaries (built from `migrator/src/bin/` with migrator's `test-hooks` feature, as every
/// test build of migrator has it) and the target names the chain signs them as.
pub const MIGRATION_BINARIES: [(&str, &str); 2] = [
    (
        "fixture-add-motd-default",
        "migrate_v1.1.0_add-motd-default.lz4",
    ),
    (
        "fixture-rename-hostname-setting",
        "migrate_v1.2.0_rename-hostname-setting.lz4",
    ),
];

/// The node's seed (0..2048): any seed works, the chain's waves have all passed.
pub const DEMO_SEED: u32 = 1234;

/// The settings the node starts with, in release 1.0.0's schema.
pub const INITIAL_SETTINGS: [(&str, &str); 3] = [
    ("settings.hostname", "\"demo-node\""),
    ("settings.updates.seed", "1234"),
    ("settings.kernel.lockdown", "\"integrity\""),
];

/// Where the binaries a node runs are.
#[derive(Debug, Clone)]
pub struct Binaries {
    pub updog: PathBuf,
    pub migrator: PathBuf,
    pub dir: PathBuf,
}

impl Binaries {
    /// The binaries in `dir` (a cargo target directory such as `target/debug`).
    pub fn in_dir(dir: &Path) -> Result<Self, LifecycleError> {
        let mut missing = Vec::new();
        for name in ["updog", "migrator"]
            .into_iter()
            .chain(MIGRATION_BINARIES.map(|(bin, _)| bin))
        {
            if !dir.join(name).is_file() {
                missing.push(name);
            }
        }
        ensure!(
            missing.is_empty(),
            MissingBinariesSnafu {
                dir,
                missing: missing.join(", "),
            }
        );
        Ok(Self {
            updog: dir.join("updog"),
            migrator: dir.join("migrator"),
            dir: dir.to_owned(),
        })
    }

    /// Builds updog, migrator and the fixture migrations with cargo (the same profile as this program, into the
    /// target directory this program runs from) and returns them. The fixture migrations are migrator's test-only
    /// binaries, behind its `test-hooks` feature; the `migrator` binary is the released one either way.
    pub fn build() -> Result<Self, LifecycleError> {
        let exe = std::env::current_exe().context(CurrentExeSnafu)?;
        let dir = exe.parent().context(NoExeDirSnafu)?.to_owned();
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut command = Command::new(&cargo);
        command.args([
            "build",
            "--quiet",
            "-p",
            "updog",
            "-p",
            "migrator",
            "--bins",
            "--features",
            "migrator/test-hooks",
        ]);
        if dir.file_name().is_some_and(|n| n == "release") {
            command.arg("--release");
        }
        if let Some(target) = dir.parent() {
            command.arg("--target-dir").arg(target);
        }
        let status = command.status().context(CargoSnafu)?;
        ensure!(
            status.success(),
            CargoFailedSnafu {
                status: status.to_string()
            }
        );
        Self::in_dir(&dir)
    }

    /// The fixture migrations, as the chain signs them.
    pub fn migration_payloads(&self) -> Result<MigrationPayloads, LifecycleError> {
        let mut payloads = MigrationPayloads::new();
        for (bin, target) in MIGRATION_BINARIES {
            let path = self.dir.join(bin);
            let bytes = std::fs::read(&path).context(IoSnafu { path: &path })?;
            payloads.insert(target.to_string(), bytes);
        }
        Ok(payloads)
    }
}

/// What the lifecycle did, step by step (printed by the demo).
#[derive(Debug, Default)]
pub struct LifecycleReport {
    pub lines: Vec<String>,
    pub version_before: String,
    pub version_after: String,
    pub settings_before: Vec<(String, String)>,
    pub settings_after: Vec<(String, String)>,
    pub base_url: String,
}

impl LifecycleReport {
    fn say(&mut self, line: impl Into<String>) {
        let line = line.into();
        println!("{line}");
        self.lines.push(line);
    }
}

/// Runs the whole lifecycle in `dir` (repository under `dir/repo`, node under `dir/node`), with `binaries`; the
/// server is returned still running so a caller can keep serving.
pub fn run_lifecycle(
    dir: &Path,
    binaries: &Binaries,
    port: u16,
) -> Result<(LifecycleReport, FaultServer), LifecycleError> {
    let mut report = LifecycleReport::default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context(IoSnafu { path: dir })?;

    // The publisher: the signed release chain, with the real migrations.
    let repo_dir = dir.join("repo");
    let payloads = binaries.migration_payloads()?;
    let steps = runtime
        .block_on(chain::build_chain_with_migrations(
            &repo_dir,
            &ChainOptions::default(),
            &payloads,
        ))
        .context(ChainSnafu)?;
    let newest: &FixtureRepo = steps.last().expect("the chain has steps");
    let server = FaultServer::builder(&repo_dir)
        .addr(std::net::SocketAddr::from(([127, 0, 0, 1], port)))
        .serve()
        .context(ServeSnafu)?;
    let name = newest
        .dir
        .file_name()
        .expect("named")
        .to_string_lossy()
        .into_owned();
    let metadata_url = server.url_for(&format!("{name}/metadata/"));
    let targets_url = server.url_for(&format!("{name}/targets/"));
    report.base_url = server.base_url().to_string();
    report.say(format!(
        "1. Published releases {} (signed TUF repository, {} variants × {} arches) at {metadata_url}",
        RELEASES.join(", "),
        VARIANTS.len(),
        ARCHES.len()
    ));

    // The node: release 1.0.0 in set A of a disk-image file, its datastore, updog.toml.
    let (variant, arch) = (VARIANTS[0], node_arch());
    let node_dir = dir.join("node");
    let node = Node::create(&node_dir).context(NodeSnafu)?;
    let root_json = runtime
        .block_on(chain::fixture_root_json())
        .context(ChainSnafu)?;
    let first = chain::release_images(variant, arch, RELEASES[0], &root_json, &dir.join("scratch"))
        .context(ChainSnafu)?;
    node.install(SetSelect::A, &first).context(NodeSnafu)?;
    let datastore_dir = node.sysroot().join("var/lib/bottlerocket/datastore");
    create_datastore(&datastore_dir, RELEASES[0], &INITIAL_SETTINGS)?;
    write_updog_toml(&node, &metadata_url, &targets_url)?;
    report.settings_before = read_settings(&datastore_dir)?;
    report.say(format!(
        "2. Node {variant}/{arch}: disk image {}, release {} in set A, {} settings in its datastore",
        node.disk().display(),
        RELEASES[0],
        report.settings_before.len()
    ));

    // First boot.
    let booted = node.boot().context(BootSnafu)?;
    let release = booted.release.clone().expect("the node carries images");
    report.version_before = release.version_id.clone();
    signpost(&node, &["mark-successful-boot"])?;
    report.say(format!(
        "3. Booted set {:?}: dm-verity OK (root hash {}…), os-release says {}; marked successful",
        booted.set,
        &release.root_hash[..16],
        release.version_id
    ));

    // updog: check, then update (download, verify, write set B, flip the bits).
    let check = run(
        binaries.updog.as_os_str(),
        &updog_args(&node, &["check-update"]),
    )?;
    report.say(format!("4. updog check-update → {}", check.trim()));
    let update = run(binaries.updog.as_os_str(), &updog_args(&node, &["update"]))?;
    report.say(format!("5. updog update → {}", update.trim()));
    let status = signpost(&node, &["status"])?;
    for line in status
        .lines()
        .filter(|l| l.starts_with("Next") || l.starts_with("Set"))
    {
        report.say(format!("     signpost: {line}"));
    }

    // Reboot into the new set; the bootloader spends its one try.
    let booted = node.boot().context(BootSnafu)?;
    let release = booted.release.clone().expect("the node carries images");
    report.version_after = release.version_id.clone();
    report.say(format!(
        "6. Rebooted into set {:?} (tries left {}): dm-verity OK, os-release says {}",
        booted.set,
        booted.after.tries_left(),
        release.version_id
    ));

    // migrator carries the settings to the new release's schema, then the boot is marked good.
    let sysroot = node.sysroot();
    let path = |p: &str| sysroot.join(p).into_os_string();
    let migrator_args = vec![
        "--sysroot".into(),
        sysroot.as_os_str().to_owned(),
        "--datastore-path".into(),
        path("var/lib/bottlerocket/datastore/current"),
        "--migration-directory".into(),
        path("var/lib/bottlerocket-migrations"),
        "--root-path".into(),
        path("usr/share/updog/root.json"),
        "--metadata-directory".into(),
        path("var/cache/bottlerocket-metadata"),
        "--migrate-to-version-from-os-release".into(),
    ];
    run(binaries.migrator.as_os_str(), &migrator_args)?;
    report.settings_after = read_settings(&datastore_dir)?;
    signpost(&node, &["mark-successful-boot"])?;
    report.say(format!(
        "7. migrator {} → {}: settings now {}",
        report.version_before,
        report.version_after,
        report
            .settings_after
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    ));
    report.say(format!(
        "8. Marked the new set successful: the node runs {}; set A keeps {} as the rollback target",
        report.version_after, report.version_before
    ));
    Ok((report, server))
}

/// The node's arch as the fixture chain names it (updog uses the build's arch).
fn node_arch() -> &'static str {
    if std::env::consts::ARCH == "aarch64" {
        "aarch64"
    } else {
        "x86_64"
    }
}

fn updog_args(node: &Node, command: &[&str]) -> Vec<std::ffi::OsString> {
    let mut args = vec!["--sysroot".into(), node.sysroot().as_os_str().to_owned()];
    args.extend(command.iter().map(Into::into));
    args
}

fn write_updog_toml(
    node: &Node,
    metadata_url: &url::Url,
    targets_url: &url::Url,
) -> Result<(), LifecycleError> {
    let path = node.sysroot().join("etc/updog.toml");
    let mut text = String::new();
    writeln!(text, "metadata_base_url = \"{metadata_url}\"").expect("String");
    writeln!(text, "targets_base_url = \"{targets_url}\"").expect("String");
    writeln!(text, "seed = {DEMO_SEED}").expect("String");
    writeln!(text, "version_lock = \"latest\"").expect("String");
    writeln!(text, "ignore_waves = false").expect("String");
    writeln!(text, "disk = \"{}\"", node.disk().display()).expect("String");
    std::fs::create_dir_all(path.parent().expect("etc")).context(IoSnafu { path: &path })?;
    std::fs::write(&path, text).context(IoSnafu { path: &path })
}

/// What storewolf does on a node's first boot: a datastore for `version` with these settings, and the
/// `current → vX → vX.Y → vX.Y.Z → vX.Y.Z_<suffix>` links.
fn create_datastore(
    dir: &Path,
    version: &str,
    settings: &[(&str, &str)],
) -> Result<(), LifecycleError> {
    let version: semver::Version = version.parse().expect("fixture versions are semver");
    let data_name = format!("v{version}_demo0000000000001");
    std::fs::create_dir_all(dir).context(IoSnafu { path: dir })?;
    let store = FilesystemDataStore::create(dir.join(&data_name)).context(DatastoreSnafu)?;
    for (name, value) in settings {
        let key = Key::new(KeyType::Data, name).context(DatastoreSnafu)?;
        store
            .set_key(&key, value, &Committed::Live)
            .context(DatastoreSnafu)?;
    }
    let (major, minor, patch) = (
        format!("v{}", version.major),
        format!("v{}.{}", version.major, version.minor),
        format!("v{version}"),
    );
    for (link, target) in [
        (&patch, &data_name),
        (&minor, &patch),
        (&major, &minor),
        (&"current".to_string(), &major),
    ] {
        let path = dir.join(link);
        std::os::unix::fs::symlink(target, &path).context(IoSnafu { path: &path })?;
    }
    Ok(())
}

/// The live settings the datastore `current` resolves to, as (key, JSON value).
pub fn read_settings(datastore_dir: &Path) -> Result<Vec<(String, String)>, LifecycleError> {
    let store = FilesystemDataStore::new(datastore_dir.join("current"));
    let values = store
        .get_prefix("settings.", &Committed::Live)
        .context(DatastoreSnafu)?;
    Ok(values
        .into_iter()
        .map(|(k, v)| (k.name().to_string(), v))
        .collect())
}

fn signpost(node: &Node, args: &[&str]) -> Result<String, LifecycleError> {
    let run = node.signpost(args);
    ensure!(
        run.code == 0,
        StepFailedSnafu {
            step: format!("signpost {}", args.join(" ")),
            output: run.stderr,
        }
    );
    Ok(run.stdout)
}

fn run(program: &std::ffi::OsStr, args: &[std::ffi::OsString]) -> Result<String, LifecycleError> {
    let output = Command::new(program)
        .args(args)
        .output()
        .context(SpawnSnafu { program })?;
    let step = format!(
        "{} {}",
        Path::new(program)
            .file_name()
            .unwrap_or(program)
            .to_string_lossy(),
        args.iter()
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ")
    );
    ensure!(
        output.status.success(),
        StepFailedSnafu {
            step,
            output: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    );
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

#[derive(Debug, Snafu)]
pub enum LifecycleError {
    #[snafu(display("{}: {source}", path.display()))]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[snafu(display("Missing binaries in {}: {missing} (build them: cargo build -p updog -p migrator --bins --features migrator/test-hooks)", dir.display()))]
    MissingBinaries { dir: PathBuf, missing: String },
    #[snafu(display("Cannot tell where this program runs from: {source}"))]
    CurrentExe { source: std::io::Error },
    #[snafu(display("This program's path has no directory"))]
    NoExeDir,
    #[snafu(display("Failed to run cargo to build updog and migrator: {source}"))]
    Cargo { source: std::io::Error },
    #[snafu(display("cargo build of updog and migrator failed ({status})"))]
    CargoFailed { status: String },
    #[snafu(display("Fixture chain: {source}"))]
    Chain { source: chain::ChainError },
    #[snafu(display("Failed to serve the repository: {source}"))]
    Serve { source: FaultServerError },
    #[snafu(display("Simulated node: {source}"))]
    Node { source: NodeError },
    #[snafu(display("Simulated boot: {source}"))]
    Boot { source: BootError },
    #[snafu(display("Datastore: {source}"))]
    Datastore { source: datastore::Error },
    #[snafu(display("Failed to start {}: {source}", program.to_string_lossy()))]
    Spawn {
        program: std::ffi::OsString,
        source: std::io::Error,
    },
    #[snafu(display("{step} failed:\n{output}"))]
    StepFailed { step: String, output: String },
}
