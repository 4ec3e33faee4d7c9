//! A tiny raw HTTP/1.1 client over `TcpStream`, so the tests see exactly the bytes a server sends.

#![allow(dead_code)] // each test binary uses a different part of it

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// A response as read off the wire.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn content_length(&self) -> Option<usize> {
        self.header("content-length")
            .map(|v| v.parse().expect("numeric Content-Length"))
    }
}

/// One connection: send requests, read heads and bodies at the pace the test wants.
pub struct Client {
    reader: BufReader<TcpStream>,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).expect("connect to the server");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("set read timeout");
        Client {
            reader: BufReader::new(stream),
        }
    }

    pub fn stream(&self) -> &TcpStream {
        self.reader.get_ref()
    }

    pub fn send(&mut self, raw: &str) {
        self.reader
            .get_mut()
            .write_all(raw.as_bytes())
            .expect("send request");
    }

    /// Sends `METHOD path HTTP/1.1` with a Host header and the extra header lines given.
    pub fn request(&mut self, method: &str, target: &str, extra_headers: &[&str], close: bool) {
        let mut raw = format!("{method} {target} HTTP/1.1\r\nHost: test\r\n");
        for header in extra_headers {
            raw.push_str(header);
            raw.push_str("\r\n");
        }
        if close {
            raw.push_str("Connection: close\r\n");
        }
        raw.push_str("\r\n");
        self.send(&raw);
    }

    /// Reads a status line and headers.
    pub fn read_head(&mut self) -> (u16, Vec<(String, String)>) {
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("read status line");
        let status = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {line:?}"));
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            self.reader.read_line(&mut line).expect("read header line");
            let line = line.trim_end();
            if line.is_empty() {
                return (status, headers);
            }
            let (name, value) = line.split_once(':').expect("header has a colon");
            headers.push((name.trim().to_string(), value.trim().to_string()));
        }
    }

    /// Reads up to `buf.len()` body bytes; `Ok(0)` at EOF.
    pub fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.reader.read(buf)
    }

    /// Reads exactly `n` bytes.
    pub fn read_exact(&mut self, n: usize) -> Vec<u8> {
        let mut buf = vec![0; n];
        self.reader.read_exact(&mut buf).expect("read body bytes");
        buf
    }

    /// Reads until the server closes the connection (a reset counts as a close).
    pub fn read_to_close(&mut self) -> Vec<u8> {
        let mut body = Vec::new();
        let mut buf = [0u8; 64 * 1024];
        loop {
            match self.reader.read(&mut buf) {
                Ok(0) => return body,
                Ok(n) => body.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::ConnectionReset => return body,
                Err(e) => panic!("reading the body failed after {} bytes: {e}", body.len()),
            }
        }
    }

    /// Reads a whole response whose body is framed by Content-Length (or empty for HEAD / no length).
    pub fn read_response(&mut self, head_request: bool) -> Response {
        let (status, headers) = self.read_head();
        let mut response = Response {
            status,
            headers,
            body: Vec::new(),
        };
        if !head_request && let Some(len) = response.content_length() {
            response.body = self.read_exact(len);
        }
        response
    }
}

/// One request on its own connection (`Connection: close`); the body is everything until the server closes.
pub fn fetch(addr: SocketAddr, method: &str, target: &str, extra_headers: &[&str]) -> Response {
    let mut client = Client::connect(addr);
    client.request(method, target, extra_headers, true);
    let (status, headers) = client.read_head();
    let body = client.read_to_close();
    Response {
        status,
        headers,
        body,
    }
}

pub fn get(addr: SocketAddr, target: &str) -> Response {
    fetch(addr, "GET", target, &[])
}

pub fn get_range(addr: SocketAddr, target: &str, range: &str) -> Response {
    fetch(addr, "GET", target, &[&format!("Range: {range}")])
}

/// Deterministic, non-repeating-looking test content.
// The low byte of the mix, on purpose.
#[allow(clippy::cast_possible_truncation)]
pub fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i.wrapping_mul(31) ^ (i >> 8)) as u8)
        .collect()
}
