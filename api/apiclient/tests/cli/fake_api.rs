//! A small real HTTP/1.1 server (hyper) on a unix socket in a temporary directory: it answers from a script and
//! records every request, so tests can run the real `apiclient` binary against it and check both what the client
//! printed and exactly what it sent.

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::sync::oneshot;

/// One request as the server received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub method: String,
    /// Path and query, as sent.
    pub uri: String,
    pub body: String,
    pub host: Option<String>,
}

impl Recorded {
    /// The path without its query.
    pub fn path(&self) -> &str {
        self.uri.split('?').next().unwrap_or_default()
    }

    /// The value of query parameter `name`.
    pub fn query(&self, name: &str) -> Option<&str> {
        let query = self.uri.split_once('?')?.1;
        query
            .split('&')
            .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
    }
}

/// A canned answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub body: String,
}

impl Reply {
    pub fn new(status: u16, body: impl Into<String>) -> Self {
        Self {
            status,
            body: body.into(),
        }
    }

    pub fn no_content() -> Self {
        Self::new(204, "")
    }

    pub fn json(body: impl Into<String>) -> Self {
        Self::new(200, body)
    }
}

/// The script: `GET /updates/status` answers from a queue (the last answer repeats); any other request
/// answers by its exact `METHOD uri`, else by `METHOD path`, else 404.
#[derive(Debug, Default)]
pub struct Script {
    statuses: VecDeque<Reply>,
    routes: Vec<(String, String, Reply)>,
}

impl Script {
    pub fn new() -> Self {
        Self::default()
    }

    /// Answers for successive `GET /updates/status`; the last one repeats.
    pub fn statuses(mut self, statuses: impl IntoIterator<Item = Reply>) -> Self {
        self.statuses.extend(statuses);
        self
    }

    /// Answers `method target` (an exact path-and-query, or a path) with `reply`.
    pub fn route(mut self, method: &str, target: &str, reply: Reply) -> Self {
        self.routes.push((method.into(), target.into(), reply));
        self
    }

    fn answer(&mut self, request: &Recorded) -> Reply {
        if request.method == "GET" && request.uri == "/updates/status" {
            return match self.statuses.len() {
                0 => Reply::new(404, "no status in the script"),
                1 => self.statuses[0].clone(),
                _ => self.statuses.pop_front().unwrap(),
            };
        }
        let find = |target: &str| {
            self.routes
                .iter()
                .find(|(method, t, _)| *method == request.method && t == target)
                .map(|(_, _, reply)| reply.clone())
        };
        find(&request.uri)
            .or_else(|| find(request.path()))
            .unwrap_or_else(|| {
                Reply::new(
                    404,
                    format!("no route for {} {}", request.method, request.uri),
                )
            })
    }
}

/// The running server; stopped when dropped.
pub struct FakeApi {
    dir: tempfile::TempDir,
    socket: PathBuf,
    requests: Arc<Mutex<Vec<Recorded>>>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl FakeApi {
    /// Listens on `<tempdir>/api.sock` and answers from `script`.
    pub fn start(script: Script) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("api.sock");
        // Bound before this returns, so the client never races the listener.
        let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        listener.set_nonblocking(true).unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(script));
        let (stop, mut stopped) = oneshot::channel();
        let recorded = Arc::clone(&requests);
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::UnixListener::from_std(listener).unwrap();
                loop {
                    tokio::select! {
                        _ = &mut stopped => break,
                        accepted = listener.accept() => {
                            let (stream, _) = accepted.unwrap();
                            let script = Arc::clone(&script);
                            let recorded = Arc::clone(&recorded);
                            tokio::spawn(async move {
                                let service = service_fn(move |request| {
                                    handle(request, Arc::clone(&script), Arc::clone(&recorded))
                                });
                                let _ = hyper::server::conn::http1::Builder::new()
                                    .serve_connection(TokioIo::new(stream), service)
                                    .await;
                            });
                        }
                    }
                }
            });
        });
        Self {
            dir,
            socket,
            requests,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// A scratch directory that lives as long as the server.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Every request so far, in the order received.
    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    /// `METHOD uri` of every request so far.
    pub fn calls(&self) -> Vec<String> {
        self.requests()
            .iter()
            .map(|r| format!("{} {}", r.method, r.uri))
            .collect()
    }

    /// Runs `apiclient -s <socket> args...`.
    pub fn apiclient(&self, args: &[&str]) -> Output {
        self.apiclient_with_stdin(args, None)
    }

    /// Runs `apiclient -s <socket> args...` with `stdin` as its standard input.
    pub fn apiclient_with_stdin(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let socket = self.socket.to_str().unwrap();
        let mut all = vec!["-s", socket];
        all.extend_from_slice(args);
        run_apiclient(&all, stdin)
    }
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn handle(
    request: Request<Incoming>,
    script: Arc<Mutex<Script>>,
    recorded: Arc<Mutex<Vec<Recorded>>>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let method = request.method().as_str().to_owned();
    let uri = request.uri().to_string();
    let host = request
        .headers()
        .get(hyper::header::HOST)
        .map(|h| h.to_str().unwrap().to_owned());
    let body = request.into_body().collect().await.unwrap().to_bytes();
    let request = Recorded {
        method,
        uri,
        body: String::from_utf8(body.to_vec()).unwrap(),
        host,
    };
    let reply = script.lock().unwrap().answer(&request);
    recorded.lock().unwrap().push(request);
    let content_type = if reply.status == 200 {
        "application/json"
    } else {
        "text/plain"
    };
    Ok(Response::builder()
        .status(reply.status)
        .header(hyper::header::CONTENT_TYPE, content_type)
        .body(Full::new(Bytes::from(reply.body)))
        .unwrap())
}

/// Runs the real `apiclient` with `args` (polling intervals shortened to 1 ms; upstream's attempt counts kept),
/// failing the test if it has not finished within 60 s rather than hanging.
pub fn run_apiclient(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_apiclient"))
        .args(args)
        .env("APICLIENT_POLL_INTERVAL_MS", "1")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(text) = stdin {
        use std::io::Write;
        let mut pipe = child.stdin.take().unwrap();
        pipe.write_all(text.as_bytes()).unwrap();
    }
    let pid = child.id();
    let (done, finished) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(child.wait_with_output());
    });
    match finished.recv_timeout(Duration::from_secs(60)) {
        Ok(output) => output.unwrap(),
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            panic!("apiclient {args:?} did not finish within 60 s");
        }
    }
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}
