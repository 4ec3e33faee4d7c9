//! The real HTTP server: nginx on a free loopback port, from a private config in a temp directory, stopped on drop.
//!
//! Everything nginx writes (pid, error and access logs, the five temp directories) lives in that directory, so
//! no system path is touched and tests can run side by side. When the process runs as root the config says
//! `user root;`: nginx's workers would otherwise switch to `nobody` and answer 403 for files in a 0700 temp
//! directory (measured).

use crate::require::{find_tool, is_root};
use snafu::{OptionExt, ResultExt, Snafu, ensure};
use std::fmt::Write as _;
use std::fs::{self, File};
use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};
use tempfile::TempDir;
use url::Url;

/// How many ports to try when another process takes the free port between our probe and nginx's bind.
const PORT_ATTEMPTS: usize = 3;
/// How long `nginx -s stop` may take before the master is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(20);

#[derive(Debug, Snafu)]
pub enum NginxError {
    #[snafu(display(
        "nginx is not installed (looked in PATH and the sbin directories; apt-get install nginx-light)"
    ))]
    NotInstalled,

    #[snafu(display("Cannot serve {}", path.display()))]
    Root { path: PathBuf, source: io::Error },

    #[snafu(display("Cannot serve {}: not a directory", path.display()))]
    RootNotADirectory { path: PathBuf },

    #[snafu(display("Cannot serve {} with nginx: the path has a character nginx.conf cannot quote ('\"', '\\', '$', ';', '{{', '}}' or a control character)", path.display()))]
    UnquotablePath { path: PathBuf },

    #[snafu(display("Failed to create a temp directory for nginx"))]
    TempDir { source: io::Error },

    #[snafu(display("Failed to find a free loopback port for nginx"))]
    FreePort { source: io::Error },

    #[snafu(display("Failed to write {}", path.display()))]
    WriteFile { path: PathBuf, source: io::Error },

    #[snafu(display("Failed to start {}", binary.display()))]
    Spawn { binary: PathBuf, source: io::Error },

    #[snafu(display("Failed to check on the nginx process"))]
    Wait { source: io::Error },

    #[snafu(display("nginx exited ({status}) before serving; config kept at {}; its log:\n{log}", conf.display()))]
    Exited {
        status: ExitStatus,
        conf: PathBuf,
        log: String,
    },

    #[snafu(display("nginx did not accept connections on {addr} within {waited:?}; config kept at {}; its log:\n{log}", conf.display()))]
    NotReady {
        addr: SocketAddr,
        waited: Duration,
        conf: PathBuf,
        log: String,
    },

    #[snafu(display("nginx address {addr} does not make a URL"))]
    BaseUrl {
        addr: SocketAddr,
        source: url::ParseError,
    },
}

/// Options for [`Nginx`]; [`Nginx::serve`] is `NginxBuilder::new(dir).serve()`.
#[derive(Debug, Clone)]
pub struct NginxBuilder {
    root: PathBuf,
    binary: Option<PathBuf>,
    startup_timeout: Duration,
}

impl NginxBuilder {
    #[must_use]
    pub fn new(root: impl Into<PathBuf>) -> NginxBuilder {
        NginxBuilder {
            root: root.into(),
            binary: None,
            startup_timeout: Duration::from_secs(10),
        }
    }

    /// Use this nginx binary instead of searching for one; a missing file gives [`NginxError::NotInstalled`].
    #[must_use]
    pub fn binary(mut self, binary: impl Into<PathBuf>) -> NginxBuilder {
        self.binary = Some(binary.into());
        self
    }

    /// How long to wait for nginx to accept connections (default 10 s).
    #[must_use]
    pub fn startup_timeout(mut self, timeout: Duration) -> NginxBuilder {
        self.startup_timeout = timeout;
        self
    }

    pub fn serve(self) -> Result<Nginx, NginxError> {
        let binary = match self.binary {
            Some(binary) => find_tool(&binary.to_string_lossy()),
            None => find_tool("nginx"),
        }
        .context(NotInstalledSnafu)?;
        let root = fs::canonicalize(&self.root).context(RootSnafu { path: &self.root })?;
        ensure!(root.is_dir(), RootNotADirectorySnafu { path: root });
        ensure!(quotable(&root), UnquotablePathSnafu { path: root });

        let mut attempt = 1;
        loop {
            match start(&binary, &root, self.startup_timeout) {
                Err(Started::PortTaken(_)) if attempt < PORT_ATTEMPTS => attempt += 1,
                Err(Started::PortTaken(error) | Started::Failed(error)) => return Err(error),
                Ok(nginx) => return Ok(nginx),
            }
        }
    }
}

/// nginx serving a directory on `127.0.0.1:<free port>` (static files, `Accept-Ranges: bytes`, 206 for ranges,
/// autoindex off). Dropping it runs `nginx -s stop` and waits for the master to exit, so the port is closed once
/// the drop returns.
#[derive(Debug)]
pub struct Nginx {
    child: Child,
    binary: PathBuf,
    dir: TempDir,
    root: PathBuf,
    addr: SocketAddr,
    base_url: Url,
}

impl Nginx {
    /// Serves `root` on a free loopback port; returns once nginx accepts connections.
    pub fn serve(root: impl Into<PathBuf>) -> Result<Nginx, NginxError> {
        NginxBuilder::new(root).serve()
    }

    pub fn builder(root: impl Into<PathBuf>) -> NginxBuilder {
        NginxBuilder::new(root)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The served directory (canonical).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `http://127.0.0.1:PORT/`, with the trailing slash.
    pub fn base_url(&self) -> Url {
        self.base_url.clone()
    }

    /// The URL of a file under the root; see [`FaultServer::url_for`](crate::http::FaultServer::url_for).
    pub fn url_for(&self, path: &str) -> Url {
        let mut url = self.base_url();
        // An http URL is always a base, so `path_segments_mut` cannot fail here.
        if let Ok(mut segments) = url.path_segments_mut() {
            segments
                .pop_if_empty()
                .extend(path.trim_start_matches('/').split('/'));
        }
        url
    }

    /// The private nginx.conf.
    pub fn conf_path(&self) -> PathBuf {
        self.dir.path().join("nginx.conf")
    }

    /// nginx's access log (one line per request, written as it is served).
    pub fn access_log_path(&self) -> PathBuf {
        self.dir.path().join("access.log")
    }

    pub fn error_log_path(&self) -> PathBuf {
        self.dir.path().join("error.log")
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // `-s stop` signals the master through the pid file (SIGTERM): it stops its workers and exits, so no worker
        // outlives the test holding the port, which killing the master alone could leave behind.
        let signalled = nginx_command(&self.binary, self.dir.path())
            .args(["-s", "stop"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        let deadline = Instant::now()
            + if signalled {
                STOP_TIMEOUT
            } else {
                Duration::ZERO
            };
        while Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            thread::sleep(POLL);
        }
        // Errors mean the child is already gone, which is what we want.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Why one start attempt failed.
enum Started {
    /// The probed port was taken before nginx bound it: try another.
    PortTaken(NginxError),
    Failed(NginxError),
}

impl From<NginxError> for Started {
    fn from(error: NginxError) -> Started {
        Started::Failed(error)
    }
}

fn start(binary: &Path, root: &Path, timeout: Duration) -> Result<Nginx, Started> {
    let dir = tempfile::Builder::new()
        .prefix("repo-fixtures-nginx-")
        .tempdir()
        .context(TempDirSnafu)?;
    let addr = free_port().context(FreePortSnafu)?;
    let conf = dir.path().join("nginx.conf");
    fs::write(&conf, config(dir.path(), root, addr, is_root()))
        .context(WriteFileSnafu { path: &conf })?;
    // nginx prints some start-up failures to stderr before its error log is open.
    let stderr_path = dir.path().join("stderr.log");
    let stderr = File::create(&stderr_path).context(WriteFileSnafu { path: &stderr_path })?;
    let mut child = nginx_command(binary, dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .context(SpawnSnafu { binary })?;

    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                let log = logs(dir.path());
                if log.contains("Address already in use") {
                    // Retried on another port: the directory goes with this attempt.
                    let conf = dir.path().join("nginx.conf");
                    return Err(Started::PortTaken(NginxError::Exited { status, conf, log }));
                }
                let conf = dir.keep().join("nginx.conf");
                return Err(NginxError::Exited { status, conf, log }.into());
            }
            Ok(None) => {}
            Err(source) => {
                stop_child(&mut child);
                return Err(NginxError::Wait { source }.into());
            }
        }
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            break;
        }
        if started.elapsed() >= timeout {
            stop_child(&mut child);
            return Err(NginxError::NotReady {
                addr,
                waited: timeout,
                log: logs(dir.path()),
                conf: dir.keep().join("nginx.conf"),
            }
            .into());
        }
        thread::sleep(POLL);
    }

    let base_url = match Url::parse(&format!("http://{addr}/")) {
        Ok(url) => url,
        Err(source) => {
            stop_child(&mut child);
            return Err(NginxError::BaseUrl { addr, source }.into());
        }
    };
    Ok(Nginx {
        child,
        binary: binary.to_path_buf(),
        dir,
        root: root.to_path_buf(),
        addr,
        base_url,
    })
}

/// `nginx -p DIR -e DIR/error.log -c DIR/nginx.conf`: `-e` keeps even the messages before the config is read out
/// of the system log path.
fn nginx_command(binary: &Path, dir: &Path) -> Command {
    let mut command = Command::new(binary);
    command
        .arg("-p")
        .arg(dir)
        .arg("-e")
        .arg(dir.join("error.log"))
        .arg("-c")
        .arg(dir.join("nginx.conf"));
    command
}

/// Kills a child that failed to start properly. It was never signalled through its pid file, so this is the only
/// way left; a failed start has no workers serving yet.
fn stop_child(child: &mut Child) {
    // Errors mean the child is already gone.
    let _ = child.kill();
    let _ = child.wait();
}

/// A port that was free a moment ago (nginx binds it next; a race is retried by the caller).
fn free_port() -> io::Result<SocketAddr> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()
}

/// The error log and nginx's stderr, for an error message.
fn logs(dir: &Path) -> String {
    let mut out = String::new();
    for name in ["error.log", "stderr.log"] {
        let path = dir.join(name);
        match fs::read_to_string(&path) {
            Ok(text) if !text.trim().is_empty() => {
                let _ = writeln!(out, "--- {}\n{}", path.display(), text.trim_end());
            }
            _ => {}
        }
    }
    if out.is_empty() {
        out.push_str("(empty)");
    }
    out
}

/// Whether a path can go into nginx.conf inside double quotes without escaping or variable expansion.
fn quotable(path: &Path) -> bool {
    path.to_str().is_some_and(|s| {
        !s.chars()
            .any(|c| matches!(c, '"' | '\\' | '$' | ';' | '{' | '}') || c.is_control())
    })
}

fn config(dir: &Path, root: &Path, addr: SocketAddr, as_root: bool) -> String {
    let dir = dir.display();
    let root = root.display();
    // Workers drop to `nobody` when the master runs as root; root can read a 0700 temp directory, nobody cannot.
    let user = if as_root { "user root;\n" } else { "" };
    format!(
        r#"# Written by repo-fixtures: a private nginx for one test.
{user}daemon off;
master_process on;
worker_processes 1;
pid "{dir}/nginx.pid";
error_log "{dir}/error.log" info;

events {{
    worker_connections 256;
}}

http {{
    access_log "{dir}/access.log";
    client_body_temp_path "{dir}/client_body";
    proxy_temp_path "{dir}/proxy";
    fastcgi_temp_path "{dir}/fastcgi";
    uwsgi_temp_path "{dir}/uwsgi";
    scgi_temp_path "{dir}/scgi";

    types {{
        application/json json;
        text/plain txt;
    }}
    default_type application/octet-stream;
    sendfile on;

    server {{
        listen {addr};
        server_name localhost;
        root "{root}";
        autoindex off;
        location / {{
        }}
    }}
}}
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_keeps_every_path_in_its_directory() {
        let conf = config(
            Path::new("/tmp/n"),
            Path::new("/srv/repo"),
            "127.0.0.1:8080".parse().expect("literal address"),
            false,
        );
        assert!(conf.contains("listen 127.0.0.1:8080;"));
        assert!(conf.contains("root \"/srv/repo\";"));
        assert!(!conf.contains("user root"));
        for line in conf
            .lines()
            .filter(|l| l.contains("_path") || l.contains("log ") || l.starts_with("pid"))
        {
            assert!(line.contains("\"/tmp/n/"), "{line}");
        }
        let as_root = config(
            Path::new("/tmp/n"),
            Path::new("/srv"),
            "127.0.0.1:1".parse().expect("literal"),
            true,
        );
        assert!(as_root.starts_with(
            "# Written by repo-fixtures: a private nginx for one test.\nuser root;\n"
        ));
    }

    #[test]
    fn paths_nginx_cannot_quote_are_refused() {
        assert!(quotable(Path::new("/tmp/a b/c-d_e.f")));
        for bad in [
            "/tmp/a\"b",
            "/tmp/$x",
            "/tmp/a;b",
            "/tmp/a\nb",
            "/tmp/a\\b",
            "/tmp/{a}",
        ] {
            assert!(!quotable(Path::new(bad)), "{bad}");
        }
    }

    #[test]
    fn a_missing_binary_is_not_installed() {
        let dir = tempfile::tempdir().expect("temp dir");
        let error = Nginx::builder(dir.path())
            .binary("/nonexistent/nginx")
            .serve()
            .expect_err("no such binary");
        assert!(matches!(error, NginxError::NotInstalled), "{error}");
    }
}
