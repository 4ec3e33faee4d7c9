//! `updog update-image`, `update`, `update-apply` and `update-revert` as processes, on a simulated node (a sysroot
//! and a Bottlerocket-layout disk holding real images of the release it runs), against the fixture chain over HTTP
//! (the fault server and nginx): the update is written, verified, applied and booted; reverted; and every failure
//! (a stall, a corrupt byte, an oversized or truncated image, a read-only partition, a killed run) leaves the node
//! as it was (invariants I1, I2): the inactive set cannot boot (checked with signpost, cgpt and sgdisk), the running
//! set's bits and bytes are unchanged, and the node boots the old release.

mod support;

use repo_fixtures::boot_states;
use repo_fixtures::chain::{self, ChainOptions, FixtureRepo};
use repo_fixtures::disk::{Bank, DiskBuilder, FixtureDisk, Role};
use repo_fixtures::gpt_tools::{cgpt_flags, sgdisk_attribute_bits};
use repo_fixtures::http::{AfterStall, Fault, FaultServer, PathMatch, Rule, RuleId};
use repo_fixtures::images::OsImages;
use repo_fixtures::loop_device::LoopDevice;
use repo_fixtures::node::Node;
use repo_fixtures::require::{require_root, require_tool};
use serde_json::Value;
use sha2::{Digest, Sha256};
use signpost::SetSelect;
use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};
use support::{ARCH, NodeConfig, Run};
use update_metadata::{Manifest, NewUpdate};
use url::Url;

const VARIANT: &str = "aws-dev";

// ---- the world: the chain and its images, built once per test binary ----------------------------------------

struct World {
    /// Holds `chain-1.0.0`, `chain-1.1.0`, `chain-1.2.0`: serve this directory.
    dir: PathBuf,
    steps: Vec<FixtureRepo>,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("updog-update-image-world");
        if dir.exists() {
            std::fs::remove_dir_all(&dir).unwrap();
        }
        std::fs::create_dir_all(&dir).unwrap();
        let steps = support::runtime()
            .block_on(chain::build_chain(&dir, &ChainOptions::default()))
            .expect("build the chain");
        World { dir, steps }
    })
}

fn newest() -> &'static FixtureRepo {
    &world().steps[2]
}

/// The uncompressed images of `version` for this node's variant and arch (the bytes the chain publishes).
fn images(version: &str) -> OsImages {
    static IMAGES: OnceLock<Mutex<BTreeMap<String, OsImages>>> = OnceLock::new();
    let cache = IMAGES.get_or_init(Default::default);
    if let Some(images) = cache.lock().unwrap().get(version) {
        return images.clone();
    }
    let scratch = tempfile::tempdir().unwrap();
    let root_json = support::runtime()
        .block_on(chain::fixture_root_json())
        .unwrap();
    let images =
        chain::release_images(VARIANT, ARCH, version, &root_json, scratch.path()).expect("images");
    cache
        .lock()
        .unwrap()
        .insert(version.to_string(), images.clone());
    images
}

/// A target of the newest chain step, as published (compressed).
fn published(name: &str) -> Vec<u8> {
    std::fs::read(newest().target_file(name).unwrap()).unwrap()
}

fn image_names(version: &str) -> update_metadata::Images {
    chain::image_names(VARIANT, ARCH, version)
}

fn tools() -> bool {
    ["mke2fs", "veritysetup", "debugfs", "cgpt", "sgdisk"]
        .iter()
        .all(|t| require_tool(t))
}

/// This binary's tests take loop devices one at a time (the machine has few).
fn loop_lock() -> MutexGuard<'static, ()> {
    static LOOPS: Mutex<()> = Mutex::new(());
    LOOPS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

// ---- the node -----------------------------------------------------------------------------------------------------

struct TestNode {
    _dir: tempfile::TempDir,
    /// The node as updog sees it (its disk an image file or a loop device).
    node: Node,
    disk: FixtureDisk,
    /// Kept for the drop (detaches the device).
    device: Option<LoopDevice>,
}

/// The running set's bits and bytes, and PRIVATE's bits: what no update may change.
#[derive(Debug, PartialEq, Eq)]
struct ActiveSet {
    bits: (u64, u64, bool),
    boot_attributes: u64,
    private_attributes: u64,
    sha256: [String; 3],
}

impl TestNode {
    /// A node whose set A holds `version` (booted once), on a disk-image file.
    fn on_image_file(version: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (node, disk) = Node::create_with(dir.path(), &DiskBuilder::new()).unwrap();
        node.install(SetSelect::A, &images(version)).unwrap();
        let this = Self {
            _dir: dir,
            node,
            disk,
            device: None,
        };
        this.boot_expecting(SetSelect::A, version);
        this
    }

    /// A node whose set A holds `version` (booted once), reached through a loop device with partition nodes.
    fn on_loop_device(version: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (node, disk) = Node::create_with(dir.path(), &DiskBuilder::new()).unwrap();
        node.install(SetSelect::A, &images(version)).unwrap();
        let mut device = LoopDevice::attach(&disk.path).unwrap();
        device
            .add_partition_nodes(u32::try_from(disk.partitions.len()).unwrap())
            .unwrap();
        let node = node.with_disk(device.path());
        let this = Self {
            _dir: dir,
            node,
            disk,
            device: Some(device),
        };
        this.boot_expecting(SetSelect::A, version);
        this
    }

    fn sysroot(&self) -> &Path {
        self.node.sysroot()
    }

    /// Points updog at `repo` served from `base`, with the node's disk and `extra` updog.toml lines.
    fn configure(&self, repo: &FixtureRepo, base: &Url, extra: &str) {
        let (metadata, targets) = support::served_urls(base, repo);
        let mut config = NodeConfig::new(&metadata, &targets);
        config.extra = format!("disk = \"{}\"\n{extra}", self.node.disk().display());
        std::fs::create_dir_all(self.sysroot().join("etc")).unwrap();
        std::fs::write(self.sysroot().join("etc/updog.toml"), config.toml()).unwrap();
    }

    fn updog(&self, args: &[&str]) -> Run {
        support::run_updog(self.sysroot(), args)
    }

    fn boot_expecting(&self, set: SetSelect, version: &str) {
        let outcome = self.node.boot().expect("the node boots");
        assert_eq!(outcome.set, set, "{outcome:?}");
        let release = outcome
            .release
            .expect("a node with images reports its release");
        assert_eq!(
            (release.version_id.as_str(), release.variant_id.as_str()),
            (version, VARIANT)
        );
        let os_release =
            std::fs::read_to_string(self.sysroot().join("usr/lib/os-release")).unwrap();
        assert!(
            os_release.contains(&format!("VERSION_ID={version}\n")),
            "{os_release}"
        );
    }

    fn status(&self) -> Value {
        let run = self.node.signpost(&["status", "--json"]);
        assert_eq!(run.code, 0, "{run:?}");
        serde_json::from_str(&run.stdout).unwrap()
    }

    /// `(priority, tries_left, successful)` of set `set` as signpost reports it, checked against cgpt and sgdisk.
    fn bits(&self, set: &str) -> (u64, u64, bool) {
        let status = self.status();
        let s = &status["sets"][set];
        let bits = (
            s["priority"].as_u64().unwrap(),
            s["tries_left"].as_u64().unwrap(),
            s["successful"].as_bool().unwrap(),
        );
        let number = u32::try_from(s["boot"]["number"].as_u64().unwrap()).unwrap();
        let cgpt = cgpt_flags(self.node.disk(), number).expect("cgpt");
        assert_eq!(
            (
                u64::from(cgpt.priority),
                u64::from(cgpt.tries_left),
                cgpt.successful
            ),
            bits,
            "cgpt reads set {set} differently: {status:#}"
        );
        let reported = u64::from_str_radix(
            s["attribute_bits"]
                .as_str()
                .unwrap()
                .trim_start_matches("0x"),
            16,
        )
        .unwrap();
        assert_eq!(
            sgdisk_attribute_bits(self.node.disk(), number).expect("sgdisk"),
            reported,
            "sgdisk reads set {set} differently"
        );
        bits
    }

    fn partition_bytes(&self, role: Role, len: usize) -> Vec<u8> {
        let partition = self.disk.partition(role).unwrap();
        assert!(len as u64 <= partition.len_bytes());
        let mut buf = vec![0; len];
        std::fs::File::open(&self.disk.path)
            .unwrap()
            .read_exact_at(&mut buf, partition.offset_bytes())
            .unwrap();
        buf
    }

    fn active_set(&self) -> ActiveSet {
        let hash = |role: Role| {
            let len = usize::try_from(self.disk.partition(role).unwrap().len_bytes()).unwrap();
            hex::encode(Sha256::digest(self.partition_bytes(role, len)))
        };
        let boot_a = self.disk.number(Role::Boot(Bank::A));
        ActiveSet {
            bits: self.bits("A"),
            boot_attributes: sgdisk_attribute_bits(self.node.disk(), boot_a).unwrap(),
            private_attributes: sgdisk_attribute_bits(
                self.node.disk(),
                self.disk.number(Role::Private),
            )
            .unwrap(),
            sha256: [
                hash(Role::Boot(Bank::A)),
                hash(Role::Root(Bank::A)),
                hash(Role::Hash(Bank::A)),
            ],
        }
    }

    /// A stale, applied update in set B (what a node has after `update-apply` without a reboot, here with an
    /// empty set): it would boot next unless the next update-image clears it first.
    fn stage_stale_upgrade(&self) {
        for command in ["mark-inactive-valid", "upgrade-to-inactive"] {
            let run = self.node.signpost(&[command]);
            assert_eq!(run.code, 0, "{run:?}");
        }
        assert_eq!(self.bits("B"), (2, 1, false));
    }

    /// After a failed update: the inactive set cannot boot, the running set is as it was, and the node boots the
    /// old release from it.
    fn assert_unchanged_after_failure(&self, before: &ActiveSet, version: &str) {
        assert_eq!(
            self.bits("B"),
            (0, 0, false),
            "the inactive set must not boot"
        );
        assert_eq!(self.active_set(), *before, "the running set changed");
        self.boot_expecting(SetSelect::A, version);
    }

    /// After a successful update-image: set B holds `version`'s images exactly, valid but not next.
    fn assert_written(&self, version: &str) {
        let images = images(version);
        for (role, image) in [
            (Role::Boot(Bank::B), &images.boot),
            (Role::Root(Bank::B), &images.root),
            (Role::Hash(Bank::B), &images.hash),
        ] {
            assert!(
                self.partition_bytes(role, image.len()) == *image,
                "{role:?} does not hold the {version} image"
            );
        }
        assert_eq!(self.bits("B"), (0, 1, false));
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        // The device goes before the directory holding its image.
        self.device.take();
    }
}

/// Asserts exit 0, `Starting update to VERSION` on stderr and `stdout` exactly.
#[track_caller]
fn assert_updated(run: &Run, version: &str, stdout: &str) {
    assert_eq!(run.code, Some(0), "{run:#?}");
    assert_eq!(run.stdout, stdout, "{run:#?}");
    assert!(
        run.stderr
            .starts_with(&format!("Starting update to {version}\n")),
        "{run:#?}"
    );
}

#[track_caller]
fn assert_failed(run: &Run, parts: &[&str]) {
    assert_eq!(run.code, Some(1), "{run:#?}");
    assert_eq!(run.stdout, "", "{run:#?}");
    for part in parts {
        assert!(run.stderr.contains(part), "stderr lacks {part:?}: {run:#?}");
    }
}

fn serve_world() -> FaultServer {
    FaultServer::serve(&world().dir).unwrap()
}

fn root_image() -> String {
    image_names("1.2.0").root
}

// ---- the whole update ---------------------------------------------------------------------------------------------

/// update-image, update-apply, reboot: on `node`, served by `server`.
fn update_and_boot(node: &TestNode, server: &FaultServer) {
    node.configure(newest(), &server.base_url(), "");
    let before = node.active_set();
    let run = node.updog(&["update-image"]);
    assert_updated(&run, "1.2.0", "Update applied: aws-dev 1.2.0\n");
    node.assert_written("1.2.0");
    assert_eq!(node.active_set(), before, "the running set changed");

    // What migrator needs after the reboot, TUF-verified, with the metadata and root chain.
    let migrations = node.sysroot().join("var/lib/bottlerocket-migrations");
    let mut cached: Vec<String> = std::fs::read_dir(&migrations)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy()[65..].to_string())
        .collect();
    cached.sort();
    assert_eq!(
        cached,
        [
            "manifest.json",
            "migrate_v1.2.0_rename-hostname-setting.lz4"
        ]
    );
    let mut metadata: Vec<String> =
        std::fs::read_dir(node.sysroot().join("var/cache/bottlerocket-metadata"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
    metadata.sort();
    assert_eq!(
        metadata,
        [
            "1.root.json",
            "3.snapshot.json",
            "3.targets.json",
            "timestamp.json"
        ]
    );
    // Upstream's query parameters, with the target version and the migrations once the update is chosen.
    let image_requests = server.requests_for(&root_image());
    assert_eq!(
        image_requests.last().unwrap().query.as_deref(),
        Some(
            "migrations=migrate_v1.2.0_rename-hostname-setting.lz4%2Cmanifest.json&seed=1487&target=1.2.0&version=1.1.0"
        )
    );

    let run = node.updog(&["update-apply"]);
    assert_eq!(
        (run.code, run.stdout.as_str(), run.stderr.as_str()),
        (Some(0), "", "")
    );
    assert_eq!(node.bits("B"), (2, 1, false));
    assert_eq!(node.bits("A"), (1, 0, true));
    node.boot_expecting(SetSelect::B, "1.2.0");
}

#[test]
fn update_image_then_apply_boots_the_next_release_from_an_image_file() {
    if !tools() {
        return;
    }
    let node = TestNode::on_image_file("1.1.0");
    update_and_boot(&node, &serve_world());
}

#[test]
fn update_image_then_apply_boots_the_next_release_from_a_loop_device() {
    if !(tools() && require_root() && require_tool("losetup") && require_tool("partx")) {
        return;
    }
    let _loop = loop_lock();
    let node = TestNode::on_loop_device("1.1.0");
    let status = node.status();
    assert!(
        status["sets"]["B"]["root"]["node"]
            .as_str()
            .is_some_and(|n| n.starts_with("/dev/loop")),
        "written through the partition node: {status:#}"
    );
    update_and_boot(&node, &serve_world());
}

#[test]
fn an_update_served_by_nginx_boots_the_next_release() {
    if !(tools() && require_tool("nginx")) {
        return;
    }
    let nginx = repo_fixtures::nginx::Nginx::serve(&world().dir).unwrap();
    let node = TestNode::on_image_file("1.1.0");
    node.configure(newest(), &nginx.base_url(), "");
    let run = node.updog(&["update-image"]);
    assert_updated(&run, "1.2.0", "Update applied: aws-dev 1.2.0\n");
    node.assert_written("1.2.0");
    let run = node.updog(&["update-apply"]);
    assert_eq!(run.code, Some(0), "{run:#?}");
    node.boot_expecting(SetSelect::B, "1.2.0");
}

#[test]
fn image_chooses_exactly_that_version_with_only_its_migrations() {
    if !tools() {
        return;
    }
    let server = serve_world();
    let node = TestNode::on_image_file("1.0.0");
    node.configure(newest(), &server.base_url(), "");
    let run = node.updog(&["update-image", "--image", "1.1.0"]);
    assert_updated(&run, "1.1.0", "Update applied: aws-dev 1.1.0\n");
    node.assert_written("1.1.0");
    let mut cached: Vec<String> =
        std::fs::read_dir(node.sysroot().join("var/lib/bottlerocket-migrations"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy()[65..].to_string())
            .collect();
    cached.sort();
    assert_eq!(
        cached,
        ["manifest.json", "migrate_v1.1.0_add-motd-default.lz4"]
    );
    assert_eq!(node.updog(&["update-apply"]).code, Some(0));
    node.boot_expecting(SetSelect::B, "1.1.0");
}

#[test]
fn an_update_in_a_later_wave_is_not_required_until_now_is_given() {
    if !tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // The newest release's waves start tomorrow: seed 1487 is in a late wave.
    let steps =
        support::chain_with_waves(dir.path(), chrono::Utc::now() + chrono::TimeDelta::days(1));
    let server = FaultServer::serve(dir.path()).unwrap();
    let node = TestNode::on_image_file("1.1.0");
    node.configure(&steps[2], &server.base_url(), "");
    node.stage_stale_upgrade();
    let run = node.updog(&["update-image"]);
    assert_eq!((run.code, run.stdout.as_str()), (Some(1), ""), "{run:#?}");
    assert!(
        run.stderr.starts_with(
            "No update required: aws-dev 1.2.0 is in a later wave for this node (seed 1487); it becomes available at "
        ),
        "{run:#?}"
    );
    assert_eq!(node.bits("B"), (2, 1, false), "nothing was done");

    let run = node.updog(&["update-image", "--now"]);
    assert_updated(&run, "1.2.0", "Update applied: aws-dev 1.2.0\n");
    node.assert_written("1.2.0");
}

#[test]
fn update_writes_applies_and_runs_the_reboot_command() {
    if !tools() {
        return;
    }
    let server = serve_world();
    let node = TestNode::on_image_file("1.0.0");
    let marker = node.sysroot().join("rebooted");
    node.configure(
        newest(),
        &server.base_url(),
        &format!(
            "reboot_command = [\"/bin/sh\", \"-c\", \"echo $0 > {}\", \"reboot-called\"]\n",
            marker.display()
        ),
    );
    let run = node.updog(&["update", "--reboot"]);
    assert_updated(&run, "1.2.0", "Update applied: aws-dev 1.2.0\n");
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "reboot-called\n");
    assert_eq!(node.bits("B"), (2, 1, false));

    // The reboot command runs once updog has let go of its locks: a reboot that blocks must not keep another
    // writer (mark-successful-boot, a revert) out. Here it runs update-apply, which takes both locks and is refused
    // only for what it would do (the set is already applied), not for a held lock.
    let apply_err = node.sysroot().join("apply-during-reboot.err");
    node.configure(
        newest(),
        &server.base_url(),
        &format!(
            "reboot_command = [\"/bin/sh\", \"-c\", \"$0 --sysroot $1 update-apply 2> $2; true\", \"{}\", \"{}\", \"{}\"]\n",
            env!("CARGO_BIN_EXE_updog"),
            node.sysroot().display(),
            apply_err.display()
        ),
    );
    let run = node.updog(&["update-apply", "--reboot"]);
    assert_failed(&run, &["already marked for upgrade"]);
    assert!(
        !apply_err.exists(),
        "a refused update-apply must not reboot"
    );
    assert_eq!(node.updog(&["update-revert"]).code, Some(0));
    let run = node.updog(&["update-apply", "--reboot"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    let during = std::fs::read_to_string(&apply_err).unwrap();
    assert!(during.contains("already marked for upgrade"), "{during}");
    assert!(!during.contains("in use"), "{during}");
    assert_eq!(node.bits("B"), (2, 1, false));
    // Both migrations of the way from 1.0.0.
    let migrations = std::fs::read_dir(node.sysroot().join("var/lib/bottlerocket-migrations"))
        .unwrap()
        .count();
    assert_eq!(migrations, 3);
    node.boot_expecting(SetSelect::B, "1.2.0");
}

#[test]
fn sigterm_and_sighup_during_the_reboot_command_wait_for_it_then_end_updog_by_the_signal() {
    if !tools() {
        return;
    }
    let server = serve_world();
    let node = TestNode::on_image_file("1.1.0");
    let marker = node.sysroot().join("reboot-finished");
    for (signal, number) in [("TERM", 15), ("HUP", 1)] {
        // The command signals updog (its parent), then takes a while before it is done.
        node.configure(
            newest(),
            &server.base_url(),
            &format!(
                "reboot_command = [\"/bin/sh\", \"-c\", \"kill -{signal} $PPID; sleep 1; echo done > {}\"]\n",
                marker.display()
            ),
        );
        let _ = std::fs::remove_file(&marker);
        let command = if signal == "TERM" {
            "update"
        } else {
            "update-apply"
        };
        if signal == "HUP" {
            assert_eq!(node.updog(&["update-revert"]).code, Some(0));
        }
        let exit = support::updog_command(node.sysroot(), &[command, "--reboot"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&exit),
            Some(number),
            "{exit:?}"
        );
        // updog waited for the command before it let the signal end it.
        assert_eq!(
            std::fs::read_to_string(&marker).unwrap(),
            "done\n",
            "SIG{signal}"
        );
        assert_eq!(node.bits("B"), (2, 1, false));
    }
    node.boot_expecting(SetSelect::B, "1.2.0");
}

#[test]
fn update_without_reboot_does_not_reboot_and_update_apply_reboots_on_request() {
    if !tools() {
        return;
    }
    let server = serve_world();
    let node = TestNode::on_image_file("1.1.0");
    let marker = node.sysroot().join("rebooted");
    node.configure(
        newest(),
        &server.base_url(),
        &format!(
            "reboot_command = [\"/bin/sh\", \"-c\", \"echo yes > {}\"]\n",
            marker.display()
        ),
    );
    assert_updated(
        &node.updog(&["update"]),
        "1.2.0",
        "Update applied: aws-dev 1.2.0\n",
    );
    assert!(!marker.exists());
    assert_eq!(node.updog(&["update-revert"]).code, Some(0));
    let run = node.updog(&["update-apply", "--reboot"]);
    assert_eq!(run.code, Some(0), "{run:#?}");
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "yes\n");
}

#[test]
fn update_revert_before_the_reboot_keeps_the_old_release_and_apply_works_again() {
    if !tools() {
        return;
    }
    let server = serve_world();
    let node = TestNode::on_image_file("1.1.0");
    node.configure(newest(), &server.base_url(), "");
    assert_updated(
        &node.updog(&["update"]),
        "1.2.0",
        "Update applied: aws-dev 1.2.0\n",
    );
    assert_eq!(node.bits("B"), (2, 1, false));

    let run = node.updog(&["update-revert"]);
    assert_eq!(
        (run.code, run.stdout.as_str(), run.stderr.as_str()),
        (Some(0), "", "")
    );
    // cancel-upgrade keeps the try (#949): the written image stays valid.
    assert_eq!(node.bits("B"), (0, 1, false));
    assert_eq!(node.bits("A"), (2, 0, true));
    node.boot_expecting(SetSelect::A, "1.1.0");

    // Booted the old release; the staged one can still be applied without writing it again.
    assert_eq!(node.updog(&["update-apply"]).code, Some(0));
    node.boot_expecting(SetSelect::B, "1.2.0");
}

/// Copies the directory tree `from` to `to` (files and directories; the node's sysroot holds nothing else).
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            copy_tree(&entry.path(), &target);
        } else if kind.is_file() {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

#[test]
fn on_an_unconfirmed_boot_update_image_is_refused_and_revert_returns_to_the_old_set() {
    if !tools() {
        return;
    }
    let server = serve_world();
    let node = TestNode::on_image_file("1.1.0");
    update_and_boot(&node, &server);
    // Booted 1.2.0 in B, its try spent, not yet marked successful: A is the only set that can boot again.
    assert_eq!(
        (node.bits("A"), node.bits("B")),
        ((1, 0, true), (2, 0, false))
    );
    let requests = server.requests().len();
    let table = std::fs::read(node.node.disk()).unwrap();

    for command in ["update-image", "update"] {
        let run = node.updog(&[command, "--image", "1.1.0"]);
        assert_failed(
            &run,
            &[
                "The running set B",
                "has not been marked successful",
                "mark-successful-boot",
            ],
        );
    }
    assert_eq!(server.requests().len(), requests, "nothing was fetched");
    assert!(
        std::fs::read(node.node.disk()).unwrap() == table,
        "the disk changed"
    );

    let run = node.updog(&["update-revert"]);
    assert_eq!((run.code, run.stderr.as_str()), (Some(0), ""), "{run:?}");
    assert_eq!(
        (node.bits("A"), node.bits("B")),
        ((2, 0, true), (1, 0, false))
    );
    assert_eq!(node.status()["next"], "A");
    node.boot_expecting(SetSelect::A, "1.1.0");
}

/// Invariant I7 for updog's commands: from every state the node's own commands and boots reach, each update command
/// either fails with both GPT copies unchanged, or leaves a set that boots (by the rule, and by what cgpt reads);
/// update-image never changes the running set's bits, and on an unconfirmed boot it is refused.
#[test]
fn every_update_command_on_every_reachable_state_refuses_unchanged_or_leaves_a_bootable_set() {
    if !tools() {
        return;
    }
    let server = serve_world();
    let node = TestNode::on_image_file("1.1.0");
    node.configure(newest(), &server.base_url(), "");
    assert_eq!(node.node.signpost(&["mark-successful-boot"]).code, 0);
    // Both sets hold images, so that the search's boots (which check dm-verity) reach B too.
    assert_eq!(node.updog(&["update-image"]).code, Some(0));
    let start = boot_states::read_state(&node.node, &node.disk);
    let reachable = boot_states::reachable(&node.node, &node.disk, start);
    // Upgrades staged, booted, confirmed, cancelled and rolled back, on either set.
    assert!(
        reachable.len() >= 24,
        "only {}: {reachable:?}",
        reachable.len()
    );
    // The boots of the search changed os-release; this node runs 1.1.0 again.
    support::Node::set_release_in(node.sysroot(), VARIANT, "1.1.0");
    let (mut refused, mut written) = (0, 0);
    for &state in &reachable {
        for command in ["update-apply", "update-revert", "update-image", "update"] {
            boot_states::set_state(&node.node, &node.disk, state);
            let before = boot_states::table_bytes(&node.disk);
            let run = node.updog(&[command]);
            if run.code != Some(0) {
                refused += 1;
                assert_eq!(
                    before,
                    boot_states::table_bytes(&node.disk),
                    "`{command}` in {state:?} failed but changed the table: {run:?}"
                );
                continue;
            }
            written += 1;
            let after = boot_states::read_state(&node.node, &node.disk);
            assert!(
                boot_states::disk_boots(&node.disk),
                "`{command}` in {state:?} left {after:?}: nothing boots"
            );
            let bits = |set: SetSelect| node.bits(&set.to_string());
            let (a, b) = (bits(SetSelect::A), bits(SetSelect::B));
            assert!(
                [a, b].iter().any(|&(p, t, s)| p > 0 && (t > 0 || s)),
                "`{command}` in {state:?}: cgpt reads A {a:?}, B {b:?}: nothing boots"
            );
            let running = state.flags(state.active);
            if command == "update-image" {
                assert!(
                    running.successful(),
                    "update-image ran on an unconfirmed boot: {state:?}"
                );
                assert_eq!(
                    after.flags(state.active),
                    running,
                    "update-image changed the running set"
                );
            }
        }
    }
    assert!(
        refused > 10 && written > 10,
        "refused {refused}, written {written}"
    );
}

#[test]
fn update_apply_without_a_valid_image_is_refused_with_signposts_message() {
    if !tools() {
        return;
    }
    let node = TestNode::on_image_file("1.1.0");
    node.configure(newest(), &Url::parse("http://127.0.0.1:9/").unwrap(), "");
    let boot_b = format!(
        "{}#{}",
        node.node.disk().display(),
        node.disk.number(Role::Boot(Bank::B))
    );
    let run = node.updog(&["update-apply"]);
    assert_failed(
        &run,
        &[&format!(
            "Inactive partition {boot_b} has not been marked valid for upgrade (priority=0 tries_left=0 successful=false)"
        )],
    );
    assert_eq!(node.bits("B"), (0, 0, false));
}

#[test]
fn json_gives_the_update_on_stdout_and_progress_lines_on_stderr() {
    if !tools() {
        return;
    }
    let server = serve_world();
    let node = TestNode::on_image_file("1.1.0");
    node.configure(newest(), &server.base_url(), "");
    let run = node.updog(&["update-image", "--json"]);
    assert_eq!(run.code, Some(0), "{run:#?}");
    let update: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(
        (&update["variant"], &update["version"]),
        (&Value::from("aws-dev"), &Value::from("1.2.0"))
    );

    let events: Vec<Value> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // Phases in order; each phase's last event is complete.
    let mut phases: Vec<(String, String)> = Vec::new();
    for event in &events {
        let key = (
            event["phase"].as_str().unwrap().to_string(),
            event["image"].as_str().unwrap_or("").to_string(),
        );
        if phases.last() != Some(&key) {
            phases.push(key);
        }
    }
    let expected: Vec<(String, String)> = [
        ("migrations", ""),
        ("write", "root"),
        ("verify", "root"),
        ("write", "boot"),
        ("verify", "boot"),
        ("write", "hash"),
        ("verify", "hash"),
    ]
    .iter()
    .map(|(p, i)| (p.to_string(), i.to_string()))
    .collect();
    assert_eq!(phases, expected, "{}", run.stderr);
    let images = images("1.2.0");
    let names = image_names("1.2.0");
    for (image, name, len) in [
        ("root", &names.root, images.root.len()),
        ("boot", &names.boot, images.boot.len()),
        ("hash", &names.hash, images.hash.len()),
    ] {
        let last = |phase: &str| {
            events
                .iter()
                .rfind(|e| e["phase"] == phase && e["image"] == image)
                .unwrap()
                .clone()
        };
        let write = last("write");
        assert_eq!(write["target"], name.as_str());
        assert_eq!(write["done_bytes"], published(name).len() as u64);
        assert_eq!(write["total_bytes"], write["done_bytes"]);
        assert_eq!(write["written_bytes"], len as u64);
        let verify = last("verify");
        assert_eq!(
            (
                verify["done_bytes"].as_u64(),
                verify["total_bytes"].as_u64()
            ),
            (Some(len as u64), Some(len as u64))
        );
    }
}

#[test]
fn without_a_terminal_or_json_no_progress_is_shown() {
    if !tools() {
        return;
    }
    let server = serve_world();
    let node = TestNode::on_image_file("1.1.0");
    node.configure(newest(), &server.base_url(), "");
    let run = node.updog(&["--log-level", "warn", "update-image"]);
    assert_eq!(
        (run.code, run.stdout.as_str(), run.stderr.as_str()),
        (
            Some(0),
            "Update applied: aws-dev 1.2.0\n",
            "Starting update to 1.2.0\n"
        )
    );
}

#[test]
fn an_up_to_date_node_gets_no_update_required_exit_1_and_nothing_is_touched() {
    if !tools() {
        return;
    }
    let server = serve_world();
    let node = TestNode::on_image_file("1.2.0");
    node.configure(newest(), &server.base_url(), "");
    node.stage_stale_upgrade();
    let before = node.active_set();
    let run = node.updog(&["update-image"]);
    assert_eq!(
        (run.code, run.stdout.as_str(), run.stderr.as_str()),
        (Some(1), "", "No update required\n")
    );
    // Nothing was done: not even clear-inactive.
    assert_eq!(node.bits("B"), (2, 1, false));
    assert_eq!(node.active_set(), before);
    assert!(server.requests_for(".lz4").is_empty());
}

#[test]
fn a_disk_with_one_partition_set_is_refused_before_anything_is_written() {
    if !tools() {
        return;
    }
    let server = serve_world();
    let dir = tempfile::tempdir().unwrap();
    let (node, _disk) = Node::create_with(dir.path(), &DiskBuilder::new().single_bank()).unwrap();
    node.install(SetSelect::A, &images("1.1.0")).unwrap();
    node.boot().unwrap();
    let (metadata, targets) = support::served_urls(&server.base_url(), newest());
    let mut config = NodeConfig::new(&metadata, &targets);
    config.extra = format!("disk = \"{}\"\n", node.disk().display());
    std::fs::create_dir_all(node.sysroot().join("etc")).unwrap();
    std::fs::write(node.sysroot().join("etc/updog.toml"), config.toml()).unwrap();
    let before = std::fs::read(node.disk()).unwrap();

    let run = support::run_updog(node.sysroot(), &["update-image"]);
    assert_failed(
        &run,
        &[&format!(
            "Inactive partition is not available: {} has a single partition set",
            node.disk().display()
        )],
    );
    assert!(
        std::fs::read(node.disk()).unwrap() == before,
        "the disk was written"
    );
    assert!(
        server
            .requests_for(".lz4")
            .iter()
            .all(|r| r.path.contains("migrate_"))
    );
}

// ---- failures leave the node as it was ----------------------------------------------------------------------------

/// A 1.1.0 node with a stale applied upgrade in B, configured for `repo` on `server` with `extra` config.
fn failing_node(server: &FaultServer, repo: &FixtureRepo, extra: &str) -> (TestNode, ActiveSet) {
    let node = TestNode::on_image_file("1.1.0");
    node.configure(repo, &server.base_url(), extra);
    node.stage_stale_upgrade();
    let before = node.active_set();
    (node, before)
}

#[test]
fn a_dropped_connection_is_resumed_with_a_range_request() {
    if !tools() {
        return;
    }
    let server = serve_world();
    server.add_rule(Rule::new(PathMatch::suffix(root_image()), Fault::DropAfter(10_000)).first(1));
    let node = TestNode::on_image_file("1.1.0");
    node.configure(newest(), &server.base_url(), "");
    let run = node.updog(&["update-image"]);
    assert_updated(&run, "1.2.0", "Update applied: aws-dev 1.2.0\n");
    let requests = server.requests_for(&root_image());
    assert_eq!(requests.len(), 2, "{requests:#?}");
    assert_eq!(requests[1].header("range"), Some("bytes=10000-"));
    assert_eq!(requests[1].status, 206);
    node.assert_written("1.2.0");
}

#[test]
fn a_server_without_range_support_is_read_again_from_the_start() {
    if !tools() {
        return;
    }
    let server = serve_world();
    server.add_rule(Rule::new(
        PathMatch::suffix(root_image()),
        Fault::IgnoreRange,
    ));
    server.add_rule(Rule::new(PathMatch::suffix(root_image()), Fault::DropAfter(10_000)).first(1));
    let node = TestNode::on_image_file("1.1.0");
    node.configure(newest(), &server.base_url(), "");
    let run = node.updog(&["update-image"]);
    assert_updated(&run, "1.2.0", "Update applied: aws-dev 1.2.0\n");
    let requests = server.requests_for(&root_image());
    assert_eq!(requests.len(), 2);
    assert!(requests[1].range.is_some(), "it asked for the rest first");
    assert_eq!(requests[1].status, 200, "and got the whole file again");
    node.assert_written("1.2.0");
}

#[test]
fn a_stall_longer_than_the_stall_timeout_fails_and_changes_nothing() {
    if !tools() {
        return;
    }
    let server = serve_world();
    server.add_rule(Rule::new(
        PathMatch::suffix(root_image()),
        Fault::StallAfter {
            bytes: 10_000,
            duration: Duration::from_secs(60),
            then: AfterStall::Continue,
        },
    ));
    let (node, before) = failing_node(&server, newest(), "stall_timeout_seconds = 1\n");
    let started = Instant::now();
    let run = node.updog(&["update-image"]);
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_failed(
        &run,
        &[
            "Starting update to 1.2.0\n",
            &format!("Failed to download the root image {}", root_image()),
            "no data for 1 s (stall timeout) after byte 10000; giving up",
        ],
    );
    node.assert_unchanged_after_failure(&before, "1.1.0");
}

#[test]
fn a_corrupted_byte_in_the_last_image_fails_the_hash_check_and_changes_nothing() {
    if !tools() {
        return;
    }
    let server = serve_world();
    let hash_image = image_names("1.2.0").hash;
    server.add_rule(Rule::new(
        PathMatch::suffix(&hash_image),
        Fault::FlipByte(500),
    ));
    let (node, before) = failing_node(&server, newest(), "");
    let run = node.updog(&["update-image"]);
    assert_failed(
        &run,
        &[
            &format!("Failed to download the hash image {hash_image}"),
            "Hash mismatch",
        ],
    );
    // ROOT and BOOT were written in full; without a verified HASH the set still must not boot.
    assert!(
        node.partition_bytes(Role::Root(Bank::B), images("1.2.0").root.len())
            == images("1.2.0").root
    );
    node.assert_unchanged_after_failure(&before, "1.1.0");
}

/// A repository offering 1.2.0 whose ROOT target is `root` (compressed), the other images the real ones.
fn repo_with_root(dir: &Path, root: Vec<u8>) -> FixtureRepo {
    let names = image_names("1.2.0");
    let mut manifest = Manifest::default();
    manifest
        .add_update(NewUpdate {
            variant: VARIANT.into(),
            arch: ARCH.into(),
            version: "1.2.0".parse().unwrap(),
            max_version: None,
            images: names.clone(),
        })
        .unwrap();
    manifest
        .migrations
        .insert(("1.1.0".parse().unwrap(), "1.2.0".parse().unwrap()), vec![]);
    let contents = BTreeMap::from([
        (names.root.clone(), root),
        (names.boot.clone(), published(&names.boot)),
        (names.hash.clone(), published(&names.hash)),
    ]);
    support::custom_repo_with(&dir.join("custom"), &manifest, &contents)
}

#[test]
fn an_image_larger_than_its_partition_fails_and_changes_nothing() {
    if !tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // One byte more than ROOT's 8 MiB.
    let mut big = images("1.2.0").root;
    big.push(0);
    let repo = repo_with_root(dir.path(), chain::lz4_compress(&big));
    let server = FaultServer::serve(dir.path()).unwrap();
    let (node, before) = failing_node(&server, &repo, "");
    let root_b = node.status()["sets"]["B"]["root"].clone();
    let run = node.updog(&["update-image"]);
    assert_failed(
        &run,
        &[&format!(
            "The root image decompresses to more than {}#{}'s 8388608 bytes; nothing past the partition was written",
            root_b["disk"].as_str().unwrap(),
            root_b["number"]
        )],
    );
    // The partition after ROOT-B (HASH-B) was not touched.
    let hash_b = node.partition_bytes(Role::Hash(Bank::B), 4096);
    assert!(hash_b.iter().all(|&b| b == 0));
    node.assert_unchanged_after_failure(&before, "1.1.0");
}

#[test]
fn a_truncated_lz4_image_fails_and_changes_nothing() {
    if !tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut root = published(&image_names("1.2.0").root);
    root.truncate(root.len() - 100);
    let repo = repo_with_root(dir.path(), root);
    let server = FaultServer::serve(dir.path()).unwrap();
    let (node, before) = failing_node(&server, &repo, "");
    let run = node.updog(&["update-image"]);
    assert_failed(&run, &["The root image is not a valid lz4 frame stream"]);
    node.assert_unchanged_after_failure(&before, "1.1.0");
}

/// An `updog update-image` process stuck inside the ROOT write: the server stalls the root image after 10 000
/// bytes (for 60 s), and this returns once updog has requested it.
struct StuckInRoot {
    server: FaultServer,
    stall: RuleId,
    node: TestNode,
    before: ActiveSet,
    updog: std::process::Child,
}

impl StuckInRoot {
    fn start() -> Self {
        let server = serve_world();
        let stall = server.add_rule(Rule::new(
            PathMatch::suffix(root_image()),
            Fault::StallAfter {
                bytes: 10_000,
                duration: Duration::from_secs(60),
                then: AfterStall::Continue,
            },
        ));
        let (node, before) = failing_node(&server, newest(), "");
        let updog = support::updog_command(node.sysroot(), &["update-image"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while server.requests_for(&root_image()).is_empty() {
            assert!(
                Instant::now() < deadline,
                "updog never fetched the root image"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Self {
            server,
            stall,
            node,
            before,
            updog,
        }
    }
}

#[test]
fn a_second_updog_is_refused_and_killing_the_first_mid_image_changes_nothing() {
    if !tools() {
        return;
    }
    let stuck = StuckInRoot::start();
    let (server, stall, node, before, mut first) = (
        stuck.server,
        stuck.stall,
        stuck.node,
        stuck.before,
        stuck.updog,
    );
    let pid = first.id();
    // It is inside the ROOT write: the inactive set was cleared before the first byte.
    assert_eq!(node.bits("B"), (0, 0, false));

    let lock = node.sysroot().join("run/abupdate/updog.lock");
    let second = node.updog(&["update-image"]);
    assert_failed(
        &second,
        &[
            &format!("updog's state (trusted TUF metadata and caches) is in use: pid {pid} ("),
            &format!("holds lock {}. Wait for it to finish.", lock.display()),
        ],
    );
    for command in ["update-apply", "update-revert", "update"] {
        assert_eq!(
            node.updog(&[command]).code,
            Some(1),
            "{command} while locked"
        );
    }

    // signpost may not make the half-written set bootable meanwhile: it needs the disk's lock, which updog holds.
    for command in [
        "mark-inactive-valid",
        "upgrade-to-inactive",
        "cancel-upgrade",
        "clear-inactive",
    ] {
        let run = node.node.signpost(&[command]);
        assert_eq!(
            run.code, 1,
            "signpost {command} while updog writes ROOT: {run:?}"
        );
        assert!(
            run.stderr.starts_with(&format!(
                "OS disk {} is in use: pid {pid} (",
                node.node.disk().display()
            )),
            "{run:?}"
        );
    }
    assert_eq!(node.bits("B"), (0, 0, false));

    // Another sysroot naming the same disk (through another path) is refused too: the lock is the disk's.
    let other = tempfile::tempdir().unwrap();
    let alias = other.path().join("same-disk.img");
    std::os::unix::fs::symlink(node.node.disk(), &alias).unwrap();
    copy_tree(node.sysroot(), &other.path().join("sysroot"));
    let other_sysroot = other.path().join("sysroot");
    for command in ["update-image", "update-apply", "update-revert"] {
        let run = support::run_updog(
            &other_sysroot,
            &["--disk", alias.to_str().unwrap(), command],
        );
        assert_failed(
            &run,
            &[&format!(
                "OS disk {} is in use: pid {pid} (",
                alias.display()
            )],
        );
    }
    assert_eq!(node.bits("B"), (0, 0, false));

    first.kill().unwrap();
    first.wait().unwrap();
    node.assert_unchanged_after_failure(&before, "1.1.0");

    // The next run starts over and finishes.
    server.remove_rule(stall);
    assert_updated(
        &node.updog(&["update-image"]),
        "1.2.0",
        "Update applied: aws-dev 1.2.0\n",
    );
    node.assert_written("1.2.0");
}

#[test]
fn sigterm_mid_image_exits_by_the_signal_leaving_the_set_cleared_and_the_locks_free() {
    if !tools() {
        return;
    }
    let stuck = StuckInRoot::start();
    let (server, stall, node, before, mut updog) = (
        stuck.server,
        stuck.stall,
        stuck.node,
        stuck.before,
        stuck.updog,
    );
    let status = std::process::Command::new("kill")
        .args(["-TERM", &updog.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = updog.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&exit),
        Some(15),
        "{exit:?}"
    );
    // As after SIGKILL: the set stays cleared, the running set untouched, and the kernel released both locks.
    node.assert_unchanged_after_failure(&before, "1.1.0");
    server.remove_rule(stall);
    assert_updated(
        &node.updog(&["update-image"]),
        "1.2.0",
        "Update applied: aws-dev 1.2.0\n",
    );
}

// ---- downloads that survive a crash -------------------------------------------------------------------------------

/// Compressed bytes between checkpoints in these tests (updog.toml's smallest `checkpoint_interval_bytes`).
const INTERVAL: u64 = 4096;

/// The offsets in an lz4 frame stream just after each block: where a checkpoint can be.
fn block_ends(lz4: &[u8]) -> Vec<u64> {
    let word = |at: usize| u32::from_le_bytes(lz4[at..at + 4].try_into().unwrap());
    assert_eq!(word(0), 0x184D_2204, "one lz4 frame");
    let flg = lz4[4];
    let mut at = 7 + if flg & 0b1000 != 0 { 8 } else { 0 };
    let mut ends = Vec::new();
    loop {
        let size = word(at) & 0x7FFF_FFFF;
        if size == 0 {
            return ends;
        }
        at += 4 + size as usize + if flg & 0b1_0000 != 0 { 4 } else { 0 };
        ends.push(at as u64);
    }
}

/// The checkpoint's compressed offset in the root image, if it has one.
fn checkpointed_root_offset(node: &TestNode) -> Option<u64> {
    let path = node
        .sysroot()
        .join("var/lib/updog/download-checkpoint.json");
    let checkpoint: Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    let current = checkpoint.get("current")?;
    (current["signed"]["image"] == "root")
        .then(|| current["resume"]["position"]["compressed"].as_u64())?
}

/// Runs `updog update-image` with the server stalling the root image `target` at byte `stall_at`, waits until the
/// checkpoint reaches `at_least`, and kills it with SIGKILL; the checkpointed offset it left.
fn kill_in_root(
    node: &TestNode,
    server: &FaultServer,
    target: &str,
    stall_at: u64,
    at_least: u64,
) -> u64 {
    let stall = server.add_rule(Rule::new(
        PathMatch::suffix(target),
        Fault::StallAfter {
            bytes: stall_at,
            duration: Duration::from_secs(60),
            then: AfterStall::Continue,
        },
    ));
    let mut updog = support::updog_command(node.sysroot(), &["update-image"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if checkpointed_root_offset(node).is_some_and(|o| o >= at_least) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no checkpoint at byte {at_least} or later (stalled at {stall_at}); last: {:?}",
            checkpointed_root_offset(node)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    updog.kill().unwrap();
    updog.wait().unwrap();
    server.remove_rule(stall);
    // Read after the kill: a later checkpoint may have come in between.
    checkpointed_root_offset(node).unwrap()
}

#[test]
fn a_run_killed_at_90_percent_of_root_resumes_from_its_checkpoint_with_a_range_request() {
    if !tools() {
        return;
    }
    let server = serve_world();
    let root = published(&root_image());
    let len = root.len() as u64;
    // The first block boundary at or after 90 %: the server stalls there, updog is killed there.
    let stall_at = *block_ends(&root)
        .iter()
        .find(|&&end| end * 10 >= len * 9)
        .unwrap();
    let node = TestNode::on_image_file("1.1.0");
    node.configure(
        newest(),
        &server.base_url(),
        &format!("checkpoint_interval_bytes = {INTERVAL}\n"),
    );
    let before = node.active_set();
    let checkpointed = kill_in_root(&node, &server, &root_image(), stall_at, stall_at - INTERVAL);
    assert_eq!(
        node.bits("B"),
        (0, 0, false),
        "a killed run leaves the set cleared"
    );

    let run = node.updog(&["update-image"]);
    assert_updated(&run, "1.2.0", "Update applied: aws-dev 1.2.0\n");
    assert!(
        run.stderr
            .contains("Resuming the root image from a checkpoint"),
        "{run:#?}"
    );
    let requests = server.requests_for(&root_image());
    let last = requests.last().unwrap();
    assert_eq!(
        last.header("range"),
        Some(format!("bytes={checkpointed}-").as_str())
    );
    assert_eq!(last.status, 206);
    assert!(
        checkpointed + INTERVAL >= stall_at && stall_at * 10 >= len * 9,
        "{checkpointed} of {len}"
    );
    // Byte-identical to a clean install, valid, the running set untouched, no checkpoint left.
    node.assert_written("1.2.0");
    assert_eq!(node.active_set(), before);
    assert!(
        !node
            .sysroot()
            .join("var/lib/updog/download-checkpoint.json")
            .exists()
    );
    eprintln!(
        "killed at byte {stall_at} of {len} ({:.1} %), resumed from byte {checkpointed}: {} bytes downloaded twice",
        stall_at as f64 * 100.0 / len as f64,
        stall_at - checkpointed
    );
    node.boot_expecting(SetSelect::A, "1.1.0");
}

#[test]
fn a_checkpoint_for_an_image_the_repository_no_longer_lists_is_dropped_and_the_image_starts_over() {
    if !tools() {
        return;
    }
    // First a repository whose ROOT is the same image compressed differently (another sha256).
    let dir = tempfile::tempdir().unwrap();
    let other_root = {
        use std::io::Write as _;
        let info =
            lz4_flex::frame::FrameInfo::new().block_size(lz4_flex::frame::BlockSize::Max256KB);
        let mut encoder = lz4_flex::frame::FrameEncoder::with_frame_info(info, Vec::new());
        encoder.write_all(&images("1.2.0").root).unwrap();
        encoder.finish().unwrap()
    };
    assert!(other_root != published(&root_image()));
    let stall_at = other_root.len() as u64 * 9 / 10;
    let repo = repo_with_root(dir.path(), other_root);
    let custom_server = FaultServer::serve(dir.path()).unwrap();
    let node = TestNode::on_image_file("1.1.0");
    let extra = format!("checkpoint_interval_bytes = {INTERVAL}\n");
    node.configure(&repo, &custom_server.base_url(), &extra);
    kill_in_root(&node, &custom_server, &root_image(), stall_at, 1);

    // Then the real one: the checkpoint names a sha256 it does not list.
    let server = serve_world();
    node.configure(newest(), &server.base_url(), &extra);
    let run = node.updog(&["update-image"]);
    assert_updated(&run, "1.2.0", "Update applied: aws-dev 1.2.0\n");
    assert!(
        run.stderr
            .contains("Not resuming from the download checkpoint")
            && run.stderr.contains("no longer lists the same images"),
        "{run:#?}"
    );
    let requests = server.requests_for(&root_image());
    assert_eq!(requests.len(), 1, "{requests:#?}");
    assert_eq!(requests[0].header("range"), None);
    node.assert_written("1.2.0");
    assert!(
        !node
            .sysroot()
            .join("var/lib/updog/download-checkpoint.json")
            .exists()
    );
}

#[test]
fn max_rate_holds_the_image_downloads_to_at_least_their_size_over_the_rate() {
    if !tools() {
        return;
    }
    let server = serve_world();
    let node = TestNode::on_image_file("1.1.0");
    node.configure(newest(), &server.base_url(), "");
    let names = image_names("1.2.0");
    let images: u64 = [&names.root, &names.boot, &names.hash]
        .iter()
        .map(|name| published(name).len() as u64)
        .sum();
    let rate = 20_000;
    let started = Instant::now();
    let run = node.updog(&["update-image", "--max-rate", &rate.to_string()]);
    let took = started.elapsed();
    assert_updated(&run, "1.2.0", "Update applied: aws-dev 1.2.0\n");
    node.assert_written("1.2.0");
    // The images alone, less the bucket's quarter second of burst: a lower bound only.
    let at_least = Duration::from_secs_f64((images - rate / 4) as f64 / rate as f64);
    assert!(
        took >= at_least,
        "{images} bytes at {rate} B/s took {took:?}"
    );
}

// ---- failures on a loop device ---------------------------------------------------------------------------------

#[test]
fn on_a_loop_device_a_corrupt_image_or_a_read_only_partition_changes_nothing() {
    if !(tools()
        && require_root()
        && require_tool("losetup")
        && require_tool("partx")
        && require_tool("blockdev"))
    {
        return;
    }
    let _loop = loop_lock();
    let server = serve_world();
    let node = TestNode::on_loop_device("1.1.0");
    node.configure(newest(), &server.base_url(), "");
    node.stage_stale_upgrade();
    let before = node.active_set();

    // A flipped byte in ROOT: the hash check fails at the end of the stream.
    let flip = server.add_rule(Rule::new(
        PathMatch::suffix(root_image()),
        Fault::FlipByte(20_000),
    ));
    assert_failed(&node.updog(&["update-image"]), &["Hash mismatch"]);
    node.assert_unchanged_after_failure(&before, "1.1.0");
    server.remove_rule(flip);

    // An I/O error: the inactive ROOT's node is read-only (EPERM on the first write).
    node.stage_stale_upgrade();
    let root_b = node
        .device
        .as_ref()
        .unwrap()
        .partition_node(node.disk.number(Role::Root(Bank::B)));
    let blockdev = |flag: &str| {
        let status = std::process::Command::new("blockdev")
            .arg(flag)
            .arg(&root_b)
            .status()
            .unwrap();
        assert!(status.success(), "blockdev {flag}");
    };
    blockdev("--setro");
    let run = node.updog(&["update-image"]);
    blockdev("--setrw");
    assert_failed(
        &run,
        &[&format!(
            "Failed to write the root image to {} at byte 0: Operation not permitted",
            root_b.display()
        )],
    );
    node.assert_unchanged_after_failure(&before, "1.1.0");

    // With the faults gone, the same node updates.
    assert_updated(
        &node.updog(&["update-image"]),
        "1.2.0",
        "Update applied: aws-dev 1.2.0\n",
    );
    node.assert_written("1.2.0");
}

/// The chain publishes exactly the bytes `chain::release_images` builds (the tests compare partitions with them).
#[test]
fn the_published_images_are_the_release_images() {
    if !tools() {
        return;
    }
    let names = image_names("1.2.0");
    let images = images("1.2.0");
    for (name, image) in [
        (&names.root, &images.root),
        (&names.boot, &images.boot),
        (&names.hash, &images.hash),
    ] {
        let mut decoded = Vec::new();
        lz4_flex::frame::FrameDecoder::new(published(name).as_slice())
            .read_to_end(&mut decoded)
            .unwrap();
        assert!(decoded == *image, "{name}");
    }
}
