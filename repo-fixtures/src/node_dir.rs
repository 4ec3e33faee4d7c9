//! A simulated node kept in a directory, for a person to build, boot and poke at by hand (`repo-fixtures node
//! create|boot|status|serve`), with the same code the tests use ([`lifecycle::install_release`],
//! [`lifecycle::boot_and_settle`], [`lifecycle::publish_with`]).
//!
//! ```text
//! DIR/fixture-node.json   what was created: release, ROOT size (so `serve` publishes images that fit)
//! DIR/disk.img            the OS disk (a file), DIR/sysroot/ the node's files
//! DIR/repo/               the fixture releases `serve` publishes (chain-1.0.0 … chain-1.2.0)
//! ```

use crate::chain::{self, ChainOptions, RELEASES};
use crate::lifecycle::{self, Binaries, INITIAL_SETTINGS, LifecycleError, Published};
use crate::node::{BootOutcome, Node};
use serde::{Deserialize, Serialize};
use snafu::{OptionExt, ResultExt, Snafu, ensure};
use std::fmt;
use std::path::{Path, PathBuf};

/// The file in a node directory that records how the node was created.
pub const SPEC_FILE: &str = "fixture-node.json";

/// How a node directory was created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeSpec {
    /// The release installed in set A (one of [`RELEASES`]).
    pub version: String,
    /// The ROOT size its partitions were laid out for, in MiB.
    pub root_mib: u64,
}

impl Default for NodeSpec {
    fn default() -> Self {
        Self {
            version: RELEASES[0].into(),
            root_mib: chain::DEFAULT_ROOT_MIB,
        }
    }
}

/// The settings a node of `version` starts with: [`INITIAL_SETTINGS`] in that release's schema, i.e. as the
/// fixture migrations leave them (1.1.0 adds `settings.motd` with no default; 1.2.0 renames `settings.hostname` to
/// `settings.network.hostname`).
pub fn release_settings(version: &str) -> Vec<(&'static str, &'static str)> {
    INITIAL_SETTINGS
        .iter()
        .map(|&(key, value)| {
            if key == "settings.hostname" && version == "1.2.0" {
                ("settings.network.hostname", value)
            } else {
                (key, value)
            }
        })
        .collect()
}

/// Creates a node in `dir` (which must not hold one yet): `spec.version` installed in set A, then booted once as a
/// node boots (bootloader, dm-verity, migrator, mark-successful-boot). No repository yet: see [`serve`].
pub fn create(
    dir: &Path,
    spec: &NodeSpec,
    binaries: &Binaries,
) -> Result<(Node, BootOutcome), NodeDirError> {
    ensure!(
        RELEASES.contains(&spec.version.as_str()),
        UnknownReleaseSnafu {
            version: &spec.version
        }
    );
    for existing in [dir.join(SPEC_FILE), dir.join("disk.img")] {
        ensure!(
            !existing.exists(),
            AlreadyANodeSnafu {
                path: existing.clone()
            }
        );
    }
    let node = lifecycle::install_release(
        dir,
        binaries,
        &spec.version,
        &release_settings(&spec.version),
        spec.root_mib,
    )
    .context(LifecycleSnafu)?;
    // The images' build files are not part of the node.
    let scratch = dir.join("scratch");
    std::fs::remove_dir_all(&scratch).context(IoSnafu { path: &scratch })?;
    let text = serde_json::to_vec_pretty(spec).expect("a NodeSpec serializes");
    let path = dir.join(SPEC_FILE);
    nodeio::atomic::write_atomically(&path, &text).context(WriteSnafu { path: &path })?;
    let booted = lifecycle::boot_and_settle(&node, binaries).context(LifecycleSnafu)?;
    Ok((node, booted))
}

/// The node in `dir`, as [`create`] left it, and how it was created.
pub fn open(dir: &Path) -> Result<(Node, NodeSpec), NodeDirError> {
    let path = dir.join(SPEC_FILE);
    let text = std::fs::read(&path).context(NotANodeSnafu { path: &path })?;
    let spec = serde_json::from_slice(&text).context(BadSpecSnafu { path: &path })?;
    Ok((Node::new(dir.join("sysroot"), dir.join("disk.img")), spec))
}

/// Publishes the fixture releases (every step of the chain, with `binaries`' migrations and ROOTs of `root_mib`
/// MiB, default the node's) into `dir/repo`, serves them on `port` (0: any free one) and points the node's
/// updog.toml at the newest step. The server stops when the returned handle drops.
pub fn serve(
    dir: &Path,
    binaries: &Binaries,
    port: u16,
    root_mib: Option<u64>,
) -> Result<(Node, Published), NodeDirError> {
    let (node, spec) = open(dir)?;
    let root_mib = root_mib.unwrap_or(spec.root_mib);
    // Images larger than the node's partitions could never be installed on it.
    let fits = chain::layout_for_root_mib(spec.root_mib).root;
    ensure!(
        root_mib <= fits,
        RootTooLargeSnafu {
            root_mib,
            fits,
            dir
        }
    );
    let options = ChainOptions {
        root_mib,
        ..ChainOptions::default()
    };
    let published =
        lifecycle::publish_with(dir, binaries, port, &options).context(LifecycleSnafu)?;
    lifecycle::write_updog_toml(&node, &published.metadata_url, &published.targets_url)
        .context(LifecycleSnafu)?;
    Ok((node, published))
}

/// What `node status` shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeStatus {
    pub disk: PathBuf,
    /// Per set (`A`, `B`): priority, tries left, successful, whether the bootloader would pick it at all.
    pub sets: Vec<SetBits>,
    /// The set the node booted (from its kernel command line), if it has booted.
    pub booted: Option<String>,
    /// The set the next boot picks, if any.
    pub next: Option<String>,
    /// `VARIANT_ID` and `VERSION_ID` of the booted ROOT (the sysroot's os-release).
    pub os_release: Option<(String, String)>,
    /// The release the datastore's `current` link resolves to.
    pub datastore: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetBits {
    pub set: String,
    pub priority: u8,
    pub tries_left: u8,
    pub successful: bool,
    pub will_boot: bool,
}

/// Reads the node's state: the GPT bits through signpost (`status --json`, the node's own reader), the booted
/// release from the sysroot, the datastore's version from its links.
pub fn status(node: &Node) -> Result<NodeStatus, NodeDirError> {
    let run = node.signpost(&["status", "--json"]);
    ensure!(
        run.code == 0,
        SignpostSnafu {
            stderr: run.stderr.trim()
        }
    );
    let json: serde_json::Value = serde_json::from_str(&run.stdout).context(SignpostJsonSnafu)?;
    let sets = json["sets"]
        .as_object()
        .context(SignpostFieldSnafu { field: "sets" })?;
    let mut bits = Vec::new();
    for (set, value) in sets {
        let number = |field: &'static str| {
            value[field]
                .as_u64()
                .and_then(|n| u8::try_from(n).ok())
                .context(SignpostFieldSnafu { field })
        };
        let flag =
            |field: &'static str| value[field].as_bool().context(SignpostFieldSnafu { field });
        bits.push(SetBits {
            set: set.clone(),
            priority: number("priority")?,
            tries_left: number("tries_left")?,
            successful: flag("successful")?,
            will_boot: flag("will_boot")?,
        });
    }
    // signpost names the active set from /proc/cmdline; without one (never booted) it falls back to another
    // source, which is not a boot.
    let booted = node
        .cmdline_path()
        .exists()
        .then(|| json["active"].as_str().map(str::to_string))
        .flatten();
    let os_release = std::fs::read_to_string(node.sysroot().join("usr/lib/os-release"))
        .ok()
        .map(|text| {
            let field = |key: &str| {
                text.lines()
                    .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
                    .unwrap_or_default()
                    .trim_matches('"')
                    .to_string()
            };
            (field("VARIANT_ID"), field("VERSION_ID"))
        });
    Ok(NodeStatus {
        disk: node.disk().to_owned(),
        sets: bits,
        booted,
        next: json["next"].as_str().map(str::to_string),
        os_release,
        datastore: datastore_version(&lifecycle::datastore_dir(node)),
    })
}

/// `current → vX → vX.Y → vX.Y.Z → vX.Y.Z_<suffix>`: the version in the last link's target.
fn datastore_version(dir: &Path) -> Option<String> {
    let resolved = std::fs::canonicalize(dir.join("current")).ok()?;
    let name = resolved.file_name()?.to_string_lossy().into_owned();
    let version = name.strip_prefix('v')?.split('_').next()?;
    Some(version.to_string())
}

impl fmt::Display for NodeStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "OS disk:    {}", self.disk.display())?;
        for set in &self.sets {
            writeln!(
                f,
                "Set {}:      priority {}, tries left {}, successful {}{}",
                set.set,
                set.priority,
                set.tries_left,
                if set.successful { "yes" } else { "no" },
                if set.will_boot {
                    ""
                } else {
                    " (will not boot)"
                }
            )?;
        }
        let or_none = |v: &Option<String>| v.clone().unwrap_or_else(|| "none".into());
        writeln!(f, "Booted:     set {}", or_none(&self.booted))?;
        writeln!(f, "Next boot:  set {}", or_none(&self.next))?;
        match &self.os_release {
            Some((variant, version)) => writeln!(f, "os-release: {variant} {version}")?,
            None => writeln!(f, "os-release: none (not booted)")?,
        }
        write!(f, "Datastore:  {}", or_none(&self.datastore))
    }
}

/// What a boot through [`lifecycle::boot_and_settle`] did: what the bootloader picked and what came up.
pub fn describe_boot(booted: &BootOutcome) -> String {
    let mut line = format!(
        "Bootloader picked set {:?} (BOOT partition {}: priority {}, tries left {} → {}, successful {})",
        booted.set,
        booted.boot_partition,
        booted.after.priority(),
        booted.before.tries_left(),
        booted.after.tries_left(),
        if booted.before.successful() {
            "yes"
        } else {
            "no"
        }
    );
    if let Some(release) = &booted.release {
        line.push_str(&format!(
            "\nBooted {} {}: dm-verity OK (root hash {}); migrator ran; boot marked successful",
            release.variant_id, release.version_id, release.root_hash
        ));
    }
    line
}

#[derive(Debug, Snafu)]
pub enum NodeDirError {
    #[snafu(display("No fixture release {version} (releases: {})", RELEASES.join(", ")))]
    UnknownRelease { version: String },

    #[snafu(display("{} exists: the directory already holds a node", path.display()))]
    AlreadyANode { path: PathBuf },

    #[snafu(display("Not a node directory (create one with `repo-fixtures node create`): {}", path.display()))]
    NotANode {
        path: PathBuf,
        source: std::io::Error,
    },

    #[snafu(display("{} is malformed: {source}", path.display()))]
    BadSpec {
        path: PathBuf,
        source: serde_json::Error,
    },

    #[snafu(display(
        "A {root_mib} MiB ROOT does not fit the node in {} (its ROOT partitions hold {fits} MiB; create it with --root-mib {root_mib})",
        dir.display()
    ))]
    RootTooLarge {
        root_mib: u64,
        fits: u64,
        dir: PathBuf,
    },

    #[snafu(display("{}: {source}", path.display()))]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },

    #[snafu(display("Failed to write {}: {source}", path.display()))]
    Write {
        path: PathBuf,
        source: nodeio::atomic::AtomicWriteError,
    },

    #[snafu(display("signpost status failed: {stderr}"))]
    Signpost { stderr: String },

    #[snafu(display("signpost status --json printed something that is not JSON: {source}"))]
    SignpostJson { source: serde_json::Error },

    #[snafu(display("signpost status --json has no usable '{field}'"))]
    SignpostField { field: &'static str },

    #[snafu(display("{source}"))]
    Lifecycle {
        #[snafu(source(from(LifecycleError, Box::new)))]
        source: Box<LifecycleError>,
    },
}
