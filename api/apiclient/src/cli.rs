//! apiclient's command line, upstream's flags: global `-s/--socket-path`, `--log-level`, `-v/--verbose` (plus
//! `--sysroot`, which only moves the default socket), then `raw` (the default: `apiclient -u /settings`),
//! `get`, `set`, `apply`, `update check|apply|cancel`, `reboot`. Global flags go before or after the
//! subcommand. Usage errors exit 2, as upstream; everything else that fails exits 1 with one line on stderr.

use crate::client::{self, ApiClient};
use crate::{apply, get, reboot, set, update};
use clap::error::ErrorKind;
use clap::{Args, CommandFactory, Parser, Subcommand};
use log::{LevelFilter, info, warn};
use snafu::{ResultExt, Snafu};
use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "apiclient",
    about = "Talks to the node's API over its unix socket; 'raw' is the default subcommand",
    disable_version_flag = true
)]
pub struct Cli {
    /// The API socket [default: <sysroot>/run/api.sock].
    #[arg(short = 's', long, global = true, value_name = "PATH")]
    pub socket_path: Option<PathBuf>,

    /// The root the default socket path is under.
    #[arg(long, global = true, default_value = "/", value_name = "DIR")]
    pub sysroot: PathBuf,

    /// Logging verbosity (on stderr).
    #[arg(long, global = true, default_value = "info", value_parser = parse_level, value_name = "off|error|warn|info|debug|trace")]
    pub log_level: LevelFilter,

    /// Log at debug level; `raw` also prints the response's status and headers on stderr.
    #[arg(short, long, global = true)]
    pub verbose: bool,

    /// `raw`'s arguments when no subcommand is given.
    #[command(flatten)]
    pub raw: RawArgs,

    #[command(subcommand)]
    pub command: Option<Command>,
}

/// `raw`: one request, the response body on stdout.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct RawArgs {
    /// The URI to request, e.g. /settings or /actions/reboot (required).
    #[arg(short, long, value_name = "URI")]
    pub uri: Option<String>,

    /// The HTTP method [default: GET].
    #[arg(short = 'm', short_alias = 'X', long, value_name = "METHOD")]
    pub method: Option<String>,

    /// The request body.
    #[arg(short, long, value_name = "DATA")]
    pub data: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum Command {
    /// Makes one HTTP request and prints the response body on stdout (the default subcommand).
    Raw(RawArgs),
    /// Prints settings and OS facts as JSON: everything, the given prefixes (merged), or one /uri.
    Get(GetArgs),
    /// Changes settings and applies them: KEY=VALUE... or --json JSON.
    Set(SetArgs),
    /// Applies settings from TOML or JSON files, file:// URIs, or stdin ('-', the default).
    Apply(ApplyArgs),
    /// Checks for, applies or cancels OS updates.
    #[command(subcommand)]
    Update(UpdateCommand),
    /// Reboots the node.
    Reboot,
}

#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct GetArgs {
    /// Settings prefixes (`settings.` optional, `os` for OS facts), or one API URI starting with '/'.
    #[arg(value_name = "PREFIX|/URI")]
    pub targets: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct SetArgs {
    /// The settings as a JSON object (an outer "settings" layer is optional).
    #[arg(short, long, value_name = "JSON", conflicts_with = "pairs")]
    pub json: Option<String>,

    /// Settings as KEY=VALUE ("settings." optional; quote a segment with dots: 'a."b.c"=v').
    #[arg(value_name = "KEY=VALUE", required_unless_present = "json")]
    pub pairs: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct ApplyArgs {
    /// Files, file:// URIs, or '-' for stdin (the default).
    #[arg(value_name = "URI")]
    pub sources: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Subcommand)]
pub enum UpdateCommand {
    /// Refreshes the list of updates and prints the update status.
    Check,
    /// Writes the chosen update to the inactive partitions and makes it the next boot.
    Apply {
        /// Check for an update first, and do nothing if none is available (or one is already applied).
        #[arg(short, long)]
        check: bool,
        /// Reboot into the update once it is applied.
        #[arg(short, long)]
        reboot: bool,
    },
    /// Deactivates an applied update (the node boots the current version again).
    Cancel,
}

impl RawArgs {
    /// The method to use: `-m`, else GET.
    #[must_use]
    pub fn method(&self) -> &str {
        self.method.as_deref().unwrap_or("GET")
    }

    fn is_empty(&self) -> bool {
        self.uri.is_none() && self.method.is_none() && self.data.is_none()
    }
}

impl Cli {
    /// The socket to talk to: `-s`, else `<sysroot>/run/api.sock`.
    #[must_use]
    pub fn socket(&self) -> PathBuf {
        self.socket_path
            .clone()
            .unwrap_or_else(|| self.sysroot.join("run/api.sock"))
    }

    /// The level logs are written at: `--log-level`, raised to debug by `-v`.
    #[must_use]
    pub fn level(&self) -> LevelFilter {
        if self.verbose {
            self.log_level.max(LevelFilter::Debug)
        } else {
            self.log_level
        }
    }
}

/// Parses the process's arguments; a usage error prints clap's message and exits 2 (0 for --help).
#[must_use]
pub fn parse() -> Cli {
    parse_from(std::env::args_os()).unwrap_or_else(|error| error.exit())
}

/// Parses `args` (the first is the program name) and checks what clap cannot say declaratively.
pub fn parse_from<I, T>(args: I) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = Cli::try_parse_from(args)?;
    // Raw's flags belong to the default subcommand only. (clap's args_conflicts_with_subcommands would also
    // refuse the global flags before a subcommand.)
    if cli.command.is_some() && !cli.raw.is_empty() {
        return Err(Cli::command().error(
            ErrorKind::ArgumentConflict,
            "--uri, --method and --data belong to 'raw' (the default subcommand); give them without another subcommand",
        ));
    }
    let raw = match &cli.command {
        None => Some(&cli.raw),
        Some(Command::Raw(raw)) => Some(raw),
        _ => None,
    };
    if raw.is_some_and(|raw| raw.uri.is_none()) {
        return Err(Cli::command().error(
            ErrorKind::MissingRequiredArgument,
            "the following required arguments were not provided:\n  --uri <URI>",
        ));
    }
    if let Some(Command::Get(get)) = &cli.command {
        let uris = get.targets.iter().filter(|t| t.starts_with('/')).count();
        if uris > 1 {
            return Err(
                Cli::command().error(ErrorKind::ArgumentConflict, "You can only specify one URI.")
            );
        }
        if uris == 1 && get.targets.len() > 1 {
            return Err(Cli::command().error(
                ErrorKind::ArgumentConflict,
                "You can specify prefixes or a URI, but not both.",
            ));
        }
    }
    Ok(cli)
}

fn parse_level(s: &str) -> Result<LevelFilter, String> {
    s.parse().map_err(|_| {
        format!(
            "invalid log level '{s}' (expected off, error, warn, info, debug or trace, in any case)"
        )
    })
}

/// Log records from this crate at the command line's level, on stderr (stdout carries only responses).
pub fn init_logging(cli: &Cli) {
    // Err means a logger is already installed: keep it.
    let _ = env_logger::Builder::new()
        .filter_level(LevelFilter::Off)
        .filter_module("apiclient", cli.level())
        .target(env_logger::Target::Stderr)
        .format(|out, record| writeln!(out, "[{}] {}", record.level(), record.args()))
        .try_init();
}

/// Why a command failed; each message is one line, upstream's where upstream has one.
#[derive(Debug, Snafu)]
pub enum Error {
    #[snafu(display("Failed to start the async runtime: {source}"))]
    Runtime { source: std::io::Error },

    #[snafu(display("{source}"))]
    Raw { source: client::Error },

    #[snafu(display("{source}"))]
    Get { source: get::Error },

    #[snafu(display("{source}"))]
    Set { source: set::Error },

    #[snafu(display("Failed to apply settings: {source}"))]
    Apply { source: apply::Error },

    #[snafu(display("Failed to check for updates: {source}"))]
    UpdateCheck { source: update::Error },

    #[snafu(display("Failed to apply update: {source}"))]
    UpdateApply { source: update::Error },

    #[snafu(display("Failed to cancel update: {source}"))]
    UpdateCancel { source: update::Error },

    #[snafu(display("{source}"))]
    Reboot { source: client::Error },

    #[snafu(display("Failed to write to standard output: {source}"))]
    Stdout { source: std::io::Error },
}

/// Runs the command on a current-thread runtime.
pub fn run_blocking(cli: &Cli) -> Result<(), Error> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context(RuntimeSnafu)?
        .block_on(run(cli))
}

/// Runs the command.
pub async fn run(cli: &Cli) -> Result<(), Error> {
    let client = ApiClient::new(cli.socket());
    match &cli.command {
        None => raw(&client, &cli.raw, cli.verbose).await,
        Some(Command::Raw(args)) => raw(&client, args, cli.verbose).await,
        Some(Command::Get(args)) => {
            let value = match args.targets.as_slice() {
                [uri] if uri.starts_with('/') => get::get_uri(&client, uri).await,
                prefixes => get::get_prefixes(&client, prefixes).await,
            }
            .context(GetSnafu)?;
            print_json(&value.to_string())
        }
        Some(Command::Set(args)) => {
            let settings = match &args.json {
                Some(json) => set::settings_from_json(json),
                None => set::settings_from_pairs(&args.pairs),
            }
            .context(SetSnafu)?;
            set::set(&client, &settings).await.context(SetSnafu)
        }
        Some(Command::Apply(args)) => apply::apply(&client, &args.sources)
            .await
            .context(ApplySnafu),
        Some(Command::Update(UpdateCommand::Check)) => {
            let status = update::check(&client).await.context(UpdateCheckSnafu)?;
            print_json(&status)
        }
        Some(Command::Update(UpdateCommand::Apply { check, reboot })) => {
            if *check {
                let status = update::check(&client).await.context(UpdateCheckSnafu)?;
                print_json(&status)?;
                if !update::required(&status) {
                    return Ok(());
                }
            }
            update::apply(&client).await.context(UpdateApplySnafu)?;
            if *reboot {
                reboot::reboot(&client).await.context(RebootSnafu)
            } else {
                info!("Update has been applied and will take effect on next reboot.");
                Ok(())
            }
        }
        Some(Command::Update(UpdateCommand::Cancel)) => {
            update::cancel(&client).await.context(UpdateCancelSnafu)?;
            Ok(())
        }
        Some(Command::Reboot) => reboot::reboot(&client).await.context(RebootSnafu),
    }
}

async fn raw(client: &ApiClient, args: &RawArgs, verbose: bool) -> Result<(), Error> {
    // parse_from refuses a raw command without --uri.
    let uri = args.uri.as_deref().unwrap_or("/");
    let response = client
        .request(args.method(), uri, args.data.as_deref())
        .await
        .context(RawSnafu)?;
    // Only the body goes to stdout: scripts (and the update operator) parse it.
    if verbose {
        eprintln!("{}", response.status);
        for (name, value) in &response.headers {
            eprintln!("{name}: {value}");
        }
    }
    if response.body.is_empty() {
        return Ok(());
    }
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{}", response.body)
        .and_then(|()| stdout.flush())
        .context(StdoutSnafu)
}

/// Prints a JSON document pretty (two-space indents), or as received if it is not JSON.
fn print_json(text: &str) -> Result<(), Error> {
    let pretty = match serde_json::from_str::<serde_json::Value>(text) {
        Ok(value) => format!("{value:#}"),
        Err(error) => {
            warn!("Unable to deserialize response (invalid JSON?): {error}");
            text.to_owned()
        }
    };
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{pretty}")
        .and_then(|()| stdout.flush())
        .context(StdoutSnafu)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        parse_from(std::iter::once("apiclient").chain(args.iter().copied()))
            .unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    fn usage_error(args: &[&str]) -> clap::Error {
        parse_from(std::iter::once("apiclient").chain(args.iter().copied()))
            .map(|cli| panic!("{args:?} parsed: {cli:?}"))
            .unwrap_err()
    }

    #[test]
    fn raw_is_the_default_subcommand() {
        let cli = parse(&["-u", "/actions/reboot", "-m", "POST"]);
        assert_eq!(cli.command, None);
        assert_eq!(
            cli.raw,
            RawArgs {
                uri: Some("/actions/reboot".into()),
                method: Some("POST".into()),
                data: None
            }
        );
        let cli = parse(&["raw", "--uri", "/settings", "-X", "PATCH", "-d", "{}"]);
        assert_eq!(
            cli.command,
            Some(Command::Raw(RawArgs {
                uri: Some("/settings".into()),
                method: Some("PATCH".into()),
                data: Some("{}".into())
            }))
        );
        assert_eq!(parse(&["-u", "/os"]).raw.method(), "GET");
    }

    #[test]
    fn raw_needs_a_uri() {
        for args in [&[][..], &["raw"], &["-m", "POST"], &["raw", "-d", "x"]] {
            assert_eq!(
                usage_error(args).kind(),
                ErrorKind::MissingRequiredArgument,
                "{args:?}"
            );
        }
    }

    #[test]
    fn raw_flags_do_not_mix_with_another_subcommand() {
        for args in [
            &["-u", "/x", "reboot"][..],
            &["-m", "POST", "update", "check"],
            &["-d", "{}", "get"],
        ] {
            assert_eq!(
                usage_error(args).kind(),
                ErrorKind::ArgumentConflict,
                "{args:?}"
            );
        }
    }

    #[test]
    fn global_flags_go_before_or_after_the_subcommand() {
        for args in [
            &["-s", "/tmp/a.sock", "-v", "update", "check"][..],
            &["update", "check", "-s", "/tmp/a.sock", "-v"],
            &["update", "-v", "--socket-path", "/tmp/a.sock", "check"],
        ] {
            let cli = parse(args);
            assert_eq!(cli.socket(), PathBuf::from("/tmp/a.sock"), "{args:?}");
            assert!(cli.verbose, "{args:?}");
            assert_eq!(cli.command, Some(Command::Update(UpdateCommand::Check)));
        }
        let cli = parse(&["-u", "/os", "-s", "/tmp/b.sock"]);
        assert_eq!(cli.socket(), PathBuf::from("/tmp/b.sock"));
    }

    #[test]
    fn the_default_socket_is_under_the_sysroot() {
        assert_eq!(parse(&["reboot"]).socket(), PathBuf::from("/run/api.sock"));
        assert_eq!(
            parse(&["--sysroot", "/tmp/node", "reboot"]).socket(),
            PathBuf::from("/tmp/node/run/api.sock")
        );
    }

    #[test]
    fn verbose_raises_the_log_level_to_debug() {
        assert_eq!(parse(&["reboot"]).level(), LevelFilter::Info);
        assert_eq!(parse(&["-v", "reboot"]).level(), LevelFilter::Debug);
        assert_eq!(
            parse(&["-v", "--log-level", "trace", "reboot"]).level(),
            LevelFilter::Trace
        );
        assert_eq!(
            parse(&["--log-level", "ERROR", "reboot"]).level(),
            LevelFilter::Error
        );
        usage_error(&["--log-level", "loud", "reboot"]);
    }

    #[test]
    fn update_apply_takes_check_and_reboot() {
        assert_eq!(
            parse(&["update", "apply", "-c", "-r"]).command,
            Some(Command::Update(UpdateCommand::Apply {
                check: true,
                reboot: true
            }))
        );
        assert_eq!(
            parse(&["update", "apply", "--reboot"]).command,
            Some(Command::Update(UpdateCommand::Apply {
                check: false,
                reboot: true
            }))
        );
        assert_eq!(
            parse(&["update", "cancel"]).command,
            Some(Command::Update(UpdateCommand::Cancel))
        );
        usage_error(&["update"]);
        usage_error(&["update", "check", "--reboot"]);
    }

    #[test]
    fn get_takes_prefixes_or_one_uri() {
        assert_eq!(
            parse(&["get", "motd", "settings.updates"]).command,
            Some(Command::Get(GetArgs {
                targets: vec!["motd".into(), "settings.updates".into()]
            }))
        );
        parse(&["get"]);
        parse(&["get", "/os"]);
        assert_eq!(
            usage_error(&["get", "/os", "/settings"]).kind(),
            ErrorKind::ArgumentConflict
        );
        assert_eq!(
            usage_error(&["get", "motd", "/os"]).kind(),
            ErrorKind::ArgumentConflict
        );
    }

    #[test]
    fn set_takes_pairs_or_json_but_not_both() {
        assert_eq!(
            parse(&["set", "motd=hi", r#"kernel.sysctl."a.b"=1"#]).command,
            Some(Command::Set(SetArgs {
                json: None,
                pairs: vec!["motd=hi".into(), r#"kernel.sysctl."a.b"=1"#.into()]
            }))
        );
        assert_eq!(
            parse(&["set", "-j", r#"{"motd": "hi"}"#]).command,
            Some(Command::Set(SetArgs {
                json: Some(r#"{"motd": "hi"}"#.into()),
                pairs: vec![]
            }))
        );
        usage_error(&["set"]);
        usage_error(&["set", "-j", "{}", "motd=hi"]);
    }

    #[test]
    fn apply_takes_uris_and_stdin() {
        assert_eq!(
            parse(&["apply", "-", "file:///a.toml", "b.json"]).command,
            Some(Command::Apply(ApplyArgs {
                sources: vec!["-".into(), "file:///a.toml".into(), "b.json".into()]
            }))
        );
        assert_eq!(
            parse(&["apply"]).command,
            Some(Command::Apply(ApplyArgs { sources: vec![] }))
        );
    }
}
