//! The tuf-conformance client-under-test over updog's TUF code (see `updog::conformance`).
//!
//! ```text
//! tuf-conformance-client --metadata-dir DIR init TRUSTED_ROOT
//! tuf-conformance-client --metadata-dir DIR --metadata-url URL refresh
//! tuf-conformance-client --metadata-dir DIR --metadata-url URL --target-name PATH [--target-name PATH]...
//!                        --target-base-url URL --target-dir DIR download
//! ```
//! Exit 0 when the command succeeded fully, 1 otherwise (including usage errors).

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use updog::conformance::{self, ConformanceError};
use url::Url;

#[derive(Debug, Parser)]
#[command(
    name = "tuf-conformance-client",
    about = "tuf-conformance client-under-test over updog's TUF loading"
)]
struct Cli {
    /// Where the trusted metadata is kept (root.json, timestamp.json, snapshot.json, targets.json).
    #[arg(long, global = true)]
    metadata_dir: Option<PathBuf>,
    /// The repository's metadata base URL.
    #[arg(long, global = true)]
    metadata_url: Option<Url>,
    /// A target path to download (repeatable; downloaded in order).
    #[arg(long, global = true)]
    target_name: Vec<String>,
    /// The repository's targets base URL.
    #[arg(long, global = true)]
    target_base_url: Option<Url>,
    /// Where downloaded, verified artifacts are stored.
    #[arg(long, global = true)]
    target_dir: Option<PathBuf>,
    /// Logging verbosity (on stderr).
    #[arg(long, global = true, default_value = "warn", value_parser = updog::logging::parse_level)]
    log_level: log::LevelFilter,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Trust TRUSTED_ROOT (copied into the metadata directory; no network).
    /// Trust TRUSTED_ROOT (positional, as the suite's CLIENT-CLI.md; or `--trusted-root`).
    Init {
        #[arg(
            required_unless_present = "trusted_root_flag",
            conflicts_with = "trusted_root_flag"
        )]
        trusted_root: Option<PathBuf>,
        #[arg(
            long = "trusted-root",
            id = "trusted_root_flag",
            value_name = "TRUSTED_ROOT"
        )]
        trusted_root_flag: Option<PathBuf>,
    },
    /// Update the trusted metadata from the repository.
    Refresh,
    /// Refresh, then download and verify the targets into the target directory.
    Download,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = u8::from(e.use_stderr());
            // Nothing better to do if the terminal is gone.
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    updog::logging::init(cli.log_level);
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> Result<(), ConformanceError> {
    let need = |what: &'static str| ConformanceError::MissingArgument { what };
    let metadata_dir = cli.metadata_dir.ok_or_else(|| need("--metadata-dir"))?;
    if let Command::Init {
        trusted_root,
        trusted_root_flag,
    } = &cli.command
    {
        let root = trusted_root
            .as_ref()
            .or(trusted_root_flag.as_ref())
            .ok_or_else(|| need("TRUSTED_ROOT"))?;
        return conformance::init(&metadata_dir, root);
    }
    let metadata_url = cli.metadata_url.ok_or_else(|| need("--metadata-url"))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| ConformanceError::Io {
            what: "start the async runtime for",
            path: metadata_dir.clone(),
            source,
        })?;
    match cli.command {
        Command::Init { .. } => Ok(()),
        Command::Refresh => runtime.block_on(conformance::refresh(&metadata_dir, &metadata_url)),
        Command::Download => {
            let targets_url = cli
                .target_base_url
                .ok_or_else(|| need("--target-base-url"))?;
            let target_dir = cli.target_dir.ok_or_else(|| need("--target-dir"))?;
            if cli.target_name.is_empty() {
                return Err(need("--target-name"));
            }
            runtime.block_on(conformance::download(
                &metadata_dir,
                &metadata_url,
                &targets_url,
                &cli.target_name,
                &target_dir,
            ))
        }
    }
}
