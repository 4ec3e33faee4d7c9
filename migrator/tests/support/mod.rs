//! The simulated node the migrator tests run on: a sysroot holding the datastore directory, the
//! cached repository (a fixture repo's metadata/ and targets/ copied where updog caches them),
//! the image's root.json and os-release; and the fixture release chain signed with the real
//! fixture migrations built from this crate.

#![allow(dead_code)] // each test file uses part of it

use datastore::{Committed, FilesystemDataStore, Key, KeyType};
use repo_fixtures::chain::{self, ChainOptions, FixtureRepo, MigrationPayloads};
use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

pub const MIGRATOR: &str = env!("CARGO_BIN_EXE_migrator");
/// The same command with the crash-test hook (`MIGRATOR_KILL_AT`) on; test builds only.
pub const MIGRATOR_KILL_POINTS: &str = env!("CARGO_BIN_EXE_migrator-kill-points");
pub const ADD_MOTD: &str = "migrate_v1.1.0_add-motd-default.lz4";
pub const RENAME_HOSTNAME: &str = "migrate_v1.2.0_rename-hostname-setting.lz4";

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The fixture migrations by target name, as `chain::MIGRATIONS` names them.
pub fn payloads() -> MigrationPayloads {
    assert_eq!(chain::MIGRATIONS[0].2, ADD_MOTD);
    assert_eq!(chain::MIGRATIONS[1].2, RENAME_HOSTNAME);
    MigrationPayloads::from([
        (
            ADD_MOTD.to_string(),
            std::fs::read(env!("CARGO_BIN_EXE_fixture-add-motd-default")).unwrap(),
        ),
        (
            RENAME_HOSTNAME.to_string(),
            std::fs::read(env!("CARGO_BIN_EXE_fixture-rename-hostname-setting")).unwrap(),
        ),
    ])
}

/// The chain 1.0.0 → 1.1.0 → 1.2.0 with real migrations, built once per test binary.
pub fn chain_steps() -> &'static [FixtureRepo] {
    static CHAIN: OnceLock<(tempfile::TempDir, Vec<FixtureRepo>)> = OnceLock::new();
    &CHAIN
        .get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            let steps = runtime()
                .block_on(chain::build_chain_with_migrations(
                    dir.path(),
                    &ChainOptions::default(),
                    &payloads(),
                ))
                .unwrap();
            (dir, steps)
        })
        .1
}

pub fn step(release: &str) -> &'static FixtureRepo {
    chain_steps()
        .iter()
        .find(|r| r.dir.ends_with(format!("chain-{release}")))
        .unwrap()
}

/// A node: `<sysroot>/var/lib/bottlerocket/datastore`, `/var/cache/bottlerocket-metadata`,
/// `/var/lib/bottlerocket-migrations`, `/usr/share/updog/root.json`, `/usr/lib/os-release`,
/// plus `markers/` (where the fixture migrations record their runs) and `tmp/` (TMPDIR).
pub struct Node {
    pub dir: tempfile::TempDir,
}

impl Node {
    pub fn new(repo: &FixtureRepo, os_version: &str) -> Self {
        let node = Self {
            dir: tempfile::tempdir().unwrap(),
        };
        for d in [
            node.datastore_dir(),
            node.markers_dir(),
            node.tmp_dir(),
            node.sysroot().join("usr/share/updog"),
            node.sysroot().join("usr/lib"),
        ] {
            std::fs::create_dir_all(d).unwrap();
        }
        node.install_repo(repo);
        node.set_os_version(os_version);
        node
    }

    pub fn sysroot(&self) -> &Path {
        self.dir.path()
    }
    pub fn datastore_dir(&self) -> PathBuf {
        self.sysroot().join("var/lib/bottlerocket/datastore")
    }
    pub fn metadata_dir(&self) -> PathBuf {
        self.sysroot().join("var/cache/bottlerocket-metadata")
    }
    pub fn migrations_dir(&self) -> PathBuf {
        self.sysroot().join("var/lib/bottlerocket-migrations")
    }
    pub fn root_json(&self) -> PathBuf {
        self.sysroot().join("usr/share/updog/root.json")
    }
    pub fn markers_dir(&self) -> PathBuf {
        self.sysroot().join("markers")
    }
    pub fn tmp_dir(&self) -> PathBuf {
        self.sysroot().join("tmp")
    }

    /// Caches `repo` as updog does before a reboot (and takes its trusted root as the image's).
    pub fn install_repo(&self, repo: &FixtureRepo) {
        for dir in [self.metadata_dir(), self.migrations_dir()] {
            if dir.exists() {
                std::fs::remove_dir_all(&dir).unwrap();
            }
        }
        chain::copy_dir(&repo.metadata_dir(), &self.metadata_dir()).unwrap();
        chain::copy_dir(&repo.targets_dir(), &self.migrations_dir()).unwrap();
        std::fs::copy(repo.trusted_root(), self.root_json()).unwrap();
    }

    /// The booted image's os-release.
    pub fn set_os_version(&self, version: &str) {
        std::fs::write(
            self.sysroot().join("usr/lib/os-release"),
            format!(
                "NAME=Bottlerocket\nID=bottlerocket\nVERSION_ID={version}\nPRETTY_NAME=\"Bottlerocket OS {version} (aws-dev)\"\nVARIANT_ID=aws-dev\nBUILD_ID=fixture\n"
            ),
        )
        .unwrap();
    }

    /// The cached file of a target (`<sha256>.<name>` in the migration directory).
    pub fn cached_target(&self, name: &str) -> PathBuf {
        std::fs::read_dir(self.migrations_dir())
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .ends_with(&format!(".{name}"))
            })
            .unwrap_or_else(|| panic!("no cached target {name}"))
    }

    /// Creates the datastore at `version` (as storewolf would) holding `contents`.
    pub fn create_datastore(&self, version: &str, contents: &Contents) -> PathBuf {
        let data =
            migrator::chain::create_datastore(&self.datastore_dir(), &version.parse().unwrap())
                .unwrap();
        // Set up fast (no fsync per key), then made durable once, as a migration's output is.
        let store = FilesystemDataStore::new(&data).durability(datastore::Durability::Deferred);
        contents.write(&store);
        store.sync().unwrap();
        data
    }

    /// The migrator command with the service's arguments, `--sysroot` this node.
    pub fn migrator(&self) -> Command {
        self.migrator_command(MIGRATOR)
    }

    /// [`Node::migrator`], run by `migrator-kill-points` (which obeys `MIGRATOR_KILL_AT`).
    pub fn migrator_with_kill_points(&self) -> Command {
        self.migrator_command(MIGRATOR_KILL_POINTS)
    }

    fn migrator_command(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        command
            .arg("--datastore-path")
            .arg(self.datastore_dir().join("current"))
            .arg("--migration-directory")
            .arg(self.migrations_dir())
            .arg("--root-path")
            .arg(self.root_json())
            .arg("--metadata-directory")
            .arg(self.metadata_dir())
            .arg("--migrate-to-version-from-os-release")
            .arg("--sysroot")
            .arg(self.sysroot())
            .arg("--log-level")
            .arg("debug")
            .env("FIXTURE_MIGRATION_MARKER_DIR", self.markers_dir())
            .env("TMPDIR", self.tmp_dir())
            .env_remove("MIGRATOR_KILL_AT")
            .env_remove("FIXTURE_MIGRATION_FAULT")
            .env_remove("FIXTURE_MIGRATION_PROBE")
            .env_remove("FIXTURE_MIGRATION_PIDS");
        command
    }

    pub fn run_migrator(&self) -> Output {
        self.migrator().output().unwrap()
    }

    /// The data directory `current` resolves to.
    pub fn current_data(&self) -> PathBuf {
        std::fs::canonicalize(self.datastore_dir().join("current")).unwrap()
    }

    pub fn current_version(&self) -> String {
        migrator::chain::current_version(&self.datastore_dir())
            .unwrap()
            .to_string()
    }

    /// Every file under the data directory `current` resolves to, with its bytes (the record of
    /// the source copy excluded: it is migrator's bookkeeping, not settings).
    pub fn current_tree(&self) -> BTreeMap<String, Vec<u8>> {
        tree(&self.current_data())
    }

    /// The names in the datastore directory.
    pub fn entries(&self) -> BTreeSet<String> {
        names(&self.datastore_dir())
    }

    pub fn markers(&self) -> BTreeSet<String> {
        names(&self.markers_dir())
    }

    pub fn clear_markers(&self) {
        for name in self.markers() {
            std::fs::remove_file(self.markers_dir().join(name)).unwrap();
        }
    }
}

pub fn names(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

/// Files under a datastore directory with their bytes, `.migrated-from` excluded.
pub fn tree(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            if rel == migrator::gc::SOURCE_RECORD {
                continue;
            }
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                out.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    walk(root, root, &mut out);
    out
}

/// Everything under a directory: path → (kind, mode, link target or bytes). For "nothing
/// changed" checks.
pub fn snapshot(root: &Path) -> BTreeMap<String, (String, u32, Vec<u8>)> {
    let mut out = BTreeMap::new();
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, (String, u32, Vec<u8>)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let mode = meta.permissions().mode();
            if meta.file_type().is_symlink() {
                let target = std::fs::read_link(&path).unwrap();
                out.insert(
                    rel,
                    (
                        "link".into(),
                        mode,
                        target.into_os_string().into_encoded_bytes(),
                    ),
                );
            } else if meta.is_dir() {
                out.insert(rel, ("dir".into(), mode, Vec::new()));
                walk(root, &path, out);
            } else if !meta.is_file() {
                // A FIFO or socket: never read (a FIFO would block).
                out.insert(rel, ("special".into(), mode, Vec::new()));
            } else {
                out.insert(rel, ("file".into(), mode, std::fs::read(&path).unwrap()));
            }
        }
    }
    walk(root, root, &mut out);
    out
}

/// Settings, metadata and pending transactions to put in a datastore.
#[derive(Debug, Clone, Default)]
pub struct Contents {
    pub live: BTreeMap<String, String>,
    pub metadata: BTreeMap<(String, String), String>,
    pub pending: BTreeMap<String, BTreeMap<String, String>>,
}

impl Contents {
    /// A few hundred settings of every value kind, quoted segments, metadata, and a pending
    /// transaction; `settings.hostname` (renamed by 1.2.0) with metadata, no `settings.motd`
    /// (added by 1.1.0).
    pub fn large() -> Self {
        let mut c = Self::default();
        for i in 0..320 {
            let group = i % 9;
            let value = match i % 5 {
                0 => {
                    serde_json::json!(format!("value {i} with \"quotes\", ünïcödé and a\nnewline"))
                }
                1 => serde_json::json!(i * 1000),
                2 => serde_json::json!(i % 2 == 0),
                3 => serde_json::json!([format!("a{i}"), format!("b{i}")]),
                _ => serde_json::json!(-1.5 * f64::from(i)),
            };
            c.live
                .insert(format!("settings.group{group}.key-{i}"), value.to_string());
        }
        for i in 0..40 {
            c.live.insert(
                format!("settings.kernel.sysctl.\"net.ipv4.conf.eth{i}.forwarding\""),
                "\"1\"".into(),
            );
        }
        c.live
            .insert("settings.hostname".into(), "\"node-1.example\"".into());
        c.live.insert(
            "services.hostname.restart-commands".into(),
            "[\"/bin/true\"]".into(),
        );
        c.live.insert(
            "configuration-files.hostname.path".into(),
            "\"/etc/hostname\"".into(),
        );
        c.metadata.insert(
            ("settings.hostname".into(), "affected-services".into()),
            "[\"hostname\"]".into(),
        );
        c.metadata
            .insert(("settings".into(), "strength".into()), "\"strong\"".into());
        for i in 0..60 {
            c.metadata.insert(
                (
                    format!("settings.group{}.key-{i}", i % 9),
                    "setting-generator".into(),
                ),
                format!("\"generator-{i}\""),
            );
        }
        let mut tx = BTreeMap::new();
        tx.insert(
            "settings.hostname".to_string(),
            "\"pending-name\"".to_string(),
        );
        tx.insert("settings.group1.key-1".to_string(), "42".to_string());
        c.pending.insert("default".into(), tx);
        let mut other = BTreeMap::new();
        other.insert("settings.group2.new".to_string(), "\"x\"".to_string());
        c.pending.insert("my tx".into(), other);
        c
    }

    pub fn write(&self, store: &FilesystemDataStore) {
        let data = |n: &str| Key::new(KeyType::Data, n).unwrap();
        for (k, v) in &self.live {
            store.set_key(&data(k), v, &Committed::Live).unwrap();
        }
        for ((k, m), v) in &self.metadata {
            store
                .set_metadata(
                    &Key::new(KeyType::Meta, m).unwrap(),
                    &data(k),
                    v,
                    &Committed::Live,
                )
                .unwrap();
        }
        for (tx, keys) in &self.pending {
            for (k, v) in keys {
                store
                    .set_key(&data(k), v, &Committed::pending(tx.clone()))
                    .unwrap();
            }
        }
    }
}

/// Runs `command` to its end, failing the test (after SIGKILLing it) if it has not finished
/// within `limit`: a bound on a hang, not a measure of speed.
pub fn output_within(command: &mut Command, limit: std::time::Duration) -> Output {
    let child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || sender.send(child.wait_with_output()));
    match receiver.recv_timeout(limit) {
        Ok(output) => output.unwrap(),
        Err(_) => {
            let _ = rustix::process::kill_process(
                rustix::process::Pid::from_raw(i32::try_from(pid).unwrap()).unwrap(),
                rustix::process::Signal::KILL,
            );
            panic!("{command:?} hung: not finished after {limit:?}");
        }
    }
}

/// The `<role> <pid>` lines a fixture migration wrote to its `FIXTURE_MIGRATION_PIDS` file.
pub fn recorded_pids(file: &Path) -> Vec<(String, u32)> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .map(|line| {
            let (role, pid) = line.split_once(' ').unwrap();
            (role.to_string(), pid.parse().unwrap())
        })
        .collect()
}

/// Whether a process is running (exists and is not a zombie).
pub fn is_running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        let state = stat[stat.rfind(')').unwrap() + 1..]
            .split_whitespace()
            .next();
        !matches!(state, Some("Z" | "X" | "x"))
    })
}

/// The running processes whose environment contains `needle` (every process a test's migrator
/// started inherits the test's unique variables).
pub fn running_with_env(needle: &str) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.windows(needle.len()).any(|w| w == needle.as_bytes()))
                && is_running(*pid)
        })
        .collect()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The value of a key in the datastore `current` resolves to.
pub fn current_value(node: &Node, key: &str, committed: &Committed) -> Option<String> {
    FilesystemDataStore::new(node.current_data())
        .get_key(&Key::new(KeyType::Data, key).unwrap(), committed)
        .unwrap()
}
