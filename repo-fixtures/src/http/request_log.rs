//! What the server saw and answered, for tests to assert on.

use super::fault::Fault;
use super::range::ByteRange;

/// One request, recorded when its response head was decided (before any body byte is sent), so a client that has
/// read a response always finds its request in [`FaultServer::requests`](super::FaultServer::requests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    pub method: String,
    /// The percent-decoded path, starting with `/`, without the query string.
    pub path: String,
    /// The raw query string (after `?`), if the request had one.
    pub query: Option<String>,
    /// The `Range` the client asked for, if it sent a single well-formed byte range (even when a fault ignored it).
    pub range: Option<ByteRange>,
    /// The request headers, names and values as sent.
    pub headers: Vec<(String, String)>,
    /// The status sent (200 for an `Endless` or dropped body).
    pub status: u16,
    /// The faults that applied to this request.
    pub faults: Vec<Fault>,
}

impl RecordedRequest {
    /// The first value of a request header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        super::request::header(&self.headers, name)
    }

    /// The query string decoded as `application/x-www-form-urlencoded` pairs, in order.
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        self.query
            .as_deref()
            .map(|query| {
                url::form_urlencoded::parse(query.as_bytes())
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The value of one query parameter.
    pub fn query_param(&self, name: &str) -> Option<String> {
        self.query_pairs()
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }
}
