//! HTTP/1.1 over the API's unix socket: one connection per request (hyper's client handshake over a
//! `tokio::net::UnixStream`), `Host: localhost`, a JSON content type, the body read whole as UTF-8.
//!
//! Every error names the request (`Failed POST request to '/actions/refresh-updates': …`), and a non-2xx
//! answer reads exactly as upstream's, which the Kubernetes update operator parses from stderr:
//! `Failed POST request to '/actions/refresh-updates': Status 423 when POSTing /actions/refresh-updates: <body>`.

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1;
use hyper::{Request, header};
use hyper_util::rt::TokioIo;
use snafu::{ResultExt, Snafu, ensure};
use std::path::{Path, PathBuf};
use tokio::net::UnixStream;

/// What went wrong talking to the API; each variant names the request and, where it matters, the socket.
#[derive(Debug, Snafu)]
#[snafu(visibility(pub(crate)))]
pub enum Error {
    #[snafu(display(
        "Failed {method} request to '{uri}': cannot connect to the API socket {}: {source} (is apiserver running, and may this user use its socket?)",
        socket.display()
    ))]
    Connect {
        method: String,
        uri: String,
        socket: PathBuf,
        source: std::io::Error,
    },

    #[snafu(display(
        "Failed {method} request to '{uri}': HTTP handshake on the API socket {} failed: {source}",
        socket.display()
    ))]
    Handshake {
        method: String,
        uri: String,
        socket: PathBuf,
        source: hyper::Error,
    },

    #[snafu(display("Failed {method} request to '{uri}': cannot build the request: {source}"))]
    BuildRequest {
        method: String,
        uri: String,
        source: hyper::http::Error,
    },

    #[snafu(display("Failed {method} request to '{uri}': failed to send the request: {source}"))]
    Send {
        method: String,
        uri: String,
        source: hyper::Error,
    },

    #[snafu(display(
        "Failed {method} request to '{uri}': failed to read the response body: {source}"
    ))]
    ReadBody {
        method: String,
        uri: String,
        source: hyper::Error,
    },

    #[snafu(display(
        "Failed {method} request to '{uri}': the response body is not UTF-8: {source}"
    ))]
    NonUtf8Body {
        method: String,
        uri: String,
        source: std::string::FromUtf8Error,
    },

    // Upstream's shape, word for word: the update operator looks for "Status <code>" in it.
    #[snafu(display(
        "Failed {method} request to '{uri}': Status {code} when {method}ing {uri}: {body}"
    ))]
    ResponseStatus {
        method: String,
        uri: String,
        code: u16,
        body: String,
    },
}

pub type Result<T> = std::result::Result<T, Error>;

/// One answer from the API: its status, headers (in the order received) and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: hyper::StatusCode,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

/// The API at a unix socket.
#[derive(Debug, Clone)]
pub struct ApiClient {
    socket_path: PathBuf,
}

impl ApiClient {
    #[must_use]
    pub fn new(socket_path: impl Into<PathBuf>) -> Self {
        Self {
            socket_path: socket_path.into(),
        }
    }

    #[must_use]
    pub fn socket_path(&self) -> &Path {
        &self.socket_path
    }

    /// Sends `method uri` (with `data` as the body, if any) and returns the answer whatever its status, for
    /// callers that handle particular codes themselves (404 and 423 from `/updates/status`).
    pub async fn request_unchecked(
        &self,
        method: &str,
        uri: &str,
        data: Option<&str>,
    ) -> Result<Response> {
        let stream = UnixStream::connect(&self.socket_path)
            .await
            .context(ConnectSnafu {
                method,
                uri,
                socket: &self.socket_path,
            })?;
        let (mut sender, connection) =
            http1::handshake(TokioIo::new(stream))
                .await
                .context(HandshakeSnafu {
                    method,
                    uri,
                    socket: &self.socket_path,
                })?;
        // The connection future drives the socket; it ends when the response is read and `sender` dropped.
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                log::debug!("API connection closed with an error: {error}");
            }
        });

        let body = Full::new(Bytes::from(data.unwrap_or_default().to_owned()));
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::HOST, "localhost")
            .header(header::CONTENT_TYPE, "application/json")
            .body(body)
            .context(BuildRequestSnafu { method, uri })?;
        let response = sender
            .send_request(request)
            .await
            .context(SendSnafu { method, uri })?;

        let status = response.status();
        let headers = response
            .headers()
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect();
        let bytes = response
            .into_body()
            .collect()
            .await
            .context(ReadBodySnafu { method, uri })?
            .to_bytes();
        let body = String::from_utf8(bytes.to_vec()).context(NonUtf8BodySnafu { method, uri })?;
        Ok(Response {
            status,
            headers,
            body,
        })
    }

    /// Like [`ApiClient::request_unchecked`], but any status outside 2xx is an error carrying the body.
    pub async fn request(&self, method: &str, uri: &str, data: Option<&str>) -> Result<Response> {
        let response = self.request_unchecked(method, uri, data).await?;
        ensure!(
            response.status.is_success(),
            ResponseStatusSnafu {
                method,
                uri,
                code: response.status.as_u16(),
                body: response.body,
            }
        );
        Ok(response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_status_reads_as_upstreams_message() {
        let error = Error::ResponseStatus {
            method: "POST".into(),
            uri: "/actions/refresh-updates".into(),
            code: 423,
            body: "Update lock held".into(),
        };
        assert_eq!(
            error.to_string(),
            "Failed POST request to '/actions/refresh-updates': Status 423 when POSTing /actions/refresh-updates: Update lock held"
        );
    }
}
