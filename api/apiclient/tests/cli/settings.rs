//! `get`, `set` and `apply`: the requests they make (exact bodies, their own transactions, commit and apply),
//! what they print, and that a bad input sends nothing.

use crate::fake_api::{FakeApi, Recorded, Reply, Script, stderr, stdout};
use serde_json::{Value, json};

fn body_json(request: &Recorded) -> Value {
    serde_json::from_str(&request.body).unwrap_or_else(|e| panic!("{}: {e}", request.body))
}

fn settings_api() -> FakeApi {
    FakeApi::start(
        Script::new()
            .route("PATCH", "/settings", Reply::no_content())
            .route(
                "POST",
                "/tx/commit_and_apply",
                Reply::json(r#"["settings.motd"]"#),
            ),
    )
}

/// The requests are PATCH then commit_and_apply, in one transaction named `<prefix>-<16 alphanumerics>`;
/// returns the PATCH body and the transaction.
fn patch_then_commit(requests: &[Recorded], prefix: &str) -> (Value, String) {
    assert_eq!(requests.len(), 2, "{requests:?}");
    let (patch, commit) = (&requests[0], &requests[1]);
    assert_eq!(
        (patch.method.as_str(), patch.path()),
        ("PATCH", "/settings")
    );
    assert_eq!(
        (commit.method.as_str(), commit.path()),
        ("POST", "/tx/commit_and_apply")
    );
    let tx = patch.query("tx").unwrap().to_owned();
    assert_eq!(
        commit.query("tx"),
        Some(tx.as_str()),
        "commit the same transaction"
    );
    let random = tx
        .strip_prefix(prefix)
        .and_then(|r| r.strip_prefix('-'))
        .unwrap_or_else(|| panic!("{tx}"));
    assert_eq!(random.len(), 16, "{tx}");
    assert!(random.chars().all(|c| c.is_ascii_alphanumeric()), "{tx}");
    (body_json(patch), tx)
}

#[test]
fn get_merges_the_answers_for_each_prefix_and_prints_them_pretty() {
    let api = FakeApi::start(
        Script::new()
            .route(
                "GET",
                "/?prefix=settings.motd",
                Reply::json(r#"{"settings":{"motd":"hi"}}"#),
            )
            .route(
                "GET",
                "/?prefix=settings.updates",
                Reply::json(r#"{"settings":{"updates":{"seed":7}}}"#),
            )
            .route(
                "GET",
                "/?prefix=os",
                Reply::json(r#"{"os":{"arch":"x86_64"}}"#),
            ),
    );
    let output = api.apiclient(&["get", "motd", "settings.updates", "os"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        api.calls(),
        [
            "GET /?prefix=settings.motd",
            "GET /?prefix=settings.updates",
            "GET /?prefix=os"
        ]
    );
    let expected =
        json!({"settings": {"motd": "hi", "updates": {"seed": 7}}, "os": {"arch": "x86_64"}});
    assert_eq!(stdout(&output), format!("{expected:#}\n"));
}

#[test]
fn get_without_arguments_gets_everything_and_a_uri_is_a_plain_get() {
    let api = FakeApi::start(
        Script::new()
            .route(
                "GET",
                "/",
                Reply::json(r#"{"settings":{"motd":"hi"},"os":{"arch":"x86_64"}}"#),
            )
            .route("GET", "/tx/list", Reply::json(r#"["default"]"#)),
    );
    let output = api.apiclient(&["get"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        stdout(&output),
        format!(
            "{:#}\n",
            json!({"settings": {"motd": "hi"}, "os": {"arch": "x86_64"}})
        )
    );
    let output = api.apiclient(&["get", "/tx/list"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output), "[\n  \"default\"\n]\n");
    assert_eq!(api.calls(), ["GET /", "GET /tx/list"]);
}

#[test]
fn get_of_a_failing_uri_is_upstreams_error_line() {
    let api = FakeApi::start(Script::new());
    let output = api.apiclient(&["get", "/nope"]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output),
        "Failed to get settings: Failed GET request to '/nope': Status 404 when GETing /nope: no route for GET /nope\n"
    );
}

#[test]
fn set_parses_keys_and_values_into_one_patch_then_commits_and_applies_it() {
    let api = settings_api();
    let output = api.apiclient(&[
        "set",
        "settings.motd=hello world",
        "updates.seed=42",
        "updates.ignore-waves=true",
        "updates.version-lock=1.2.0",
        r#"kernel.sysctl."net.ipv4.ip_forward"=1"#,
        r#"kubernetes.node-labels."example.com/role"=worker"#,
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output), "");
    let (body, _) = patch_then_commit(&api.requests(), "apiclient-set");
    assert_eq!(
        body,
        json!({
            "motd": "hello world",
            "updates": {"seed": 42, "ignore-waves": true, "version-lock": "1.2.0"},
            "kernel": {"sysctl": {"net.ipv4.ip_forward": 1}},
            "kubernetes": {"node-labels": {"example.com/role": "worker"}},
        })
    );
}

#[test]
fn set_json_sends_the_object_without_its_settings_layer() {
    let api = settings_api();
    let output = api.apiclient(&[
        "set",
        "-j",
        r#"{"settings": {"motd": "hi", "updates": {"seed": 3}}}"#,
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let (body, _) = patch_then_commit(&api.requests(), "apiclient-set");
    assert_eq!(body, json!({"motd": "hi", "updates": {"seed": 3}}));
}

#[test]
fn each_set_uses_a_new_transaction() {
    let api = settings_api();
    assert!(api.apiclient(&["set", "motd=a"]).status.success());
    let (_, first) = patch_then_commit(&api.requests(), "apiclient-set");
    assert!(api.apiclient(&["set", "motd=b"]).status.success());
    let (_, second) = patch_then_commit(&api.requests()[2..], "apiclient-set");
    assert_ne!(first, second);
}

#[test]
fn a_refused_set_is_not_committed_and_says_why() {
    let api = FakeApi::start(
        Script::new()
            .route(
                "PATCH",
                "/settings",
                Reply::new(400, "unknown setting 'nope'"),
            )
            .route("POST", "/tx/commit_and_apply", Reply::json("[]")),
    );
    let output = api.apiclient(&["set", "nope=1"]);
    assert_eq!(output.status.code(), Some(1));
    let requests = api.requests();
    assert_eq!(
        requests.len(),
        1,
        "no commit after a refused PATCH: {requests:?}"
    );
    let uri = &requests[0].uri;
    assert_eq!(
        stderr(&output),
        format!(
            "Failed to change settings: Failed PATCH request to '{uri}': Status 400 when PATCHing {uri}: unknown setting 'nope'\n"
        )
    );
}

#[test]
fn a_malformed_set_sends_nothing() {
    let api = settings_api();
    for args in [
        &["set", "motd"][..],
        &["set", r#"a."b=1"#],
        &["set", "a..b=1"],
        &["set", "-j", "[1]"],
    ] {
        let output = api.apiclient(args);
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        assert!(!stderr(&output).is_empty());
    }
    assert_eq!(api.calls(), Vec::<String>::new());
}

#[test]
fn apply_sends_each_file_in_its_own_transaction_in_order() {
    let api = settings_api();
    let first = api.dir().join("first.toml");
    std::fs::write(
        &first,
        "[settings]\nmotd = \"from toml\"\n[settings.updates]\nseed = 12\n[settings.kernel.sysctl]\n\"vm.max_map_count\" = \"262144\"\n",
    )
    .unwrap();
    let second = api.dir().join("second.json");
    std::fs::write(&second, r#"{"settings": {"motd": "from json"}}"#).unwrap();
    let second_uri = format!("file://{}", second.display());

    let output = api.apiclient(&["apply", first.to_str().unwrap(), &second_uri]);
    assert!(output.status.success(), "{}", stderr(&output));
    let requests = api.requests();
    assert_eq!(requests.len(), 4, "{requests:?}");
    let (body, tx1) = patch_then_commit(&requests[..2], "apiclient-apply");
    assert_eq!(
        body,
        json!({"motd": "from toml", "updates": {"seed": 12}, "kernel": {"sysctl": {"vm.max_map_count": "262144"}}})
    );
    let (body, tx2) = patch_then_commit(&requests[2..], "apiclient-apply");
    assert_eq!(body, json!({"motd": "from json"}));
    assert_ne!(tx1, tx2);
}

#[test]
fn apply_reads_stdin_for_dash_and_by_default() {
    let api = settings_api();
    let output = api.apiclient_with_stdin(&["apply", "-"], Some("[settings]\nmotd = \"piped\"\n"));
    assert!(output.status.success(), "{}", stderr(&output));
    let (body, _) = patch_then_commit(&api.requests(), "apiclient-apply");
    assert_eq!(body, json!({"motd": "piped"}));

    let output =
        api.apiclient_with_stdin(&["apply"], Some(r#"{"settings": {"motd": "json piped"}}"#));
    assert!(output.status.success(), "{}", stderr(&output));
    let (body, _) = patch_then_commit(&api.requests()[2..], "apiclient-apply");
    assert_eq!(body, json!({"motd": "json piped"}));
}

#[test]
fn apply_with_a_bad_input_sends_nothing_at_all() {
    let api = settings_api();
    let good = api.dir().join("good.toml");
    std::fs::write(&good, "[settings]\nmotd = \"x\"\n").unwrap();
    let no_settings = api.dir().join("no-settings.toml");
    std::fs::write(&no_settings, "motd = \"x\"\n").unwrap();
    let missing = api.dir().join("missing.toml");
    let good = good.to_str().unwrap();

    for (input, message) in [
        (
            no_settings.to_str().unwrap().to_owned(),
            "did not contain a 'settings' key at top level".to_owned(),
        ),
        (
            missing.to_str().unwrap().to_owned(),
            format!("Failed to read given file '{}'", missing.display()),
        ),
        (
            "https://example.com/user-data.toml".to_owned(),
            "https URIs are unsupported".to_owned(),
        ),
    ] {
        let output = api.apiclient(&["apply", good, &input]);
        assert_eq!(output.status.code(), Some(1), "{input}");
        let err = stderr(&output);
        assert!(err.starts_with("Failed to apply settings: "), "{err}");
        assert!(err.contains(&message), "{input}: {err}");
    }
    assert_eq!(api.calls(), Vec::<String>::new());
}
