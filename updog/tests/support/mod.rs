//! The test world for updog's process tests: fixture repositories (built once per test binary),
//! custom repositories signed with the fixture keys, and a node sysroot to run `updog` in.

#![allow(dead_code)] // each test binary uses a different part of it

use chrono::{DateTime, Utc};
use repo_fixtures::attacks::{self, Attack};
use repo_fixtures::chain::{self, ChainOptions, FixtureRepo};
use std::collections::BTreeMap;
use std::num::NonZeroU64;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use update_metadata::Manifest;
use url::Url;

/// The build architecture, as updog names it.
pub const ARCH: &str = std::env::consts::ARCH;

/// An architecture the fixtures have that this machine is not.
pub fn other_arch() -> &'static str {
    if ARCH == "aarch64" {
        "x86_64"
    } else {
        "aarch64"
    }
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Every good chain step and every attack, built once per test binary under
/// `CARGO_TARGET_TMPDIR/<name>` (deterministic, so rebuilding gives the same bytes).
pub struct World {
    pub dir: PathBuf,
}

impl World {
    pub fn get(binary: &str) -> &'static World {
        static WORLD: OnceLock<World> = OnceLock::new();
        WORLD.get_or_init(|| {
            let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("updog-{binary}-world"));
            if dir.exists() {
                std::fs::remove_dir_all(&dir).expect("remove the old world");
            }
            std::fs::create_dir_all(&dir).expect("create the world");
            runtime()
                .block_on(attacks::build_all(&dir))
                .expect("build the fixture world");
            World { dir }
        })
    }

    pub fn repo(&self, name: &str) -> FixtureRepo {
        FixtureRepo {
            dir: self.dir.join(name),
        }
    }

    pub fn chain(&self, release: &str) -> FixtureRepo {
        self.repo(&format!("chain-{release}"))
    }
}

/// Builds the good chain with its newest release's waves starting at `wave_start` (default
/// policy) into `out`, returning its steps.
pub fn chain_with_waves(out: &Path, wave_start: DateTime<Utc>) -> Vec<FixtureRepo> {
    runtime()
        .block_on(chain::build_chain(
            out,
            &ChainOptions {
                wave_start,
                wave_policy: "default".into(),
                ..ChainOptions::default()
            },
        ))
        .expect("build the chain")
}

/// A repository holding exactly `manifest` (and a small image for every name it lists), signed
/// with the fixture keys under the fixture root, role versions 1.
pub fn custom_repo(out: &Path, manifest: &Manifest) -> FixtureRepo {
    custom_repo_with(out, manifest, &BTreeMap::new())
}

/// [`custom_repo`], with the targets named in `targets` holding those bytes (as published, i.e. already
/// lz4-compressed for images) instead of a small lz4 image naming itself.
pub fn custom_repo_with(
    out: &Path,
    manifest: &Manifest,
    targets_content: &BTreeMap<String, Vec<u8>>,
) -> FixtureRepo {
    runtime().block_on(async {
        let inputs = out.join(".inputs");
        let targets = inputs.join("targets");
        std::fs::create_dir_all(&targets).unwrap();
        let root_path = inputs.join("root.json");
        chain::fixture_root_builder(chain::fixture_expiry(), 1)
            .await
            .unwrap()
            .sign(chain::fixture_now())
            .await
            .unwrap()
            .write(&root_path)
            .unwrap();
        for update in &manifest.updates {
            for name in [
                &update.images.boot,
                &update.images.root,
                &update.images.hash,
            ] {
                let content = targets_content
                    .get(name)
                    .cloned()
                    .unwrap_or_else(|| chain::lz4_compress(format!("image {name}").as_bytes()));
                std::fs::write(targets.join(name), content).unwrap();
            }
        }
        for (name, content) in targets_content {
            std::fs::write(targets.join(name), content).unwrap();
        }
        let manifest_path = inputs.join("manifest.json");
        std::fs::write(&manifest_path, manifest.to_json_pretty().unwrap()).unwrap();
        chain::publish_with_fixture_keys(
            &root_path,
            &targets,
            &manifest_path,
            NonZeroU64::MIN,
            out,
        )
        .await
        .unwrap();
        std::fs::copy(&root_path, out.join(chain::TRUSTED_ROOT)).unwrap();
        std::fs::remove_dir_all(&inputs).unwrap();
        FixtureRepo {
            dir: out.to_owned(),
        }
    })
}

/// The fixture chain's newest manifest.
pub fn chain_manifest(repo: &FixtureRepo) -> Manifest {
    let path = repo.target_file("manifest.json").unwrap();
    Manifest::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// updog.toml settings.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub metadata_base_url: String,
    pub targets_base_url: String,
    pub seed: u32,
    pub version_lock: String,
    pub ignore_waves: bool,
    /// Extra TOML lines (proxies).
    pub extra: String,
}

impl NodeConfig {
    pub fn new(metadata: &Url, targets: &Url) -> Self {
        Self {
            metadata_base_url: metadata.to_string(),
            targets_base_url: targets.to_string(),
            seed: 1487,
            version_lock: "latest".into(),
            ignore_waves: false,
            extra: String::new(),
        }
    }

    pub fn toml(&self) -> String {
        format!(
            "metadata_base_url = \"{}\"\ntargets_base_url = \"{}\"\nseed = {}\nversion_lock = \"{}\"\nignore_waves = {}\n{}",
            self.metadata_base_url,
            self.targets_base_url,
            self.seed,
            self.version_lock,
            self.ignore_waves,
            self.extra
        )
    }
}

/// A node: a sysroot with etc/updog.toml, usr/lib/os-release and usr/share/updog/root.json.
pub struct Node {
    pub dir: tempfile::TempDir,
}

/// What one updog run did.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn from(output: Output) -> Self {
        Self {
            code: output.status.code(),
            stdout: String::from_utf8(output.stdout).expect("utf-8 stdout"),
            stderr: String::from_utf8(output.stderr).expect("utf-8 stderr"),
        }
    }

    /// Asserts exit 0 with exactly `stdout` and an empty stderr.
    #[track_caller]
    pub fn assert_offers(&self, stdout: &str) {
        assert_eq!(
            (self.code, self.stdout.as_str(), self.stderr.as_str()),
            (Some(0), stdout, ""),
            "{self:#?}"
        );
    }

    /// Asserts exit 1, nothing on stdout, and stderr equal to `stderr` (plus a newline).
    #[track_caller]
    pub fn assert_fails_with(&self, stderr: &str) {
        assert_eq!(
            (self.code, self.stdout.as_str(), self.stderr.as_str()),
            (Some(1), "", format!("{stderr}\n").as_str()),
            "{self:#?}"
        );
    }

    /// Asserts exit 1, nothing on stdout, and stderr containing every one of `parts`.
    #[track_caller]
    pub fn assert_fails_mentioning(&self, parts: &[&str]) {
        assert_eq!(self.code, Some(1), "{self:#?}");
        assert_eq!(self.stdout, "", "{self:#?}");
        for part in parts {
            assert!(
                self.stderr.contains(part),
                "stderr lacks {part:?}: {self:#?}"
            );
        }
    }
}

impl Node {
    /// A node running `variant` `version` that trusts `root` (a root.json file).
    pub fn new(root: &Path, variant: &str, version: &str, config: &NodeConfig) -> Self {
        let node = Self {
            dir: tempfile::tempdir().expect("node dir"),
        };
        std::fs::create_dir_all(node.path("usr/share/updog")).unwrap();
        std::fs::copy(root, node.path("usr/share/updog/root.json")).unwrap();
        node.set_release(variant, version);
        node.set_config(config);
        node
    }

    /// A node trusting `repo`'s root, configured for `repo` served at `base` (a server root
    /// that holds the fixture directories), or over file:// when `base` is `None`.
    pub fn for_repo(
        repo: &FixtureRepo,
        base: Option<&Url>,
        variant: &str,
        version: &str,
    ) -> (Self, NodeConfig) {
        let (metadata, targets) = match base {
            Some(base) => served_urls(base, repo),
            None => repo.file_urls(),
        };
        let config = NodeConfig::new(&metadata, &targets);
        (
            Self::new(&repo.trusted_root(), variant, version, &config),
            config,
        )
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    pub fn set_release(&self, variant: &str, version: &str) {
        Self::set_release_in(self.dir.path(), variant, version);
    }

    /// Writes the os-release of `variant` `version` into the sysroot `root`.
    pub fn set_release_in(root: &Path, variant: &str, version: &str) {
        std::fs::create_dir_all(root.join("usr/lib")).unwrap();
        std::fs::write(
            root.join("usr/lib/os-release"),
            format!(
                "NAME=Bottlerocket\nID=bottlerocket\nPRETTY_NAME=\"Bottlerocket OS {version} ({variant})\"\nVARIANT_ID={variant}\nVERSION_ID={version}\nBUILD_ID=fixture\n"
            ),
        )
        .unwrap();
    }

    pub fn set_config(&self, config: &NodeConfig) {
        std::fs::create_dir_all(self.path("etc")).unwrap();
        std::fs::write(self.path("etc/updog.toml"), config.toml()).unwrap();
    }

    /// The trust updog keeps on this node.
    pub fn datastore(&self) -> PathBuf {
        self.path("var/lib/updog/tuf")
    }

    /// Runs `updog --sysroot NODE ARGS…` with no proxy in the environment.
    pub fn updog(&self, args: &[&str]) -> Run {
        Run::from(self.command(args).output().expect("run updog"))
    }

    pub fn command(&self, args: &[&str]) -> Command {
        updog_command(self.dir.path(), args)
    }
}

/// `updog --sysroot SYSROOT ARGS…` with no proxy in the environment.
pub fn updog_command(sysroot: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_updog"));
    command.arg("--sysroot").arg(sysroot).args(args);
    for var in [
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "ALL_PROXY",
        "all_proxy",
        "NO_PROXY",
        "no_proxy",
    ] {
        command.env_remove(var);
    }
    command
}

/// Runs `updog --sysroot SYSROOT ARGS…`.
pub fn run_updog(sysroot: &Path, args: &[&str]) -> Run {
    Run::from(updog_command(sysroot, args).output().expect("run updog"))
}

/// `<base>/<fixture dir name>/metadata/` and `…/targets/`.
pub fn served_urls(base: &Url, repo: &FixtureRepo) -> (Url, Url) {
    let name = repo.dir.file_name().unwrap().to_string_lossy().into_owned();
    repo_fixtures::verify::served_urls(base, &name)
}

/// The attacks, each with the words its rejection message must contain.
pub fn attack_words(attack: &Attack) -> Vec<String> {
    use repo_fixtures::attacks::Rejection;
    match attack.rejection {
        Rejection::Expired(role) => vec![format!("{role} metadata has expired")],
        Rejection::Signature(role) => vec![format!("Signature check failed for {role} metadata")],
        Rejection::Rollback(role) => vec!["Rollback refused".into(), role.to_string()],
        Rejection::HashMismatch => vec!["Hash mismatch".into()],
        Rejection::TooLarge => vec!["Size limit exceeded".into()],
    }
}
