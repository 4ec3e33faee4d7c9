//! Settings, transactions, commit_and_apply's rendered files, `/os` and `/?prefix=`.

use crate::support::*;
use serde_json::json;

#[test]
fn patched_settings_stay_pending_until_committed() {
    let node = TestNode::new();
    let server = node.start();

    let initial = server.get("/settings");
    assert_eq!(initial.status, 200, "{}", initial.text());
    assert_eq!(
        initial.json(),
        json!({"motd": "hello", "updates": {"seed": 1234}, "kernel": {"sysctl": {"net.ipv4.ip_forward": "1"}}})
    );

    let patch = server.request(
        "PATCH",
        "/settings",
        br#"{"motd": "changed", "ntp": {"time-servers": ["a.example", "b.example"]}}"#,
    );
    assert_eq!(patch.status, 204, "{}", patch.text());
    assert_eq!(server.get("/settings").json()["motd"], json!("hello"));
    assert_eq!(
        server.get("/tx").json(),
        json!({"motd": "changed", "ntp": {"time-servers": ["a.example", "b.example"]}})
    );
    assert_eq!(server.get("/tx/list").json(), json!(["default"]));

    let commit = server.request("POST", "/tx/commit", b"");
    assert_eq!(commit.status, 200, "{}", commit.text());
    assert_eq!(
        commit.json(),
        json!(["settings.motd", "settings.ntp.time-servers"])
    );
    let after = server.get("/settings").json();
    assert_eq!(after["motd"], json!("changed"));
    assert_eq!(
        after["ntp"]["time-servers"],
        json!(["a.example", "b.example"])
    );
    assert_eq!(server.get("/tx/list").json(), json!([]));

    // Stored as the datastore stores values: one compact JSON document per file.
    let live = node.datastore_dir().join("current/live/settings");
    assert_eq!(
        std::fs::read_to_string(live.join("ntp/time-servers")).unwrap(),
        r#"["a.example","b.example"]"#
    );
}

#[test]
fn named_transactions_are_separate_and_can_be_dropped() {
    let node = TestNode::new();
    let server = node.start();
    assert_eq!(
        server
            .request("PATCH", "/settings?tx=one", br#"{"motd": "one"}"#)
            .status,
        204
    );
    assert_eq!(
        server
            .request("PATCH", "/settings?tx=two", br#"{"hostname": "two"}"#)
            .status,
        204
    );
    assert_eq!(server.get("/tx/list").json(), json!(["one", "two"]));
    assert_eq!(server.get("/tx?tx=one").json(), json!({"motd": "one"}));

    let dropped = server.request("DELETE", "/tx?tx=one", b"");
    assert_eq!(dropped.status, 200, "{}", dropped.text());
    assert_eq!(dropped.json(), json!(["settings.motd"]));
    assert_eq!(
        server.request("POST", "/tx/commit?tx=two", b"").json(),
        json!(["settings.hostname"])
    );
    let settings = server.get("/settings").json();
    assert_eq!(settings["motd"], json!("hello"));
    assert_eq!(settings["hostname"], json!("two"));
}

#[test]
fn reads_select_by_keys_or_prefix() {
    let node = TestNode::new();
    let server = node.start();
    assert_eq!(
        server
            .get("/settings?keys=settings.motd,updates.seed,settings.absent")
            .json(),
        json!({"motd": "hello", "updates": {"seed": 1234}})
    );
    for prefix in ["settings.updates", "updates"] {
        assert_eq!(
            server.get(&format!("/settings?prefix={prefix}")).json(),
            json!({"updates": {"seed": 1234}}),
            "{prefix}"
        );
    }
    assert_eq!(
        server.get("/?prefix=settings.motd").json(),
        json!({"settings": {"motd": "hello"}})
    );
    assert_eq!(
        server.get("/?prefix=os.version").json(),
        json!({"os": {"version_id": "1.0.0"}})
    );
    let all = server.get("/").json();
    assert_eq!(all["settings"]["motd"], json!("hello"));
    assert_eq!(all["os"]["variant_id"], json!("aws-k8s-1.29"));
}

#[test]
fn os_comes_from_os_release_with_the_arch() {
    let node = TestNode::new();
    let server = node.start();
    let os = server.get("/os");
    assert_eq!(os.status, 200, "{}", os.text());
    assert_eq!(
        os.json(),
        json!({"arch": std::env::consts::ARCH, "build_id": "0123abcd",
               "pretty_name": "Bottlerocket OS 1.0.0 (aws-k8s-1.29)", "variant_id": "aws-k8s-1.29",
               "version_id": "1.0.0"})
    );
}

#[test]
fn commit_and_apply_renders_the_update_settings_into_both_configs() {
    let node = TestNode::new();
    let etc = node.sysroot().join("etc");
    std::fs::write(
        etc.join("updog.toml"),
        "metadata_base_url = \"http://127.0.0.1:1/metadata/\"\ntargets_base_url = \"http://127.0.0.1:1/targets/\"\n\
         seed = 1234\nversion_lock = \"latest\"\nignore_waves = false\nreboot_command = [\"true\"]\n",
    )
    .unwrap();
    let server = node.start();
    let patch = server.request(
        "PATCH",
        "/settings",
        br#"{"updates": {"version-lock": "v1.1.0", "seed": 42, "ignore-waves": true,
                         "targets-base-url": "http://127.0.0.1:2/targets/"}}"#,
    );
    assert_eq!(patch.status, 204, "{}", patch.text());
    let applied = server.request("POST", "/tx/commit_and_apply", b"");
    assert_eq!(applied.status, 200, "{}", applied.text());
    assert_eq!(
        applied.json(),
        json!([
            "settings.updates.ignore-waves",
            "settings.updates.seed",
            "settings.updates.targets-base-url",
            "settings.updates.version-lock"
        ])
    );

    let tbu: toml::Table =
        toml::from_str(&std::fs::read_to_string(etc.join("thar-be-updates.toml")).unwrap())
            .unwrap();
    assert_eq!(tbu["version-lock"].as_str(), Some("v1.1.0"));
    let updog: toml::Table =
        toml::from_str(&std::fs::read_to_string(etc.join("updog.toml")).unwrap()).unwrap();
    assert_eq!(updog["version_lock"].as_str(), Some("v1.1.0"));
    assert_eq!(updog["seed"].as_integer(), Some(42));
    assert_eq!(updog["ignore_waves"].as_bool(), Some(true));
    assert_eq!(
        updog["targets_base_url"].as_str(),
        Some("http://127.0.0.1:2/targets/")
    );
    // Keys the settings do not own are kept.
    assert_eq!(
        updog["metadata_base_url"].as_str(),
        Some("http://127.0.0.1:1/metadata/")
    );
    assert_eq!(updog["reboot_command"].as_array().map(Vec::len), Some(1));
}

#[test]
fn a_datastore_held_by_another_writer_answers_423_and_works_once_free() {
    let node = TestNode::new();
    let server = node.start();
    let held = nodeio::Lock::datastore(&node.datastore_dir()).unwrap();
    let before = node.datastore_snapshot();
    let busy = server.request("PATCH", "/settings", br#"{"motd": "x"}"#);
    assert_eq!(busy.status, 423, "{}", busy.text());
    assert!(
        busy.text().contains(&std::process::id().to_string()),
        "the holder's pid is named: {}",
        busy.text()
    );
    assert_eq!(server.request("POST", "/tx/commit", b"").status, 423);
    assert_eq!(node.datastore_snapshot(), before);
    drop(held);
    assert_eq!(
        server
            .request("PATCH", "/settings", br#"{"motd": "x"}"#)
            .status,
        204
    );
}
