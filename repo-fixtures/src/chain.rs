//! The good fixture repositories: a release chain 1.0.0 → 1.1.0 → 1.2.0 for two variants and two arches, with
//! waves and migrations, published through tuftool-config with the fixture keys and a fixed clock.
//!
//! Each step of the chain is its own repository directory (`chain-1.0.0`, `chain-1.1.0`, `chain-1.2.0`), each the
//! previous one updated with the next release, so older steps are real earlier states of the same repository
//! (lower role versions, same root): what a replay or mix-and-match attack serves.

use crate::images::{self, OsImageSpec, OsImages};
use crate::keys::FixtureKey;
use chrono::{DateTime, Utc};
use semver::Version;
use snafu::{OptionExt, ResultExt, Snafu};
use std::io::Write;
use std::num::NonZeroU64;
use std::path::{Path, PathBuf};
use tuftool_config::{
    BuildSummary, Expirations, RepoBuild, Role, RoleExpirations, RoleKeys, RoleVersions,
    RootBuilder, SigningKey,
};
use update_metadata::{Images, Manifest, NewUpdate, UpdateSelector};

pub const VARIANTS: [&str; 2] = ["aws-dev", "metal-dev"];
pub const ARCHES: [&str; 2] = ["x86_64", "aarch64"];
pub const RELEASES: [&str; 3] = ["1.0.0", "1.1.0", "1.2.0"];

/// The migrations of the chain, as manifest.json lists them: `(from, to, target name)`.
/// (Placeholder scripts, unless [`build_chain_with_migrations`] is given their bytes: migrator builds real ones,
/// `migrator/src/bin/fixture-add-motd-default.rs` and `fixture-rename-hostname-setting.rs`.)
pub const MIGRATIONS: [(&str, &str, &str); 2] = [
    ("1.0.0", "1.1.0", "migrate_v1.1.0_add-motd-default.lz4"),
    (
        "1.1.0",
        "1.2.0",
        "migrate_v1.2.0_rename-hostname-setting.lz4",
    ),
];

/// The build id in image names (upstream: a git short hash).
pub const BUILD_ID: &str = "fixture";

/// The fixed clock every fixture is signed at.
pub fn fixture_now() -> jiff::Timestamp {
    "2026-01-01T00:00:00Z".parse().expect("valid fixed time")
}

/// When good fixture metadata expires: far enough ahead that tests never see it expire.
pub fn fixture_expiry() -> jiff::Timestamp {
    "2099-12-31T00:00:00Z".parse().expect("valid fixed time")
}

/// An expiry already in the past, for the expired-role attacks.
pub fn past_expiry() -> jiff::Timestamp {
    "2021-01-01T00:00:00Z".parse().expect("valid fixed time")
}

/// The file name of the trusted root a client starts from, at the top of every fixture directory.
pub const TRUSTED_ROOT: &str = "root.json";

/// Options of the chain. The defaults give a fully reproducible chain whose waves all passed before 2026-01-08.
#[derive(Debug, Clone)]
pub struct ChainOptions {
    /// When the newest release's waves start (the earlier releases carry no waves: fully rolled out).
    pub wave_start: DateTime<Utc>,
    /// A built-in wave policy name of update-metadata (`default`, `accelerated`, `slow-roll`, `ohno`).
    pub wave_policy: String,
    /// The ROOT image's size in MiB (see [`release_images_sized`]); [`DEFAULT_ROOT_MIB`] keeps the small, fast
    /// images every test uses.
    pub root_mib: u64,
}

impl Default for ChainOptions {
    fn default() -> Self {
        Self {
            wave_start: "2026-01-01T00:00:00Z".parse().expect("valid fixed time"),
            wave_policy: "default".into(),
            root_mib: DEFAULT_ROOT_MIB,
        }
    }
}

/// Where a built fixture lives: `dir/root.json` (the client's trusted root), `dir/metadata/`, `dir/targets/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixtureRepo {
    pub dir: PathBuf,
}

impl FixtureRepo {
    pub fn trusted_root(&self) -> PathBuf {
        self.dir.join(TRUSTED_ROOT)
    }
    pub fn metadata_dir(&self) -> PathBuf {
        self.dir.join("metadata")
    }
    pub fn targets_dir(&self) -> PathBuf {
        self.dir.join("targets")
    }
    /// `file://` URLs of the metadata and targets directories (with trailing slashes).
    pub fn file_urls(&self) -> (url::Url, url::Url) {
        let dir =
            |p: PathBuf| url::Url::from_directory_path(p).expect("fixture paths are absolute");
        (dir(self.metadata_dir()), dir(self.targets_dir()))
    }
    /// The path of the published target file `<sha256>.<name>`.
    pub fn target_file(&self, name: &str) -> Result<PathBuf, ChainError> {
        let suffix = format!(".{name}");
        let entries = std::fs::read_dir(self.targets_dir()).context(IoSnafu {
            path: self.targets_dir(),
        })?;
        for entry in entries {
            let entry = entry.context(IoSnafu {
                path: self.targets_dir(),
            })?;
            let file_name = entry.file_name();
            let file_name = file_name.to_string_lossy();
            if file_name.len() == 64 + suffix.len() && file_name.ends_with(&suffix) {
                return Ok(entry.path());
            }
        }
        TargetNotFoundSnafu {
            name,
            dir: self.targets_dir(),
        }
        .fail()
    }
}

/// The image target names of one release of one variant/arch, as upstream names them.
pub fn image_names(variant: &str, arch: &str, version: &str) -> Images {
    let name =
        |part: &str| format!("bottlerocket-{variant}-{arch}-{version}-{BUILD_ID}-{part}.lz4");
    Images {
        boot: name("boot.ext4"),
        root: name("root.ext4"),
        hash: name("root.verity"),
    }
}

/// The real images of one release of one variant/arch (ext4 ROOT with os-release and the fixture's trusted
/// root.json, its dm-verity HASH tree, ext4 BOOT with the root hash), sized for `LayoutSizes::for_tests()`.
/// Deterministic: the chain publishes exactly these bytes (lz4-compressed), so a test can install a release on a
/// node's disk and later compare.
pub fn release_images(
    variant: &str,
    arch: &str,
    version: &str,
    trusted_root_json: &[u8],
    scratch: &Path,
) -> Result<OsImages, ChainError> {
    release_images_sized(
        variant,
        arch,
        version,
        trusted_root_json,
        scratch,
        DEFAULT_ROOT_MIB,
    )
}

/// [`release_images`] with a ROOT of `root_mib` MiB (at least [`DEFAULT_ROOT_MIB`]). Above the default, ROOT also
/// carries [`ROOT_CONTENT_PERCENT`] % of its size in generated files (`images::write_content`, seeded by the
/// release), so its lz4 target compresses about as a real root does and a download has something to interrupt;
/// a node needs [`layout_for_root_mib`] to hold it.
pub fn release_images_sized(
    variant: &str,
    arch: &str,
    version: &str,
    trusted_root_json: &[u8],
    scratch: &Path,
    root_mib: u64,
) -> Result<OsImages, ChainError> {
    snafu::ensure!(
        (DEFAULT_ROOT_MIB..=MAX_ROOT_MIB).contains(&root_mib),
        RootSizeSnafu { root_mib }
    );
    let root_size = root_mib << 20;
    let content_bytes = if root_mib > DEFAULT_ROOT_MIB {
        // Whole 4 KiB blocks, so the files fill what they claim; a small ROOT keeps room for ext4's journal
        // (4 MiB below 128 MiB) and metadata.
        (root_size / 100 * ROOT_CONTENT_PERCENT).min(root_size - (6 << 20)) / 4096 * 4096
    } else {
        0
    };
    let spec = OsImageSpec {
        variant: variant.into(),
        arch: arch.into(),
        version: version.into(),
        build_id: BUILD_ID.into(),
        updog_root_json: trusted_root_json.to_vec(),
        root_size,
        boot_size: BOOT_IMAGE_SIZE,
        content_bytes,
    };
    images::build_os_images(&spec, scratch).context(ImagesSnafu {
        release: format!("{variant} {arch} {version}"),
    })
}

/// Image sizes: they fill the test layout's partitions (`LayoutSizes::for_tests()`: BOOT 2 MiB, ROOT 8 MiB).
pub const ROOT_IMAGE_SIZE: u64 = 8 << 20;
pub const BOOT_IMAGE_SIZE: u64 = 2 << 20;

/// The default ROOT size in MiB: [`ROOT_IMAGE_SIZE`], only os-release and root.json inside.
pub const DEFAULT_ROOT_MIB: u64 = ROOT_IMAGE_SIZE >> 20;
/// The largest ROOT a fixture builds (upstream's 2 GiB OS image has 920 MiB of ROOT per set).
pub const MAX_ROOT_MIB: u64 = 4096;
/// How much of a large ROOT the generated content fills; the rest is ext4's journal, metadata and free space.
pub const ROOT_CONTENT_PERCENT: u64 = 70;

/// A test disk layout whose ROOT partitions hold a `root_mib` MiB ROOT image and HASH partitions its dm-verity
/// tree (32 bytes per 4 KiB block, about 1/128 of the data, plus the upper levels and the superblock).
pub fn layout_for_root_mib(root_mib: u64) -> crate::disk::LayoutSizes {
    let default = crate::disk::LayoutSizes::for_tests();
    crate::disk::LayoutSizes {
        root: root_mib.max(default.root),
        hash: (root_mib / 120 + 1).max(default.hash),
        ..default
    }
}

/// The fixture chain's trusted root.json (root v1), exactly as every fixture's `root.json` holds it.
pub async fn fixture_root_json() -> Result<Vec<u8>, ChainError> {
    Ok(fixture_root_builder(fixture_expiry(), 1)
        .await?
        .sign(fixture_now())
        .await
        .context(PublishSnafu { what: "sign root" })?
        .bytes()
        .to_vec())
}

/// lz4 frame-compresses data, the format of every image and migration target: independent 64 KiB blocks (set,
/// not left to lz4_flex's `Auto`, which sizes blocks by the first write: 4 MiB for a whole image, and updog can
/// resume a download only at a block boundary).
pub fn lz4_compress(data: &[u8]) -> Vec<u8> {
    let info = lz4_flex::frame::FrameInfo::new()
        .block_size(lz4_flex::frame::BlockSize::Max64KB)
        .block_mode(lz4_flex::frame::BlockMode::Independent);
    let mut encoder = lz4_flex::frame::FrameEncoder::with_frame_info(info, Vec::new());
    encoder
        .write_all(data)
        .expect("writing to a Vec cannot fail");
    encoder
        .finish()
        .expect("finishing an lz4 frame into a Vec cannot fail")
}

/// The manifest.json of the chain at step `step` (0-based index into [`RELEASES`]).
pub fn manifest_at(step: usize, options: &ChainOptions) -> Result<Manifest, ChainError> {
    let newest: Version = RELEASES[step].parse().expect("fixture versions are semver");
    let mut manifest = Manifest::default();
    // Upstream lists updates newest first.
    for version in RELEASES[..=step].iter().rev() {
        for variant in VARIANTS {
            for arch in ARCHES {
                manifest
                    .add_update(NewUpdate {
                        variant: variant.into(),
                        arch: arch.into(),
                        version: version.parse().expect("fixture versions are semver"),
                        max_version: Some(newest.clone()),
                        images: image_names(variant, arch, version),
                    })
                    .context(ManifestSnafu)?;
            }
        }
    }
    let policy = update_metadata::builtin_policy(&options.wave_policy)
        .context(UnknownPolicySnafu {
            name: &options.wave_policy,
        })?
        .policy()
        .context(WavePolicySnafu)?;
    for variant in VARIANTS {
        for arch in ARCHES {
            manifest
                .set_waves(
                    &UpdateSelector::new(variant, arch, newest.clone()),
                    options.wave_start,
                    &policy,
                )
                .context(ManifestSnafu)?;
        }
    }
    for (from, to, name) in MIGRATIONS.iter().take(step) {
        manifest.migrations.insert(
            (from.parse().expect("semver"), to.parse().expect("semver")),
            vec![name.to_string()],
        );
    }
    Ok(manifest)
}

/// The fixture root: root signed by 2 of {root-1, root-2}, targets by 2 of {targets-1, targets-2}, snapshot and
/// timestamp by one key each. Thresholds of 2 let the attacks sign with too few keys.
pub async fn fixture_root_builder(
    expires: jiff::Timestamp,
    version: u64,
) -> Result<RootBuilder, ChainError> {
    let keys = |ks: &[FixtureKey]| ks.to_vec();
    let two = NonZeroU64::new(2).expect("non-zero");
    Ok(RootBuilder::new(expires)
        .version(NonZeroU64::new(version).context(ZeroVersionSnafu)?)
        .role(
            Role::Root,
            signing_keys(&keys(&[FixtureKey::Root1, FixtureKey::Root2])).await?,
            two,
        )
        .role(
            Role::Targets,
            signing_keys(&keys(&[FixtureKey::Targets1, FixtureKey::Targets2])).await?,
            two,
        )
        .role(
            Role::Snapshot,
            signing_keys(&[FixtureKey::Snapshot1]).await?,
            NonZeroU64::MIN,
        )
        .role(
            Role::Timestamp,
            signing_keys(&[FixtureKey::Timestamp1]).await?,
            NonZeroU64::MIN,
        ))
}

/// tuftool-config signing keys for fixture keys (read from the checked-in PEM files).
pub async fn signing_keys(keys: &[FixtureKey]) -> Result<Vec<SigningKey>, ChainError> {
    let mut out = Vec::new();
    for &key in keys {
        out.push(
            SigningKey::from_pem_file(key.path())
                .await
                .context(PublishSnafu { what: "load key" })?,
        );
    }
    Ok(out)
}

/// The keys that sign each repository role of the good chain.
pub async fn fixture_role_keys() -> Result<RoleKeys, ChainError> {
    Ok(RoleKeys::new()
        .role(
            Role::Root,
            signing_keys(&[FixtureKey::Root1, FixtureKey::Root2]).await?,
        )
        .role(
            Role::Targets,
            signing_keys(&[FixtureKey::Targets1, FixtureKey::Targets2]).await?,
        )
        .role(
            Role::Snapshot,
            signing_keys(&[FixtureKey::Snapshot1]).await?,
        )
        .role(
            Role::Timestamp,
            signing_keys(&[FixtureKey::Timestamp1]).await?,
        ))
}

/// Builds every step of the chain under `out` (`out/chain-1.0.0`, …) and returns them in release order.
/// Step N is signed with role versions N+1 (1, 2, 3), at the fixed clock, expiring at [`fixture_expiry`].
pub async fn build_chain(
    out: &Path,
    options: &ChainOptions,
) -> Result<Vec<FixtureRepo>, ChainError> {
    build_chain_with_migrations(out, options, &MigrationPayloads::new()).await
}

/// The uncompressed contents of migration targets, by target name (e.g.
/// `migrate_v1.1.0_add-motd-default.lz4` → a compiled migration binary).
pub type MigrationPayloads = std::collections::BTreeMap<String, Vec<u8>>;

/// [`build_chain`], with the migrations named in `payloads` signed as those bytes (lz4-compressed)
/// instead of the placeholder scripts; migrations not named keep their placeholder.
pub async fn build_chain_with_migrations(
    out: &Path,
    options: &ChainOptions,
    payloads: &MigrationPayloads,
) -> Result<Vec<FixtureRepo>, ChainError> {
    let inputs = out.join(".chain-inputs");
    let root_path = inputs.join(TRUSTED_ROOT);
    std::fs::create_dir_all(&inputs).context(IoSnafu { path: &inputs })?;
    let root_json = fixture_root_json().await?;
    write_file(&root_path, &root_json)?;

    let mut steps: Vec<FixtureRepo> = Vec::new();
    for (step, release) in RELEASES.iter().enumerate() {
        let repo = FixtureRepo {
            dir: out.join(format!("chain-{release}")),
        };
        if repo.dir.exists() {
            std::fs::remove_dir_all(&repo.dir).context(IoSnafu { path: &repo.dir })?;
        }
        match steps.last() {
            Some(previous) => copy_dir(&previous.dir, &repo.dir)?,
            None => std::fs::create_dir_all(&repo.dir).context(IoSnafu { path: &repo.dir })?,
        }
        std::fs::copy(&root_path, repo.trusted_root()).context(IoSnafu {
            path: repo.trusted_root(),
        })?;

        // This release's new targets: its images for every variant/arch, and the migration that leads to it.
        let step_inputs = inputs.join(release);
        let targets = step_inputs.join("targets");
        std::fs::create_dir_all(&targets).context(IoSnafu { path: &targets })?;
        for variant in VARIANTS {
            for arch in ARCHES {
                let names = image_names(variant, arch, release);
                let scratch = step_inputs.join(format!("scratch-{variant}-{arch}"));
                let images = release_images_sized(
                    variant,
                    arch,
                    release,
                    &root_json,
                    &scratch,
                    options.root_mib,
                )?;
                for (image, name) in [
                    (&images.boot, &names.boot),
                    (&images.root, &names.root),
                    (&images.hash, &names.hash),
                ] {
                    write_file(&targets.join(name), &lz4_compress(image))?;
                }
            }
        }
        if step > 0 {
            let (from, to, name) = MIGRATIONS[step - 1];
            let script = format!(
                "#!/bin/sh\n# Placeholder migration {from} -> {to}: the migrator issue replaces it with a real one.\nexit 0\n"
            );
            let payload = payloads.get(name).map_or(script.as_bytes(), Vec::as_slice);
            write_file(&targets.join(name), &lz4_compress(payload))?;
        }
        let manifest_path = step_inputs.join("manifest.json");
        let manifest = manifest_at(step, options)?;
        write_file(
            &manifest_path,
            manifest.to_json_pretty().context(ManifestSnafu)?.as_bytes(),
        )?;

        let version = NonZeroU64::new(step as u64 + 1).expect("non-zero");
        publish_with_fixture_keys(&root_path, &targets, &manifest_path, version, &repo.dir).await?;
        steps.push(repo);
    }
    std::fs::remove_dir_all(&inputs).context(IoSnafu { path: &inputs })?;
    Ok(steps)
}

/// Publishes `targets_dir` and `manifest` into the repository `out` under the root at `root_path`, signed by the
/// fixture keys at the fixed clock, every role at `version` and expiring at [`fixture_expiry`]: how every fixture
/// repository is published (the chain, and the custom repositories tests and benchmarks build).
pub async fn publish_with_fixture_keys(
    root_path: &Path,
    targets_dir: &Path,
    manifest: &Path,
    version: NonZeroU64,
    out: &Path,
) -> Result<BuildSummary, ChainError> {
    RepoBuild::new(root_path, fixture_role_keys().await?, fixture_now())
        .targets_dir(targets_dir)
        .manifest(manifest)
        .versions(RoleVersions {
            targets: version,
            snapshot: version,
            timestamp: version,
        })
        .expirations(Expirations::Fixed(RoleExpirations {
            targets: fixture_expiry(),
            snapshot: fixture_expiry(),
            timestamp: fixture_expiry(),
        }))
        .write(out)
        .await
        .context(PublishSnafu {
            what: format!("publish {}", out.display()),
        })
}

/// Copies a fixture directory tree (regular files and directories only).
pub fn copy_dir(from: &Path, to: &Path) -> Result<(), ChainError> {
    std::fs::create_dir_all(to).context(IoSnafu { path: to })?;
    for entry in std::fs::read_dir(from).context(IoSnafu { path: from })? {
        let entry = entry.context(IoSnafu { path: from })?;
        let target = to.join(entry.file_name());
        let kind = entry.file_type().context(IoSnafu { path: entry.path() })?;
        if kind.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else if kind.is_file() {
            std::fs::copy(entry.path(), &target).context(IoSnafu { path: &target })?;
        }
    }
    Ok(())
}

fn write_file(path: &Path, data: &[u8]) -> Result<(), ChainError> {
    std::fs::write(path, data).context(IoSnafu { path })
}

#[derive(Debug, Snafu)]
pub enum ChainError {
    #[snafu(display("Fixture file {}: {source}", path.display()))]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[snafu(display("Fixture images of {release}: {source}"))]
    Images {
        release: String,
        source: crate::images::ImageError,
    },
    #[snafu(display("Fixture manifest: {source}"))]
    Manifest {
        source: update_metadata::manifest::Error,
    },
    #[snafu(display("Fixture wave policy: {source}"))]
    WavePolicy {
        source: update_metadata::waves::Error,
    },
    #[snafu(display("No built-in wave policy named '{name}'"))]
    UnknownPolicy { name: String },
    #[snafu(display("Failed to {what}: {source}"))]
    Publish {
        what: String,
        #[snafu(source(from(tuftool_config::Error, Box::new)))]
        source: Box<tuftool_config::Error>,
    },
    #[snafu(display(
        "A ROOT image of {root_mib} MiB: fixture ROOTs are {DEFAULT_ROOT_MIB} to {MAX_ROOT_MIB} MiB"
    ))]
    RootSize { root_mib: u64 },
    #[snafu(display("A root version must be at least 1"))]
    ZeroVersion,
    #[snafu(display("No target named '{name}' in {}", dir.display()))]
    TargetNotFound { name: String, dir: PathBuf },
}
