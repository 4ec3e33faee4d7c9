//! Creating and rotating root.json.

mod common;

use common::*;
use jiff::Timestamp;
use tough::ExpirationEnforcement::Safe;
use tuftool_config::{Refresh, RepoBuild, Role, RoleKeys, RootBuilder, SignedRoot, rotate_root};

#[tokio::test]
async fn a_created_root_lists_each_roles_keys_and_threshold_and_is_self_signed() {
    let dir = tempfile::tempdir().unwrap();
    let mut keys = Vec::new();
    for seed in 1..=3 {
        keys.push(
            key(&fixed_ed25519_pem(
                &dir.path().join(format!("k{seed}.pem")),
                seed,
            ))
            .await,
        );
    }
    let root = RootBuilder::new(days_after(t0(), 365))
        .version(n(7))
        .consistent_snapshot(true)
        .role(Role::Root, vec![keys[0].clone(), keys[1].clone()], n(2))
        .role(Role::Targets, vec![keys[2].clone()], n(1))
        .role(Role::Snapshot, vec![keys[2].clone()], n(1))
        .role(Role::Timestamp, vec![keys[2].clone()], n(1))
        .sign(t0())
        .await
        .unwrap();
    assert_eq!(root.version(), 7);
    assert_eq!(root.threshold(Role::Root), Some(2));
    assert!(root.lists(Role::Root, &keys[1]) && !root.lists(Role::Root, &keys[2]));
    assert!(root.lists(Role::Snapshot, &keys[2]));
    assert_eq!(root.signed().signatures.len(), 2);
    assert_eq!(root.root().keys.len(), 3);
    // Round trip through a file.
    let path = dir.path().join("root.json");
    root.write(&path).unwrap();
    assert_eq!(SignedRoot::read(&path).unwrap().signed(), root.signed());
}

#[tokio::test]
async fn a_root_spec_with_a_missing_role_a_too_high_threshold_or_a_past_expiry_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let k = key(&fixed_ed25519_pem(&dir.path().join("k.pem"), 1)).await;
    let full = |b: RootBuilder| {
        b.role(Role::Root, vec![k.clone()], n(1))
            .role(Role::Targets, vec![k.clone()], n(1))
            .role(Role::Snapshot, vec![k.clone()], n(1))
    };
    let err = full(RootBuilder::new(days_after(t0(), 1)))
        .sign(t0())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("'timestamp'"), "{err}");
    let err = full(RootBuilder::new(days_after(t0(), 1)))
        .role(Role::Timestamp, vec![k.clone(), k.clone()], n(2))
        .sign(t0())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("'timestamp'") && err.contains("Threshold 2"),
        "{err}"
    );
    let err = full(RootBuilder::new(days_after(t0(), -1)))
        .role(Role::Timestamp, vec![k.clone()], n(1))
        .sign(t0())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("expire"), "{err}");
}

/// A repository under root 1 (keys 1 and 2, root threshold 2; key 3 signs the rest).
async fn world(
    dir: &std::path::Path,
    now: Timestamp,
) -> (
    std::path::PathBuf,
    SignedRoot,
    Vec<tuftool_config::SigningKey>,
) {
    let mut keys = Vec::new();
    for seed in 1..=6 {
        keys.push(key(&fixed_ed25519_pem(&dir.join(format!("k{seed}.pem")), seed)).await);
    }
    let root = RootBuilder::new(days_after(now, 365))
        .role(Role::Root, vec![keys[0].clone(), keys[1].clone()], n(2))
        .role(Role::Targets, vec![keys[2].clone()], n(1))
        .role(Role::Snapshot, vec![keys[2].clone()], n(1))
        .role(Role::Timestamp, vec![keys[2].clone()], n(1))
        .sign(now)
        .await
        .unwrap();
    let root_path = dir.join("root.json");
    root.write(&root_path).unwrap();
    let (targets, manifest) = release(dir, "1.0.0");
    let out = dir.join("repo");
    RepoBuild::new(
        &root_path,
        RoleKeys::all_roles(std::slice::from_ref(&keys[2])),
        now,
    )
    .targets_dir(&targets)
    .manifest(&manifest)
    .write(&out)
    .await
    .unwrap();
    (out, root, keys)
}

#[tokio::test]
async fn after_a_rotation_a_client_with_the_old_root_walks_to_the_new_one_and_loads_the_repo() {
    let dir = tempfile::tempdir().unwrap();
    let now = Timestamp::now();
    let (out, old_root, keys) = world(dir.path(), now).await;
    let datastore = tempfile::tempdir().unwrap();
    client_load_with(old_root.bytes(), &out, Safe, Some(datastore.path()))
        .await
        .unwrap();

    // New root: key 4 for root, key 5 signs everything else (every key changes).
    let next = RootBuilder::new(days_after(now, 400))
        .role(Role::Root, vec![keys[3].clone()], n(1))
        .role(Role::Targets, vec![keys[4].clone()], n(1))
        .role(Role::Snapshot, vec![keys[4].clone()], n(1))
        .role(Role::Timestamp, vec![keys[4].clone()], n(1));
    let rotated = rotate_root(&old_root, &keys[0..2], next, now)
        .await
        .unwrap();
    assert_eq!(rotated.version(), 2);
    // Signed by both old root keys and the new one.
    assert_eq!(rotated.signed().signatures.len(), 3);
    let new_root_path = dir.path().join("root-2.json");
    rotated.write(&new_root_path).unwrap();
    let summary = Refresh::new(
        &new_root_path,
        RoleKeys::all_roles(std::slice::from_ref(&keys[4])),
        now,
    )
    .write(&out)
    .await
    .unwrap();
    assert_eq!(summary.published_root, Some(2));
    assert!(metadata_files(&out).contains(&"2.root.json".to_string()));

    // A fresh client with only 1.root.json, and a client that had loaded the old repository.
    for datastore in [None, Some(datastore.path())] {
        let repo = client_load_with(old_root.bytes(), &out, Safe, datastore)
            .await
            .unwrap();
        assert_eq!(repo.root().signed.version.get(), 2);
        assert_eq!(
            read_target(&repo, "boot-1.0.0.lz4").await.len(),
            "contents of boot-1.0.0.lz4".len() * 100
        );
    }

    // The old keys can no longer publish: they are not in the new root.
    let err = Refresh::new(
        &new_root_path,
        RoleKeys::all_roles(std::slice::from_ref(&keys[2])),
        now,
    )
    .write(&out)
    .await
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("k3.pem")
            && err.contains("is not listed in root.json")
            && err.contains("'targets'"),
        "{err}"
    );
}

#[tokio::test]
async fn a_rotation_with_fewer_old_root_keys_than_the_old_threshold_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let now = Timestamp::now();
    let (_, old_root, keys) = world(dir.path(), now).await;
    let next = RootBuilder::new(days_after(now, 400))
        .role(Role::Root, vec![keys[3].clone()], n(1))
        .role(Role::Targets, vec![keys[4].clone()], n(1))
        .role(Role::Snapshot, vec![keys[4].clone()], n(1))
        .role(Role::Timestamp, vec![keys[4].clone()], n(1));
    let err = rotate_root(&old_root, &keys[0..1], next.clone(), now)
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "Threshold for role 'root' not met: 1 of 2 keys available (root.json (version 1))"
    );

    // A key that is not an old root key is named.
    let err = rotate_root(
        &old_root,
        &[keys[0].clone(), keys[5].clone()],
        next.clone(),
        now,
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("k6.pem") && err.contains("'root'"), "{err}");

    // The version must be exactly N+1.
    let err = rotate_root(&old_root, &keys[0..2], next.version(n(3)), now)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("must be version 2"), "{err}");
}

#[tokio::test]
async fn a_root_that_skips_a_version_or_is_older_than_the_published_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let now = Timestamp::now();
    let (out, _old_root, keys) = world(dir.path(), now).await;
    let before = snapshot_tree(&out);
    let skipping = RootBuilder::new(days_after(now, 400))
        .version(n(3))
        .role(Role::Root, vec![keys[0].clone()], n(1))
        .role(Role::Targets, vec![keys[2].clone()], n(1))
        .role(Role::Snapshot, vec![keys[2].clone()], n(1))
        .role(Role::Timestamp, vec![keys[2].clone()], n(1))
        .sign(now)
        .await
        .unwrap();
    let path = dir.path().join("root-3.json");
    skipping.write(&path).unwrap();
    let err = Refresh::new(
        &path,
        RoleKeys::all_roles(std::slice::from_ref(&keys[2])),
        now,
    )
    .write(&out)
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("2.root.json is missing"), "{err}");
    assert_eq!(snapshot_tree(&out), before);
}
