//! The transport every updog command fetches with (TUF metadata, manifest.json, migrations, images): HTTP downloads
//! that survive a dropped connection and fail on a stall, for files of any size.
//!
//! tough's own HTTP transport does not fit: its timeout covers the whole body (a large image on a slow link runs out
//! of time however healthy the link is), a stalled small file takes its four tries of 30 s and ends in a bare
//! "error decoding response body", a body that breaks off is retried only when the first response said
//! `Accept-Ranges`, and it can only take a proxy from the environment. [`ResumingTransport`] instead:
//!
//! - keeps one HTTP client (connections are reused between the metadata files and the targets), with updog.toml's
//!   `https_proxy`/`no_proxy` given to it directly ([`HttpsProxy`]); without them reqwest reads `HTTPS_PROXY` and
//!   `NO_PROXY` from the environment, as upstream;
//! - has no total timeout: a download fails when **no byte** arrives for `stall_timeout` (waiting for the response
//!   headers or for the next part of the body);
//! - when a response breaks off (connection reset, closed before its `Content-Length`) or the server answers 5xx,
//!   408 or 429, tries again after a backoff (doubling from `initial_backoff` up to `max_backoff`), asking only for
//!   the rest: `Range: bytes=N-`. The answer must be `206` with a `Content-Range` starting at `N`;
//! - when the server ignores the Range and answers `200` with the whole file, reads it again from the start and
//!   discards the `N` bytes it already passed on, so the consumer sees one seamless stream and never has to restart
//!   (tough's length and sha256 checks run over the whole stream as usual);
//! - gives up after `retries` consecutive failed attempts that brought no new byte (an attempt that brings new bytes
//!   resets the count, so a long download over a flaky link keeps going while it makes progress);
//! - `404`, `403` and `410` are "file not found" for tough (it needs that to find the end of the root chain);
//! - adds upstream's query parameters ([`QueryParams`]) to every HTTP request;
//! - hands `file://` URLs to tough's `FilesystemTransport`.
//!
//! Each download runs as a task that passes the body on through a small bounded channel, so memory stays bounded by
//! a few of the HTTP client's chunks whatever the file's size.
//!
//! How long a fetch can take: a server that accepts the connection and then sends nothing (or stops sending) fails
//! the fetch after `stall_timeout` (`stall_timeout_seconds` in updog.toml, 30 s by default) with "timed out: no data
//! for N s"; a refused or failing connection after at most `retries` backoffs and `connect_timeout`s.

use crate::transport::QueryParams;
use bytes::Bytes;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_RANGE, RANGE};
use snafu::Snafu;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::timeout;
use tough::{FilesystemTransport, Transport, TransportError, TransportErrorKind, TransportStream};
use url::Url;

/// How many body chunks (each at most a few hundred KiB from the HTTP client) may wait for the consumer.
const CHANNEL_CHUNKS: usize = 8;

/// The download policy; `stall_timeout`, `retries` and the proxy come from updog.toml (see `Config`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchSettings {
    /// A download fails when no byte arrives for this long.
    pub stall_timeout: Duration,
    /// The limit on establishing a connection (a failed connect is retried).
    pub connect_timeout: Duration,
    /// Consecutive failed attempts without progress before giving up.
    pub retries: u32,
    /// The pause before the first retry; it doubles up to `max_backoff`.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// updog.toml's proxy for `https://` URLs; `None`: reqwest's own reading of the environment.
    pub https_proxy: Option<HttpsProxy>,
}

impl Default for FetchSettings {
    fn default() -> Self {
        Self {
            stall_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            retries: 5,
            initial_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(8),
            https_proxy: None,
        }
    }
}

/// updog.toml's `https_proxy` and `no_proxy`, given to the HTTP client directly (upstream exports them as
/// `HTTPS_PROXY`/`NO_PROXY` for reqwest to read; a library must not change its process's environment).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpsProxy {
    /// The proxy for `https://` URLs: `http://host:port`, or `host:port` (reqwest adds `http://`, as upstream).
    pub url: String,
    /// The hosts that bypass it, comma-separated (`NO_PROXY`'s format). `None`: the environment's `NO_PROXY`
    /// still applies, as it does upstream when updog.toml gives no list.
    pub no_proxy: Option<String>,
}

impl HttpsProxy {
    /// Upstream's rule: a proxy only for a non-empty `https_proxy`, and with it a bypass list only for a non-empty
    /// `no_proxy` (joined with commas).
    #[must_use]
    pub fn from_config(https_proxy: Option<&str>, no_proxy: Option<&[String]>) -> Option<Self> {
        let url = https_proxy.filter(|url| !url.is_empty())?;
        Some(Self {
            url: url.to_string(),
            no_proxy: no_proxy
                .filter(|hosts| !hosts.is_empty())
                .map(|hosts| hosts.join(",")),
        })
    }

    /// The reqwest proxy: `url` for `https://` requests, except the `no_proxy` hosts. Setting it turns off reqwest's
    /// reading of the environment's proxies, so `NO_PROXY` is read here when updog.toml gives no list.
    pub fn to_reqwest(&self) -> Result<reqwest::Proxy, FetchError> {
        let proxy =
            reqwest::Proxy::https(self.url.as_str()).map_err(|source| FetchError::Proxy {
                url: self.url.clone(),
                source,
            })?;
        let no_proxy = match &self.no_proxy {
            Some(hosts) => reqwest::NoProxy::from_string(hosts),
            None => reqwest::NoProxy::from_env(),
        };
        Ok(proxy.no_proxy(no_proxy))
    }
}

/// Why a download failed (carried inside tough's `TransportError`).
#[derive(Debug, Snafu)]
#[snafu(visibility(pub(crate)))]
pub enum FetchError {
    #[snafu(display(
        "timed out: no data for {} s (stall timeout) after byte {offset}; giving up",
        timeout.as_secs_f64()
    ))]
    Stalled { timeout: Duration, offset: u64 },

    #[snafu(display("the server answered HTTP {status}"))]
    Status { status: StatusCode },

    #[snafu(display(
        "asked for the rest from byte {offset}, the server answered 206 with Content-Range {content_range:?}"
    ))]
    BadContentRange {
        offset: u64,
        content_range: Option<String>,
    },

    #[snafu(display("the server answered 206 to a request that asked for no range"))]
    UnaskedRange,

    #[snafu(display("gave up after {retries} retries without progress, at byte {offset}: {last}"))]
    Exhausted {
        retries: u32,
        offset: u64,
        last: String,
    },

    #[snafu(display("Failed to build the HTTP client: {source}"))]
    Client { source: reqwest::Error },

    #[snafu(display("Invalid https_proxy '{url}': {source}"))]
    Proxy { url: String, source: reqwest::Error },
}

/// The update transport (see the module documentation).
#[derive(Debug, Clone)]
pub struct ResumingTransport {
    client: reqwest::Client,
    settings: FetchSettings,
    params: QueryParams,
}

impl ResumingTransport {
    /// A transport adding `params` to every HTTP request, downloading by `settings` (through its proxy, if any).
    pub fn new(params: QueryParams, settings: FetchSettings) -> Result<Self, FetchError> {
        install_crypto_provider();
        let mut builder = reqwest::Client::builder().connect_timeout(settings.connect_timeout);
        if let Some(proxy) = &settings.https_proxy {
            builder = builder.proxy(proxy.to_reqwest()?);
        }
        let client = builder
            .build()
            .map_err(|source| FetchError::Client { source })?;
        Ok(Self {
            client,
            settings,
            params,
        })
    }

    pub fn params(&self) -> &QueryParams {
        &self.params
    }

    pub fn settings(&self) -> &FetchSettings {
        &self.settings
    }
}

/// reqwest is built (by tough's features) without a TLS crypto provider of its own and panics if none is installed
/// when a client is built. tough's HTTP transport builder installs aws-lc-rs as the process default (once); using
/// it here keeps one provider for tough's client and ours, without another dependency.
fn install_crypto_provider() {
    drop(tough::HttpTransportBuilder::new());
}

#[tough::async_trait]
impl Transport for ResumingTransport {
    async fn fetch(&self, url: Url) -> Result<TransportStream, TransportError> {
        match url.scheme() {
            "file" => FilesystemTransport.fetch(url).await,
            "http" | "https" => {
                let download = Download {
                    client: self.client.clone(),
                    settings: self.settings.clone(),
                    url: self.params.apply(url),
                };
                let (tx, mut rx) = mpsc::channel(CHANNEL_CHUNKS);
                tokio::spawn(download.run(tx));
                Ok(Box::pin(futures::stream::poll_fn(move |cx| {
                    rx.poll_recv(cx)
                })))
            }
            _ => Err(TransportError::new(
                TransportErrorKind::UnsupportedUrlScheme,
                url,
            )),
        }
    }
}

type Chunks = mpsc::Sender<Result<Bytes, TransportError>>;

/// One file being downloaded.
struct Download {
    client: reqwest::Client,
    settings: FetchSettings,
    url: Url,
}

/// How one attempt ended, when not with the whole body.
enum Failure {
    /// Worth another try (from where it stopped).
    Retry(String),
    /// The download cannot succeed.
    Fatal(TransportError),
    /// The consumer dropped the stream: stop quietly.
    Gone,
}

impl Download {
    async fn run(self, tx: Chunks) {
        if let Err(error) = self.download(&tx).await {
            // The consumer may have gone already; then no one is left to tell.
            let _ = tx.send(Err(error)).await;
        }
    }

    async fn download(&self, tx: &Chunks) -> Result<(), TransportError> {
        let mut offset = 0u64;
        let mut failures = 0u32;
        let mut backoff = self.settings.initial_backoff;
        loop {
            let before = offset;
            let cause = match self.attempt(&mut offset, tx).await {
                Ok(()) | Err(Failure::Gone) => return Ok(()),
                Err(Failure::Fatal(error)) => return Err(error),
                Err(Failure::Retry(cause)) => cause,
            };
            if offset > before {
                failures = 0;
                backoff = self.settings.initial_backoff;
            }
            failures += 1;
            if failures > self.settings.retries {
                return Err(self.error(
                    TransportErrorKind::Other,
                    FetchError::Exhausted {
                        retries: self.settings.retries,
                        offset,
                        last: cause,
                    },
                ));
            }
            log::warn!(
                "{}: {cause}; retrying from byte {offset} in {} ms (retry {failures} of {})",
                redacted(&self.url),
                backoff.as_millis(),
                self.settings.retries
            );
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(self.settings.max_backoff);
        }
    }

    /// One request: passes on every new byte (advancing `offset`) until the body ends.
    async fn attempt(&self, offset: &mut u64, tx: &Chunks) -> Result<(), Failure> {
        let mut request = self.client.get(self.url.clone());
        if *offset > 0 {
            request = request.header(RANGE, format!("bytes={offset}-"));
        }
        let mut response = match timeout(self.settings.stall_timeout, request.send()).await {
            Err(_) => return Err(self.stalled(*offset)),
            Ok(Err(e)) => {
                // reqwest's message repeats the URL, credentials included; ours names it redacted.
                let e = e.without_url();
                return Err(Failure::Retry(format!("request failed: {e}")));
            }
            Ok(Ok(response)) => response,
        };
        let status = response.status();
        // Bytes of this response that the consumer already has (a server that ignored the Range).
        let mut skip = 0u64;
        match status {
            StatusCode::OK => {
                if *offset > 0 {
                    log::warn!(
                        "{} ignored the Range request (HTTP 200): reading it again from the start and skipping the \
                         {offset} bytes already received",
                        redacted(&self.url)
                    );
                    skip = *offset;
                }
            }
            StatusCode::PARTIAL_CONTENT if *offset == 0 => {
                return Err(self.fatal(FetchError::UnaskedRange));
            }
            StatusCode::PARTIAL_CONTENT => {
                let content_range = response
                    .headers()
                    .get(CONTENT_RANGE)
                    .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
                if content_range.as_deref().and_then(range_start) != Some(*offset) {
                    return Err(self.fatal(FetchError::BadContentRange {
                        offset: *offset,
                        content_range,
                    }));
                }
            }
            StatusCode::NOT_FOUND | StatusCode::FORBIDDEN | StatusCode::GONE => {
                return Err(Failure::Fatal(self.error(
                    TransportErrorKind::FileNotFound,
                    FetchError::Status { status },
                )));
            }
            s if s.is_server_error()
                || s == StatusCode::REQUEST_TIMEOUT
                || s == StatusCode::TOO_MANY_REQUESTS =>
            {
                return Err(Failure::Retry(format!("the server answered HTTP {s}")));
            }
            _ => return Err(self.fatal(FetchError::Status { status })),
        }

        loop {
            let chunk = match timeout(self.settings.stall_timeout, response.chunk()).await {
                Err(_) => return Err(self.stalled(*offset)),
                Ok(Err(e)) => {
                    return Err(Failure::Retry(format!(
                        "the response broke off after byte {offset}: {e}"
                    )));
                }
                Ok(Ok(None)) if skip > 0 => {
                    return Err(Failure::Retry(format!(
                        "the response ended {skip} bytes before byte {offset}"
                    )));
                }
                // A body shorter than its Content-Length is an error above (the HTTP client checks it); a
                // close-delimited body simply ends here, and tough's length and hash checks judge it.
                Ok(Ok(None)) => return Ok(()),
                Ok(Ok(Some(chunk))) => chunk,
            };
            let chunk = if skip > 0 {
                let drop = usize::try_from(skip).map_or(chunk.len(), |skip| skip.min(chunk.len()));
                skip -= drop as u64;
                chunk.slice(drop..)
            } else {
                chunk
            };
            if chunk.is_empty() {
                continue;
            }
            *offset += chunk.len() as u64;
            if tx.send(Ok(chunk)).await.is_err() {
                return Err(Failure::Gone);
            }
        }
    }

    fn error(&self, kind: TransportErrorKind, error: FetchError) -> TransportError {
        TransportError::new_with_cause(kind, redacted(&self.url).as_str(), error)
    }

    fn fatal(&self, error: FetchError) -> Failure {
        Failure::Fatal(self.error(TransportErrorKind::Other, error))
    }

    fn stalled(&self, offset: u64) -> Failure {
        self.fatal(FetchError::Stalled {
            timeout: self.settings.stall_timeout,
            offset,
        })
    }
}

/// The first byte of a `Content-Range: bytes START-END/TOTAL` header.
fn range_start(header: &str) -> Option<u64> {
    let range = header.trim().strip_prefix("bytes ")?;
    let (start, _) = range.split_once('-')?;
    start.trim().parse().ok()
}

/// `url` as logs and errors show it: a password in it (`https://user:secret@host/`) replaced by `***`, so that
/// repository credentials never reach a log.
#[must_use]
pub fn redacted(url: &Url) -> Url {
    let mut shown = url.clone();
    if shown.password().is_some() && shown.set_password(Some("***")).is_err() {
        // A URL that cannot carry a password (no host) has none to hide.
        return url.clone();
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_in_a_url_is_never_shown() {
        let url = Url::parse("http://admin:s3cret@repo.example/metadata/").unwrap();
        assert_eq!(
            redacted(&url).as_str(),
            "http://admin:***@repo.example/metadata/"
        );
        let plain = Url::parse("https://repo.example/targets/").unwrap();
        assert_eq!(redacted(&plain), plain);
    }
    use futures::StreamExt;
    use repo_fixtures::http::{AfterStall, Fault, FaultServer, PathMatch, Rule};

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    fn fast() -> FetchSettings {
        FetchSettings {
            stall_timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(2),
            retries: 3,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(40),
            https_proxy: None,
        }
    }

    /// A 1 MiB file of varied bytes in a served directory.
    fn served_file() -> (tempfile::TempDir, Vec<u8>) {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..1u32 << 20)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13).to_le_bytes()[0])
            .collect();
        std::fs::write(dir.path().join("image.lz4"), &data).unwrap();
        (dir, data)
    }

    /// Fetches `url` to the end: the bytes, or the first error.
    fn fetch(transport: &ResumingTransport, url: Url) -> Result<Vec<u8>, TransportError> {
        runtime().block_on(async {
            let mut stream = transport.fetch(url).await?;
            let mut out = Vec::new();
            while let Some(chunk) = stream.next().await {
                out.extend_from_slice(&chunk?);
            }
            Ok(out)
        })
    }

    fn transport(settings: FetchSettings) -> ResumingTransport {
        let params = QueryParams::new();
        params.add("seed", "7");
        ResumingTransport::new(params, settings).unwrap()
    }

    #[test]
    fn a_dropped_connection_resumes_with_a_range_request() {
        let (dir, data) = served_file();
        let server = FaultServer::serve(dir.path()).unwrap();
        server.add_rule(Rule::new(PathMatch::suffix(".lz4"), Fault::DropAfter(300_000)).first(2));
        let got = fetch(&transport(fast()), server.url_for("image.lz4")).unwrap();
        assert!(got == data, "the resumed body is the file");
        let requests = server.requests_for(".lz4");
        let ranges: Vec<_> = requests
            .iter()
            .map(|r| r.header("range").map(str::to_string))
            .collect();
        assert_eq!(
            ranges,
            [
                None,
                Some("bytes=300000-".to_string()),
                Some("bytes=600000-".to_string())
            ]
        );
        for request in &requests {
            assert_eq!(request.query.as_deref(), Some("seed=7"));
        }
    }

    #[test]
    fn a_server_that_ignores_range_is_read_again_and_the_stream_stays_seamless() {
        let (dir, data) = served_file();
        let server = FaultServer::serve(dir.path()).unwrap();
        server.add_rule(Rule::new(PathMatch::suffix(".lz4"), Fault::IgnoreRange));
        server.add_rule(Rule::new(PathMatch::suffix(".lz4"), Fault::DropAfter(400_000)).first(1));
        let got = fetch(&transport(fast()), server.url_for("image.lz4")).unwrap();
        assert!(got == data);
        let requests = server.requests_for(".lz4");
        assert_eq!(requests.len(), 2);
        assert_eq!(requests[1].status, 200);
        assert!(requests[1].range.is_some(), "it asked for the rest");
    }

    #[test]
    fn a_stall_longer_than_the_stall_timeout_fails() {
        let (dir, _) = served_file();
        let server = FaultServer::serve(dir.path()).unwrap();
        server.add_rule(Rule::new(
            PathMatch::suffix(".lz4"),
            Fault::StallAfter {
                bytes: 100_000,
                duration: Duration::from_secs(30),
                then: AfterStall::Continue,
            },
        ));
        let settings = FetchSettings {
            stall_timeout: Duration::from_millis(500),
            ..fast()
        };
        let started = std::time::Instant::now();
        let error = fetch(&transport(settings), server.url_for("image.lz4")).unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(10));
        let cause = std::error::Error::source(&error).unwrap().to_string();
        assert_eq!(
            cause,
            "timed out: no data for 0.5 s (stall timeout) after byte 100000; giving up"
        );
        assert_eq!(
            server.requests_for(".lz4").len(),
            1,
            "a stall is not retried"
        );
    }

    #[test]
    fn a_short_stall_is_only_slow() {
        let (dir, data) = served_file();
        let server = FaultServer::serve(dir.path()).unwrap();
        server.add_rule(Rule::new(
            PathMatch::suffix(".lz4"),
            Fault::StallAfter {
                bytes: 100_000,
                duration: Duration::from_millis(300),
                then: AfterStall::Continue,
            },
        ));
        assert!(fetch(&transport(fast()), server.url_for("image.lz4")).unwrap() == data);
    }

    #[test]
    fn server_errors_are_retried_and_missing_files_are_not_found() {
        let (dir, data) = served_file();
        let server = FaultServer::serve(dir.path()).unwrap();
        server.add_rule(Rule::new(PathMatch::suffix(".lz4"), Fault::Status(503)).first(2));
        assert!(fetch(&transport(fast()), server.url_for("image.lz4")).unwrap() == data);
        assert_eq!(server.requests_for(".lz4").len(), 3);

        let error = fetch(&transport(fast()), server.url_for("missing.json")).unwrap_err();
        assert_eq!(error.kind(), TransportErrorKind::FileNotFound);
        assert_eq!(server.requests_for("missing.json").len(), 1);
    }

    #[test]
    fn retries_without_progress_are_bounded() {
        let (dir, _) = served_file();
        let server = FaultServer::serve(dir.path()).unwrap();
        server.add_rule(Rule::new(PathMatch::suffix(".lz4"), Fault::Status(500)));
        let error = fetch(&transport(fast()), server.url_for("image.lz4")).unwrap_err();
        assert_eq!(
            std::error::Error::source(&error).unwrap().to_string(),
            "gave up after 3 retries without progress, at byte 0: the server answered HTTP 500 Internal Server Error"
        );
        assert_eq!(server.requests_for(".lz4").len(), 4);
    }

    #[test]
    fn file_urls_go_through_the_filesystem_transport() {
        let (dir, data) = served_file();
        let url = Url::from_file_path(dir.path().join("image.lz4")).unwrap();
        assert!(fetch(&transport(fast()), url).unwrap() == data);
        let missing = Url::from_file_path(dir.path().join("nope")).unwrap();
        let error = fetch(&transport(fast()), missing).unwrap_err();
        assert_eq!(error.kind(), TransportErrorKind::FileNotFound);
    }

    #[test]
    fn content_range_starts_are_parsed() {
        assert_eq!(range_start("bytes 300-999/1000"), Some(300));
        assert_eq!(range_start("bytes 0-0/1"), Some(0));
        assert_eq!(range_start("bytes */1000"), None);
        assert_eq!(range_start("items 1-2/3"), None);
    }
}
