//! The fault server over real sockets, seen through a raw client: plain serving, Range, and every fault.

mod support;

use repo_fixtures::http::{AfterStall, ByteRange, Fault, FaultServer, PathMatch, Rule};
use std::fs;
use std::io::ErrorKind;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};
use support::{Client, fetch, get, get_range, pattern};
use tempfile::TempDir;

const IMAGE: &str = "/targets/0123abcd.root.ext4.lz4";
const IMAGE_LEN: usize = 300_000;
const TIMESTAMP: &str = "/metadata/timestamp.json";
const TIMESTAMP_BODY: &[u8] = b"{\"signed\":{\"_type\":\"timestamp\",\"version\":7}}\n";

/// A served directory `www/` with metadata and a target, and `secret.txt` beside it (outside the root).
struct World {
    dir: TempDir,
    server: FaultServer,
}

impl World {
    fn new() -> World {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path().join("www");
        fs::create_dir_all(root.join("metadata")).expect("mkdir metadata");
        fs::create_dir_all(root.join("targets")).expect("mkdir targets");
        fs::write(root.join(TIMESTAMP.trim_start_matches('/')), TIMESTAMP_BODY)
            .expect("write timestamp");
        fs::write(root.join(IMAGE.trim_start_matches('/')), pattern(IMAGE_LEN))
            .expect("write image");
        fs::write(root.join("metadata/a b.json"), b"spaced").expect("write spaced name");
        fs::write(dir.path().join("secret.txt"), b"secret").expect("write secret");
        let server = FaultServer::serve(&root).expect("start the fault server");
        World { dir, server }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("www")
    }
}

fn image() -> Vec<u8> {
    pattern(IMAGE_LEN)
}

#[test]
fn serves_a_file_with_its_length_and_accept_ranges() {
    let world = World::new();
    let response = get(world.server.addr(), IMAGE);
    assert_eq!(response.status, 200);
    assert_eq!(response.content_length(), Some(IMAGE_LEN));
    assert_eq!(response.header("accept-ranges"), Some("bytes"));
    assert_eq!(response.body, image());

    let json = get(world.server.addr(), TIMESTAMP);
    assert_eq!(json.header("content-type"), Some("application/json"));
    assert_eq!(json.body, TIMESTAMP_BODY);
}

#[test]
fn head_answers_the_headers_without_a_body() {
    let world = World::new();
    let response = fetch(world.server.addr(), "HEAD", IMAGE, &[]);
    assert_eq!(response.status, 200);
    assert_eq!(response.content_length(), Some(IMAGE_LEN));
    assert!(response.body.is_empty());
}

#[test]
fn percent_encoded_names_are_decoded() {
    let world = World::new();
    assert_eq!(
        get(world.server.addr(), "/metadata/a%20b.json").body,
        b"spaced"
    );
    assert_eq!(world.server.requests()[0].path, "/metadata/a b.json");
    assert_eq!(
        world.server.url_for("metadata/a b.json").path(),
        "/metadata/a%20b.json"
    );
}

#[test]
fn missing_files_and_directories_are_404() {
    let world = World::new();
    assert_eq!(
        get(world.server.addr(), "/metadata/2.root.json").status,
        404
    );
    assert_eq!(get(world.server.addr(), "/metadata/").status, 404);
    assert_eq!(get(world.server.addr(), "/").status, 404);
}

#[test]
fn path_traversal_is_refused() {
    let world = World::new();
    assert!(world.root().join("../secret.txt").exists());
    for target in [
        "/../secret.txt",
        "/metadata/../../secret.txt",
        "/%2e%2e/secret.txt",
        "/metadata%2f..%2f..%2fsecret.txt",
    ] {
        let response = get(world.server.addr(), target);
        assert_eq!(response.status, 403, "{target}");
        assert!(response.body.is_empty(), "{target}");
    }
    assert_eq!(get(world.server.addr(), "/%zz").status, 400);
}

#[test]
fn other_methods_are_405() {
    let world = World::new();
    assert_eq!(
        fetch(world.server.addr(), "POST", TIMESTAMP, &[]).status,
        405
    );
    // A request body is read and dropped, so the connection stays framed.
    let mut client = Client::connect(world.server.addr());
    client.send("DELETE /metadata/timestamp.json HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc");
    let (status, headers) = client.read_head();
    assert_eq!(status, 405);
    assert!(
        headers
            .iter()
            .any(|(n, v)| n == "Allow" && v == "GET, HEAD")
    );
}

#[test]
fn the_query_string_is_ignored_for_lookup_and_recorded() {
    let world = World::new();
    let response = get(
        world.server.addr(),
        "/metadata/timestamp.json?seed=1234&version=1.2.0",
    );
    assert_eq!(response.body, TIMESTAMP_BODY);
    let requests = world.server.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].path, TIMESTAMP);
    assert_eq!(
        requests[0].query.as_deref(),
        Some("seed=1234&version=1.2.0")
    );
    assert_eq!(requests[0].query_param("seed").as_deref(), Some("1234"));
    assert_eq!(requests[0].query_param("version").as_deref(), Some("1.2.0"));
    assert_eq!(requests[0].header("host"), Some("test"));
}

#[test]
fn a_range_from_an_offset_gets_206_with_the_tail() {
    let world = World::new();
    let response = get_range(world.server.addr(), IMAGE, "bytes=100000-");
    assert_eq!(response.status, 206);
    assert_eq!(
        response.header("content-range"),
        Some("bytes 100000-299999/300000")
    );
    assert_eq!(response.content_length(), Some(200_000));
    assert_eq!(response.header("accept-ranges"), Some("bytes"));
    assert_eq!(response.body, &image()[100_000..]);
}

#[test]
fn a_closed_range_gets_exactly_its_bytes() {
    let world = World::new();
    let response = get_range(world.server.addr(), IMAGE, "bytes=10-19");
    assert_eq!(response.status, 206);
    assert_eq!(response.header("content-range"), Some("bytes 10-19/300000"));
    assert_eq!(response.body, &image()[10..20]);

    let clamped = get_range(world.server.addr(), IMAGE, "bytes=299990-400000");
    assert_eq!(
        clamped.header("content-range"),
        Some("bytes 299990-299999/300000")
    );
    assert_eq!(clamped.body, &image()[299_990..]);

    let suffix = get_range(world.server.addr(), IMAGE, "bytes=-5");
    assert_eq!(
        suffix.header("content-range"),
        Some("bytes 299995-299999/300000")
    );
    assert_eq!(suffix.body, &image()[299_995..]);
}

#[test]
fn an_unsatisfiable_range_is_416() {
    let world = World::new();
    let response = get_range(world.server.addr(), IMAGE, "bytes=300000-");
    assert_eq!(response.status, 416);
    assert_eq!(response.header("content-range"), Some("bytes */300000"));
    assert!(response.body.is_empty());
}

#[test]
fn a_range_the_server_does_not_understand_is_ignored() {
    let world = World::new();
    let response = get_range(world.server.addr(), IMAGE, "bytes=0-1,5-6");
    assert_eq!(response.status, 200);
    assert_eq!(response.body, image());
}

#[test]
fn keep_alive_serves_several_requests_on_one_connection() {
    let world = World::new();
    let mut client = Client::connect(world.server.addr());
    client.request("GET", TIMESTAMP, &[], false);
    let first = client.read_response(false);
    client.request("GET", IMAGE, &["Range: bytes=0-9"], false);
    let second = client.read_response(false);
    client.request("HEAD", IMAGE, &[], true);
    let third = client.read_response(true);
    assert_eq!(first.body, TIMESTAMP_BODY);
    assert_eq!((second.status, second.body), (206, image()[..10].to_vec()));
    assert_eq!(third.content_length(), Some(IMAGE_LEN));
    assert_eq!(
        client.read_to_close(),
        b"",
        "the server closes after Connection: close"
    );
}

#[test]
fn the_server_counts_the_connections_it_accepted() {
    let world = World::new();
    let mut client = Client::connect(world.server.addr());
    for _ in 0..3 {
        client.request("GET", TIMESTAMP, &[], false);
        assert_eq!(client.read_response(false).status, 200);
    }
    assert_eq!(
        world.server.connections_accepted(),
        1,
        "keep-alive: one connection"
    );
    assert_eq!(get(world.server.addr(), TIMESTAMP).status, 200);
    assert_eq!(world.server.connections_accepted(), 2);
}

#[test]
fn a_redirect_answers_its_status_and_location_with_no_body() {
    let world = World::new();
    world.server.add_rule(Rule::new(
        PathMatch::exact(TIMESTAMP),
        Fault::Redirect {
            status: 302,
            location: "http://127.0.0.2:8080/metadata/timestamp.json".into(),
        },
    ));
    let response = get(world.server.addr(), TIMESTAMP);
    assert_eq!(response.status, 302);
    assert_eq!(
        response.header("location"),
        Some("http://127.0.0.2:8080/metadata/timestamp.json")
    );
    assert_eq!(response.content_length(), Some(0));
    assert!(response.body.is_empty());
    assert_eq!(world.server.requests_for("timestamp.json")[0].status, 302);
    // Only the rule's path is redirected.
    assert_eq!(get(world.server.addr(), IMAGE).status, 200);
}

#[test]
fn drop_after_sends_exactly_n_body_bytes_then_closes() {
    let world = World::new();
    world.server.add_rule(Rule::new(
        PathMatch::suffix(".lz4"),
        Fault::DropAfter(12_345),
    ));
    let response = get(world.server.addr(), IMAGE);
    assert_eq!(response.status, 200);
    assert_eq!(
        response.content_length(),
        Some(IMAGE_LEN),
        "the head promises the whole body"
    );
    assert_eq!(response.body, &image()[..12_345]);
}

#[test]
fn a_dropped_download_can_be_resumed_with_a_range_and_the_log_shows_it() {
    let world = World::new();
    let rule = world
        .server
        .add_rule(Rule::new(PathMatch::suffix(".lz4"), Fault::DropAfter(50_000)).first(1));
    let first = get(world.server.addr(), IMAGE);
    assert_eq!(first.body.len(), 50_000);
    let rest = get_range(
        world.server.addr(),
        IMAGE,
        &format!("bytes={}-", first.body.len()),
    );
    assert_eq!(rest.status, 206);
    assert_eq!([first.body, rest.body].concat(), image());

    let requests = world.server.requests_for(".lz4");
    assert_eq!(requests.len(), 2);
    assert_eq!(
        (requests[0].range, requests[0].faults.clone()),
        (None, vec![Fault::DropAfter(50_000)])
    );
    assert_eq!(
        (requests[1].range, requests[1].status),
        (Some(ByteRange::From(50_000)), 206)
    );
    assert!(requests[1].faults.is_empty());
    assert_eq!(world.server.rule_hits(rule), Some(1));
}

#[test]
fn flip_byte_corrupts_exactly_one_byte_at_its_file_offset() {
    let world = World::new();
    world.server.add_rule(Rule::new(
        PathMatch::suffix(".lz4"),
        Fault::FlipByte(200_000),
    ));
    let image = image();
    let whole = get(world.server.addr(), IMAGE).body;
    let differing: Vec<usize> = (0..IMAGE_LEN).filter(|&i| whole[i] != image[i]).collect();
    assert_eq!(differing, vec![200_000]);
    assert_eq!(whole[200_000], image[200_000] ^ 0xFF);

    let tail = get_range(world.server.addr(), IMAGE, "bytes=199000-").body;
    let differing: Vec<usize> = (0..tail.len())
        .filter(|&i| tail[i] != image[199_000 + i])
        .collect();
    assert_eq!(
        differing,
        vec![1000],
        "the offset is absolute, so a resumed download meets the same byte"
    );
}

#[test]
fn a_status_fault_answers_with_that_status_and_an_empty_body() {
    let world = World::new();
    world
        .server
        .add_rule(Rule::new(PathMatch::exact(TIMESTAMP), Fault::Status(503)));
    let response = get(world.server.addr(), TIMESTAMP);
    assert_eq!(response.status, 503);
    assert_eq!(response.content_length(), Some(0));
    assert!(response.body.is_empty());
    assert_eq!(
        get(world.server.addr(), IMAGE).status,
        200,
        "other paths are untouched"
    );
    assert_eq!(world.server.requests()[0].status, 503);
}

#[test]
fn ignore_range_answers_200_with_the_whole_body_and_no_accept_ranges() {
    let world = World::new();
    world
        .server
        .add_rule(Rule::new(PathMatch::Any, Fault::IgnoreRange));
    let response = get_range(world.server.addr(), IMAGE, "bytes=100-");
    assert_eq!(response.status, 200);
    assert_eq!(response.header("accept-ranges"), None);
    assert_eq!(response.header("content-range"), None);
    assert_eq!(response.body, image());
    assert_eq!(
        world.server.requests()[0].range,
        Some(ByteRange::From(100)),
        "the asked range is still recorded"
    );
}

#[test]
fn stall_after_holds_the_connection_silent_then_continues() {
    let world = World::new();
    let stall = Duration::from_millis(1500);
    world.server.add_rule(Rule::new(
        PathMatch::suffix(".lz4"),
        Fault::StallAfter {
            bytes: 1000,
            duration: stall,
            then: AfterStall::Continue,
        },
    ));
    let mut client = Client::connect(world.server.addr());
    client.request("GET", IMAGE, &[], true);
    let started = Instant::now();
    let (status, _) = client.read_head();
    assert_eq!(status, 200);
    assert_eq!(client.read_exact(1000), &image()[..1000]);

    // Nothing more arrives while the server stalls.
    client
        .stream()
        .set_read_timeout(Some(Duration::from_millis(300)))
        .expect("set read timeout");
    let mut byte = [0u8; 1];
    let error = client
        .read(&mut byte)
        .expect_err("no byte during the stall");
    assert!(
        matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        "{error}"
    );

    client
        .stream()
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("set read timeout");
    let rest = client.read_to_close();
    assert!(
        started.elapsed() >= stall,
        "the rest came only after the stall"
    );
    assert_eq!(rest, &image()[1000..]);
}

#[test]
fn stall_then_close_ends_the_body_at_the_stall() {
    let world = World::new();
    world.server.add_rule(Rule::new(
        PathMatch::suffix(".lz4"),
        Fault::StallAfter {
            bytes: 4096,
            duration: Duration::from_millis(200),
            then: AfterStall::Close,
        },
    ));
    assert_eq!(get(world.server.addr(), IMAGE).body, &image()[..4096]);
}

#[test]
fn endless_streams_far_more_than_the_file_without_a_length() {
    let world = World::new();
    world
        .server
        .add_rule(Rule::new(PathMatch::exact(TIMESTAMP), Fault::Endless));
    let mut client = Client::connect(world.server.addr());
    client.request("GET", TIMESTAMP, &[], false);
    let (status, headers) = client.read_head();
    assert_eq!(status, 200);
    assert!(
        !headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("content-length"))
    );
    let body = client.read_exact(16 * 1024 * 1024);
    assert_eq!(&body[..TIMESTAMP_BODY.len()], TIMESTAMP_BODY);
    assert!(body[TIMESTAMP_BODY.len()..].iter().all(|&b| b == b' '));
    drop(client);

    // The server survives the hang-up and serves the next request.
    world.server.clear_rules();
    assert_eq!(get(world.server.addr(), TIMESTAMP).body, TIMESTAMP_BODY);
}

#[test]
fn rate_limit_slows_the_body_down() {
    let world = World::new();
    world.server.add_rule(Rule::new(
        PathMatch::exact(TIMESTAMP),
        Fault::RateLimit(100),
    ));
    let started = Instant::now();
    let response = get(world.server.addr(), TIMESTAMP);
    assert_eq!(response.body, TIMESTAMP_BODY);
    // 46 bytes at 100 B/s in 5-byte steps: the last step is due no earlier than 0.4 s in.
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn an_nth_rule_hits_only_the_chosen_request() {
    let world = World::new();
    let rule = world
        .server
        .add_rule(Rule::new(PathMatch::suffix("timestamp.json"), Fault::Status(500)).nth(2));
    let statuses: Vec<u16> = (0..4)
        .map(|_| get(world.server.addr(), TIMESTAMP).status)
        .collect();
    assert_eq!(statuses, vec![200, 500, 200, 200]);
    assert_eq!(world.server.rule_hits(rule), Some(1));
}

#[test]
fn first_n_and_from_nth_rules_hit_their_requests() {
    let world = World::new();
    world
        .server
        .add_rule(Rule::new(PathMatch::suffix("timestamp.json"), Fault::Status(502)).first(2));
    world
        .server
        .add_rule(Rule::new(PathMatch::suffix(".lz4"), Fault::Status(504)).from_nth(3));
    let timestamps: Vec<u16> = (0..3)
        .map(|_| get(world.server.addr(), TIMESTAMP).status)
        .collect();
    let images: Vec<u16> = (0..4)
        .map(|_| fetch(world.server.addr(), "HEAD", IMAGE, &[]).status)
        .collect();
    assert_eq!(timestamps, vec![502, 502, 200]);
    assert_eq!(images, vec![200, 200, 504, 504]);
}

#[test]
fn removing_or_clearing_rules_stops_their_faults() {
    let world = World::new();
    let rule = world
        .server
        .add_rule(Rule::new(PathMatch::Any, Fault::Status(503)));
    assert_eq!(get(world.server.addr(), TIMESTAMP).status, 503);
    assert!(world.server.remove_rule(rule));
    assert_eq!(world.server.rule_hits(rule), None);
    assert_eq!(get(world.server.addr(), TIMESTAMP).status, 200);
    world
        .server
        .add_rule(Rule::new(PathMatch::Any, Fault::Status(503)));
    world.server.clear_rules();
    assert_eq!(get(world.server.addr(), TIMESTAMP).status, 200);
    world.server.clear_requests();
    assert!(world.server.requests().is_empty());
}

#[test]
fn faults_combine_on_one_request() {
    let world = World::new();
    world
        .server
        .add_rule(Rule::new(PathMatch::suffix(".lz4"), Fault::IgnoreRange));
    world
        .server
        .add_rule(Rule::new(PathMatch::suffix(".lz4"), Fault::DropAfter(10)));
    let response = get_range(world.server.addr(), IMAGE, "bytes=1000-");
    assert_eq!(response.status, 200);
    assert_eq!(
        response.body,
        &image()[..10],
        "a server that drops and cannot resume"
    );
}

#[test]
fn a_stalled_connection_does_not_block_other_clients() {
    let world = World::new();
    world.server.add_rule(Rule::new(
        PathMatch::suffix(".lz4"),
        Fault::StallAfter {
            bytes: 0,
            duration: Duration::from_secs(600),
            then: AfterStall::Continue,
        },
    ));
    let mut stalled = Client::connect(world.server.addr());
    stalled.request("GET", IMAGE, &[], true);
    assert_eq!(stalled.read_head().0, 200);
    assert_eq!(get(world.server.addr(), TIMESTAMP).body, TIMESTAMP_BODY);
}

#[test]
fn dropping_the_server_ends_stalled_and_endless_connections_and_closes_the_port() {
    let world = World::new();
    world.server.add_rule(Rule::new(
        PathMatch::suffix(".lz4"),
        Fault::StallAfter {
            bytes: 10,
            duration: Duration::from_secs(600),
            then: AfterStall::Continue,
        },
    ));
    world
        .server
        .add_rule(Rule::new(PathMatch::exact(TIMESTAMP), Fault::Endless));
    let addr = world.server.addr();

    let mut stalled = Client::connect(addr);
    stalled.request("GET", IMAGE, &[], true);
    stalled.read_head();
    stalled.read_exact(10);
    // The endless client stops reading, so the server blocks writing into a full socket buffer.
    let mut endless = Client::connect(addr);
    endless.request("GET", TIMESTAMP, &[], true);
    endless.read_head();
    // And one that never sends a request: its thread is blocked reading.
    let _idle = Client::connect(addr);
    thread::sleep(Duration::from_millis(100));

    let started = Instant::now();
    drop(world);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "drop took {:?}",
        started.elapsed()
    );
    assert_eq!(
        stalled.read_to_close(),
        b"",
        "the stalled response ends at the drop"
    );
    assert!(TcpStream::connect(addr).is_err(), "the port is closed");
}

#[test]
fn the_handle_can_be_shared_across_threads() {
    fn shareable<T: Send + Sync>() {}
    shareable::<FaultServer>();
    let world = World::new();
    thread::scope(|scope| {
        scope.spawn(|| {
            world
                .server
                .add_rule(Rule::new(PathMatch::Any, Fault::Status(503)))
        });
    });
    assert_eq!(get(world.server.addr(), TIMESTAMP).status, 503);
}

#[test]
fn base_url_and_url_for_point_at_the_server() {
    let world = World::new();
    let base = world.server.base_url();
    assert_eq!(base.as_str(), format!("http://{}/", world.server.addr()));
    assert_eq!(
        world.server.url_for("/metadata/timestamp.json"),
        base.join("metadata/timestamp.json").expect("join")
    );
    assert_eq!(world.server.url_for("targets/a?b").path(), "/targets/a%3Fb");
    assert_eq!(world.server.root(), world.root());
}

#[test]
fn serving_a_missing_directory_fails() {
    let dir = tempfile::tempdir().expect("temp dir");
    let error = FaultServer::serve(dir.path().join("nope")).expect_err("not a directory");
    assert!(error.to_string().contains("not a directory"), "{error}");
}

#[test]
fn curl_resumes_a_dropped_download_with_a_range() {
    if !repo_fixtures::require::require_tool("curl") {
        return;
    }
    let world = World::new();
    world
        .server
        .add_rule(Rule::new(PathMatch::suffix(".lz4"), Fault::DropAfter(100_000)).first(1));
    let out = world.dir.path().join("download");
    let url = world.server.url_for(IMAGE);
    let first = Command::new("curl")
        .args(["-sS", "-o"])
        .arg(&out)
        .arg(url.as_str())
        .status()
        .expect("run curl");
    assert!(!first.success(), "curl notices the short body");
    assert_eq!(fs::metadata(&out).expect("partial file").len(), 100_000);
    let resumed = Command::new("curl")
        .args(["-sS", "-C", "-", "-o"])
        .arg(&out)
        .arg(url.as_str())
        .status()
        .expect("run curl");
    assert!(resumed.success());
    assert_eq!(fs::read(&out).expect("downloaded file"), image());
    let ranges: Vec<_> = world
        .server
        .requests_for(".lz4")
        .iter()
        .map(|r| r.range)
        .collect();
    assert_eq!(ranges, vec![None, Some(ByteRange::From(100_000))]);
}
