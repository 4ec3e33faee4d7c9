//! The server handle: start, configure faults at run time, read the request log, stop on drop.

use super::connection::serve_connection;
use super::fault::{Rule, RuleId, RuleTable};
use super::request_log::RecordedRequest;
use super::stop::StopSignal;
use snafu::{ResultExt, Snafu, ensure};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Duration;
use url::Url;

#[derive(Debug, Snafu)]
#[snafu(visibility(pub(crate)))]
pub enum FaultServerError {
    #[snafu(display("Cannot serve {}: not a directory", path.display()))]
    NotADirectory { path: PathBuf },

    #[snafu(display("Failed to bind the fault server to {addr}"))]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },

    #[snafu(display("Failed to read the fault server's bound address"))]
    LocalAddr { source: std::io::Error },

    #[snafu(display("Failed to start the fault server's accept thread"))]
    SpawnAcceptThread { source: std::io::Error },

    #[snafu(display("Fault server address {addr} does not make a URL"))]
    BaseUrl {
        addr: SocketAddr,
        source: url::ParseError,
    },
}

/// State the connection threads share with the handle.
pub(crate) struct Shared {
    pub(crate) root: PathBuf,
    pub(crate) stop: StopSignal,
    rules: Mutex<RuleTable>,
    log: Mutex<Vec<RecordedRequest>>,
    /// Client connections accepted so far (the stop's own wake-up connection is not counted).
    accepted: AtomicU64,
}

impl Shared {
    pub(crate) fn rules(&self) -> MutexGuard<'_, RuleTable> {
        lock(&self.rules)
    }

    pub(crate) fn record(&self, request: RecordedRequest) {
        lock(&self.log).push(request);
    }
}

/// Each guarded value here is updated in one step, so a panic elsewhere cannot leave it half-written.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A live connection: a handle on its socket (to unblock it at stop) and its thread (to join).
struct Connection {
    socket: TcpStream,
    thread: JoinHandle<()>,
}

/// Options for a [`FaultServer`]; [`FaultServer::serve`] is `FaultServerBuilder::new(dir).serve()`.
#[derive(Debug, Clone)]
pub struct FaultServerBuilder {
    root: PathBuf,
    addr: SocketAddr,
    rules: Vec<Rule>,
}

impl FaultServerBuilder {
    /// Serve `root` on 127.0.0.1 at a free port.
    #[must_use]
    pub fn new(root: impl Into<PathBuf>) -> FaultServerBuilder {
        FaultServerBuilder {
            root: root.into(),
            addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
            rules: Vec::new(),
        }
    }

    /// Listen here instead (port 0 picks a free port).
    #[must_use]
    pub fn addr(mut self, addr: SocketAddr) -> FaultServerBuilder {
        self.addr = addr;
        self
    }

    /// A rule in force from the first request (same as [`FaultServer::add_rule`] right after start).
    #[must_use]
    pub fn rule(mut self, rule: Rule) -> FaultServerBuilder {
        self.rules.push(rule);
        self
    }

    pub fn serve(self) -> Result<FaultServer, FaultServerError> {
        ensure!(self.root.is_dir(), NotADirectorySnafu { path: self.root });
        let listener = TcpListener::bind(self.addr).context(BindSnafu { addr: self.addr })?;
        let addr = listener.local_addr().context(LocalAddrSnafu)?;
        let base_url = Url::parse(&format!("http://{addr}/")).context(BaseUrlSnafu { addr })?;

        let mut rules = RuleTable::default();
        for rule in self.rules {
            rules.add(rule);
        }
        let shared = Arc::new(Shared {
            root: self.root,
            stop: StopSignal::default(),
            rules: Mutex::new(rules),
            log: Mutex::new(Vec::new()),
            accepted: AtomicU64::new(0),
        });
        let connections = Arc::new(Mutex::new(Vec::new()));
        let accept = {
            let shared = Arc::clone(&shared);
            let connections = Arc::clone(&connections);
            thread::Builder::new()
                .name(format!("fault-server-{}", addr.port()))
                .spawn(move || accept_loop(&listener, &shared, &connections))
                .context(SpawnAcceptThreadSnafu)?
        };
        Ok(FaultServer {
            shared,
            addr,
            base_url,
            accept: Some(accept),
            connections,
        })
    }
}

/// An HTTP/1.1 server over a directory, on its own threads, that injects faults into chosen responses and
/// records every request. Stops (and joins its threads) when dropped.
///
/// Serves GET and HEAD of regular files (404 otherwise, 403 for any `..` in the path, 405 for other methods),
/// single byte ranges (`bytes=N-`, `N-M`, `-N`: 206 with Content-Range, or 416), keep-alive, one thread per
/// connection. The query string is ignored for the lookup and recorded.
pub struct FaultServer {
    shared: Arc<Shared>,
    addr: SocketAddr,
    base_url: Url,
    accept: Option<JoinHandle<()>>,
    connections: Arc<Mutex<Vec<Connection>>>,
}

impl FaultServer {
    /// Serve `root` on 127.0.0.1 at a free port, with no faults.
    pub fn serve(root: impl Into<PathBuf>) -> Result<FaultServer, FaultServerError> {
        FaultServerBuilder::new(root).serve()
    }

    pub fn builder(root: impl Into<PathBuf>) -> FaultServerBuilder {
        FaultServerBuilder::new(root)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn root(&self) -> &Path {
        &self.shared.root
    }

    /// `http://127.0.0.1:PORT/`, with the trailing slash, so `join` keeps the path.
    pub fn base_url(&self) -> Url {
        self.base_url.clone()
    }

    /// The URL of a file under the root, e.g. `url_for("metadata/timestamp.json")`. Each `/`-separated segment is
    /// percent-encoded as needed (so `?` and `#` are part of the name, not a query); set a query with
    /// [`Url::set_query`].
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

    /// Adds a fault rule; it applies from the next request on.
    pub fn add_rule(&self, rule: Rule) -> RuleId {
        self.shared.rules().add(rule)
    }

    /// Removes a rule; false if it was already gone.
    pub fn remove_rule(&self, id: RuleId) -> bool {
        self.shared.rules().remove(id)
    }

    pub fn clear_rules(&self) {
        self.shared.rules().clear();
    }

    /// How many requests a rule's fault was applied to (`None` once the rule is removed).
    pub fn rule_hits(&self, id: RuleId) -> Option<u32> {
        self.shared.rules().hits(id)
    }

    /// Every request so far, in the order their responses started.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.log).clone()
    }

    /// The recorded requests whose path ends with `suffix`.
    pub fn requests_for(&self, suffix: &str) -> Vec<RecordedRequest> {
        lock(&self.shared.log)
            .iter()
            .filter(|request| request.path.ends_with(suffix))
            .cloned()
            .collect()
    }

    pub fn clear_requests(&self) {
        lock(&self.shared.log).clear();
    }

    /// How many client connections the server has accepted so far: with keep-alive, fewer than the requests.
    pub fn connections_accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::Relaxed)
    }
}

impl std::fmt::Debug for FaultServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultServer")
            .field("addr", &self.addr)
            .field("root", &self.shared.root)
            .finish_non_exhaustive()
    }
}

impl Drop for FaultServer {
    fn drop(&mut self) {
        self.shared.stop.stop();
        if let Some(accept) = self.accept.take() {
            // accept() blocks; a connection of our own wakes it to see the stop signal. Should that connection
            // fail, the thread is left to exit on the next connection rather than blocking this drop for ever.
            if TcpStream::connect_timeout(&wake_addr(self.addr), Duration::from_secs(1)).is_ok() {
                // A panic in the accept thread has nothing left to tell a dropping handle.
                let _ = accept.join();
            }
        }
        let connections = std::mem::take(&mut *lock(&self.connections));
        for connection in &connections {
            // Unblocks reads and writes; the socket may already be closed, which is just as good.
            let _ = connection.socket.shutdown(Shutdown::Both);
        }
        for connection in connections {
            let _ = connection.thread.join();
        }
    }
}

/// Where to connect to reach a listener bound to `addr` (an unspecified address is reached on loopback).
fn wake_addr(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), addr.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), addr.port())
        }
        _ => addr,
    }
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>, connections: &Mutex<Vec<Connection>>) {
    for stream in listener.incoming() {
        if shared.stop.is_stopping() {
            return;
        }
        let Ok(stream) = stream else {
            // Transient (ECONNABORTED, EMFILE): back off a little instead of spinning.
            thread::sleep(Duration::from_millis(10));
            continue;
        };
        shared.accepted.fetch_add(1, Ordering::Relaxed);
        let Ok(socket) = stream.try_clone() else {
            continue;
        };
        let thread = {
            let shared = Arc::clone(shared);
            thread::Builder::new()
                .name("fault-server-conn".into())
                .spawn(move || serve_connection(&stream, &shared))
        };
        // Without a thread the stream is dropped, which closes it: the client sees a reset, as from an overloaded
        // server.
        if let Ok(thread) = thread {
            let mut connections = lock(connections);
            connections.retain(|connection| !connection.thread.is_finished());
            connections.push(Connection { socket, thread });
        }
    }
}
