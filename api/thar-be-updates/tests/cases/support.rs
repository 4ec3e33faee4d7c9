//! The test world: the fixture chain (built once per test binary), nodes running a release, and running
//! thar-be-updates on them and waiting for its detached command to finish.

use repo_fixtures::chain::{self, ChainOptions, FixtureRepo};
use repo_fixtures::disk::{Bank, DiskBuilder, FixtureDisk, Role};
use repo_fixtures::http::FaultServer;
use repo_fixtures::images::OsImages;
use repo_fixtures::node::Node;
use repo_fixtures::require::require_tool;
use serde_json::Value;
use signpost::{SetSelect, State};
use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

pub const VARIANT: &str = "aws-dev";
pub const ARCH: &str = std::env::consts::ARCH;

/// How long a detached command may take before a test calls it hung.
const FINISH_WITHIN: Duration = Duration::from_secs(120);

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// The chain's three steps under one directory (serve it).
pub struct World {
    pub dir: PathBuf,
    pub steps: Vec<FixtureRepo>,
}

pub fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("thar-be-updates-world");
        if dir.exists() {
            std::fs::remove_dir_all(&dir).unwrap();
        }
        std::fs::create_dir_all(&dir).unwrap();
        let steps = runtime()
            .block_on(chain::build_chain(&dir, &ChainOptions::default()))
            .expect("build the chain");
        World { dir, steps }
    })
}

/// The chain step whose newest release is `version`.
pub fn step(version: &str) -> &'static FixtureRepo {
    let index = chain::RELEASES.iter().position(|r| *r == version).unwrap();
    &world().steps[index]
}

pub fn serve_world() -> FaultServer {
    FaultServer::serve(&world().dir).unwrap()
}

/// The uncompressed images of `version` (the bytes the chain publishes, compressed).
pub fn images(version: &str) -> OsImages {
    static IMAGES: OnceLock<Mutex<BTreeMap<String, OsImages>>> = OnceLock::new();
    let cache = IMAGES.get_or_init(Default::default);
    if let Some(images) = cache.lock().unwrap().get(version) {
        return images.clone();
    }
    let scratch = tempfile::tempdir().unwrap();
    let root_json = runtime().block_on(chain::fixture_root_json()).unwrap();
    let images =
        chain::release_images(VARIANT, ARCH, version, &root_json, scratch.path()).expect("images");
    cache
        .lock()
        .unwrap()
        .insert(version.to_string(), images.clone());
    images
}

/// The image tools a node with real images needs (skip locally, fail in CI).
pub fn tools() -> bool {
    ["mke2fs", "veritysetup", "debugfs"]
        .iter()
        .all(|t| require_tool(t))
}

/// What one thar-be-updates run did.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// A node running `version` from set A, on a disk-image file.
pub struct TestNode {
    _dir: tempfile::TempDir,
    pub node: Node,
    pub disk: FixtureDisk,
}

impl TestNode {
    pub fn new(version: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (node, disk) = Node::create_with(dir.path(), &DiskBuilder::new()).unwrap();
        node.install(SetSelect::A, &images(version)).unwrap();
        let this = Self {
            _dir: dir,
            node,
            disk,
        };
        this.boot_expecting(SetSelect::A, version);
        let run = this.node.signpost(&["mark-successful-boot"]);
        assert_eq!(run.code, 0, "{run:?}");
        this
    }

    pub fn sysroot(&self) -> &Path {
        self.node.sysroot()
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.sysroot().join(relative)
    }

    pub fn boot_expecting(&self, set: SetSelect, version: &str) {
        let outcome = self.node.boot().expect("the node boots");
        assert_eq!(outcome.set, set, "{outcome:?}");
        let release = outcome.release.expect("a node with images has a release");
        assert_eq!(release.version_id, version);
    }

    /// updog.toml for `repo` served by `server`, with this node's disk and `extra` lines.
    pub fn configure(&self, repo: &FixtureRepo, server: &FaultServer, extra: &str) {
        let name = repo.dir.file_name().unwrap().to_string_lossy().into_owned();
        let (metadata, targets) = repo_fixtures::verify::served_urls(&server.base_url(), &name);
        std::fs::create_dir_all(self.path("etc")).unwrap();
        std::fs::write(
            self.path("etc/updog.toml"),
            format!(
                "metadata_base_url = \"{metadata}\"\ntargets_base_url = \"{targets}\"\nseed = 1487\n\
                 version_lock = \"latest\"\nignore_waves = false\n\
                 disk = \"{}\"\n{extra}",
                self.node.disk().display()
            ),
        )
        .unwrap();
    }

    /// `/etc/thar-be-updates.toml`.
    pub fn set_version_lock(&self, lock: &str) {
        std::fs::write(
            self.path("etc/thar-be-updates.toml"),
            format!("version-lock = \"{lock}\"\n"),
        )
        .unwrap();
    }

    pub fn tbu(&self, args: &[&str]) -> Run {
        run_tbu(self.sysroot(), args)
    }

    /// Runs `command`, which must be accepted, and waits for it to finish; returns the status.
    pub fn complete(&self, command: &str) -> Value {
        let before = self.status_if_any();
        let run = self.tbu(&[command]);
        assert_eq!(
            (run.code, run.stdout.as_str(), run.stderr.as_str()),
            (Some(0), "", ""),
            "{command}: {run:#?}\nlog: {}",
            self.log(command)
        );
        let previous = before.map(|s| s["most_recent_command"]["timestamp"].clone());
        let deadline = Instant::now() + FINISH_WITHIN;
        loop {
            let status = self.status();
            let recent = &status["most_recent_command"];
            if status["update_progress"].is_null()
                && Some(&recent["timestamp"]) != previous.as_ref()
                && recent["cmd_type"] == command
            {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "{command} did not finish: {status:#}\nlog: {}",
                self.log(command)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Like [`TestNode::complete`], and the command must have succeeded.
    pub fn succeed(&self, command: &str) -> Value {
        let status = self.complete(command);
        assert_eq!(
            status["most_recent_command"]["cmd_status"],
            "Success",
            "{command}: {status:#}\nlog: {}",
            self.log(command)
        );
        assert_eq!(status["most_recent_command"]["exit_status"], 0);
        status
    }

    pub fn log(&self, command: &str) -> String {
        std::fs::read_to_string(self.path(&format!("run/cache/thar-be-updates/{command}.log")))
            .unwrap_or_default()
    }

    pub fn status_path(&self) -> PathBuf {
        self.path("run/cache/thar-be-updates/status.json")
    }

    pub fn status_if_any(&self) -> Option<Value> {
        std::fs::read_to_string(self.status_path())
            .ok()
            .map(|text| serde_json::from_str(&text).expect("status.json is JSON"))
    }

    pub fn status(&self) -> Value {
        self.status_if_any().expect("status.json exists")
    }

    pub fn disk_state(&self) -> State {
        State::load(&self.node.location()).unwrap()
    }

    /// `(priority, tries_left, successful)` of set B.
    pub fn bits_b(&self) -> (u8, u8, bool) {
        let flags = self.disk_state().gptprio(SetSelect::B).unwrap();
        (flags.priority(), flags.tries_left(), flags.successful())
    }

    /// Set B holds exactly `version`'s images.
    pub fn assert_b_holds(&self, version: &str) {
        let images = images(version);
        for (role, image) in [
            (Role::Boot(Bank::B), &images.boot),
            (Role::Root(Bank::B), &images.root),
            (Role::Hash(Bank::B), &images.hash),
        ] {
            let partition = self.disk.partition(role).unwrap();
            let mut bytes = vec![0; image.len()];
            std::fs::File::open(&self.disk.path)
                .unwrap()
                .read_exact_at(&mut bytes, partition.offset_bytes())
                .unwrap();
            assert!(
                bytes == *image,
                "{role:?} does not hold the {version} image"
            );
        }
    }
}

/// `thar-be-updates --sysroot SYSROOT ARGS…`, with no proxy in the environment; returns once the parent exits.
pub fn run_tbu(sysroot: &Path, args: &[&str]) -> Run {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_thar-be-updates"));
    command.args(args).arg("--sysroot").arg(sysroot);
    for var in [
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "ALL_PROXY",
        "all_proxy",
    ] {
        command.env_remove(var);
    }
    // As the apiserver does: read stdout and stderr to EOF. A child that kept them would hang this.
    let mut child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let (mut stdout, mut stderr) = (String::new(), String::new());
        out.read_to_string(&mut stdout).unwrap();
        err.read_to_string(&mut stderr).unwrap();
        let _ = sender.send((stdout, stderr));
    });
    // Bounds a hang: a detached child holding the parent's stdout or stderr would keep them open for as long as
    // the command runs (minutes, in the stalled-server test).
    let (stdout, stderr) = receiver
        .recv_timeout(Duration::from_secs(60))
        .expect("thar-be-updates' stdout and stderr reach EOF when the parent exits");
    let status = child.wait().unwrap();
    Run {
        code: status.code(),
        stdout,
        stderr,
    }
}

/// Asserts that `run` was refused with `code` and a message containing `words`.
#[track_caller]
pub fn assert_refused(run: &Run, code: i32, words: &str) {
    assert_eq!(run.code, Some(code), "{run:#?}");
    assert_eq!(run.stdout, "", "{run:#?}");
    assert!(
        run.stderr.contains(words),
        "stderr lacks {words:?}: {run:#?}"
    );
}

/// The image object of `version` as the status names it.
pub fn image(version: &str) -> Value {
    serde_json::json!({"arch": ARCH, "version": version, "variant": VARIANT})
}
