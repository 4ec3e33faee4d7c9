//! The main job: one whole update lifecycle on a simulated node, with the real binaries as a node runs them.
//!
//! A signed repository (the fixture chain, with the real fixture migrations) is served over HTTP; a node (sysroot +
//! disk-image file) is installed with release 1.0.0 in set A and a datastore of settings; then, as on a real node:
//! boot → `updog mark-successful-boot` → `updog check-update` → `updog update` (images streamed into set B,
//! verified, set B made next) → boot (GRUB rule, dm-verity check, the new os-release) → `migrator` (settings carried
//! forward) → `updog mark-successful-boot` (health checks, then signpost's mark). No root is needed: the disk is a file.

use crate::api::ApiServer;
use crate::chain::{
    self, ARCHES, ChainOptions, FixtureRepo, MigrationPayloads, RELEASES, VARIANTS,
};
use crate::http::{FaultServer, FaultServerError};
use crate::node::{BootError, BootOutcome, Node, NodeError};
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
    pub apiserver: PathBuf,
    pub thar_be_updates: PathBuf,
    pub apiclient: PathBuf,
    pub dir: PathBuf,
}

/// The node's programs the lifecycle runs (besides the fixture migrations).
pub const NODE_BINARIES: [&str; 5] = [
    "updog",
    "migrator",
    "apiserver",
    "thar-be-updates",
    "apiclient",
];

impl Binaries {
    /// The binaries in `dir` (a cargo target directory such as `target/debug`).
    pub fn in_dir(dir: &Path) -> Result<Self, LifecycleError> {
        let mut missing = Vec::new();
        for name in NODE_BINARIES
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
            apiserver: dir.join("apiserver"),
            thar_be_updates: dir.join("thar-be-updates"),
            apiclient: dir.join("apiclient"),
            dir: dir.to_owned(),
        })
    }

    /// Builds updog, migrator, the API's three programs and the fixture migrations with cargo (the same profile as this program, into the
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
            "-p",
            "apiserver",
            "-p",
            "thar-be-updates",
            "-p",
            "apiclient",
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

/// The publisher's side of the lifecycle: the signed release chain (with the real migrations) served over HTTP.
pub struct Published {
    /// The newest repository of the chain (every release).
    pub repo: FixtureRepo,
    pub server: FaultServer,
    pub metadata_url: url::Url,
    pub targets_url: url::Url,
}

/// Builds the fixture chain under `dir/repo` with `binaries`' migrations and serves it on `port` (0: any).
pub fn publish(dir: &Path, binaries: &Binaries, port: u16) -> Result<Published, LifecycleError> {
    publish_with(dir, binaries, port, &ChainOptions::default())
}

/// [`publish`] with the chain built with `options` (e.g. a larger ROOT).
pub fn publish_with(
    dir: &Path,
    binaries: &Binaries,
    port: u16,
    options: &ChainOptions,
) -> Result<Published, LifecycleError> {
    let runtime = runtime(dir)?;
    let repo_dir = dir.join("repo");
    let payloads = binaries.migration_payloads()?;
    let steps = runtime
        .block_on(chain::build_chain_with_migrations(
            &repo_dir, options, &payloads,
        ))
        .context(ChainSnafu)?;
    let newest: FixtureRepo = steps.last().expect("the chain has steps").clone();
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
    Ok(Published {
        metadata_url: server.url_for(&format!("{name}/metadata/")),
        targets_url: server.url_for(&format!("{name}/targets/")),
        repo: newest,
        server,
    })
}

/// A node in `dir` (sysroot `dir/sysroot`, disk `dir/disk.img`) as a fresh Bottlerocket node is: release
/// `RELEASES[0]` in set A, a datastore with [`INITIAL_SETTINGS`], updog.toml pointing at `published`, and the
/// apiserver's config (this workspace's thar-be-updates; a reboot command that records the request in
/// [`reboot_requests_path`], for the simulated boot to act on). Not booted yet.
pub fn install_node(
    dir: &Path,
    published: &Published,
    binaries: &Binaries,
) -> Result<Node, LifecycleError> {
    let node = install_release(
        dir,
        binaries,
        RELEASES[0],
        &INITIAL_SETTINGS,
        chain::DEFAULT_ROOT_MIB,
    )?;
    write_updog_toml(&node, &published.metadata_url, &published.targets_url)?;
    Ok(node)
}

/// [`install_node`] without a repository (no updog.toml yet): `version` in set A of a disk laid out for a
/// `root_mib` MiB ROOT ([`chain::layout_for_root_mib`]), a datastore with `settings` (in `version`'s schema), and
/// the apiserver's config. Not booted yet.
pub fn install_release(
    dir: &Path,
    binaries: &Binaries,
    version: &str,
    settings: &[(&str, &str)],
    root_mib: u64,
) -> Result<Node, LifecycleError> {
    let runtime = runtime(dir)?;
    let builder = crate::disk::DiskBuilder::new().sizes(chain::layout_for_root_mib(root_mib));
    let (node, _) = Node::create_with(dir, &builder).context(NodeSnafu)?;
    let root_json = runtime
        .block_on(chain::fixture_root_json())
        .context(ChainSnafu)?;
    let first = chain::release_images_sized(
        VARIANTS[0],
        node_arch(),
        version,
        &root_json,
        &dir.join("scratch"),
        root_mib,
    )
    .context(ChainSnafu)?;
    node.install(SetSelect::A, &first).context(NodeSnafu)?;
    create_datastore(&datastore_dir(&node), version, settings)?;
    write_apiserver_toml(&node, binaries)?;
    Ok(node)
}

/// The node's datastore directory (holding `current` and the versions).
pub fn datastore_dir(node: &Node) -> PathBuf {
    node.sysroot().join("var/lib/bottlerocket/datastore")
}

/// Where the simulated node's reboot command records each request, one line per request.
pub fn reboot_requests_path(node: &Node) -> PathBuf {
    node.sysroot().join("var/lib/fixture-node/reboot-requests")
}

/// Waits (up to 10 s) until the node's reboot command has recorded `count` requests; returns how many it has. The
/// API starts the reboot command and answers at once, as a real reboot is not waited for either.
pub fn wait_for_reboot_requests(node: &Node, count: usize) -> usize {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let seen = std::fs::read_to_string(reboot_requests_path(node))
            .map(|text| text.lines().count())
            .unwrap_or(0);
        if seen >= count || std::time::Instant::now() >= deadline {
            return seen;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// A boot as a real node's units run it: the bootloader and dm-verity ([`Node::boot`]), then `migrator` (settings
/// carried to the booted release), then `updog mark-successful-boot` (the health checks, then signpost's mark).
/// Any failing step is the error, and the boot stays unmarked (the steps after it do not run).
pub fn boot_and_settle(node: &Node, binaries: &Binaries) -> Result<BootOutcome, LifecycleError> {
    let chain = boot_chain(node, binaries)?;
    match chain.failed {
        Some(failed) => Err(failed),
        None => Ok(chain.booted),
    }
}

/// A boot chain that ran: the boot, and the step after it that failed, if one did (the boot is then unmarked).
#[derive(Debug)]
pub struct BootChain {
    pub booted: BootOutcome,
    pub failed: Option<LifecycleError>,
}

/// [`boot_and_settle`] for a boot that may be meant to fail after the bootloader: an error only when no set booted.
pub fn boot_chain(node: &Node, binaries: &Binaries) -> Result<BootChain, LifecycleError> {
    let booted = node.boot().context(BootSnafu)?;
    let failed = run_migrator(node, binaries)
        .and_then(|_| mark_successful_boot(node, binaries))
        .err();
    Ok(BootChain { booted, failed })
}

/// `updog mark-successful-boot` on the node, as its last boot unit runs it; returns updog's stderr (its log).
pub fn mark_successful_boot(node: &Node, binaries: &Binaries) -> Result<String, LifecycleError> {
    let output = Command::new(&binaries.updog)
        // The node's disk named explicitly: a node without updog.toml yet (`node create`) still knows its disk.
        .args(updog_args(node, &["mark-successful-boot"]))
        .arg("--disk")
        .arg(node.disk())
        .output()
        .context(SpawnSnafu {
            program: binaries.updog.as_os_str(),
        })?;
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    ensure!(
        output.status.success(),
        StepFailedSnafu {
            step: "updog mark-successful-boot",
            output: stderr,
        }
    );
    Ok(stderr)
}

/// Runs `migrator` on the node as its boot does, to the booted os-release's version.
pub fn run_migrator(node: &Node, binaries: &Binaries) -> Result<String, LifecycleError> {
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
    run(binaries.migrator.as_os_str(), &migrator_args)
}

/// Runs the whole lifecycle in `dir` (repository under `dir/repo`, node under `dir/node`), with `binaries`; the
/// server is returned still running so a caller can keep serving.
pub fn run_lifecycle(
    dir: &Path,
    binaries: &Binaries,
    port: u16,
) -> Result<(LifecycleReport, FaultServer), LifecycleError> {
    let mut report = LifecycleReport::default();

    // The publisher: the signed release chain, with the real migrations.
    let published = publish(dir, binaries, port)?;
    report.base_url = published.server.base_url().to_string();
    report.say(format!(
        "1. Published releases {} (signed TUF repository, {} variants × {} arches) at {}",
        RELEASES.join(", "),
        VARIANTS.len(),
        ARCHES.len(),
        published.metadata_url
    ));

    // The node: release 1.0.0 in set A of a disk-image file, its datastore, updog.toml.
    let node = install_node(&dir.join("node"), &published, binaries)?;
    let datastore_dir = datastore_dir(&node);
    report.settings_before = read_settings(&datastore_dir)?;
    report.say(format!(
        "2. Node {}/{}: disk image {}, release {} in set A, {} settings in its datastore",
        VARIANTS[0],
        node_arch(),
        node.disk().display(),
        RELEASES[0],
        report.settings_before.len()
    ));

    // First boot.
    let booted = node.boot().context(BootSnafu)?;
    let release = booted.release.clone().expect("the node carries images");
    report.version_before = release.version_id.clone();
    mark_successful_boot(&node, binaries)?;
    report.say(format!(
        "3. Booted set {:?}: dm-verity OK (root hash {}…), os-release says {}; marked successful",
        booted.set,
        &release.root_hash[..16],
        release.version_id
    ));

    // updog: check, then update to the next release (download, verify, write set B, flip the bits).
    let check = run(
        binaries.updog.as_os_str(),
        &updog_args(&node, &["check-update"]),
    )?;
    report.say(format!("4. updog check-update → {}", check.trim()));
    // A download cut off by a crash: the server stalls ROOT at 90 %, updog is killed with SIGKILL there; its
    // rerun continues from the last durable checkpoint with a Range request instead of byte 0.
    let (killed_at, checkpointed, root_len) =
        kill_update_at_90_percent(&node, binaries, &published)?;
    report.say(format!(
        "5a. updog update --image {} killed (SIGKILL) with ROOT at byte {killed_at} of {root_len} ({} %); last \
         durable checkpoint at byte {checkpointed}",
        RELEASES[1],
        killed_at * 100 / root_len.max(1)
    ));
    let update = run_logged(
        binaries.updog.as_os_str(),
        &updog_args(&node, &["update", "--image", RELEASES[1]]),
    )?;
    let resumed = update
        .1
        .lines()
        .find(|l| l.contains("Resuming the root image"))
        .map_or_else(
            || "(not resumed!)".to_string(),
            |l| {
                l.split("Resuming")
                    .nth(1)
                    .map_or(l, |r| r)
                    .trim()
                    .to_string()
            },
        );
    report.say(format!(
        "    rerun: resuming {resumed}; {} bytes of ROOT fetched twice",
        killed_at.saturating_sub(checkpointed)
    ));
    let update = update.0;
    report.say(format!(
        "5b. updog update --image {} → {}",
        RELEASES[1],
        update.trim()
    ));
    let status = signpost(&node, &["status"])?;
    for line in status
        .lines()
        .filter(|l| l.starts_with("Next") || l.starts_with("Set"))
    {
        report.say(format!("     signpost: {line}"));
    }

    // Reboot into the new set; the bootloader spends its one try; migrator carries the settings to the new
    // release's schema, then the boot is marked good.
    let booted = node.boot().context(BootSnafu)?;
    let release = booted.release.clone().expect("the node carries images");
    report.say(format!(
        "6. Rebooted into set {:?} (tries left {}): dm-verity OK, os-release says {}",
        booted.set,
        booted.after.tries_left(),
        release.version_id
    ));
    run_migrator(&node, binaries)?;
    mark_successful_boot(&node, binaries)?;
    report.say(format!(
        "7. migrator {} → {}, marked successful: settings now {}",
        report.version_before,
        release.version_id,
        settings_line(&read_settings(&datastore_dir)?)
    ));

    // A release that boots but is broken: this node's health check (the operator's own test of the workload) fails
    // on 1.2.0. The next update will show the fallback.
    let health_check = install_demo_health_check(&node, RELEASES[2])?;

    // The API: the same node driven as a fleet drives it, through apiserver and apiclient.
    let server = ApiServer::start(binaries, &node).context(ApiSnafu)?;
    report.say(format!(
        "8. apiserver listening on {} (mode 0600)",
        server.socket().display()
    ));
    let motd = "settings survive updates";
    apiclient_ok(binaries, &server, &["set", &format!("motd={motd}")])?;
    let got = apiclient_ok(binaries, &server, &["get", "settings.motd"])?;
    let got: serde_json::Value =
        serde_json::from_str(&got).context(StatusJsonSnafu { text: &got })?;
    report.say(format!(
        "9. apiclient set motd=… → apiclient get settings.motd → {}",
        got["settings"]["motd"]
    ));
    let check = apiclient_ok(binaries, &server, &["update", "check"])?;
    let status: serde_json::Value =
        serde_json::from_str(&check).context(StatusJsonSnafu { text: &check })?;
    report.say(format!(
        "10. apiclient update check → update_state {}, chosen_update {}",
        status["update_state"], status["chosen_update"]["version"]
    ));
    let apply = apiclient_ok(binaries, &server, &["update", "apply", "--reboot"])?;
    let requests = wait_for_reboot_requests(&node, 1);
    report.say(format!(
        "11. apiclient update apply --reboot → prepare (images written to the inactive set), activate, reboot \
         requested ({requests} request{}){}",
        if requests == 1 { "" } else { "s" },
        if apply.trim().is_empty() {
            String::new()
        } else {
            format!(": {}", apply.trim())
        }
    ));
    // A reboot stops every process: the API server too.
    server.stop().context(ApiSnafu)?;
    let chain = boot_chain(&node, binaries)?;
    let broken = chain
        .booted
        .release
        .clone()
        .expect("the node carries images");
    let why = chain.failed.as_ref().map_or_else(
        || "no failure?".to_string(),
        |e| {
            let text = e.to_string();
            let line = text
                .lines()
                .find(|l| l.contains("Health check"))
                .unwrap_or("")
                .trim();
            // "Health check 'x' failed (exit status: 1); the boot is not marked successful: …" → its first clause.
            line.split(';').next().unwrap_or(line).to_string()
        },
    );
    report.say(format!(
        "12. Rebooted into set {:?}: dm-verity OK, os-release says {}; migrator ran; {why} — boot NOT marked",
        chain.booted.set, broken.version_id
    ));
    // Its one try spent and never marked: the bootloader falls back; migrator takes the settings back; the boot
    // chain records the version the node fell back from.
    let fallback = boot_and_settle(&node, binaries)?;
    let back = fallback.release.clone().expect("the node carries images");
    report.say(format!(
        "13. Rebooted again: the bootloader fell back to set {:?}, os-release says {}; migrator {} → {}; boot marked \
         successful; {} recorded in /var/lib/updog/rolled-back.json",
        fallback.set, back.version_id, broken.version_id, back.version_id, broken.version_id
    ));
    let skipped = run_allowing_failure(
        binaries.updog.as_os_str(),
        &updog_args(&node, &["check-update"]),
    )?;
    report.say(format!("14. updog check-update → {}", skipped.trim()));
    // The operator fixes what the check caught (here: the check itself) and applies the release on purpose.
    std::fs::remove_file(&health_check).context(IoSnafu {
        path: &health_check,
    })?;
    let again = run(
        binaries.updog.as_os_str(),
        &updog_args(&node, &["update", "--image", RELEASES[2]]),
    )?;
    report.say(format!(
        "15. Health check fixed; updog update --image {} (named on purpose) → {}",
        RELEASES[2],
        again.trim()
    ));
    let booted = boot_and_settle(&node, binaries)?;
    let release = booted.release.clone().expect("the node carries images");
    report.version_after = release.version_id.clone();
    report.settings_after = read_settings(&datastore_dir)?;
    report.say(format!(
        "16. Rebooted into set {:?}: dm-verity OK, os-release says {}; migrator ran, boot marked successful",
        booted.set, release.version_id
    ));
    report.say(format!(
        "17. Settings after {} → {} → {}: {}",
        report.version_before,
        RELEASES[1],
        report.version_after,
        settings_line(&report.settings_after)
    ));
    Ok((report, published.server))
}

/// Puts a health check on the node that fails when the booted release is `broken_version` (the demo's broken
/// release); returns its path.
fn install_demo_health_check(node: &Node, broken_version: &str) -> Result<PathBuf, LifecycleError> {
    use std::os::unix::fs::PermissionsExt;
    let dir = node.sysroot().join("etc/updog/health.d");
    std::fs::create_dir_all(&dir).context(IoSnafu { path: &dir })?;
    let path = dir.join("50-demo-workload");
    let script = format!(
        "#!/bin/sh\n# The demo's stand-in for a workload test: release {broken_version} \"boots but is broken\".\n\
         if grep -qx 'VERSION_ID={broken_version}' \"$UPDOG_SYSROOT/usr/lib/os-release\"; then\n\
         echo 'workload test failed on {broken_version}' >&2; exit 1\nfi\n"
    );
    std::fs::write(&path, script).context(IoSnafu { path: &path })?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
        .context(IoSnafu { path: &path })?;
    Ok(path)
}

/// Runs `updog update --image` on `node` with the server stalling that release's ROOT at 90 %, kills it with SIGKILL
/// once a checkpoint near there is durable, and lifts the stall: (the byte it stalled at, the checkpointed byte,
/// ROOT's compressed length).
fn kill_update_at_90_percent(
    node: &Node,
    binaries: &Binaries,
    published: &Published,
) -> Result<(u64, u64, u64), LifecycleError> {
    use crate::http::{AfterStall, Fault, PathMatch, Rule};
    // Small checkpoints for the small fixture image (a real one uses updog's 16 MiB default).
    let toml = node.sysroot().join("etc/updog.toml");
    let mut text = std::fs::read_to_string(&toml).context(IoSnafu { path: &toml })?;
    text.push_str("checkpoint_interval_bytes = 4096\n");
    std::fs::write(&toml, text).context(IoSnafu { path: &toml })?;

    let root = chain::image_names(VARIANTS[0], node_arch(), RELEASES[1]).root;
    let file = published.repo.target_file(&root).context(ChainSnafu)?;
    let root_len = std::fs::metadata(&file)
        .context(IoSnafu { path: &file })?
        .len();
    let stall_at = (root_len * 9).div_ceil(10);
    let rule = published.server.add_rule(Rule::new(
        PathMatch::suffix(root.clone()),
        Fault::StallAfter {
            bytes: stall_at,
            duration: std::time::Duration::from_secs(60),
            then: AfterStall::Continue,
        },
    ));
    let mut updog = Command::new(&binaries.updog)
        .args(updog_args(node, &["update", "--image", RELEASES[1]]))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .context(SpawnSnafu {
            program: binaries.updog.as_os_str(),
        })?;
    let checkpoint = node
        .sysroot()
        .join("var/lib/updog/download-checkpoint.json");
    let offset = || -> Option<u64> {
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&checkpoint).ok()?).ok()?;
        let current = &json["current"];
        (current["signed"]["image"] == "root")
            .then(|| current["resume"]["position"]["compressed"].as_u64())?
    };
    // Wait for a durable checkpoint past 70 % (checkpoints come every 4 KiB up to the stall).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while offset().is_none_or(|o| o * 10 < root_len * 7) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let _ = updog.kill();
    let _ = updog.wait();
    published.server.remove_rule(rule);
    let checkpointed = offset().context(NoCheckpointSnafu { stall_at })?;
    Ok((stall_at, checkpointed, root_len))
}

/// Runs `program`, requiring success: (stdout, stderr).
fn run_logged(
    program: &std::ffi::OsStr,
    args: &[std::ffi::OsString],
) -> Result<(String, String), LifecycleError> {
    let output = Command::new(program)
        .args(args)
        .output()
        .context(SpawnSnafu { program })?;
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    ensure!(
        output.status.success(),
        StepFailedSnafu {
            step: "updog update (resumed)",
            output: stderr.clone(),
        }
    );
    Ok((String::from_utf8_lossy(&output.stdout).into_owned(), stderr))
}

/// Runs `program`; its stdout, or when it fails, its stderr (a refusal the demo shows).
fn run_allowing_failure(
    program: &std::ffi::OsStr,
    args: &[std::ffi::OsString],
) -> Result<String, LifecycleError> {
    let output = Command::new(program)
        .args(args)
        .output()
        .context(SpawnSnafu { program })?;
    Ok(if output.status.success() {
        String::from_utf8_lossy(&output.stdout).into_owned()
    } else {
        String::from_utf8_lossy(&output.stderr).into_owned()
    })
}

fn settings_line(settings: &[(String, String)]) -> String {
    settings
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn runtime(dir: &Path) -> Result<tokio::runtime::Runtime, LifecycleError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context(IoSnafu { path: dir })
}

/// Runs apiclient against `server`, requiring success; returns its stdout.
fn apiclient_ok(
    binaries: &Binaries,
    server: &ApiServer,
    args: &[&str],
) -> Result<String, LifecycleError> {
    let mut all: Vec<std::ffi::OsString> = vec![
        "--socket-path".into(),
        server.socket().as_os_str().to_owned(),
    ];
    all.extend(args.iter().map(Into::into));
    run(binaries.apiclient.as_os_str(), &all)
}

/// The node's arch as the fixture chain names it (updog uses the build's arch).
pub fn node_arch() -> &'static str {
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

/// Points the node's updog at a repository (`etc/updog.toml`: these URLs, [`DEMO_SEED`], latest, the node's disk),
/// replacing the file atomically.
pub fn write_updog_toml(
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
    // Rewritten on a node that updog may be reading (`repo-fixtures node serve`): never half a file.
    nodeio::atomic::write_atomically(&path, text.as_bytes())
        .context(AtomicWriteSnafu { path: &path })
}

/// The apiserver's config on the simulated node: this workspace's thar-be-updates, and a reboot command that only
/// appends a line to [`reboot_requests_path`] (the test or demo then boots the node).
fn write_apiserver_toml(node: &Node, binaries: &Binaries) -> Result<(), LifecycleError> {
    let path = node.sysroot().join("etc/apiserver.toml");
    let requests = reboot_requests_path(node);
    let mut text = String::new();
    writeln!(
        text,
        "thar_be_updates = {}",
        toml_string(&binaries.thar_be_updates.to_string_lossy())
    )
    .expect("String");
    writeln!(
        text,
        "reboot_command = [\"/bin/sh\", \"-c\", \"echo reboot >> \\\"$0\\\"\", {}]",
        toml_string(&requests.to_string_lossy())
    )
    .expect("String");
    for dir in [path.parent(), requests.parent()].into_iter().flatten() {
        std::fs::create_dir_all(dir).context(IoSnafu { path: dir })?;
    }
    std::fs::write(&path, text).context(IoSnafu { path: &path })
}

/// A TOML basic string (the paths here are temp dirs: no control characters, but quotes and backslashes escaped).
fn toml_string(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// What storewolf does on a node's first boot: a datastore for `version` with these settings, and the
/// `current → vX → vX.Y → vX.Y.Z → vX.Y.Z_<suffix>` links.
pub fn create_datastore(
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
    #[snafu(display("Failed to write {}: {source}", path.display()))]
    AtomicWrite {
        path: PathBuf,
        source: nodeio::atomic::AtomicWriteError,
    },
    #[snafu(display("Missing binaries in {}: {missing} (build them: cargo build -p updog -p migrator -p apiserver -p thar-be-updates -p apiclient --bins --features migrator/test-hooks)", dir.display()))]
    MissingBinaries { dir: PathBuf, missing: String },
    #[snafu(display("Cannot tell where this program runs from: {source}"))]
    CurrentExe { source: std::io::Error },
    #[snafu(display("This program's path has no directory"))]
    NoExeDir,
    #[snafu(display("Failed to run cargo to build the node's programs: {source}"))]
    Cargo { source: std::io::Error },
    #[snafu(display("cargo build of the node's programs failed ({status})"))]
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
    #[snafu(display("API: {source}"))]
    Api { source: crate::api::ApiError },
    #[snafu(display("apiclient printed something that is not JSON: {source}\n{text}"))]
    StatusJson {
        text: String,
        source: serde_json::Error,
    },
    #[snafu(display("{step} failed:\n{output}"))]
    StepFailed { step: String, output: String },
    #[snafu(display(
        "updog left no download checkpoint for ROOT before it was killed (the server stalled it at byte {stall_at})"
    ))]
    NoCheckpoint { stall_at: u64 },
}
