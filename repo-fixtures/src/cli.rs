//! The `repo-fixtures` command line. Each subcommand is a variant of [`Command`] with its own `Args` struct and a
//! function here that calls the library; `main.rs` only parses and reports.

use crate::http::{FaultServer, FaultServerError};
use clap::{Args, Parser, Subcommand};
use snafu::{ResultExt, Snafu};
use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
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

    #[snafu(display("Failed to write to stdout"))]
    Stdout { source: io::Error },
}

pub fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Serve(args) => serve(&args),
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
        let Command::Serve(args) = cli.command;
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
        let Command::Serve(args) = cli.command;
        assert_eq!(
            (args.port, args.bind.to_string()),
            (8080, "::1".to_string())
        );
    }
}
