//! The `repo-fixtures` command line. Each subcommand is a variant of [`Command`] with its own `Args` struct and a
//! function here that calls the library; `main.rs` only parses and reports.

use crate::attacks::{self, ATTACKS, AttackError};
use crate::chain::{self, ChainOptions, RELEASES};
use crate::http::{FaultServer, FaultServerError};
use crate::lifecycle::{self, Binaries, LifecycleError};
use crate::node_dir::{self, NodeDirError, NodeSpec};
use clap::{Args, Parser, Subcommand};
use snafu::{ResultExt, Snafu};
use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::thread;

#[derive(Debug, Parser)]
#[command(
    name = "repo-fixtures",
    version,
    about = "The updater's test world: fixture repositories and the servers for them"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve a directory over HTTP (the fault server, with no faults) until killed; prints the base URL.
    Serve(ServeArgs),
    /// Build one named fixture repository (or `all`) into a directory.
    Build(BuildArgs),
    /// List the named fixtures.
    List,
    /// The main job: a whole update lifecycle on a simulated node (disk-image file, local signed repository served
    /// over HTTP, the real binaries): 1.0.0 → boot → check → update → reboot → migrate → mark, then on through the
    /// API (apiserver, apiclient update apply --reboot) → reboot: 1.2.0 fails the node's health check → fallback to
    /// 1.1.0, recorded as rolled back, skipped by check-update → applied on purpose with --image → reboot → mark.
    Demo(DemoArgs),
    /// A simulated node kept in a directory, to build, boot and poke at by hand.
    Node(NodeArgs),
}

#[derive(Debug, Args)]
pub struct NodeArgs {
    #[command(subcommand)]
    pub command: NodeCommand,
}

#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// Build a node in DIR (disk-image file DIR/disk.img, sysroot DIR/sysroot) with a release installed in set A,
    /// booted once (bootloader, dm-verity, migrator, mark-successful-boot).
    Create(NodeCreateArgs),
    /// Boot the node: the bootloader's pick, dm-verity, migrator, mark-successful-boot.
    Boot(NodeBootArgs),
    /// Show the partition sets' GPT bits, the booted set, the booted release and the datastore's version.
    Status(NodeStatusArgs),
    /// Publish the fixture releases into DIR/repo, point the node's updog.toml at them and serve them over HTTP
    /// until killed (then: updog --sysroot DIR/sysroot check-update).
    Serve(NodeServeArgs),
}

#[derive(Debug, Args)]
pub struct NodeCreateArgs {
    /// The node's directory (created if missing; must not hold a node yet).
    pub dir: PathBuf,
    /// The release to install: 1.0.0, 1.1.0 or 1.2.0.
    #[arg(long, default_value = RELEASES[0])]
    pub version: String,
    /// The size of the releases' ROOT images in MiB; the node's partitions are laid out to hold them.
    #[arg(long, default_value_t = chain::DEFAULT_ROOT_MIB, value_parser = root_mib_parser())]
    pub root_mib: u64,
    /// Where the node's binaries are (see `demo --bin-dir`); default: build them with cargo.
    #[arg(long)]
    pub bin_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct NodeBootArgs {
    /// The node's directory.
    pub dir: PathBuf,
    /// Where migrator is (see `demo --bin-dir`); default: build the node's binaries with cargo.
    #[arg(long)]
    pub bin_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct NodeStatusArgs {
    /// The node's directory.
    pub dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct NodeServeArgs {
    /// The node's directory.
    pub dir: PathBuf,
    /// The port to serve on; 0 picks a free one.
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// The size of the published ROOT images in MiB; default: the size the node was created for.
    #[arg(long, value_parser = root_mib_parser())]
    pub root_mib: Option<u64>,
    /// Where the fixture migrations are (see `demo --bin-dir`); default: build them with cargo.
    #[arg(long)]
    pub bin_dir: Option<PathBuf>,
}

fn root_mib_parser() -> clap::builder::RangedU64ValueParser {
    clap::value_parser!(u64).range(chain::DEFAULT_ROOT_MIB..=chain::MAX_ROOT_MIB)
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// `chain-1.0.0`, `chain-1.1.0`, `chain-1.2.0` (or `chain`, the newest), an attack name, or `all`.
    pub name: String,
    /// Where to build: a fixture directory (`root.json`, `metadata/`, `targets/`), or for `all` a directory of them.
    pub out: PathBuf,
    /// The size of the releases' ROOT images in MiB (above the default they carry generated, compressible content).
    #[arg(long, default_value_t = chain::DEFAULT_ROOT_MIB, value_parser = root_mib_parser())]
    pub root_mib: u64,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where to put the repository and the node; default: a new directory under the system temp dir.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// The port to serve the repository on; 0 picks a free one.
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Where the node's binaries (updog, migrator, apiserver, thar-be-updates, apiclient) and the fixture migrations
    /// are; default: build them with cargo.
    #[arg(long)]
    pub bin_dir: Option<PathBuf>,
    /// Keep serving the repository after the lifecycle, until interrupted.
    #[arg(long)]
    pub serve: bool,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The directory to serve, e.g. a repository with metadata/ and targets/.
    pub dir: PathBuf,

    /// The port to listen on; 0 picks a free one.
    #[arg(long, default_value_t = 0)]
    pub port: u16,

    /// The address to listen on.
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    pub bind: IpAddr,
}

#[derive(Debug, Snafu)]
pub enum CliError {
    #[snafu(display("Failed to serve {}", dir.display()))]
    Serve {
        dir: PathBuf,
        source: FaultServerError,
    },

    #[snafu(display("Failed to build fixtures into {}", out.display()))]
    Build {
        out: PathBuf,
        #[snafu(source(from(AttackError, Box::new)))]
        source: Box<AttackError>,
    },

    #[snafu(display("No fixture named '{name}' (see `repo-fixtures list`)"))]
    UnknownFixture { name: String },

    #[snafu(display("Failed to create a directory for the demo"))]
    DemoDir { source: io::Error },

    #[snafu(display("The update lifecycle failed"))]
    Lifecycle {
        #[snafu(source(from(LifecycleError, Box::new)))]
        source: Box<LifecycleError>,
    },

    #[snafu(display("The simulated node failed"))]
    Node {
        #[snafu(source(from(NodeDirError, Box::new)))]
        source: Box<NodeDirError>,
    },

    #[snafu(display("Failed to start the async runtime"))]
    Runtime { source: io::Error },

    #[snafu(display("Failed to write to stdout"))]
    Stdout { source: io::Error },
}

pub fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Serve(args) => serve(&args),
        Command::Build(args) => build(&args),
        Command::List => list(),
        Command::Demo(args) => demo(&args),
        Command::Node(args) => match args.command {
            NodeCommand::Create(args) => node_create(&args),
            NodeCommand::Boot(args) => node_boot(&args),
            NodeCommand::Status(args) => node_status(&args),
            NodeCommand::Serve(args) => node_serve(&args),
        },
    }
}

fn binaries(bin_dir: Option<&Path>) -> Result<Binaries, CliError> {
    match bin_dir {
        Some(bin_dir) => Binaries::in_dir(bin_dir),
        None => Binaries::build(),
    }
    .context(LifecycleSnafu)
}

fn node_create(args: &NodeCreateArgs) -> Result<(), CliError> {
    let binaries = binaries(args.bin_dir.as_deref())?;
    let spec = NodeSpec {
        version: args.version.clone(),
        root_mib: args.root_mib,
    };
    let (node, booted) = node_dir::create(&args.dir, &spec, &binaries).context(NodeSnafu)?;
    println!(
        "Created a node in {}: disk image {}, sysroot {}, release {} in set A ({} MiB ROOT)",
        args.dir.display(),
        node.disk().display(),
        node.sysroot().display(),
        spec.version,
        spec.root_mib
    );
    println!("{}", node_dir::describe_boot(&booted));
    Ok(())
}

fn node_boot(args: &NodeBootArgs) -> Result<(), CliError> {
    let (node, _) = node_dir::open(&args.dir).context(NodeSnafu)?;
    let binaries = binaries(args.bin_dir.as_deref())?;
    let booted = lifecycle::boot_and_settle(&node, &binaries).context(LifecycleSnafu)?;
    println!("{}", node_dir::describe_boot(&booted));
    Ok(())
}

fn node_status(args: &NodeStatusArgs) -> Result<(), CliError> {
    let (node, _) = node_dir::open(&args.dir).context(NodeSnafu)?;
    let status = node_dir::status(&node).context(NodeSnafu)?;
    println!("{status}");
    Ok(())
}

/// Prints the base URL first (flushed, for a parent process), then how to use it; serves until killed.
fn node_serve(args: &NodeServeArgs) -> Result<(), CliError> {
    let binaries = binaries(args.bin_dir.as_deref())?;
    let (node, published) =
        node_dir::serve(&args.dir, &binaries, args.port, args.root_mib).context(NodeSnafu)?;
    let mut stdout = io::stdout().lock();
    writeln!(stdout, "{}", published.server.base_url()).context(StdoutSnafu)?;
    writeln!(
        stdout,
        "Serving releases {} (metadata {}, targets {}); {} points at them. Try:\n  updog --sysroot {} check-update\n  updog --sysroot {} update --image {}\n  repo-fixtures node boot {}",
        RELEASES.join(", "),
        published.metadata_url,
        published.targets_url,
        node.sysroot().join("etc/updog.toml").display(),
        node.sysroot().display(),
        node.sysroot().display(),
        RELEASES[RELEASES.len() - 1],
        args.dir.display()
    )
    .context(StdoutSnafu)?;
    stdout.flush().context(StdoutSnafu)?;
    // The server's own threads do the serving; this one only keeps it alive.
    loop {
        thread::park();
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context(RuntimeSnafu)
}

/// Every fixture name `build` accepts.
pub fn fixture_names() -> Vec<String> {
    RELEASES
        .iter()
        .map(|r| attacks::chain_step_name(r))
        .chain(ATTACKS.iter().map(|a| a.name.to_string()))
        .collect()
}

fn list() -> Result<(), CliError> {
    let mut stdout = io::stdout().lock();
    for release in RELEASES {
        writeln!(
            stdout,
            "{}\tgood: the release chain up to {release}",
            attacks::chain_step_name(release)
        )
        .context(StdoutSnafu)?;
    }
    for attack in &ATTACKS {
        writeln!(
            stdout,
            "{}\tattack: {} → must be rejected: {}",
            attack.name, attack.change, attack.rejection
        )
        .context(StdoutSnafu)?;
    }
    Ok(())
}

fn build(args: &BuildArgs) -> Result<(), CliError> {
    let name = if args.name == "chain" {
        attacks::chain_step_name(RELEASES[RELEASES.len() - 1])
    } else {
        args.name.clone()
    };
    if name != "all" && !fixture_names().contains(&name) {
        return UnknownFixtureSnafu { name }.fail();
    }
    runtime()?.block_on(async {
        if name == "all" {
            attacks::build_all(&args.out)
                .await
                .context(BuildSnafu { out: &args.out })?;
            return Ok(());
        }
        // Build the chain beside the output, then keep the one that was asked for.
        let scratch = tempfile::tempdir().context(DemoDirSnafu)?;
        let options = ChainOptions {
            root_mib: args.root_mib,
            ..ChainOptions::default()
        };
        let steps = chain::build_chain(scratch.path(), &options)
            .await
            .map_err(|source| AttackError::Chain { source })
            .context(BuildSnafu { out: &args.out })?;
        if let Some(attack) = attacks::find(&name) {
            attacks::build_attack(attack, &steps, &args.out)
                .await
                .context(BuildSnafu { out: &args.out })?;
        } else {
            let step = steps
                .iter()
                .find(|s| s.dir.ends_with(&name))
                .expect("name checked above");
            chain::copy_dir(&step.dir, &args.out)
                .map_err(|source| AttackError::Chain { source })
                .context(BuildSnafu { out: &args.out })?;
        }
        Ok(())
    })
}

fn demo(args: &DemoArgs) -> Result<(), CliError> {
    let dir = match &args.dir {
        Some(dir) => dir.clone(),
        None => tempfile::Builder::new()
            .prefix("abupdate-demo-")
            .tempdir()
            .context(DemoDirSnafu)?
            .keep(),
    };
    let binaries = binaries(args.bin_dir.as_deref())?;
    println!(
        "The whole update lifecycle on a simulated node, in {}",
        dir.display()
    );
    let (_report, server) =
        lifecycle::run_lifecycle(&dir, &binaries, args.port).context(LifecycleSnafu)?;
    if !args.serve {
        return Ok(());
    }
    println!(
        "Serving the repository at {} until interrupted",
        server.base_url()
    );
    loop {
        thread::park();
    }
}

/// Prints the base URL on its own line (flushed, so a parent process can read it), then serves until killed.
fn serve(args: &ServeArgs) -> Result<(), CliError> {
    let server = FaultServer::builder(&args.dir)
        .addr(SocketAddr::new(args.bind, args.port))
        .serve()
        .context(ServeSnafu { dir: &args.dir })?;
    let mut stdout = io::stdout().lock();
    writeln!(stdout, "{}", server.base_url()).context(StdoutSnafu)?;
    stdout.flush().context(StdoutSnafu)?;
    // The server's own threads do the serving; this one only keeps `server` alive.
    loop {
        thread::park();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn serve_defaults_to_a_free_loopback_port() {
        let cli =
            Cli::try_parse_from(["repo-fixtures", "serve", "repo"]).expect("valid command line");
        let Command::Serve(args) = cli.command else {
            panic!("parsed as serve")
        };
        assert_eq!(args.dir, PathBuf::from("repo"));
        assert_eq!(args.port, 0);
        assert_eq!(args.bind, IpAddr::V4(Ipv4Addr::LOCALHOST));
    }

    #[test]
    fn serve_takes_a_port_and_bind_address() {
        let cli = Cli::try_parse_from([
            "repo-fixtures",
            "serve",
            "repo",
            "--port",
            "8080",
            "--bind",
            "::1",
        ])
        .expect("valid command line");
        let Command::Serve(args) = cli.command else {
            panic!("parsed as serve")
        };
        assert_eq!(
            (args.port, args.bind.to_string()),
            (8080, "::1".to_string())
        );
    }

    #[test]
    fn node_create_defaults_to_the_first_release_and_small_roots() {
        let cli = Cli::try_parse_from(["repo-fixtures", "node", "create", "n"])
            .expect("valid command line");
        let Command::Node(NodeArgs {
            command: NodeCommand::Create(args),
        }) = cli.command
        else {
            panic!("parsed as node create")
        };
        assert_eq!(
            (args.dir, args.version.as_str(), args.root_mib, args.bin_dir),
            (PathBuf::from("n"), "1.0.0", chain::DEFAULT_ROOT_MIB, None)
        );
    }

    #[test]
    fn root_sizes_outside_the_fixture_range_are_refused() {
        for args in [
            ["repo-fixtures", "build", "chain", "out", "--root-mib", "4"],
            [
                "repo-fixtures",
                "build",
                "chain",
                "out",
                "--root-mib",
                "5000",
            ],
            ["repo-fixtures", "node", "create", "n", "--root-mib", "0"],
            ["repo-fixtures", "node", "serve", "n", "--root-mib", "7"],
        ] {
            let error = Cli::try_parse_from(args).expect_err("out of range");
            assert_eq!(
                error.kind(),
                clap::error::ErrorKind::ValueValidation,
                "{args:?}"
            );
        }
        let cli =
            Cli::try_parse_from(["repo-fixtures", "build", "chain", "out", "--root-mib", "64"])
                .expect("in range");
        let Command::Build(args) = cli.command else {
            panic!("parsed as build")
        };
        assert_eq!(args.root_mib, 64);
    }
}
