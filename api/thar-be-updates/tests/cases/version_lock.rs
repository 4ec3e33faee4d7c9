//! Which update is chosen and staged: version-lock from `/etc/thar-be-updates.toml`, prepare staging exactly the
//! chosen update even when the repository has moved on, and a refresh in Staged that finds a newer update.

use super::support::{TestNode, image, serve_world, step, tools};

#[test]
fn a_version_lock_chooses_and_stages_exactly_that_version() {
    if !tools() {
        return;
    }
    let server = serve_world();
    let node = TestNode::new("1.0.0");
    node.configure(step("1.2.0"), &server, "");
    node.set_version_lock("1.1.0");
    let status = node.succeed("refresh");
    assert_eq!(status["update_state"], "Available");
    assert_eq!(status["chosen_update"], image("1.1.0"));
    assert_eq!(
        status["available_updates"],
        serde_json::json!(["1.2.0", "1.1.0", "1.0.0"])
    );
    let status = node.succeed("prepare");
    assert_eq!(status["staging_partition"]["image"], image("1.1.0"));
    node.assert_b_holds("1.1.0");

    // Locked to the running version: nothing to choose.
    node.set_version_lock("1.0.0");
    let status = node.succeed("refresh");
    assert_eq!(status["chosen_update"], serde_json::Value::Null);
    assert_eq!(status["update_state"], "Staged", "a refresh keeps Staged");
}

#[test]
fn prepare_stages_the_chosen_update_even_after_the_repository_moved_on_and_a_newer_refresh_replaces_it()
 {
    if !tools() {
        return;
    }
    let server = serve_world();
    let node = TestNode::new("1.0.0");
    node.configure(step("1.1.0"), &server, "");
    let status = node.succeed("refresh");
    assert_eq!(status["chosen_update"], image("1.1.0"));

    // 1.2.0 is published between refresh and prepare: prepare still stages 1.1.0 (upstream would re-select).
    node.configure(step("1.2.0"), &server, "");
    let status = node.succeed("prepare");
    assert_eq!(status["staging_partition"]["image"], image("1.1.0"));
    node.assert_b_holds("1.1.0");

    // A refresh in Staged finds 1.2.0: the state stays, the choice moves on; the next prepare replaces the image.
    let status = node.succeed("refresh");
    assert_eq!(status["update_state"], "Staged");
    assert_eq!(status["chosen_update"], image("1.2.0"));
    assert_eq!(status["staging_partition"]["image"], image("1.1.0"));
    let status = node.succeed("prepare");
    assert_eq!(status["update_state"], "Staged");
    assert_eq!(
        status["staging_partition"],
        serde_json::json!({"image": image("1.2.0"), "next_to_boot": false})
    );
    node.assert_b_holds("1.2.0");
}

#[test]
fn refresh_skips_a_version_the_node_rolled_back_from() {
    if !tools() {
        return;
    }
    let server = serve_world();
    let node = TestNode::new("1.0.0");
    node.configure(step("1.2.0"), &server, "");
    // As updog mark-successful-boot records a fallback from 1.2.0.
    let record = node.path("var/lib/updog/rolled-back.json");
    std::fs::create_dir_all(record.parent().unwrap()).unwrap();
    std::fs::write(
        &record,
        r#"{"versions": [{"version": "1.2.0", "boot_partuuid": "0f6a1c52-cd0b-4c55-9f2e-4d3c2b1a0f9e",
            "recorded_at": "2030-01-01T00:00:00Z"}]}"#,
    )
    .unwrap();
    let status = node.succeed("refresh");
    assert_eq!(status["chosen_update"], image("1.1.0"));
    assert_eq!(
        status["available_updates"],
        serde_json::json!(["1.1.0", "1.0.0"])
    );
    let status = node.succeed("prepare");
    node.assert_b_holds("1.1.0");
    assert_eq!(status["staging_partition"]["image"], image("1.1.0"));
}
