//! Many clients at once: each PATCHes its own key into its own transaction and commits it while others read; every
//! request succeeds (the in-process turn queues them; none trips over another's datastore lock) and every value is
//! there at the end.

use crate::support::*;
use serde_json::json;

const CLIENTS: usize = 32;

#[test]
fn concurrent_patches_commits_and_reads_all_succeed() {
    let node = TestNode::new();
    let server = node.start();
    let threads: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let socket = server.socket.clone();
            std::thread::spawn(move || {
                let body = format!(r#"{{"network": {{"client-{i}": "value-{i}"}}}}"#);
                let patch = try_request(
                    &socket,
                    "PATCH",
                    &format!("/settings?tx=client-{i}"),
                    body.as_bytes(),
                )
                .unwrap();
                assert_eq!(patch.status, 204, "client {i} PATCH: {}", patch.text());
                let read = try_request(&socket, "GET", "/settings", b"").unwrap();
                assert_eq!(read.status, 200, "client {i} GET: {}", read.text());
                let pending =
                    try_request(&socket, "GET", &format!("/tx?tx=client-{i}"), b"").unwrap();
                assert_eq!(
                    pending.json(),
                    json!({"network": {format!("client-{i}"): format!("value-{i}")}})
                );
                let uri = if i % 2 == 0 {
                    "/tx/commit"
                } else {
                    "/tx/commit_and_apply"
                };
                let commit =
                    try_request(&socket, "POST", &format!("{uri}?tx=client-{i}"), b"").unwrap();
                assert_eq!(commit.status, 200, "client {i} commit: {}", commit.text());
                assert_eq!(
                    commit.json(),
                    json!([format!("settings.network.client-{i}")])
                );
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let network = server.get("/settings?prefix=network").json();
    for i in 0..CLIENTS {
        assert_eq!(
            network["network"][format!("client-{i}")],
            json!(format!("value-{i}")),
            "{network}"
        );
    }
    assert_eq!(server.get("/tx/list").json(), json!([]));
    assert_eq!(server.get("/settings").json()["motd"], json!("hello"));
}
