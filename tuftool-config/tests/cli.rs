//! The binary, end to end: gen-key → create-root → build → validate → refresh → rotate-root.

use std::path::Path;
use std::process::{Command, Output};

fn tuftool_config(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tuftool-config"))
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap()
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let out = tuftool_config(dir, args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn config(root_keys: &[&str], signing_key: &str, root: &str) -> String {
    let root_keys = root_keys
        .iter()
        .map(|k| format!("\"{k}\""))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        r#"root = "{root}"
repository = "repo"
metadata_base_url = "https://updates.example.com/metadata/"
targets_base_url = "https://updates.example.com/targets/"

[expiration]
root = "52 weeks"
targets = "12 weeks"
snapshot = "12 weeks"
timestamp = "7 days"

[roles.root]
keys = [{root_keys}]
threshold = {threshold}

[roles.targets]
keys = ["{signing_key}"]

[roles.snapshot]
keys = ["{signing_key}"]

[roles.timestamp]
keys = ["{signing_key}"]
"#,
        threshold = root_keys.split(',').count()
    )
}

fn release(dir: &Path, version: &str) {
    let build = dir.join(format!("build-{version}"));
    std::fs::create_dir_all(&build).unwrap();
    for part in ["boot", "root", "hash"] {
        std::fs::write(
            build.join(format!("{part}-{version}.lz4")),
            format!("{part} image {version}"),
        )
        .unwrap();
    }
    std::fs::write(
        dir.join(format!("manifest-{version}.json")),
        format!(
            r#"{{"updates":[{{"variant":"aws-dev","arch":"x86_64","version":"{version}","max_version":"{version}","waves":{{}},
               "images":{{"boot":"boot-{version}.lz4","root":"root-{version}.lz4","hash":"hash-{version}.lz4"}}}}],"migrations":{{}}}}"#
        ),
    )
    .unwrap();
}

#[test]
fn the_publisher_workflow_runs_end_to_end_through_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (ty, name) in [
        ("rsa", "root-a"),
        ("ecdsa-p256", "root-b"),
        ("ed25519", "signing"),
    ] {
        let out = ok(d, &["gen-key", "--type", ty, &format!("keys/{name}.pem")]);
        assert!(out.starts_with(&format!("{ty} ")), "{out}");
    }
    // gen-key never overwrites a key.
    let again = tuftool_config(d, &["gen-key", "--type", "ed25519", "keys/signing.pem"]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("keys/signing.pem already exists"));

    std::fs::write(
        d.join("repo.toml"),
        config(
            &["keys/root-a.pem", "keys/root-b.pem"],
            "keys/signing.pem",
            "root.json",
        ),
    )
    .unwrap();
    ok(d, &["create-root", "--config", "repo.toml"]);
    release(d, "1.0.0");
    let built = ok(
        d,
        &[
            "build",
            "--config",
            "repo.toml",
            "--manifest",
            "manifest-1.0.0.json",
            "--targets",
            "build-1.0.0",
        ],
    );
    assert!(
        built.contains("added manifest.json") && built.contains("published 1.root.json"),
        "{built}"
    );
    let report = ok(d, &["validate", "--config", "repo.toml"]);
    assert!(
        report.contains("4 targets checked") && report.contains("No problems found"),
        "{report}"
    );

    release(d, "1.1.0");
    let updated = ok(
        d,
        &[
            "build",
            "--config",
            "repo.toml",
            "--manifest",
            "manifest-1.1.0.json",
            "--targets",
            "build-1.1.0",
        ],
    );
    assert!(
        updated.contains("replaced manifest.json") && updated.contains("7 targets"),
        "{updated}"
    );
    ok(d, &["refresh", "--config", "repo.toml"]);

    // Rotate: a new ed25519 root key and a new signing key; the old root is kept for clients.
    std::fs::copy(d.join("root.json"), d.join("root-v1.json")).unwrap();
    ok(d, &["gen-key", "--type", "ed25519", "keys/root-c.pem"]);
    ok(d, &["gen-key", "--type", "ed25519", "keys/signing-2.pem"]);
    std::fs::write(
        d.join("repo-2.toml"),
        config(&["keys/root-c.pem"], "keys/signing-2.pem", "root.json"),
    )
    .unwrap();
    let rotated = ok(
        d,
        &[
            "rotate-root",
            "--config",
            "repo.toml",
            "--new-config",
            "repo-2.toml",
        ],
    );
    assert!(
        rotated.contains("version 2") && rotated.contains("published 2.root.json"),
        "{rotated}"
    );
    // A client that ships the version-1 root walks the chain and loads everything.
    let report = ok(
        d,
        &[
            "validate",
            "--config",
            "repo-2.toml",
            "--trusted-root",
            "root-v1.json",
            "--json",
        ],
    );
    let json: serde_json::Value = serde_json::from_str(&report).unwrap();
    assert_eq!(json["problems"], serde_json::json!([]), "{report}");
    assert_eq!(json["roles"][0]["version"], 2);
    // ... and the directory form works too.
    ok(d, &["validate", "--root", "root-v1.json", "--repo", "repo"]);

    // A corrupted target: validate exits 1 and names it.
    let victim = std::fs::read_dir(d.join("repo/targets"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_str().unwrap().ends_with(".root-1.1.0.lz4"))
        .unwrap();
    std::fs::write(&victim, "root image 1.1.X").unwrap();
    let bad = tuftool_config(d, &["validate", "--config", "repo-2.toml"]);
    assert_eq!(bad.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&bad.stdout);
    assert!(
        stdout.contains("1 problem(s)") && stdout.contains("Target 'root-1.1.0.lz4' has sha256"),
        "{stdout}"
    );
}

#[test]
fn errors_go_to_stderr_with_exit_code_1_and_name_the_file_and_role() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(d, &["gen-key", "--type", "ed25519", "keys/root.pem"]);
    ok(d, &["gen-key", "--type", "ed25519", "keys/signing.pem"]);
    std::fs::write(
        d.join("repo.toml"),
        config(&["keys/root.pem"], "keys/signing.pem", "root.json"),
    )
    .unwrap();
    ok(
        d,
        &[
            "--now",
            "2025-06-01T00:00:00Z",
            "create-root",
            "--config",
            "repo.toml",
        ],
    );
    // create-root does not overwrite a root.
    let again = tuftool_config(d, &["create-root", "--config", "repo.toml"]);
    assert_eq!(again.status.code(), Some(1));

    // The config now names a key that is not in root.json for 'snapshot'.
    ok(d, &["gen-key", "--type", "ed25519", "keys/stranger.pem"]);
    let text = config(&["keys/root.pem"], "keys/signing.pem", "root.json").replace(
        "[roles.snapshot]\nkeys = [\"keys/signing.pem\"]",
        "[roles.snapshot]\nkeys = [\"keys/stranger.pem\"]",
    );
    std::fs::write(d.join("bad.toml"), text).unwrap();
    release(d, "1.0.0");
    let out = tuftool_config(
        d,
        &[
            "--now",
            "2025-06-01T00:00:00Z",
            "build",
            "--config",
            "bad.toml",
            "--manifest",
            "manifest-1.0.0.json",
            "--targets",
            "build-1.0.0",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("Error: Key "), "{stderr}");
    assert!(
        stderr.contains("keys/stranger.pem (ed25519, keyid ")
            && stderr.contains("for role 'snapshot'"),
        "{stderr}"
    );
    assert!(!d.join("repo/metadata/timestamp.json").exists());

    // A fixed --now gives expiry times and versions from that clock.
    let built = ok(
        d,
        &[
            "--now",
            "2025-06-01T00:00:00Z",
            "build",
            "--config",
            "repo.toml",
            "--manifest",
            "manifest-1.0.0.json",
            "--targets",
            "build-1.0.0",
        ],
    );
    assert!(
        built.contains("timestamp 1748736000 (expires 2025-06-08T00:00:00Z)"),
        "{built}"
    );

    // Validating at a time past the timestamp's expiry reports it.
    let late = tuftool_config(
        d,
        &[
            "--now",
            "2025-06-09T00:00:00Z",
            "validate",
            "--config",
            "repo.toml",
        ],
    );
    assert_eq!(late.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&late.stdout)
            .contains("Role 'timestamp' (version 1748736000) expired")
    );

    // Usage errors are clap's (exit 2).
    let usage = tuftool_config(d, &["gen-key", "--type", "dsa", "x.pem"]);
    assert_eq!(usage.status.code(), Some(2));
}
