//! Command-line interface (clap derive) and the dispatch from commands to the library.

use crate::commands::{self, Source};
use crate::config::RepoConfig;
use crate::error::Result;
use crate::keys::{KeyType, generate_key};
use crate::repo::BuildSummary;
use crate::validate::RepoValidator;
use clap::{Parser, Subcommand};
use jiff::Timestamp;
use std::path::PathBuf;

/// Publish a signed TUF repository for the updater: keys, root.json, build, refresh, rotate,
/// validate.
#[derive(Debug, Parser)]
#[command(name = "tuftool-config", version)]
pub struct Cli {
    /// Log level: error, warn, info, debug, trace.
    #[arg(long, global = true, default_value = "info", value_parser = parse_level)]
    pub log_level: log::LevelFilter,

    /// The current time (RFC 3339), instead of the system clock: expiry times and default role
    /// versions derive from it.
    #[arg(long, global = true, value_name = "RFC3339")]
    pub now: Option<Timestamp>,

    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate a private key (PKCS#8 PEM, mode 0600); prints its key ID.
    GenKey {
        /// Key type: rsa (3072 bits), ed25519 or ecdsa-p256.
        #[arg(long = "type", value_name = "TYPE", value_parser = parse_key_type)]
        key_type: KeyType,
        /// Where to write it; an existing file is never overwritten.
        out: PathBuf,
    },
    /// Create and sign root.json (version 1) from the config's roles, thresholds and root lifetime.
    CreateRoot {
        /// The repository config.
        #[arg(long)]
        config: PathBuf,
    },
    /// Build or update the repository from a manifest.json and a directory of targets.
    Build {
        /// The repository config.
        #[arg(long)]
        config: PathBuf,
        /// manifest.json to publish (as target `manifest.json`); every image and migration it
        /// names must be in --targets or already in the repository.
        #[arg(long)]
        manifest: Option<PathBuf>,
        /// Directory whose files are published as targets.
        #[arg(long)]
        targets: Option<PathBuf>,
    },
    /// Re-sign targets, snapshot and timestamp with new versions and expiry times.
    Refresh {
        /// The repository config.
        #[arg(long)]
        config: PathBuf,
    },
    /// Rotate root: publish root N+1 described by --new-config, signed by the old root keys
    /// (old threshold) and the new ones, and re-sign the repository with the new keys.
    RotateRoot {
        /// The current config (its root.json and root keys sign the new root).
        #[arg(long)]
        config: PathBuf,
        /// The config describing the new root (roles, thresholds, keys; `root` is where the new
        /// root.json is written).
        #[arg(long)]
        new_config: PathBuf,
    },
    /// Load the repository as a client would and report every problem; exit 1 if any.
    Validate {
        /// The repository config (validates its repository directory).
        #[arg(long, conflicts_with_all = ["root", "repo"], required_unless_present_all = ["root", "repo"])]
        config: Option<PathBuf>,
        /// With --config: the root.json a client trusts (default: the repository's 1.root.json).
        #[arg(long, requires = "config")]
        trusted_root: Option<PathBuf>,
        /// With --config: fetch from metadata_base_url / targets_base_url instead of the directory.
        #[arg(long, requires = "config")]
        remote: bool,
        /// Without a config: the trusted root.json ...
        #[arg(long, requires = "repo")]
        root: Option<PathBuf>,
        /// ... and the repository directory.
        #[arg(long, requires = "root")]
        repo: Option<PathBuf>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

fn parse_level(s: &str) -> std::result::Result<log::LevelFilter, String> {
    s.parse().map_err(|_| {
        format!("unknown log level '{s}': expected off, error, warn, info, debug or trace")
    })
}

fn parse_key_type(s: &str) -> std::result::Result<KeyType, String> {
    s.parse().map_err(|e: crate::error::Error| e.to_string())
}

/// How a successful run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Done.
    Success,
    /// `validate` found problems (exit 1).
    Problems,
}

/// Runs a parsed command. User-facing output goes to stdout, logs to stderr.
pub async fn run(cli: Cli) -> Result<Outcome> {
    let now = cli.now.unwrap_or_else(Timestamp::now);
    match cli.command {
        Command::GenKey { key_type, out } => {
            let info = generate_key(key_type, &out)?;
            emit(&format!(
                "{} {} {}",
                info.key_type,
                info.keyid,
                info.path.display()
            ));
        }
        Command::CreateRoot { config } => {
            let config = RepoConfig::load(&config)?;
            let root = commands::create_root(&config, now).await?;
            emit(&format!(
                "Created {} version {} expiring {}",
                config.root.display(),
                root.version(),
                root.expires()
            ));
        }
        Command::Build {
            config,
            manifest,
            targets,
        } => {
            let config = RepoConfig::load(&config)?;
            let summary =
                commands::build(&config, manifest.as_deref(), targets.as_deref(), now).await?;
            print_summary("Built", &summary);
        }
        Command::Refresh { config } => {
            let config = RepoConfig::load(&config)?;
            print_summary("Refreshed", &commands::refresh(&config, now).await?);
        }
        Command::RotateRoot { config, new_config } => {
            let (old, new) = (RepoConfig::load(&config)?, RepoConfig::load(&new_config)?);
            let (root, summary) = commands::rotate(&old, &new, now).await?;
            emit(&format!("Rotated to {root}"));
            print_summary("Re-signed", &summary);
        }
        Command::Validate {
            config,
            trusted_root,
            remote,
            root,
            repo,
            json,
        } => {
            let report = match (config, root, repo) {
                (Some(config), _, _) => {
                    let config = RepoConfig::load(&config)?;
                    let source = if remote {
                        Source::Remote
                    } else {
                        Source::Directory
                    };
                    commands::validate(&config, trusted_root.as_deref(), source, now).await?
                }
                (None, Some(root), Some(repo)) => {
                    RepoValidator::for_directory(&root, &repo, now)?.run().await
                }
                // clap requires one of the two forms.
                _ => unreachable!("clap enforces --config or --root with --repo"),
            };
            if json {
                emit(&serde_json::to_string_pretty(&report).unwrap_or_default());
            } else {
                emit(report.to_string().trim_end());
            }
            if !report.is_ok() {
                return Ok(Outcome::Problems);
            }
        }
    }
    Ok(Outcome::Success)
}

fn print_summary(what: &str, s: &BuildSummary) {
    emit(&format!(
        "{what} {}: root {}, targets {} (expires {}), snapshot {} (expires {}), timestamp {} (expires {}), {} targets",
        s.repository.display(),
        s.root_version,
        s.versions.targets,
        s.expirations.targets,
        s.versions.snapshot,
        s.expirations.snapshot,
        s.versions.timestamp,
        s.expirations.timestamp,
        s.targets
    ));
    if let Some(v) = s.published_root {
        emit(&format!("  published {v}.root.json"));
    }
    for name in &s.added {
        emit(&format!("  added {name}"));
    }
    for name in &s.replaced {
        emit(&format!("  replaced {name}"));
    }
}

/// Writes a line to stdout; a closed pipe (`| head`) is not worth a panic.
fn emit(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}

/// Sends `log` records at `level` and above to stderr.
pub fn init_logging(level: log::LevelFilter) {
    // Err means a logger is already installed: keep it.
    let _ = env_logger::Builder::new()
        .filter_level(level)
        .target(env_logger::Target::Stderr)
        .try_init();
}
