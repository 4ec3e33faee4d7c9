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
//! - has no total timeout by default: a download fails when fewer than `min_rate_bytes` arrive in any window of
//!   `stall_timeout` (curl's `--speed-limit`/`--speed-time`; a stall is the case of no byte at all), counted from the
//!   request, so a server that trickles a byte now and then cannot hold a fetch open for ever (TUF's slow-retrieval
//!   attack). Time spent waiting for the consumer (a disk that is slower than the link) is not counted against the
//!   server. An optional `deadline` bounds the whole fetch, retries and backoffs included
//!   ([`ResumingTransport::with_deadline`], for small files such as TUF metadata);
//! - follows **no redirects**: a 3xx answer is an error naming its `Location`, so the query parameters never reach
//!   a host other than the configured one and `https://` never turns into `http://`;
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
//! for N s"; one that sends, but fewer than `min_rate_bytes` (`min_transfer_bytes`, 1024 by default) in a window of
//! `stall_timeout`, with "timed out: fewer than N bytes in N s (transfer too slow)"; a refused or failing connection
//! after at most `retries` backoffs and `connect_timeout`s; any fetch with a `deadline` after that deadline.
//!
//! Latency: consecutive fetches share the client's keep-alive connections (one per host, as long as each body is
//! read to its end, which every attempt does before it reports success).

use crate::transport::QueryParams;
use bytes::Bytes;
use futures::StreamExt;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_RANGE, LOCATION, RANGE};
use snafu::Snafu;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout, timeout_at};
use tough::{FilesystemTransport, Transport, TransportError, TransportErrorKind, TransportStream};
use url::Url;

/// How many body chunks (each at most a few hundred KiB from the HTTP client) may wait for the consumer.
const CHANNEL_CHUNKS: usize = 8;

/// The download policy; `stall_timeout`, `retries` and the proxy come from updog.toml (see `Config`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchSettings {
    /// The window of the minimum transfer rate: a download fails when fewer than `min_rate_bytes` arrive in any
    /// window this long (when no byte arrives for this long, it has stalled).
    pub stall_timeout: Duration,
    /// The bytes that must arrive in every `stall_timeout` window (0 is taken as 1: the plain stall timeout).
    pub min_rate_bytes: u64,
    /// A limit on the whole fetch (every attempt, backoff and the consumer's own pace); `None`: no limit.
    pub deadline: Option<Duration>,
    /// The limit on establishing a connection (a failed connect is retried).
    pub connect_timeout: Duration,
    /// Consecutive failed attempts without progress before giving up.
    pub retries: u32,
    /// The pause before the first retry; it doubles up to `max_backoff`.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// updog.toml's proxy for `https://` URLs; `None`: reqwest's own reading of the environment.
    pub https_proxy: Option<HttpsProxy>,
    /// At most this many bytes per second over all of the transport's fetches (`--max-rate`, `max_rate`); `None`:
    /// no limit.
    pub max_rate: Option<u64>,
}

impl Default for FetchSettings {
    fn default() -> Self {
        Self {
            stall_timeout: Duration::from_secs(30),
            min_rate_bytes: 1024,
            deadline: None,
            connect_timeout: Duration::from_secs(10),
            retries: 5,
            initial_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(8),
            https_proxy: None,
            max_rate: None,
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

    #[snafu(display(
        "timed out: fewer than {min_bytes} bytes in {} s (transfer too slow) after byte {offset}; giving up",
        window.as_secs_f64()
    ))]
    TooSlow {
        min_bytes: u64,
        window: Duration,
        offset: u64,
    },

    #[snafu(display(
        "timed out: the download took longer than its {} s deadline",
        deadline.as_secs_f64()
    ))]
    Deadline { deadline: Duration },

    #[snafu(display("the server answered HTTP {status}"))]
    Status { status: StatusCode },

    #[snafu(display(
        "the server answered HTTP {status}: the server redirected to {}; updog follows no redirects: configure the \
         final URL in updog.toml",
        location.as_deref().unwrap_or("nowhere (no Location header)")
    ))]
    Redirected {
        status: StatusCode,
        location: Option<String>,
    },

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
    /// `max_rate`, shared by every fetch of this transport and its clones.
    limit: Option<Arc<RateLimit>>,
}

impl ResumingTransport {
    /// A transport adding `params` to every HTTP request, downloading by `settings` (through its proxy, if any).
    pub fn new(params: QueryParams, settings: FetchSettings) -> Result<Self, FetchError> {
        install_crypto_provider();
        let mut builder = reqwest::Client::builder()
            .connect_timeout(settings.connect_timeout)
            // Never another host, never a downgrade from https: a 3xx is an error (`FetchError::Redirected`).
            .redirect(reqwest::redirect::Policy::none())
            // reqwest's default today; requests and small responses must not wait on Nagle and delayed ACKs.
            .tcp_nodelay(true);
        if let Some(proxy) = &settings.https_proxy {
            builder = builder.proxy(proxy.to_reqwest()?);
        }
        let client = builder
            .build()
            .map_err(|source| FetchError::Client { source })?;
        let limit = settings.max_rate.map(|rate| Arc::new(RateLimit::new(rate)));
        Ok(Self {
            client,
            settings,
            params,
            limit,
        })
    }

    /// The same transport (the same client and connection pool, the same query parameters) with a limit on each
    /// whole fetch: for small files, such as TUF metadata, that have no reason to take long.
    #[must_use]
    pub fn with_deadline(&self, deadline: Duration) -> ResumingTransport {
        let mut transport = self.clone();
        transport.settings.deadline = Some(deadline);
        transport
    }

    pub fn params(&self) -> &QueryParams {
        &self.params
    }

    pub fn settings(&self) -> &FetchSettings {
        &self.settings
    }
}

/// reqwest is built without a TLS crypto provider of its own (`rustls-no-provider`) and panics if none is installed
/// when a client is built: install aws-lc-rs, the provider tough verifies with, as the process default (once; a
/// provider installed before is kept).
fn install_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Fails only when another thread installed one in between, which is as good.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    }
}

impl ResumingTransport {
    /// Fetches `url` from byte `offset` on: the first request already asks for `Range: bytes=OFFSET-` (a server that
    /// ignores it is read from the start and the first `offset` bytes skipped, as after a drop); a `file://` URL is
    /// read and its first `offset` bytes skipped. For continuing a download from a checkpoint.
    pub async fn fetch_from(
        &self,
        url: Url,
        offset: u64,
    ) -> Result<TransportStream, TransportError> {
        match url.scheme() {
            "file" => {
                let stream = FilesystemTransport.fetch(url).await?;
                let mut skip = offset;
                Ok(Box::pin(stream.filter_map(move |chunk| {
                    let chunk = match chunk {
                        Ok(chunk) if skip >= chunk.len() as u64 => {
                            skip -= chunk.len() as u64;
                            None
                        }
                        Ok(chunk) => {
                            let from = usize::try_from(skip).expect("less than the chunk's length");
                            skip = 0;
                            Some(Ok(chunk.slice(from..)))
                        }
                        Err(e) => Some(Err(e)),
                    };
                    futures::future::ready(chunk)
                })))
            }
            "http" | "https" => {
                // The deadline runs from the caller's request, not from when the task first runs.
                let deadline = self
                    .settings
                    .deadline
                    .map(|limit| (Instant::now() + limit, limit));
                let download = Download {
                    client: self.client.clone(),
                    settings: self.settings.clone(),
                    url: self.params.apply(url),
                    deadline,
                    start: offset,
                    limit: self.limit.clone(),
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

#[tough::async_trait]
impl Transport for ResumingTransport {
    async fn fetch(&self, url: Url) -> Result<TransportStream, TransportError> {
        self.fetch_from(url, 0).await
    }
}

type Chunks = mpsc::Sender<Result<Bytes, TransportError>>;

/// One file being downloaded.
struct Download {
    client: reqwest::Client,
    settings: FetchSettings,
    url: Url,
    /// When the whole fetch must have ended, and the limit it came from.
    deadline: Option<(Instant, Duration)>,
    /// The first byte wanted.
    start: u64,
    limit: Option<Arc<RateLimit>>,
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
        let result = match self.deadline {
            Some((at, deadline)) => match timeout_at(at, self.download(&tx)).await {
                Ok(result) => result,
                Err(_) => {
                    Err(self.error(TransportErrorKind::Other, FetchError::Deadline { deadline }))
                }
            },
            None => self.download(&tx).await,
        };
        if let Err(error) = result {
            // The consumer may have gone already; then no one is left to tell.
            let _ = tx.send(Err(error)).await;
        }
    }

    async fn download(&self, tx: &Chunks) -> Result<(), TransportError> {
        let mut offset = self.start;
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
        // The window starts with the request: waiting for the headers is waiting for bytes.
        let mut rate = RateWindow::new(self.settings.stall_timeout, self.settings.min_rate_bytes);
        let mut response = match timeout(rate.patience(), request.send()).await {
            Err(_) => return Err(self.too_slow(&rate, *offset)),
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
            s if s.is_redirection() => {
                let location = response.headers().get(LOCATION).map(|value| {
                    let location = String::from_utf8_lossy(value.as_bytes());
                    // A credential in the Location is no more shown than one in our own URL.
                    Url::parse(&location)
                        .map_or_else(|_| location.into_owned(), |url| redacted(&url).into())
                });
                return Err(self.fatal(FetchError::Redirected { status, location }));
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
            let chunk = match timeout(rate.patience(), response.chunk()).await {
                Err(_) => return Err(self.too_slow(&rate, *offset)),
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
            // Skipped bytes count too: they came over the link.
            rate.arrived(chunk.len() as u64);
            if let Some(limit) = &self.limit {
                let wait = limit.take(chunk.len() as u64);
                if !wait.is_zero() {
                    tokio::time::sleep(wait).await;
                    // Our own pacing is not the server's slowness.
                    rate.pause(wait);
                }
            }
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
            let waiting = Instant::now();
            if tx.send(Ok(chunk)).await.is_err() {
                return Err(Failure::Gone);
            }
            // A consumer slower than the link (a disk flush) is not the server's slowness.
            rate.pause(waiting.elapsed());
        }
    }

    fn error(&self, kind: TransportErrorKind, error: FetchError) -> TransportError {
        TransportError::new_with_cause(kind, redacted(&self.url).as_str(), error)
    }

    fn fatal(&self, error: FetchError) -> Failure {
        Failure::Fatal(self.error(TransportErrorKind::Other, error))
    }

    /// The window ran out: no byte at all (a stall) or too few.
    fn too_slow(&self, rate: &RateWindow, offset: u64) -> Failure {
        if rate.in_window() == 0 {
            self.fatal(FetchError::Stalled {
                timeout: rate.window,
                offset,
            })
        } else {
            self.fatal(FetchError::TooSlow {
                min_bytes: rate.min_bytes,
                window: rate.window,
                offset,
            })
        }
    }
}

/// The minimum transfer rate of one attempt: at least `min_bytes` in every `window` of transfer time, from the
/// request on. Transfer time is wall time less the time spent waiting for the consumer.
///
/// The arrivals are kept, oldest first, trimmed to the fewest newest ones that still add up to `min_bytes` (at most
/// `min_bytes` of them): the oldest of those is the left edge of the window that fails first, so the next read may
/// wait until that arrival is `window` old. Until `min_bytes` have arrived the left edge is the request.
struct RateWindow {
    window: Duration,
    min_bytes: u64,
    /// Where transfer time is counted from; moved later by the time spent waiting for the consumer.
    origin: Instant,
    /// (transfer time of arrival, bytes).
    arrivals: VecDeque<(Duration, u64)>,
    /// The bytes in `arrivals`.
    kept: u64,
}

impl RateWindow {
    fn new(window: Duration, min_bytes: u64) -> Self {
        Self {
            window,
            min_bytes: min_bytes.max(1),
            origin: Instant::now(),
            arrivals: VecDeque::new(),
            kept: 0,
        }
    }

    fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    fn arrived(&mut self, bytes: u64) {
        if bytes == 0 {
            return;
        }
        self.arrivals.push_back((self.now(), bytes));
        self.kept += bytes;
        while let Some(&(_, oldest)) = self.arrivals.front()
            && self.kept - oldest >= self.min_bytes
        {
            self.arrivals.pop_front();
            self.kept -= oldest;
        }
    }

    /// Takes `waited` out of the transfer time.
    fn pause(&mut self, waited: Duration) {
        self.origin += waited;
    }

    /// How long the next read may wait before some window holds fewer than `min_bytes`.
    fn patience(&self) -> Duration {
        let left_edge = match self.arrivals.front() {
            Some(&(at, _)) if self.kept >= self.min_bytes => at,
            _ => Duration::ZERO,
        };
        (left_edge + self.window).saturating_sub(self.now())
    }

    /// The bytes that arrived in the last `window`.
    fn in_window(&self) -> u64 {
        let now = self.now();
        self.arrivals
            .iter()
            .filter(|(at, _)| *at + self.window > now)
            .map(|(_, bytes)| bytes)
            .sum()
    }
}

/// `max_rate`: a token bucket over every byte received (skipped ones too: they used the link). It holds at most a
/// quarter second's worth; a chunk larger than what it holds puts it in debt, and the next bytes wait until the debt
/// is paid, so over any stretch longer than the burst the rate stays at or below `rate`.
#[derive(Debug)]
struct RateLimit {
    rate: f64,
    capacity: f64,
    bucket: std::sync::Mutex<(f64, Instant)>,
}

impl RateLimit {
    // Rates are at most 2^40: exact in an f64.
    #[allow(clippy::cast_precision_loss)]
    fn new(rate: u64) -> Self {
        let rate = rate.max(1) as f64;
        let capacity = rate / 4.0;
        Self {
            rate,
            capacity,
            bucket: std::sync::Mutex::new((capacity, Instant::now())),
        }
    }

    /// Takes `bytes` from the bucket: how long to wait before passing them on.
    #[allow(clippy::cast_precision_loss)]
    fn take(&self, bytes: u64) -> Duration {
        let mut bucket = self
            .bucket
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        let (tokens, at) = *bucket;
        let tokens = (tokens + now.duration_since(at).as_secs_f64() * self.rate).min(self.capacity)
            - bytes as f64;
        *bucket = (tokens, now);
        if tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-tokens / self.rate)
        }
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
            min_rate_bytes: 1024,
            deadline: None,
            connect_timeout: Duration::from_secs(2),
            retries: 3,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(40),
            https_proxy: None,
            max_rate: None,
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

    fn fetch_from(
        transport: &ResumingTransport,
        url: Url,
        offset: u64,
    ) -> Result<Vec<u8>, TransportError> {
        runtime().block_on(async {
            let mut stream = transport.fetch_from(url, offset).await?;
            let mut out = Vec::new();
            while let Some(chunk) = stream.next().await {
                out.extend_from_slice(&chunk?);
            }
            Ok(out)
        })
    }

    #[test]
    fn a_fetch_from_an_offset_asks_for_the_rest_at_once_and_works_without_range_and_over_file_urls()
    {
        let (dir, data) = served_file();
        let server = FaultServer::serve(dir.path()).unwrap();
        let got = fetch_from(&transport(fast()), server.url_for("image.lz4"), 700_001).unwrap();
        assert!(got == data[700_001..]);
        let requests = server.requests_for(".lz4");
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].header("range"), Some("bytes=700001-"));
        assert_eq!(requests[0].status, 206);

        server.add_rule(Rule::new(PathMatch::suffix(".lz4"), Fault::IgnoreRange));
        let got = fetch_from(&transport(fast()), server.url_for("image.lz4"), 123_456).unwrap();
        assert!(
            got == data[123_456..],
            "the server's whole file, the first bytes skipped"
        );

        let file = Url::from_file_path(dir.path().join("image.lz4")).unwrap();
        let got = fetch_from(&transport(fast()), file, 1_000_000).unwrap();
        assert!(got == data[1_000_000..]);
    }

    #[test]
    fn max_rate_holds_a_download_to_at_least_its_size_over_the_rate() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("small.lz4"), vec![7u8; 40 << 10]).unwrap();
        let server = FaultServer::serve(dir.path()).unwrap();
        let transport = transport(FetchSettings {
            max_rate: Some(10 << 10),
            ..fast()
        });
        let started = std::time::Instant::now();
        let got = fetch(&transport, server.url_for("small.lz4")).unwrap();
        let took = started.elapsed();
        assert_eq!(got.len(), 40 << 10);
        // 40 KiB at 10 KiB/s with a quarter second's burst: at least 3.75 s. A lower bound only.
        assert!(took >= Duration::from_millis(3750), "took {took:?}");

        // The limit is the transport's, shared by its clones: two fetches at once share it.
        let dir2 = dir.path().to_owned();
        std::fs::write(dir2.join("other.lz4"), vec![1u8; 20 << 10]).unwrap();
        let other = transport.with_deadline(Duration::from_secs(60));
        let started = std::time::Instant::now();
        runtime().block_on(async {
            let (a, b) = futures::join!(
                transport.fetch(server.url_for("small.lz4")),
                other.fetch(server.url_for("other.lz4"))
            );
            let (mut a, mut b) = (a.unwrap(), b.unwrap());
            let (mut na, mut nb) = (0, 0);
            let (mut done_a, mut done_b) = (false, false);
            while !(done_a && done_b) {
                tokio::select! {
                    chunk = a.next(), if !done_a => match chunk {
                        Some(chunk) => na += chunk.unwrap().len(),
                        None => done_a = true,
                    },
                    chunk = b.next(), if !done_b => match chunk {
                        Some(chunk) => nb += chunk.unwrap().len(),
                        None => done_b = true,
                    },
                }
            }
            assert_eq!((na, nb), (40 << 10, 20 << 10));
        });
        // 60 KiB at 10 KiB/s: at least 5.75 s.
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(5750), "took {took:?}");
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
            // The plain stall timeout (with a higher floor, the small last read before the stall could make it
            // "too slow" a moment earlier: see the trickle test).
            min_rate_bytes: 1,
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

    /// The cause under tough's `TransportError`: our message.
    fn cause(error: &TransportError) -> String {
        std::error::Error::source(error).unwrap().to_string()
    }

    #[test]
    fn a_trickle_below_the_minimum_rate_fails_within_the_window() {
        // 100 B/s never stalls, and would keep a fetch of the 1 MiB file alive for three hours.
        let (dir, _) = served_file();
        let server = FaultServer::serve(dir.path()).unwrap();
        server.add_rule(Rule::new(PathMatch::suffix(".lz4"), Fault::RateLimit(100)));
        let started = std::time::Instant::now();
        let error = fetch(&transport(fast()), server.url_for("image.lz4")).unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
        let cause = cause(&error);
        assert!(
            cause.starts_with(
                "timed out: fewer than 1024 bytes in 2 s (transfer too slow) after byte "
            ) && cause.ends_with("; giving up"),
            "{cause}"
        );
        assert!(
            error
                .to_string()
                .contains(server.url_for("image.lz4").as_str()),
            "{error}"
        );
        assert_eq!(
            server.requests_for(".lz4").len(),
            1,
            "too slow is not retried"
        );
    }

    #[test]
    fn a_consumer_slower_than_the_window_does_not_fail_a_fast_download() {
        // The server is fast; the consumer takes a pause longer than the window while the channel is full.
        let (dir, data) = served_file();
        let server = FaultServer::serve(dir.path()).unwrap();
        let transport = transport(FetchSettings {
            stall_timeout: Duration::from_millis(500),
            ..fast()
        });
        let got = runtime().block_on(async {
            let mut stream = transport.fetch(server.url_for("image.lz4")).await.unwrap();
            let mut out = stream.next().await.unwrap().unwrap().to_vec();
            tokio::time::sleep(Duration::from_millis(1500)).await;
            while let Some(chunk) = stream.next().await {
                out.extend_from_slice(&chunk.unwrap());
            }
            out
        });
        assert!(got == data);
        assert_eq!(server.requests_for(".lz4").len(), 1);
    }

    #[test]
    fn the_rate_window_slides_over_the_newest_arrivals_and_skips_the_consumers_time() {
        let window = Duration::from_millis(400);
        let close = |got: Duration, want: Duration| {
            assert!(
                got <= want && want - got < Duration::from_millis(150),
                "{got:?} vs {want:?}"
            );
        };
        let mut rate = RateWindow::new(window, 1000);
        close(rate.patience(), window);
        // Fewer than the minimum so far: the window still runs from the request.
        std::thread::sleep(Duration::from_millis(100));
        rate.arrived(600);
        close(rate.patience(), Duration::from_millis(300));
        assert_eq!(rate.in_window(), 600);
        // 600 + 500 reach it: the window now runs from the 600's arrival; then the 500 alone is enough.
        rate.arrived(500);
        close(rate.patience(), window);
        rate.arrived(1000);
        assert_eq!(rate.arrivals.len(), 1, "only what the window needs is kept");
        close(rate.patience(), window);
        // Waiting for the consumer does not count.
        std::thread::sleep(Duration::from_millis(300));
        rate.pause(Duration::from_millis(300));
        close(rate.patience(), window);
        std::thread::sleep(Duration::from_millis(450));
        assert_eq!(rate.patience(), Duration::ZERO);
        assert_eq!(rate.in_window(), 0, "nothing in the last window: a stall");
        // 0 is the plain stall timeout: any byte restarts the window.
        let mut stall = RateWindow::new(window, 0);
        stall.arrived(1);
        close(stall.patience(), window);
    }

    #[test]
    fn a_deadline_bounds_the_whole_fetch_and_shares_the_connection_pool() {
        let (dir, data) = served_file();
        let server = FaultServer::serve(dir.path()).unwrap();
        std::fs::write(dir.path().join("timestamp.json"), b"{}").unwrap();
        let base = transport(fast());
        let metadata = base.with_deadline(Duration::from_secs(1));
        assert_eq!(metadata.settings().deadline, Some(Duration::from_secs(1)));
        assert_eq!(base.settings().deadline, None);

        // 50 kB/s is well above the minimum rate; the 1 MiB file would take 20 s.
        let slow = server.add_rule(Rule::new(
            PathMatch::suffix(".lz4"),
            Fault::RateLimit(50_000),
        ));
        let started = std::time::Instant::now();
        let error = fetch(&metadata, server.url_for("image.lz4")).unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(
            cause(&error),
            "timed out: the download took longer than its 1 s deadline"
        );
        assert!(
            error
                .to_string()
                .contains(server.url_for("image.lz4").as_str()),
            "{error}"
        );

        // Within the deadline all is as usual; both transports use one client, so one kept-alive connection.
        server.remove_rule(slow);
        let connections = server.connections_accepted();
        let runtime = runtime();
        let fetch_all = |transport: &ResumingTransport, name: &str| {
            runtime.block_on(async {
                let mut stream = transport.fetch(server.url_for(name)).await.unwrap();
                let mut out = Vec::new();
                while let Some(chunk) = stream.next().await {
                    out.extend_from_slice(&chunk.unwrap());
                }
                out
            })
        };
        assert_eq!(fetch_all(&metadata, "timestamp.json"), b"{}");
        assert!(fetch_all(&base, "image.lz4") == data);
        assert_eq!(fetch_all(&metadata, "timestamp.json"), b"{}");
        assert_eq!(server.connections_accepted() - connections, 1);
    }

    #[test]
    fn a_redirect_is_refused_naming_its_location_and_the_other_host_sees_nothing() {
        let (dir, _) = served_file();
        let server = FaultServer::serve(dir.path()).unwrap();
        let elsewhere = FaultServer::serve(dir.path()).unwrap();
        let location = elsewhere.url_for("image.lz4");
        for status in [301, 302, 303, 307, 308] {
            server.clear_requests();
            let rule = server.add_rule(Rule::new(
                PathMatch::suffix(".lz4"),
                Fault::Redirect {
                    status,
                    location: location.to_string(),
                },
            ));
            let error = fetch(&transport(fast()), server.url_for("image.lz4")).unwrap_err();
            assert_eq!(error.kind(), TransportErrorKind::Other);
            let status = StatusCode::from_u16(status).unwrap();
            assert_eq!(
                cause(&error),
                format!(
                    "the server answered HTTP {status}: the server redirected to {location}; updog follows no \
                     redirects: configure the final URL in updog.toml"
                )
            );
            assert_eq!(
                server.requests_for(".lz4").len(),
                1,
                "a redirect is not retried"
            );
            server.remove_rule(rule);
        }
        assert!(
            elsewhere.requests().is_empty(),
            "{:?}",
            elsewhere.requests()
        );
        assert_eq!(elsewhere.connections_accepted(), 0);

        // A credential in the Location is not shown; a redirect without a Location still says what happened.
        server.add_rule(
            Rule::new(
                PathMatch::suffix(".lz4"),
                Fault::Redirect {
                    status: 302,
                    location: "https://user:hunter2@127.0.0.1:9/image.lz4".into(),
                },
            )
            .first(1),
        );
        let error = fetch(&transport(fast()), server.url_for("image.lz4")).unwrap_err();
        assert!(
            cause(&error).contains("redirected to https://user:***@127.0.0.1:9/image.lz4;"),
            "{}",
            cause(&error)
        );
        server.add_rule(Rule::new(
            PathMatch::suffix("image.lz4"),
            Fault::Status(302),
        ));
        let error = fetch(&transport(fast()), server.url_for("image.lz4")).unwrap_err();
        assert!(
            cause(&error).starts_with(
                "the server answered HTTP 302 Found: the server redirected to nowhere (no \
                 Location header); updog follows no redirects"
            ),
            "{}",
            cause(&error)
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
