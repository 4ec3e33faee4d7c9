//! Reading a request head off the wire, and turning its path into a file under the served directory.

use super::range::ByteRange;
use std::ffi::OsStr;
use std::io::{self, BufRead, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Longest request line or header line accepted.
const MAX_LINE: u64 = 16 * 1024;
/// Most header lines accepted in one request.
const MAX_HEADERS: usize = 100;

/// A parsed request line and headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RequestHead {
    pub(crate) method: String,
    /// The path as sent (still percent-encoded), without the query string.
    pub(crate) raw_path: String,
    /// The path percent-decoded, for rules and the request log.
    pub(crate) path: String,
    pub(crate) query: Option<String>,
    pub(crate) http10: bool,
    pub(crate) headers: Vec<(String, String)>,
}

/// What reading the next request on a connection found.
#[derive(Debug)]
pub(crate) enum ReadHead {
    Request(RequestHead),
    /// The client closed the connection between requests.
    Closed,
    /// Not HTTP/1.x we can answer: reply 400 and close.
    Malformed(&'static str),
}

impl RequestHead {
    /// The first value of a header, by case-insensitive name.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    /// HTTP/1.1 keeps the connection unless the client says `close`; HTTP/1.0 is always closed here.
    pub(crate) fn keep_alive(&self) -> bool {
        !self.http10
            && !self.header("connection").is_some_and(|v| {
                v.split(',')
                    .any(|token| token.trim().eq_ignore_ascii_case("close"))
            })
    }

    pub(crate) fn range(&self) -> Option<ByteRange> {
        self.header("range").and_then(ByteRange::parse)
    }
}

pub(crate) fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Reads one request head. I/O errors (including the idle timeout) end the connection.
pub(crate) fn read_head(reader: &mut impl BufRead) -> io::Result<ReadHead> {
    // RFC 9112 §2.2: a server should ignore empty lines before the request line.
    let request_line = loop {
        match read_line(reader)? {
            Line::Eof => return Ok(ReadHead::Closed),
            Line::TooLong => return Ok(ReadHead::Malformed("request line too long")),
            Line::Text(line) if line.is_empty() => continue,
            Line::Text(line) => break line,
        }
    };
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Ok(ReadHead::Malformed(
            "request line is not METHOD TARGET VERSION",
        ));
    };
    let http10 = match version {
        "HTTP/1.1" => false,
        "HTTP/1.0" => true,
        _ => return Ok(ReadHead::Malformed("unsupported HTTP version")),
    };
    let Some((raw_path, query)) = split_target(target) else {
        return Ok(ReadHead::Malformed("request target is not a path"));
    };

    let mut headers = Vec::new();
    loop {
        match read_line(reader)? {
            Line::Eof => {
                return Ok(ReadHead::Malformed(
                    "connection closed inside the request head",
                ));
            }
            Line::TooLong => return Ok(ReadHead::Malformed("header line too long")),
            Line::Text(line) if line.is_empty() => break,
            Line::Text(line) => {
                let Some((name, value)) = line.split_once(':') else {
                    return Ok(ReadHead::Malformed("header line without a colon"));
                };
                if headers.len() == MAX_HEADERS {
                    return Ok(ReadHead::Malformed("too many headers"));
                }
                headers.push((name.trim().to_string(), value.trim().to_string()));
            }
        }
    }

    let path = percent_decode(raw_path)
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .unwrap_or_else(|| raw_path.to_string());
    Ok(ReadHead::Request(RequestHead {
        method: method.to_string(),
        raw_path: raw_path.to_string(),
        path,
        query: query.map(str::to_string),
        http10,
        headers,
    }))
}

enum Line {
    Text(String),
    TooLong,
    Eof,
}

/// One CRLF- (or bare LF-) terminated line, without its terminator.
fn read_line(reader: &mut impl BufRead) -> io::Result<Line> {
    let mut buf = Vec::new();
    let n = reader.by_ref().take(MAX_LINE).read_until(b'\n', &mut buf)?;
    if n == 0 {
        return Ok(Line::Eof);
    }
    if buf.last() != Some(&b'\n') {
        // Either the limit cut the line or the peer closed mid-line; neither is a request we can answer.
        return Ok(if n as u64 == MAX_LINE {
            Line::TooLong
        } else {
            Line::Eof
        });
    }
    buf.pop();
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    Ok(Line::Text(String::from_utf8_lossy(&buf).into_owned()))
}

/// Splits a request target into path and query. Absolute-form targets (what a client sends to a proxy) are
/// reduced to their path, so the server can also stand in for a proxy in tests.
fn split_target(target: &str) -> Option<(&str, Option<&str>)> {
    let target = match target.split_once("://") {
        Some((scheme, rest))
            if scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https") =>
        {
            rest.find('/').map_or("/", |slash| &rest[slash..])
        }
        _ => target,
    };
    if !target.starts_with('/') {
        return None;
    }
    Some(match target.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (target, None),
    })
}

/// Why a request path maps to no file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PathRefusal {
    /// A `..` segment, or a separator or NUL smuggled in percent-encoded: 403.
    Traversal,
    /// A malformed percent escape: 400.
    BadEncoding,
}

/// The file under `root` that a (still percent-encoded) request path names. Refuses anything that could leave
/// `root` lexically; symlinks inside `root` are followed, because fixture repositories may link their targets.
pub(crate) fn file_path(root: &Path, raw_path: &str) -> Result<PathBuf, PathRefusal> {
    let mut file = root.to_path_buf();
    for raw in raw_path.split('/') {
        let segment = percent_decode(raw).ok_or(PathRefusal::BadEncoding)?;
        match segment.as_slice() {
            b"" | b"." => continue,
            b".." => return Err(PathRefusal::Traversal),
            _ if segment.iter().any(|b| matches!(b, b'/' | b'\\' | 0)) => {
                return Err(PathRefusal::Traversal);
            }
            _ => file.push(OsStr::from_bytes(&segment)),
        }
    }
    Ok(file)
}

/// Decodes `%XX` escapes; `None` for a malformed escape.
fn percent_decode(s: &str) -> Option<Vec<u8>> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str) -> ReadHead {
        read_head(&mut raw.as_bytes()).expect("reading from a slice cannot fail")
    }

    fn request(raw: &str) -> RequestHead {
        match parse(raw) {
            ReadHead::Request(head) => head,
            other => panic!("expected a request, got {other:?}"),
        }
    }

    #[test]
    fn parses_method_path_query_and_headers() {
        let head = request(
            "\r\nGET /metadata/a%20b.json?seed=42&v=1 HTTP/1.1\r\nHost: x\r\nRange: bytes=5-\r\n\r\n",
        );
        assert_eq!(head.method, "GET");
        assert_eq!(head.raw_path, "/metadata/a%20b.json");
        assert_eq!(head.path, "/metadata/a b.json");
        assert_eq!(head.query.as_deref(), Some("seed=42&v=1"));
        assert_eq!(head.header("host"), Some("x"));
        assert_eq!(head.range(), Some(ByteRange::From(5)));
        assert!(head.keep_alive());
    }

    #[test]
    fn absolute_form_targets_are_reduced_to_their_path() {
        let head = request("GET http://example.com:8080/a?b HTTP/1.1\r\n\r\n");
        assert_eq!(
            (head.raw_path.as_str(), head.query.as_deref()),
            ("/a", Some("b"))
        );
        assert_eq!(
            request("GET http://example.com HTTP/1.1\r\n\r\n").raw_path,
            "/"
        );
    }

    #[test]
    fn connection_close_and_http10_end_the_connection() {
        assert!(!request("GET / HTTP/1.1\r\nConnection: keep-alive, Close\r\n\r\n").keep_alive());
        assert!(!request("GET / HTTP/1.0\r\n\r\n").keep_alive());
    }

    #[test]
    fn malformed_heads_are_reported_and_eof_is_a_close() {
        assert!(matches!(parse(""), ReadHead::Closed));
        for raw in [
            "GET /\r\n\r\n",
            "GET / HTTP/2\r\n\r\n",
            "GET x HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.1\r\nbad\r\n\r\n",
        ] {
            assert!(matches!(parse(raw), ReadHead::Malformed(_)), "{raw:?}");
        }
        assert!(matches!(
            parse("GET / HTTP/1.1\r\nHost: x\r\n"),
            ReadHead::Malformed(_)
        ));
    }

    #[test]
    fn paths_cannot_leave_the_root() {
        let root = Path::new("/srv/repo");
        assert_eq!(
            file_path(root, "/a/./b%20c"),
            Ok(PathBuf::from("/srv/repo/a/b c"))
        );
        assert_eq!(file_path(root, "//a//"), Ok(PathBuf::from("/srv/repo/a")));
        for raw in [
            "/../etc/passwd",
            "/a/../../x",
            "/%2e%2e/x",
            "/%2E%2E/x",
            "/a%2f..%2f..%2fx",
            "/a%00b",
            "/a%5c..",
        ] {
            assert_eq!(file_path(root, raw), Err(PathRefusal::Traversal), "{raw}");
        }
        assert_eq!(file_path(root, "/a%zz"), Err(PathRefusal::BadEncoding));
        assert_eq!(file_path(root, "/a%2"), Err(PathRefusal::BadEncoding));
    }
}
