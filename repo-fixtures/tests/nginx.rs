//! nginx started from a private config: serves files, answers ranges, stops on drop. Skipped outside CI when nginx
//! is not installed.

mod support;

use repo_fixtures::nginx::{Nginx, NginxError};
use repo_fixtures::require::require_tool;
use std::fs;
use std::net::TcpStream;
use support::{get, get_range, pattern};

const IMAGE_LEN: usize = 100_000;

fn repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    fs::create_dir_all(dir.path().join("targets")).expect("mkdir targets");
    fs::write(dir.path().join("targets/abc.root.lz4"), pattern(IMAGE_LEN)).expect("write image");
    dir
}

#[test]
fn nginx_serves_a_file() {
    if !require_tool("nginx") {
        return;
    }
    let repo = repo();
    let nginx = Nginx::serve(repo.path()).expect("start nginx");
    assert_eq!(
        nginx.base_url().as_str(),
        format!("http://{}/", nginx.addr())
    );
    assert_eq!(
        nginx.url_for("targets/abc.root.lz4").path(),
        "/targets/abc.root.lz4"
    );
    let response = get(nginx.addr(), "/targets/abc.root.lz4");
    assert_eq!(response.status, 200);
    assert_eq!(response.header("accept-ranges"), Some("bytes"));
    assert_eq!(response.body, pattern(IMAGE_LEN));
    assert_eq!(get(nginx.addr(), "/targets/missing").status, 404);
    assert_eq!(
        get(nginx.addr(), "/targets/").status,
        403,
        "autoindex is off"
    );
    let log = fs::read_to_string(nginx.access_log_path()).expect("read the access log");
    assert!(
        log.contains("GET /targets/abc.root.lz4 HTTP/1.1\" 200"),
        "{log}"
    );
}

#[test]
fn nginx_answers_a_range_with_206() {
    if !require_tool("nginx") {
        return;
    }
    let repo = repo();
    let nginx = Nginx::serve(repo.path()).expect("start nginx");
    let response = get_range(nginx.addr(), "/targets/abc.root.lz4", "bytes=40000-");
    assert_eq!(response.status, 206);
    assert_eq!(
        response.header("content-range"),
        Some("bytes 40000-99999/100000")
    );
    assert_eq!(response.body, &pattern(IMAGE_LEN)[40_000..]);
}

#[test]
fn nginx_stops_on_drop() {
    if !require_tool("nginx") {
        return;
    }
    let repo = repo();
    let nginx = Nginx::serve(repo.path()).expect("start nginx");
    let addr = nginx.addr();
    let conf_dir = nginx
        .conf_path()
        .parent()
        .expect("conf has a directory")
        .to_path_buf();
    assert!(TcpStream::connect(addr).is_ok());
    drop(nginx);
    assert!(
        TcpStream::connect(addr).is_err(),
        "the port is closed once the drop returns"
    );
    assert!(
        !conf_dir.exists(),
        "the private config directory is removed"
    );
}

#[test]
fn two_nginx_instances_run_side_by_side() {
    if !require_tool("nginx") {
        return;
    }
    let repo = repo();
    let first = Nginx::serve(repo.path()).expect("start nginx");
    let second = Nginx::serve(repo.path()).expect("start a second nginx");
    assert_ne!(first.addr(), second.addr());
    assert_eq!(get(second.addr(), "/targets/abc.root.lz4").status, 200);
}

#[test]
fn serving_a_missing_directory_fails_before_starting_nginx() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("nope");
    match Nginx::serve(&missing) {
        Err(NginxError::Root { path, .. }) => assert_eq!(path, missing),
        // Without nginx the binary check comes first.
        Err(NginxError::NotInstalled) => {}
        other => panic!("expected a root error, got {other:?}"),
    }
}
