//! One client connection: read requests, decide each response (files, ranges, faults), record it, send it.

use super::body::{BodyEnd, BodySource, send_body};
use super::fault::FaultPlan;
use super::request::{PathRefusal, ReadHead, RequestHead, file_path, read_head};
use super::request_log::RecordedRequest;
use super::server::Shared;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::net::{Shutdown, TcpStream};
use std::path::Path;
use std::time::Duration;

/// An idle keep-alive connection is closed after this long.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest request body read and discarded (GET and HEAD carry none in practice).
const MAX_REQUEST_BODY: u64 = 1024 * 1024;

/// Serves requests on `stream` until the client leaves, a fault closes it, or the server stops.
pub(crate) fn serve_connection(stream: &TcpStream, shared: &Shared) {
    // Errors here are the normal ends of a connection (client hung up, idle timeout, server stopping): there is
    // no one to report them to, and the request log already holds everything a test can assert on.
    let _ = serve_requests(stream, shared);
    let _ = stream.shutdown(Shutdown::Both);
}

fn serve_requests(stream: &TcpStream, shared: &Shared) -> io::Result<()> {
    // Faults are placed at exact byte counts; Nagle's algorithm would only blur them.
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(IDLE_TIMEOUT))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut out = stream;
    loop {
        if shared.stop.is_stopping() {
            return Ok(());
        }
        let head = match read_head(&mut reader)? {
            ReadHead::Request(head) => head,
            ReadHead::Closed => return Ok(()),
            ReadHead::Malformed(reason) => {
                // Not recorded: there is no request to record. The reason helps whoever wrote the raw request.
                let body = format!("{reason}\n");
                write_head(&mut out, 400, &[], Some(body.len() as u64), false)?;
                out.write_all(body.as_bytes())?;
                return Ok(());
            }
        };
        if !discard_request_body(&mut reader, &mut out, &head)? {
            return Ok(());
        }
        if respond(&mut out, &head, shared)? == BodyEnd::Close || !head.keep_alive() {
            return Ok(());
        }
    }
}

/// Reads and drops a request body so the next request on the connection is framed right. False when the body is
/// one we do not read (chunked, too large, malformed length): an error was answered and the connection must close.
fn discard_request_body(
    reader: &mut impl Read,
    out: &mut impl Write,
    head: &RequestHead,
) -> io::Result<bool> {
    if head.header("transfer-encoding").is_some() {
        write_head(out, 501, &[], Some(0), false)?;
        return Ok(false);
    }
    let Some(length) = head.header("content-length") else {
        return Ok(true);
    };
    match length.parse::<u64>() {
        Ok(length) if length <= MAX_REQUEST_BODY => {
            let copied = io::copy(&mut reader.take(length), &mut io::sink())?;
            Ok(copied == length)
        }
        Ok(_) => {
            write_head(out, 413, &[], Some(0), false)?;
            Ok(false)
        }
        Err(_) => {
            write_head(out, 400, &[], Some(0), false)?;
            Ok(false)
        }
    }
}

/// The response chosen for a request, before anything is sent.
enum Reply {
    /// A status with an empty body.
    Empty {
        status: u16,
        headers: Vec<(&'static str, String)>,
    },
    /// The file, or a range of it.
    File {
        status: u16,
        file: File,
        start: u64,
        len: u64,
        headers: Vec<(&'static str, String)>,
    },
    /// The file (if any) then filler, with no length.
    Endless { file: Option<File> },
}

fn respond(out: &mut &TcpStream, head: &RequestHead, shared: &Shared) -> io::Result<BodyEnd> {
    let faults = shared.rules().faults_for(&head.path);
    let plan = FaultPlan::new(&faults);
    let reply = decide(head, &plan, &shared.root);
    let status = match &reply {
        Reply::Empty { status, .. } | Reply::File { status, .. } => *status,
        Reply::Endless { .. } => 200,
    };
    shared.record(RecordedRequest {
        method: head.method.clone(),
        path: head.path.clone(),
        query: head.query.clone(),
        range: head.range(),
        headers: head.headers.clone(),
        status,
        faults,
    });

    let keep_alive = head.keep_alive();
    let is_head = head.method == "HEAD";
    match reply {
        Reply::Empty { status, headers } => {
            write_head(out, status, &headers, Some(0), keep_alive)?;
            Ok(BodyEnd::Complete)
        }
        Reply::File {
            status,
            mut file,
            start,
            len,
            headers,
        } => {
            write_head(out, status, &headers, Some(len), keep_alive)?;
            if is_head {
                return Ok(BodyEnd::Complete);
            }
            file.seek(SeekFrom::Start(start))?;
            let source = BodySource {
                file,
                offset: start,
                remaining: len,
                endless: false,
            };
            send_body(out, source, &plan, &shared.stop)
        }
        Reply::Endless { file } => {
            write_head(
                out,
                200,
                &[("Content-Type", "application/octet-stream".into())],
                None,
                false,
            )?;
            if is_head {
                return Ok(BodyEnd::Close);
            }
            let (file, remaining): (Box<dyn Read>, u64) = match file {
                Some(file) => {
                    let len = file.metadata()?.len();
                    (Box::new(file), len)
                }
                None => (Box::new(io::empty()), 0),
            };
            let source = BodySource {
                file,
                offset: 0,
                remaining,
                endless: true,
            };
            send_body(out, source, &plan, &shared.stop)?;
            Ok(BodyEnd::Close)
        }
    }
}

fn empty(status: u16) -> Reply {
    Reply::Empty {
        status,
        headers: Vec::new(),
    }
}

/// Chooses the response: method, faults, file lookup, then Range.
fn decide(head: &RequestHead, plan: &FaultPlan, root: &Path) -> Reply {
    if let Some(status) = plan.status {
        return empty(status);
    }
    if let Some((status, location)) = &plan.redirect {
        return Reply::Empty {
            status: *status,
            headers: vec![("Location", location.clone())],
        };
    }
    if head.method != "GET" && head.method != "HEAD" {
        return Reply::Empty {
            status: 405,
            headers: vec![("Allow", "GET, HEAD".into())],
        };
    }
    let path = match file_path(root, &head.raw_path) {
        Ok(path) => path,
        Err(PathRefusal::Traversal) => return empty(403),
        Err(PathRefusal::BadEncoding) => return empty(400),
    };
    let file = File::open(&path).ok().and_then(|file| {
        file.metadata()
            .ok()
            .filter(std::fs::Metadata::is_file)
            .map(|m| (file, m.len()))
    });
    if plan.endless {
        return Reply::Endless {
            file: file.map(|(file, _)| file),
        };
    }
    let Some((file, total)) = file else {
        return empty(404);
    };

    let mut headers = vec![("Content-Type", content_type(&path).to_string())];
    if plan.ignore_range {
        return Reply::File {
            status: 200,
            file,
            start: 0,
            len: total,
            headers,
        };
    }
    headers.push(("Accept-Ranges", "bytes".into()));
    match head.range() {
        None => Reply::File {
            status: 200,
            file,
            start: 0,
            len: total,
            headers,
        },
        Some(range) => match range.resolve(total) {
            Some(span) => {
                headers.push((
                    "Content-Range",
                    format!("bytes {}-{}/{total}", span.start, span.end - 1),
                ));
                Reply::File {
                    status: 206,
                    file,
                    start: span.start,
                    len: span.end - span.start,
                    headers,
                }
            }
            None => Reply::Empty {
                status: 416,
                headers: vec![
                    ("Accept-Ranges", "bytes".into()),
                    ("Content-Range", format!("bytes */{total}")),
                ],
            },
        },
    }
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()) {
        Some("json") => "application/json",
        Some("txt") => "text/plain",
        _ => "application/octet-stream",
    }
}

/// Writes the status line and headers in one write. `length: None` means a close-delimited body.
fn write_head(
    out: &mut impl Write,
    status: u16,
    headers: &[(&str, String)],
    length: Option<u64>,
    keep_alive: bool,
) -> io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {status} {}\r\nServer: repo-fixtures\r\n",
        reason(status)
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(length) = length {
        head.push_str(&format!("Content-Length: {length}\r\n"));
    }
    head.push_str(if keep_alive && length.is_some() {
        "Connection: keep-alive\r\n\r\n"
    } else {
        "Connection: close\r\n\r\n"
    });
    out.write_all(head.as_bytes())?;
    out.flush()
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        416 => "Range Not Satisfiable",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}
