//! Building, updating and refreshing repositories, loaded back through tough as a client.

mod common;

use common::*;
use jiff::Timestamp;
use std::os::unix::fs::FileTypeExt;
use tough::ExpirationEnforcement::{Safe, Unsafe};
use tuftool_config::{
    ExpirationPolicy, KeyType, Refresh, RepoBuild, Role, RoleExpirations, RoleKeys, RoleVersions,
    RootBuilder, SigningKey, generate_key,
};

#[tokio::test]
async fn every_key_type_signs_a_repository_that_a_client_loads() {
    for key_type in KeyType::ALL {
        let dir = tempfile::tempdir().unwrap();
        let now = Timestamp::now();
        let key_path = dir.path().join(format!("{key_type}.pem"));
        generate_key(key_type, &key_path).unwrap();
        let key = key(&key_path).await;
        let root = single_key_root(&key, now, 365).await;
        let root_path = dir.path().join("root.json");
        root.write(&root_path).unwrap();
        let (targets, manifest) = release(dir.path(), "1.0.0");
        let out = dir.path().join("repo");
        RepoBuild::new(&root_path, RoleKeys::all_roles(&[key]), now)
            .targets_dir(&targets)
            .manifest(&manifest)
            .write(&out)
            .await
            .unwrap();

        let repo = client_load(root.bytes(), &out, Safe)
            .await
            .unwrap_or_else(|e| panic!("{key_type}: {e}"));
        assert_eq!(
            read_target(&repo, "manifest.json").await,
            std::fs::read(&manifest).unwrap(),
            "{key_type}"
        );
        assert_eq!(
            read_target(&repo, "root-1.0.0.lz4").await,
            std::fs::read(targets.join("root-1.0.0.lz4")).unwrap()
        );
    }
}

#[tokio::test]
async fn a_build_writes_the_consistent_snapshot_layout_with_real_file_copies() {
    let dir = tempfile::tempdir().unwrap();
    let now = Timestamp::now();
    let key = key(&fixed_ed25519_pem(&dir.path().join("k.pem"), 1)).await;
    let root = single_key_root(&key, now, 365).await;
    let root_path = dir.path().join("root.json");
    root.write(&root_path).unwrap();
    let (targets, manifest) = release(dir.path(), "1.0.0");
    let out = dir.path().join("repo");
    let summary = RepoBuild::new(&root_path, RoleKeys::all_roles(&[key]), now)
        .targets_dir(&targets)
        .manifest(&manifest)
        .write(&out)
        .await
        .unwrap();

    let v = summary.versions;
    // Default versions are the build time in UNIX seconds.
    assert_eq!(v.targets.get(), u64::try_from(now.as_second()).unwrap());
    assert_eq!(summary.published_root, Some(1));
    assert_eq!(summary.added.len(), 4);
    assert_eq!(
        metadata_files(&out),
        [
            "1.root.json".to_string(),
            format!("{}.snapshot.json", v.snapshot),
            format!("{}.targets.json", v.targets),
            "timestamp.json".to_string()
        ]
    );
    assert_eq!(
        std::fs::read(out.join("metadata/1.root.json")).unwrap(),
        root.bytes()
    );
    let repo = client_load(root.bytes(), &out, Safe).await.unwrap();
    let mut files: Vec<String> = std::fs::read_dir(out.join("targets"))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let ft = e.file_type().unwrap();
            assert!(
                ft.is_file() && !ft.is_symlink() && !ft.is_fifo(),
                "{:?} is not a regular file",
                e.path()
            );
            e.file_name().into_string().unwrap()
        })
        .collect();
    files.sort();
    let mut expected: Vec<String> = repo
        .all_targets()
        .map(|(name, t)| format!("{}.{}", hex::encode(&*t.hashes.sha256), name.raw()))
        .collect();
    expected.sort();
    assert_eq!(files, expected);
    // Nothing else is left in the repository directory but the lock file.
    let mut top: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    top.sort();
    assert_eq!(top, [".tuftool-config.lock", "metadata", "targets"]);
}

#[tokio::test]
async fn an_update_keeps_old_targets_adds_new_ones_and_increases_every_version() {
    let dir = tempfile::tempdir().unwrap();
    let now = Timestamp::now();
    let key = key(&fixed_ed25519_pem(&dir.path().join("k.pem"), 1)).await;
    let root = single_key_root(&key, now, 365).await;
    let root_path = dir.path().join("root.json");
    root.write(&root_path).unwrap();
    let keys = RoleKeys::all_roles(&[key]);
    let out = dir.path().join("repo");
    let (t1, m1) = release(dir.path(), "1.0.0");
    let first = RepoBuild::new(&root_path, keys.clone(), now)
        .targets_dir(&t1)
        .manifest(&m1)
        .write(&out)
        .await
        .unwrap();

    // Same second: versions must still go up (previous + 1).
    let (t2, m2) = release(dir.path(), "1.1.0");
    let second = RepoBuild::new(&root_path, keys.clone(), now)
        .targets_dir(&t2)
        .manifest(&m2)
        .write(&out)
        .await
        .unwrap();
    for role in Role::REPO {
        let (a, b) = match role {
            Role::Targets => (first.versions.targets, second.versions.targets),
            Role::Snapshot => (first.versions.snapshot, second.versions.snapshot),
            _ => (first.versions.timestamp, second.versions.timestamp),
        };
        assert_eq!(b.get(), a.get() + 1, "{role}");
    }
    assert_eq!(second.published_root, None);
    assert_eq!(second.added.len(), 3, "{:?}", second.added);
    assert_eq!(second.replaced, ["manifest.json"]);
    assert_eq!(second.targets, 7);

    let repo = client_load(root.bytes(), &out, Safe).await.unwrap();
    assert_eq!(
        read_target(&repo, "manifest.json").await,
        std::fs::read(&m2).unwrap()
    );
    assert_eq!(
        read_target(&repo, "boot-1.0.0.lz4").await,
        std::fs::read(t1.join("boot-1.0.0.lz4")).unwrap()
    );
    assert_eq!(
        read_target(&repo, "boot-1.1.0.lz4").await,
        std::fs::read(t2.join("boot-1.1.0.lz4")).unwrap()
    );

    // A later build uses the clock when it is ahead of previous + 1.
    let later = days_after(now, 1);
    let third = RepoBuild::new(&root_path, keys, later)
        .write(&out)
        .await
        .unwrap();
    assert_eq!(
        third.versions.timestamp.get(),
        u64::try_from(later.as_second()).unwrap()
    );
}

#[tokio::test]
async fn a_client_that_loaded_the_old_repository_accepts_the_update() {
    let dir = tempfile::tempdir().unwrap();
    let now = Timestamp::now();
    let key = key(&fixed_ed25519_pem(&dir.path().join("k.pem"), 1)).await;
    let root = single_key_root(&key, now, 365).await;
    let root_path = dir.path().join("root.json");
    root.write(&root_path).unwrap();
    let keys = RoleKeys::all_roles(&[key]);
    let out = dir.path().join("repo");
    let (t1, m1) = release(dir.path(), "1.0.0");
    RepoBuild::new(&root_path, keys.clone(), now)
        .targets_dir(&t1)
        .manifest(&m1)
        .write(&out)
        .await
        .unwrap();
    let datastore = tempfile::tempdir().unwrap();
    client_load_with(root.bytes(), &out, Safe, Some(datastore.path()))
        .await
        .unwrap();
    let (t2, m2) = release(dir.path(), "1.1.0");
    RepoBuild::new(&root_path, keys, now)
        .targets_dir(&t2)
        .manifest(&m2)
        .write(&out)
        .await
        .unwrap();
    let repo = client_load_with(root.bytes(), &out, Safe, Some(datastore.path()))
        .await
        .unwrap();
    assert_eq!(
        read_target(&repo, "manifest.json").await,
        std::fs::read(&m2).unwrap()
    );
}

#[tokio::test]
async fn refresh_re_signs_with_new_expiry_times_and_old_targets_stay_readable() {
    let dir = tempfile::tempdir().unwrap();
    let now = Timestamp::now();
    let key = key(&fixed_ed25519_pem(&dir.path().join("k.pem"), 1)).await;
    let root = single_key_root(&key, now, 365).await;
    let root_path = dir.path().join("root.json");
    root.write(&root_path).unwrap();
    let keys = RoleKeys::all_roles(&[key]);
    let out = dir.path().join("repo");
    let (t1, m1) = release(dir.path(), "1.0.0");
    let built = RepoBuild::new(&root_path, keys.clone(), now)
        .targets_dir(&t1)
        .manifest(&m1)
        .write(&out)
        .await
        .unwrap();

    let later = days_after(now, 3);
    let refreshed = Refresh::new(&root_path, keys, later)
        .write(&out)
        .await
        .unwrap();
    assert!(refreshed.versions.timestamp > built.versions.timestamp);
    assert!(refreshed.versions.snapshot > built.versions.snapshot);
    assert!(refreshed.versions.targets > built.versions.targets);
    assert_eq!(
        refreshed.expirations,
        ExpirationPolicy::default().at(later).unwrap()
    );
    assert!(refreshed.added.is_empty() && refreshed.replaced.is_empty());
    assert_eq!(refreshed.targets, built.targets);

    let repo = client_load(root.bytes(), &out, Safe).await.unwrap();
    assert_eq!(
        repo.timestamp().signed.expires,
        refreshed.expirations.timestamp
    );
    assert_eq!(
        read_target(&repo, "root-1.0.0.lz4").await,
        std::fs::read(t1.join("root-1.0.0.lz4")).unwrap()
    );
}

#[tokio::test]
async fn refresh_brings_an_expired_repository_back() {
    let dir = tempfile::tempdir().unwrap();
    let long_ago = days_after(Timestamp::now(), -30);
    let key = key(&fixed_ed25519_pem(&dir.path().join("k.pem"), 1)).await;
    let root = single_key_root(&key, long_ago, 365).await;
    let root_path = dir.path().join("root.json");
    root.write(&root_path).unwrap();
    let keys = RoleKeys::all_roles(&[key]);
    let out = dir.path().join("repo");
    let (t1, m1) = release(dir.path(), "1.0.0");
    RepoBuild::new(&root_path, keys.clone(), long_ago)
        .targets_dir(&t1)
        .manifest(&m1)
        .write(&out)
        .await
        .unwrap();
    // The timestamp (1 week) has expired by now: a client refuses it.
    let err = client_load(root.bytes(), &out, Safe).await.unwrap_err();
    assert!(err.to_string().to_lowercase().contains("expired"), "{err}");

    Refresh::new(&root_path, keys, Timestamp::now())
        .write(&out)
        .await
        .unwrap();
    let repo = client_load(root.bytes(), &out, Safe).await.unwrap();
    assert_eq!(
        read_target(&repo, "manifest.json").await,
        std::fs::read(&m1).unwrap()
    );
}

#[tokio::test]
async fn refresh_of_an_empty_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let key = key(&fixed_ed25519_pem(&dir.path().join("k.pem"), 1)).await;
    let root = single_key_root(&key, t0(), 365).await;
    let root_path = dir.path().join("root.json");
    root.write(&root_path).unwrap();
    let out = dir.path().join("repo");
    let err = Refresh::new(&root_path, RoleKeys::all_roles(&[key]), t0())
        .write(&out)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("no repository to refresh"),
        "{err}"
    );
}

#[tokio::test]
async fn fixed_keys_and_a_fixed_clock_give_byte_identical_repositories() {
    let mut trees = Vec::new();
    for _ in 0..2 {
        let dir = tempfile::tempdir().unwrap();
        // Separate keys per role and a 2-of-2 root: several HashMaps to order.
        let mut keys = Vec::new();
        for seed in 1..=5 {
            keys.push(
                key(&fixed_ed25519_pem(
                    &dir.path().join(format!("k{seed}.pem")),
                    seed,
                ))
                .await,
            );
        }
        let root = RootBuilder::new(days_after(t0(), 365))
            .role(Role::Root, vec![keys[0].clone(), keys[1].clone()], n(2))
            .role(Role::Targets, vec![keys[2].clone()], n(1))
            .role(Role::Snapshot, vec![keys[3].clone()], n(1))
            .role(
                Role::Timestamp,
                vec![keys[4].clone(), keys[3].clone()],
                n(1),
            )
            .sign(t0())
            .await
            .unwrap();
        let root_path = dir.path().join("root.json");
        root.write(&root_path).unwrap();
        let role_keys = RoleKeys::new()
            .role(Role::Targets, vec![keys[2].clone()])
            .role(Role::Snapshot, vec![keys[3].clone()])
            .role(Role::Timestamp, vec![keys[4].clone(), keys[3].clone()]);
        let out = dir.path().join("repo");
        let (t1, m1) = release(dir.path(), "1.0.0");
        RepoBuild::new(&root_path, role_keys.clone(), t0())
            .targets_dir(&t1)
            .manifest(&m1)
            .versions(RoleVersions {
                targets: n(1),
                snapshot: n(1),
                timestamp: n(1),
            })
            .expirations(RoleExpirations {
                targets: days_after(t0(), 90),
                snapshot: days_after(t0(), 60),
                timestamp: days_after(t0(), 7),
            })
            .write(&out)
            .await
            .unwrap();
        let (t2, m2) = release(dir.path(), "1.1.0");
        RepoBuild::new(&root_path, role_keys, days_after(t0(), 1))
            .targets_dir(&t2)
            .manifest(&m2)
            .write(&out)
            .await
            .unwrap();
        // 2025-06-02T00:00:00Z in UNIX seconds.
        assert_eq!(
            metadata_files(&out),
            [
                "1.root.json",
                "1.snapshot.json",
                "1.targets.json",
                "1748822400.snapshot.json",
                "1748822400.targets.json",
                "timestamp.json"
            ]
        );
        trees.push((snapshot_tree(&out), std::fs::read(&root_path).unwrap()));
        // Keep loading honest: the result verifies.
        client_load(root.bytes(), &out, Unsafe).await.unwrap();
    }
    assert_eq!(trees[0].1, trees[1].1, "root.json differs between runs");
    assert_eq!(
        trees[0].0.keys().collect::<Vec<_>>(),
        trees[1].0.keys().collect::<Vec<_>>()
    );
    for (path, bytes) in &trees[0].0 {
        assert_eq!(
            bytes,
            &trees[1].0[path],
            "{} differs between runs",
            path.display()
        );
    }
}

#[tokio::test]
async fn a_key_serving_several_roles_signs_each_and_a_kms_like_source_works_too() {
    let dir = tempfile::tempdir().unwrap();
    let now = Timestamp::now();
    let pem = fixed_ed25519_pem(&dir.path().join("k.pem"), 9);
    // Through the generic KeySource constructor, as a KMS-backed key would come in.
    let key = SigningKey::from_key_source(
        "test-kms:key-9",
        Box::new(tuftool_config::PemKeySource { path: pem }),
    )
    .await
    .unwrap();
    assert_eq!(key.label(), "test-kms:key-9");
    let root = single_key_root(&key, now, 30).await;
    let root_path = dir.path().join("root.json");
    root.write(&root_path).unwrap();
    let (targets, manifest) = release(dir.path(), "2.0.0");
    let out = dir.path().join("repo");
    RepoBuild::new(&root_path, RoleKeys::all_roles(&[key]), now)
        .targets_dir(&targets)
        .manifest(&manifest)
        .write(&out)
        .await
        .unwrap();
    client_load(root.bytes(), &out, Safe).await.unwrap();
}
