//! Every bad request answers 4xx with a message naming what was wrong, and leaves the datastore byte for byte as it
//! was (paths, link targets and contents of the whole datastore tree).

use crate::support::*;

/// (method, uri, body, status, text the message must hold)
fn bad_requests() -> Vec<(&'static str, String, Vec<u8>, u16, &'static str)> {
    let patch = |body: &str, status: u16, expected: &'static str| {
        (
            "PATCH",
            "/settings".to_string(),
            body.as_bytes().to_vec(),
            status,
            expected,
        )
    };
    // A body one byte over the limit: `{"motd": "xxx…"}`.
    let mut too_large = br#"{"motd": ""#.to_vec();
    too_large.resize((1 << 20) - 1, b'x');
    too_large.extend_from_slice(br#""}"#);
    assert_eq!(too_large.len(), (1 << 20) + 1);
    let long_key = format!(r#"{{"network": {{"{}": 1}}}}"#, "k".repeat(250));
    vec![
        (
            "PATCH",
            "/settings".into(),
            too_large,
            413,
            "larger than the limit of 1048576 bytes",
        ),
        patch(r#"{"motd": "#, 400, "not valid JSON"),
        (
            "PATCH",
            "/settings".into(),
            b"{\"motd\": \"\xff\xfe\"}".to_vec(),
            400,
            "not UTF-8 (invalid byte at offset 10)",
        ),
        patch(
            r#"["motd"]"#,
            400,
            "must be a JSON object of settings, found an array",
        ),
        patch(
            r#"{"no-such-setting": 1}"#,
            400,
            "Unknown setting 'settings.no-such-setting'",
        ),
        patch(
            r#"{"updates": {"seed": "12"}}"#,
            400,
            "'settings.updates.seed': must be an integer from 0 to 2047",
        ),
        patch(r#"{"updates": {"seed": 2048}}"#, 400, "found 2048"),
        patch(
            r#"{"updates": {"ignore-waves": 1}}"#,
            400,
            "'settings.updates.ignore-waves': must be true or false",
        ),
        patch(
            r#"{"updates": {"version-lock": "newest"}}"#,
            400,
            "found \"newest\"",
        ),
        patch(
            r#"{"updates": {"seeed": 1}}"#,
            400,
            "Unknown setting 'settings.updates.seeed'",
        ),
        patch(
            r#"{"motd": null}"#,
            400,
            "'settings.motd': null is not a value",
        ),
        patch(
            r#"{"ntp": {"time-servers": [["a"]]}}"#,
            400,
            "'settings.ntp.time-servers': an array holds only",
        ),
        patch(
            r#"{"network": {"..": "x"}}"#,
            400,
            "Invalid key 'settings.network.\"..\"'",
        ),
        patch(
            r#"{"network": {"../../../../etc": "x"}}"#,
            400,
            "may not contain '/'",
        ),
        patch(r#"{"network": {"": "x"}}"#, 400, "empty key segment"),
        patch(&long_key, 400, "255"),
        patch(
            r#"{"motd": {"below": "x"}}"#,
            400,
            "conflicts with existing setting 'settings.motd'",
        ),
        (
            "PATCH",
            format!("/settings?tx={}", "t".repeat(300)),
            br#"{"motd": "x"}"#.to_vec(),
            400,
            "Invalid transaction name",
        ),
        (
            "PATCH",
            "/settings?tx=".into(),
            br#"{"motd": "x"}"#.to_vec(),
            400,
            "parameter 'tx' is empty",
        ),
        (
            "PATCH",
            "/settings?txn=a".into(),
            br#"{"motd": "x"}"#.to_vec(),
            400,
            "unknown parameter 'txn'",
        ),
        (
            "GET",
            "/settings?keys=settings.motd&prefix=settings".into(),
            vec![],
            400,
            "not both",
        ),
        (
            "GET",
            "/settings?keys=settings..motd".into(),
            vec![],
            400,
            "key 'settings..motd'",
        ),
        (
            "POST",
            "/tx/commit?tx=a&tx=b".into(),
            vec![],
            400,
            "given more than once",
        ),
        ("GET", "/os?x=1".into(), vec![], 400, "takes none"),
        (
            "GET",
            "/no/such/endpoint".into(),
            vec![],
            404,
            "No such endpoint: /no/such/endpoint",
        ),
        (
            "GET",
            "/actions/refresh-updates".into(),
            vec![],
            405,
            "Method GET is not allowed on /actions/refresh-updates (allowed: POST)",
        ),
        (
            "DELETE",
            "/settings".into(),
            vec![],
            405,
            "allowed: GET, PATCH",
        ),
        ("POST", "/tx".into(), vec![], 405, "allowed: GET, DELETE"),
    ]
}

#[test]
fn each_bad_request_is_refused_with_a_message_and_the_datastore_unchanged() {
    let node = TestNode::new();
    let server = node.start();
    // A pending transaction too, so a stray write into pending/ would show.
    assert_eq!(
        server
            .request("PATCH", "/settings", br#"{"hostname": "pending"}"#)
            .status,
        204
    );
    let before = node.datastore_snapshot();
    assert!(
        before
            .keys()
            .any(|p| p.ends_with("pending/default/settings/hostname")),
        "{before:?}"
    );
    for (method, uri, body, status, expected) in bad_requests() {
        let reply = server.request(method, &uri, &body);
        let shown = &uri[..uri.len().min(80)];
        assert_eq!(reply.status, status, "{method} {shown}: {}", reply.text());
        assert!(
            reply.text().contains(expected),
            "{method} {shown}: message {:?} lacks {expected:?}",
            reply.text()
        );
        assert_eq!(
            node.datastore_snapshot(),
            before,
            "{method} {shown} changed the datastore"
        );
    }
    // The server still serves after all of them.
    assert_eq!(server.get("/settings").json()["motd"], "hello");
}

#[test]
fn a_body_at_the_limit_is_accepted() {
    let node = TestNode::new();
    let server = node.start();
    let mut body = br#"{"motd": ""#.to_vec();
    body.resize((1 << 20) - 2, b'x');
    body.extend_from_slice(br#""}"#);
    assert_eq!(body.len(), 1 << 20);
    let reply = server.request("PATCH", "/settings", &body);
    assert_eq!(reply.status, 204, "{}", reply.text());
}
