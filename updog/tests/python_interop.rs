//! Interop with python-tuf, the reference TUF implementation, both ways, over HTTP (the fault server):
//! repositories python-tuf's Metadata API builds (`tests/python_tuf/make_repo.py`: plain, consistent snapshot,
//! manifest.json reachable only through a delegation) load in `updog check-update` and in `tuf-conformance-client`;
//! a repository tuftool-config publishes loads in python-tuf's ngclient (`tests/python_tuf/ngclient_fetch.py`).
//!
//! Needs python3 with python-tuf and pyca/cryptography (`.ci/run` pip-installs them): skipped without them, a
//! failure in CI.

mod support;

use repo_fixtures::http::FaultServer;
use repo_fixtures::require::require_python_module;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use support::{ARCH, Node, NodeConfig};
use update_metadata::{Images, Manifest, NewUpdate};

/// python-tuf, and the ed25519 implementation its keys and signature checks use (not one of its requirements).
fn python_tuf() -> bool {
    require_python_module("tuf") && require_python_module("cryptography")
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/python_tuf")
        .join(name)
}

/// Runs a helper script, panicking with its stderr when it fails.
fn python(script_name: &str, args: &[&str]) {
    let output = Command::new("python3")
        .arg(script(script_name))
        .args(args)
        .output()
        .expect("run python3");
    assert!(
        output.status.success(),
        "{script_name} {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A repository built by python-tuf in `world/name` with `make_repo.py`'s `flags`, for an aws-dev node of this
/// machine's arch.
fn python_repo(world: &Path, name: &str, flags: &[&str]) -> PathBuf {
    let out = world.join(name);
    let mut args = vec![
        out.to_str().unwrap(),
        "--variant",
        "aws-dev",
        "--arch",
        ARCH,
    ];
    args.extend(flags);
    python("make_repo.py", &args);
    out
}

fn served(server: &FaultServer, name: &str) -> (url::Url, url::Url) {
    repo_fixtures::verify::served_urls(&server.base_url(), name)
}

/// The python-tuf repository `name` (built with `flags`) served over HTTP: `updog check-update` on an aws-dev
/// 1.0.0 node offers `expected`, and `tuf-conformance-client` downloads exactly the manifest.json python-tuf
/// published. Returns the server, for the caller to look at the requests.
fn python_repo_loads_in_updog(name: &str, flags: &[&str], expected: &str) -> FaultServer {
    let world = tempfile::tempdir().unwrap();
    let repo = python_repo(world.path(), name, flags);
    let server = FaultServer::serve(world.path()).expect("serve the python-tuf repository");
    let (metadata_url, targets_url) = served(&server, name);

    let config = NodeConfig::new(&metadata_url, &targets_url);
    let node = Node::new(&repo.join("root.json"), "aws-dev", "1.0.0", &config);
    node.updog(&["check-update"]).assert_offers(expected);
    // Persisted trust: a second run continues from the stored metadata.
    node.updog(&["check-update"]).assert_offers(expected);

    let client = tempfile::tempdir().unwrap();
    let metadata_dir = client.path().join("metadata");
    let target_dir = client.path().join("targets");
    let conformance = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_tuf-conformance-client"))
            .arg("--metadata-dir")
            .arg(&metadata_dir)
            .args(args)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "tuf-conformance-client {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    conformance(&["init", repo.join("root.json").to_str().unwrap()]);
    conformance(&["--metadata-url", metadata_url.as_str(), "refresh"]);
    conformance(&[
        "--metadata-url",
        metadata_url.as_str(),
        "--target-name",
        "manifest.json",
        "--target-base-url",
        targets_url.as_str(),
        "--target-dir",
        target_dir.to_str().unwrap(),
        "download",
    ]);
    assert_eq!(
        std::fs::read(target_dir.join("manifest.json")).unwrap(),
        std::fs::read(repo.join("manifest.json")).unwrap(),
        "the downloaded manifest.json is not the one python-tuf published"
    );
    if flags.contains(&"--delegations") {
        // The conformance client keeps each delegated role it verified, as the bytes served, under its name; the
        // role whose paths do not match manifest.json was never needed.
        let stored =
            std::fs::read(metadata_dir.join("delegated.json")).expect("delegated.json stored");
        let served = std::fs::read_dir(repo.join("metadata"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .ends_with("delegated.json")
            })
            .unwrap();
        assert_eq!(stored, std::fs::read(served).unwrap());
        assert!(!metadata_dir.join("images.json").exists());
    }
    server
}

fn request_paths(server: &FaultServer) -> Vec<String> {
    server.requests().into_iter().map(|r| r.path).collect()
}

#[test]
fn a_python_tuf_repository_loads_in_updog() {
    if !python_tuf() {
        return;
    }
    let server = python_repo_loads_in_updog("plain", &[], "aws-dev 1.1.0\n");
    let paths = request_paths(&server);
    // Trusting root v1, a client asks for 2.root.json (none: v1 is current), then the unversioned roles.
    for expected in [
        "/plain/metadata/2.root.json",
        "/plain/metadata/timestamp.json",
        "/plain/metadata/snapshot.json",
        "/plain/metadata/targets.json",
        "/plain/targets/manifest.json",
    ] {
        assert!(
            paths.iter().any(|p| p == expected),
            "{expected} not requested: {paths:?}"
        );
    }
}

#[test]
fn a_python_tuf_consistent_snapshot_repository_with_many_updates_loads_in_updog() {
    if !python_tuf() {
        return;
    }
    // 30 updates over 10 variant/arch combinations: releases 1.1.0 to 1.3.0.
    let server = python_repo_loads_in_updog(
        "consistent",
        &["--consistent-snapshot", "--updates", "30"],
        "aws-dev 1.3.0\n",
    );
    let paths = request_paths(&server);
    for expected in [
        "/consistent/metadata/1.snapshot.json",
        "/consistent/metadata/1.targets.json",
    ] {
        assert!(
            paths.iter().any(|p| p == expected),
            "{expected} not requested: {paths:?}"
        );
    }
    let target_paths = paths
        .iter()
        .filter(|p| p.starts_with("/consistent/targets/"))
        .collect::<Vec<_>>();
    assert!(
        !target_paths.is_empty()
            && target_paths
                .iter()
                .all(|p| p.len() == "/consistent/targets/".len() + 64 + ".manifest.json".len()),
        "targets must be fetched as <sha256>.manifest.json: {paths:?}"
    );
}

/// manifest.json is listed only by the delegated role "delegated" (paths `*.json`); the role before it, "images"
/// (paths `*.lz4`), lists a decoy manifest.json offering 9.9.9 that a correct client never takes.
#[test]
fn a_manifest_reached_through_a_python_tuf_delegation_loads_in_updog() {
    if !python_tuf() {
        return;
    }
    let server = python_repo_loads_in_updog(
        "delegated",
        &["--delegations", "--consistent-snapshot"],
        "aws-dev 1.1.0\n",
    );
    let paths = request_paths(&server);
    assert!(
        paths
            .iter()
            .any(|p| p == "/delegated/metadata/1.delegated.json"),
        "the delegated role was never fetched: {paths:?}"
    );
    assert!(
        !paths.iter().any(|p| p.contains("images.json")),
        "a role not delegated manifest.json's path was fetched: {paths:?}"
    );
}

#[test]
fn a_manifest_reached_through_a_python_tuf_delegation_loads_without_consistent_snapshot() {
    if !python_tuf() {
        return;
    }
    let server =
        python_repo_loads_in_updog("delegated-plain", &["--delegations"], "aws-dev 1.1.0\n");
    let paths = request_paths(&server);
    assert!(
        paths
            .iter()
            .any(|p| p == "/delegated-plain/metadata/delegated.json"),
        "the delegated role was never fetched: {paths:?}"
    );
    assert!(
        !paths.iter().any(|p| p.contains("images.json")),
        "a role not delegated manifest.json's path was fetched: {paths:?}"
    );
}

/// A repository tuftool-config publishes (the fixture keys and root, consistent snapshot) loads in python-tuf's
/// ngclient, which downloads exactly the published manifest.json; a second run continues from its stored trust.
#[test]
fn a_tuftool_config_repository_loads_in_python_tuf() {
    if !python_tuf() {
        return;
    }
    let world = tempfile::tempdir().unwrap();
    let mut manifest = Manifest::default();
    for (variant, version) in [
        ("aws-dev", "1.1.0"),
        ("metal-dev", "1.1.0"),
        ("aws-dev", "1.2.0"),
    ] {
        manifest
            .add_update(NewUpdate {
                variant: variant.into(),
                arch: ARCH.into(),
                version: version.parse().unwrap(),
                max_version: None,
                images: Images {
                    boot: format!("{variant}-{version}-boot.ext4.lz4"),
                    root: format!("{variant}-{version}-root.ext4.lz4"),
                    hash: format!("{variant}-{version}-root.verity.lz4"),
                },
            })
            .unwrap();
    }
    let repo = support::custom_repo(&world.path().join("tuftool"), &manifest);
    let server = FaultServer::serve(world.path()).expect("serve the tuftool-config repository");
    let (metadata_url, targets_url) = served(&server, "tuftool");

    let published = std::fs::read(repo.target_file("manifest.json").unwrap()).unwrap();
    let client = tempfile::tempdir().unwrap();
    let metadata_dir = client.path().join("metadata");
    for run in ["first", "second"] {
        let out = client.path().join(format!("manifest-{run}.json"));
        python(
            "ngclient_fetch.py",
            &[
                "--metadata-url",
                metadata_url.as_str(),
                "--targets-url",
                targets_url.as_str(),
                "--trusted-root",
                repo.trusted_root().to_str().unwrap(),
                "--metadata-dir",
                metadata_dir.to_str().unwrap(),
                "--target",
                "manifest.json",
                "--out",
                out.to_str().unwrap(),
            ],
        );
        assert_eq!(
            std::fs::read(&out).unwrap(),
            published,
            "{run} run: python-tuf's manifest.json differs from the published one"
        );
    }
    // ngclient fetched the target by its consistent-snapshot name, and stored the trusted top-level roles.
    let hashed = format!(
        "/tuftool/targets/{}.manifest.json",
        hex::encode(Sha256::digest(&published))
    );
    assert!(
        server.requests().iter().any(|r| r.path == hashed),
        "{hashed} not requested"
    );
    let stored: BTreeMap<String, u64> = ["root", "timestamp", "snapshot", "targets"]
        .into_iter()
        .map(|role| {
            let json: serde_json::Value = serde_json::from_slice(
                &std::fs::read(metadata_dir.join(format!("{role}.json"))).unwrap(),
            )
            .unwrap();
            (
                role.to_string(),
                json["signed"]["version"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        stored,
        BTreeMap::from([
            ("root".to_string(), 1),
            ("snapshot".to_string(), 1),
            ("targets".to_string(), 1),
            ("timestamp".to_string(), 1),
        ])
    );
}
