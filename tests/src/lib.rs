//! The harness of the end-to-end tests: a simulated node (disk-image file + sysroot, release 1.0.0 booted and
//! marked good) with the signed fixture chain served over HTTP, its `apiserver` running, and the real binaries of
//! this workspace (updog, migrator, apiserver, thar-be-updates, apiclient) found beside the test executable.
//!
//! The binaries are the workspace's: `cargo test --workspace` builds them (CI runs exactly that). When they are
//! missing, a test fails under CI and is skipped, saying so, elsewhere.

use repo_fixtures::api::ApiServer;
use repo_fixtures::http::{AfterStall, Fault, PathMatch, Rule, RuleId};
use repo_fixtures::lifecycle::{self, Binaries, Published};
use repo_fixtures::node::{BootOutcome, Node};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// The workspace's binaries, from the target directory this test runs from; `None` (after saying why) when they are
/// not built and this is not CI.
pub fn binaries(test: &str) -> Option<Binaries> {
    let exe = std::env::current_exe().expect("the test executable's path");
    // target/<profile>/deps/<test> → target/<profile>
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("a target directory");
    match Binaries::in_dir(dir) {
        Ok(binaries) => Some(binaries),
        Err(missing) => {
            assert!(
                std::env::var_os("CI").is_none_or(|v| v.is_empty()),
                "CI must build the workspace's binaries (cargo test --workspace): {missing}"
            );
            eprintln!("SKIPPED {test}: {missing}");
            None
        }
    }
}

/// A node on 1.0.0 with the API up.
pub struct ApiWorld {
    pub binaries: Binaries,
    pub published: Published,
    pub node: Node,
    server: Option<ApiServer>,
    // Last, so the files outlive the server.
    pub dir: tempfile::TempDir,
}

impl ApiWorld {
    /// Publishes the chain, installs 1.0.0, boots and marks it, starts apiserver.
    pub fn new(binaries: Binaries) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let published = lifecycle::publish(dir.path(), &binaries, 0).expect("publish the chain");
        let node = lifecycle::install_node(&dir.path().join("node"), &published, &binaries)
            .expect("install the node");
        let booted = lifecycle::boot_and_settle(&node, &binaries).expect("first boot");
        assert_eq!(version_of(&booted), "1.0.0");
        let server = ApiServer::start(&binaries, &node).expect("start apiserver");
        Self {
            binaries,
            published,
            node,
            server: Some(server),
            dir,
        }
    }

    pub fn socket(&self) -> PathBuf {
        self.node.sysroot().join("run/api.sock")
    }

    /// The server (panics after [`ApiWorld::reboot`] failed to restart it).
    pub fn server(&self) -> &ApiServer {
        self.server.as_ref().expect("apiserver running")
    }

    /// Runs apiclient with `--socket-path` and `args`.
    pub fn apiclient(&self, args: &[&str]) -> Output {
        Command::new(&self.binaries.apiclient)
            .arg("--socket-path")
            .arg(self.socket())
            .args(args)
            .output()
            .expect("run apiclient")
    }

    /// Runs apiclient and requires success; returns stdout.
    pub fn apiclient_ok(&self, args: &[&str]) -> String {
        let output = self.apiclient(args);
        assert!(
            output.status.success(),
            "apiclient {args:?} failed ({}):\nstdout: {}\nstderr: {}\napiserver log:\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
            self.server().log_text()
        );
        String::from_utf8(output.stdout).expect("UTF-8 output")
    }

    /// `apiclient raw -u URI [-m METHOD]`, as JSON.
    pub fn raw_json(&self, uri: &str) -> serde_json::Value {
        let text = self.apiclient_ok(&["raw", "-u", uri]);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{uri} gave non-JSON ({e}): {text}"))
    }

    /// The update status as the API serves it.
    pub fn status(&self) -> serde_json::Value {
        self.raw_json("/updates/status")
    }

    /// A reboot: the API server stops, the node boots (bootloader, dm-verity, migrator, mark-successful-boot), the
    /// API server starts again. Returns the boot.
    pub fn reboot(&mut self) -> BootOutcome {
        if let Some(server) = self.server.take() {
            server.stop().expect("apiserver stops on SIGTERM");
        }
        let booted = lifecycle::boot_and_settle(&self.node, &self.binaries).expect("boot");
        self.server = Some(ApiServer::start(&self.binaries, &self.node).expect("start apiserver"));
        booted
    }

    /// How many reboots the API's reboot command asked for, once it has recorded `expected` (or 10 s passed).
    pub fn reboot_requests(&self, expected: usize) -> usize {
        lifecycle::wait_for_reboot_requests(&self.node, expected)
    }

    /// The live settings, as (key, JSON value).
    pub fn settings(&self) -> Vec<(String, String)> {
        lifecycle::read_settings(&lifecycle::datastore_dir(&self.node)).expect("read settings")
    }

    /// Polls `GET /updates/status` (through `apiclient raw`, as the update operator's agent does) until `done`
    /// holds; panics naming `what` after `budget`.
    pub fn poll_status(
        &self,
        budget: Duration,
        what: &str,
        done: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + budget;
        loop {
            let output = self.apiclient(&["raw", "-u", "/updates/status"]);
            if output.status.success() {
                let status: serde_json::Value = serde_json::from_slice(&output.stdout)
                    .unwrap_or_else(|e| panic!("status is not JSON ({e}): {output:?}"));
                if done(&status) {
                    return status;
                }
                assert!(Instant::now() < deadline, "{what}: still {status}");
            } else {
                assert!(Instant::now() < deadline, "{what}: {output:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Makes the repository's server stall for `seconds` after the first 64 KiB of any ROOT image, so a prepare
    /// sits inside its download; remove the rule to let later downloads run.
    pub fn stall_root_images(&self, seconds: u64) -> RuleId {
        self.published.server.add_rule(Rule::new(
            PathMatch::suffix("root.ext4.lz4"),
            Fault::StallAfter {
                bytes: 64 * 1024,
                duration: Duration::from_secs(seconds),
                then: AfterStall::Continue,
            },
        ))
    }

    /// signpost's view of the disk: which set boots next.
    pub fn next_set(&self) -> signpost::SetSelect {
        let state = signpost::State::load(&self.node.location()).expect("read the GPT");
        state.next().expect("a set boots next")
    }
}

/// The version a boot came up in.
pub fn version_of(booted: &BootOutcome) -> String {
    booted
        .release
        .as_ref()
        .expect("the node carries images")
        .version_id
        .clone()
}

/// Sends `signal` to the process `pid` (as a reboot or an operator's `kill` would); a process already gone is fine.
pub fn signal_process(pid: i64, signal: rustix::process::Signal) {
    let pid = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
        .unwrap_or_else(|| panic!("{pid} is not a pid"));
    let _ = rustix::process::kill_process(pid, signal);
}

/// stderr as text.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Whether a path exists (for readable assertions).
pub fn exists(path: &Path) -> bool {
    path.symlink_metadata().is_ok()
}
