//! `updata`, the manifest authoring tool: its command line (upstream's subcommands and flags)
//! and one function per subcommand. `main.rs` only parses and dispatches.
//!
//! Every command that changes a manifest loads it (all checks apply), changes it, checks it
//! again and replaces the file atomically, so a failed command leaves the file as it was.

use crate::manifest::{self, Images, Manifest, NewUpdate, UpdateSelector};
use crate::release::{self, Release};
use crate::waves::{self, WavePolicy};
use chrono::{DateTime, SubsecRound, Utc};
use clap::{ArgAction, Args, Parser, Subcommand};
use semver::Version;
use snafu::{ResultExt, Snafu};
use std::path::{Path, PathBuf};

/// Errors of the `updata` commands. Each names the file it concerns.
#[derive(Debug, Snafu)]
#[snafu(visibility(pub(crate)))]
pub enum Error {
    /// Reading or writing the manifest (the message names the file).
    #[snafu(display("{source}"))]
    ManifestFile { source: manifest::Error },

    #[snafu(display("Cannot change manifest '{}': {source}", path.display()))]
    Change {
        path: PathBuf,
        #[snafu(source(from(manifest::Error, Box::new)))]
        source: Box<manifest::Error>,
    },

    /// Loading the wave policy (the message names the file or policy).
    #[snafu(display("{source}"))]
    WavePolicyFile { source: waves::Error },

    /// Reading Release.toml (the message names the file).
    #[snafu(display("{source}"))]
    ReleaseFile { source: release::Error },
}

type Result<T, E = Error> = std::result::Result<T, E>;

/// Create and edit Bottlerocket-compatible update manifests (manifest.json).
#[derive(Debug, Parser)]
#[command(name = "updata")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create an empty manifest (replaces an existing file, as upstream)
    Init(InitArgs),
    /// Add a new update to the manifest, not including wave information
    AddUpdate(AddUpdateArgs),
    /// Remove an update from the manifest, including wave information
    RemoveUpdate(RemoveUpdateArgs),
    /// Set waves for an update from a wave policy file or built-in policy
    SetWaves(SetWavesArgs),
    /// Copy the migrations from a Release.toml into a manifest, replacing its migrations
    SetMigrations(SetMigrationsArgs),
    /// Set the maximum version of every update in the manifest
    SetMaxVersion(SetMaxVersionArgs),
    /// Validate a manifest file, but make no changes
    Validate(ValidateArgs),
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Metadata file to create
    pub file: PathBuf,
}

// `-h` is upstream's short flag for --hash, so help is `--help` only here.
#[derive(Debug, Args)]
#[command(disable_help_flag = true)]
pub struct AddUpdateArgs {
    /// Metadata file to modify
    pub file: PathBuf,
    /// Image variant, e.g. 'aws-k8s-1.30'
    #[arg(short = 'f', long = "variant")]
    pub variant: String,
    /// Image version
    #[arg(short = 'v', long = "version")]
    pub image_version: Version,
    /// Architecture the image is built for
    #[arg(short = 'a', long = "arch")]
    pub arch: String,
    /// Maximum valid version [default: greater of --version and the first update's max_version]
    #[arg(short = 'm', long = "max-version")]
    pub max_version: Option<Version>,
    /// Root image target name
    #[arg(short = 'r', long = "root")]
    pub root: String,
    /// Boot image target name
    #[arg(short = 'b', long = "boot")]
    pub boot: String,
    /// Verity "hash" image target name
    #[arg(short = 'h', long = "hash")]
    pub hash: String,
    /// Print help
    #[arg(long = "help", action = ArgAction::Help)]
    pub help: Option<bool>,
}

#[derive(Debug, Args)]
pub struct RemoveUpdateArgs {
    /// Metadata file to modify
    pub file: PathBuf,
    /// Image variant, e.g. 'aws-k8s-1.30'
    #[arg(short = 'l', long = "variant")]
    pub variant: String,
    /// Image version
    #[arg(short = 'v', long = "version")]
    pub image_version: Version,
    /// Architecture the image is built for
    #[arg(short = 'a', long = "arch")]
    pub arch: String,
}

#[derive(Debug, Args)]
pub struct SetWavesArgs {
    /// Metadata file to modify
    pub file: PathBuf,
    /// Image variant, e.g. 'aws-k8s-1.30'
    #[arg(short = 'l', long = "variant")]
    pub variant: String,
    /// Image version
    #[arg(short = 'v', long = "version")]
    pub image_version: Version,
    /// Architecture the image is built for
    #[arg(short = 'a', long = "arch")]
    pub arch: String,
    /// Wave policy: a TOML file, or a built-in policy (default, accelerated, slow-roll, ohno)
    #[arg(short = 'w', long = "wave-file")]
    pub wave_file: String,
    /// Wave offsets are relative to this RFC3339 time instead of now
    #[arg(long = "start-at")]
    pub start_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Args)]
pub struct SetMigrationsArgs {
    /// File to get migrations from (probably Release.toml)
    #[arg(short = 'f', long = "from")]
    pub from: PathBuf,
    /// File to write migrations to (probably manifest.json)
    #[arg(short = 't', long = "to")]
    pub to: PathBuf,
}

#[derive(Debug, Args)]
pub struct SetMaxVersionArgs {
    /// Metadata file to modify
    pub file: PathBuf,
    /// Maximum valid version
    #[arg(short = 'v', long = "max-version")]
    pub max_version: Version,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Metadata file to check
    pub file: PathBuf,
}

/// What a command has to say: `messages` for stdout, `warnings` for stderr.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub messages: Vec<String>,
    pub warnings: Vec<String>,
}

impl Outcome {
    fn message(message: String) -> Self {
        Self {
            messages: vec![message],
            warnings: Vec::new(),
        }
    }
}

/// Runs one parsed command.
pub fn run(command: Command) -> Result<Outcome> {
    match command {
        Command::Init(args) => init(&args.file),
        Command::AddUpdate(args) => add_update(
            &args.file,
            NewUpdate {
                variant: args.variant,
                arch: args.arch,
                version: args.image_version,
                max_version: args.max_version,
                images: Images {
                    boot: args.boot,
                    root: args.root,
                    hash: args.hash,
                },
            },
        ),
        Command::RemoveUpdate(args) => remove_update(
            &args.file,
            &UpdateSelector::new(args.variant, args.arch, args.image_version),
        ),
        Command::SetWaves(args) => set_waves(
            &args.file,
            &UpdateSelector::new(args.variant, args.arch, args.image_version),
            &args.wave_file,
            // Whole seconds: the manifest stays readable, and nothing needs more precision.
            args.start_at.unwrap_or_else(|| Utc::now().trunc_subsecs(0)),
        ),
        Command::SetMigrations(args) => set_migrations(&args.from, &args.to),
        Command::SetMaxVersion(args) => set_max_version(&args.file, &args.max_version),
        Command::Validate(args) => validate(&args.file),
    }
}

fn load(path: &Path) -> Result<Manifest> {
    manifest::load_file(path).context(ManifestFileSnafu)
}

fn save(path: &Path, manifest: &Manifest) -> Result<()> {
    manifest::write_file(path, manifest).context(ManifestFileSnafu)
}

/// `updata init FILE`: writes an empty manifest (`{"updates": [], "migrations": {}}`).
pub fn init(path: &Path) -> Result<Outcome> {
    save(path, &Manifest::default())?;
    Ok(Outcome::message(format!(
        "Created empty manifest '{}'",
        path.display()
    )))
}

/// `updata add-update`: appends an update; see [`Manifest::add_update`] for `max_version`.
pub fn add_update(path: &Path, new: NewUpdate) -> Result<Outcome> {
    let mut manifest = load(path)?;
    let selector = UpdateSelector::new(&new.variant, &new.arch, new.version.clone());
    manifest.add_update(new).context(ChangeSnafu { path })?;
    save(path, &manifest)?;
    let max_version = manifest
        .updates
        .last()
        .map_or_else(String::new, |u| u.max_version.to_string());
    Ok(Outcome::message(format!(
        "Added update {selector} to '{}'; max_version {max_version}",
        path.display()
    )))
}

/// `updata remove-update`: removes the update(s) matching variant, arch and version. Matching
/// nothing leaves the file unchanged and is a warning, not an error, as upstream.
pub fn remove_update(path: &Path, selector: &UpdateSelector) -> Result<Outcome> {
    let mut manifest = load(path)?;
    let removed = manifest.remove_update(selector);
    if removed == 0 {
        return Ok(Outcome {
            messages: Vec::new(),
            warnings: vec![format!(
                "No update in '{}' matches {selector}; nothing removed",
                path.display()
            )],
        });
    }
    save(path, &manifest)?;
    Ok(Outcome::message(format!(
        "Removed update {selector} from '{}'; {} update(s) remain",
        path.display(),
        manifest.updates.len()
    )))
}

/// `updata set-waves`: replaces the waves of an update with a policy scheduled from
/// `start_at`. `policy` is a file path or a built-in policy name (a file wins).
pub fn set_waves(
    path: &Path,
    selector: &UpdateSelector,
    policy: &str,
    start_at: DateTime<Utc>,
) -> Result<Outcome> {
    let mut manifest = load(path)?;
    let policy = WavePolicy::load(policy).context(WavePolicyFileSnafu)?;
    let matched = manifest
        .set_waves(selector, start_at, &policy)
        .context(ChangeSnafu { path })?;
    save(path, &manifest)?;
    let mut outcome = Outcome::message(format!(
        "Set {} wave(s) starting from {} on update {selector} in '{}'",
        policy.waves.len(),
        waves::rfc3339(&start_at),
        path.display()
    ));
    if matched > 1 {
        outcome.warnings.push(format!(
            "{matched} updates in '{}' match {selector}; all of them got these waves",
            path.display()
        ));
    }
    Ok(outcome)
}

/// `updata set-migrations -f Release.toml -t manifest.json`: replaces the manifest's
/// migrations with the release's.
pub fn set_migrations(release_path: &Path, manifest_path: &Path) -> Result<Outcome> {
    let mut manifest = load(manifest_path)?;
    let release = Release::from_path(release_path).context(ReleaseFileSnafu)?;
    let count = release.migrations.len();
    manifest.migrations = release.migrations;
    save(manifest_path, &manifest)?;
    Ok(Outcome::message(format!(
        "Set {count} migration step(s) from '{}' in '{}'",
        release_path.display(),
        manifest_path.display()
    )))
}

/// `updata set-max-version FILE -v V`: sets `max_version` on every update.
pub fn set_max_version(path: &Path, max_version: &Version) -> Result<Outcome> {
    let mut manifest = load(path)?;
    let changed = manifest.update_max_version(max_version, None, None);
    save(path, &manifest)?;
    Ok(Outcome::message(format!(
        "Set max_version {max_version} on {changed} update(s) in '{}'",
        path.display()
    )))
}

/// `updata validate FILE`: loads the manifest with every check and changes nothing. Wave
/// times that do not strictly increase are warnings, not errors: upstream's readers accept them
/// (see [`Manifest::unordered_waves`]).
pub fn validate(path: &Path) -> Result<Outcome> {
    let manifest = load(path)?;
    Ok(Outcome {
        messages: vec![format!(
            "'{}' is valid: {} update(s), {} migration step(s)",
            path.display(),
            manifest.updates.len(),
            manifest.migrations.len()
        )],
        warnings: manifest
            .unordered_waves()
            .iter()
            .map(|unordered| format!("'{}': {unordered}", path.display()))
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> std::result::Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("updata").chain(args.iter().copied()))
    }

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn add_update_takes_upstream_short_flags_including_h_for_hash() {
        let cli = parse(&[
            "add-update",
            "m.json",
            "-f",
            "aws-dev",
            "-v",
            "1.2.3",
            "-a",
            "x86_64",
            "-m",
            "1.3.0",
            "-r",
            "root.lz4",
            "-b",
            "boot.lz4",
            "-h",
            "hash.lz4",
        ])
        .unwrap();
        let Command::AddUpdate(args) = cli.command else {
            panic!("wrong subcommand");
        };
        assert_eq!(args.variant, "aws-dev");
        assert_eq!(args.image_version, Version::new(1, 2, 3));
        assert_eq!(args.max_version, Some(Version::new(1, 3, 0)));
        assert_eq!(
            (args.root.as_str(), args.boot.as_str(), args.hash.as_str()),
            ("root.lz4", "boot.lz4", "hash.lz4")
        );
    }

    #[test]
    fn add_update_still_has_long_help() {
        let err = parse(&["add-update", "--help"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::DisplayHelp);
    }

    #[test]
    fn remove_and_set_waves_use_l_for_variant() {
        let cli = parse(&[
            "remove-update",
            "m.json",
            "-l",
            "v",
            "-v",
            "1.0.0",
            "-a",
            "x",
        ])
        .unwrap();
        assert!(matches!(cli.command, Command::RemoveUpdate(ref a) if a.variant == "v"));
        let cli = parse(&[
            "set-waves",
            "m.json",
            "-l",
            "v",
            "-v",
            "1.0.0",
            "-a",
            "x",
            "-w",
            "default",
            "--start-at",
            "2024-10-24T20:00:00Z",
        ])
        .unwrap();
        let Command::SetWaves(args) = cli.command else {
            panic!("wrong subcommand");
        };
        assert_eq!(args.wave_file, "default");
        assert_eq!(args.start_at, Some("2024-10-24T20:00:00Z".parse().unwrap()));
    }

    #[test]
    fn bad_versions_and_times_are_rejected_by_the_parser() {
        assert!(parse(&["set-max-version", "m.json", "-v", "1.2"]).is_err());
        assert!(
            parse(&[
                "set-waves",
                "m.json",
                "-l",
                "v",
                "-v",
                "1.0.0",
                "-a",
                "x",
                "-w",
                "default",
                "--start-at",
                "tomorrow",
            ])
            .is_err()
        );
    }

    #[test]
    fn set_max_version_long_flag_is_max_version_as_upstream() {
        let cli = parse(&["set-max-version", "m.json", "--max-version", "2.0.0"]).unwrap();
        assert!(
            matches!(cli.command, Command::SetMaxVersion(ref a) if a.max_version == Version::new(2, 0, 0))
        );
    }

    #[test]
    fn a_failed_change_leaves_the_manifest_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("manifest.json");
        init(&path).unwrap();
        add_update(
            &path,
            NewUpdate {
                variant: "v".into(),
                arch: "x86_64".into(),
                version: Version::new(1, 0, 0),
                max_version: None,
                images: Images {
                    boot: "b".into(),
                    root: "r".into(),
                    hash: "h".into(),
                },
            },
        )
        .unwrap();
        let before = std::fs::read(&path).unwrap();
        let err = set_waves(
            &path,
            &UpdateSelector::new("v", "x86_64", Version::new(2, 0, 0)),
            "default",
            Utc::now(),
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with(&format!("Cannot change manifest '{}'", path.display())),
            "{err}"
        );
        assert_eq!(std::fs::read(&path).unwrap(), before);
    }
}
