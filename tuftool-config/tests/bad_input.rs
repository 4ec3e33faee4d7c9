//! Every bad input is an error naming the file and the role, and leaves the repository
//! directory byte-identical to before.

mod common;

use common::*;
use jiff::Timestamp;
use std::path::{Path, PathBuf};
use tuftool_config::{
    RepoBuild, RepoConfig, Role, RoleKeys, RoleVersions, RootBuilder, SigningKey, commands,
};

struct World {
    dir: tempfile::TempDir,
    root_path: PathBuf,
    out: PathBuf,
    keys: Vec<SigningKey>,
    now: Timestamp,
}

impl World {
    /// Root: key 1 signs root; targets needs keys 2 and 3 (threshold 2); key 4 signs snapshot
    /// and timestamp. Key 5 is in no role. One release published.
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let now = Timestamp::now();
        let mut keys = Vec::new();
        for seed in 1..=5 {
            keys.push(
                key(&fixed_ed25519_pem(
                    &dir.path().join(format!("keys/k{seed}.pem")),
                    seed,
                ))
                .await,
            );
        }
        let root = RootBuilder::new(days_after(now, 30))
            .role(Role::Root, vec![keys[0].clone()], n(1))
            .role(Role::Targets, vec![keys[1].clone(), keys[2].clone()], n(2))
            .role(Role::Snapshot, vec![keys[3].clone()], n(1))
            .role(Role::Timestamp, vec![keys[3].clone()], n(1))
            .sign(now)
            .await
            .unwrap();
        let root_path = dir.path().join("root.json");
        root.write(&root_path).unwrap();
        let out = dir.path().join("repo");
        let world = Self {
            root_path,
            out,
            keys,
            now,
            dir,
        };
        let (targets, manifest) = release(world.dir.path(), "1.0.0");
        RepoBuild::new(&world.root_path, world.good_keys(), now)
            .targets_dir(targets)
            .manifest(manifest)
            .write(&world.out)
            .await
            .unwrap();
        world
    }

    fn good_keys(&self) -> RoleKeys {
        RoleKeys::new()
            .role(
                Role::Targets,
                vec![self.keys[1].clone(), self.keys[2].clone()],
            )
            .role(Role::Snapshot, vec![self.keys[3].clone()])
            .role(Role::Timestamp, vec![self.keys[3].clone()])
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Runs `build` and checks it failed with a message containing every `needle`, leaving the
    /// repository exactly as it was.
    async fn refused(&self, build: RepoBuild, needles: &[&str]) {
        let before = snapshot_tree(&self.out);
        let err = build
            .write(&self.out)
            .await
            .expect_err("the build should have been refused")
            .to_string();
        for needle in needles {
            assert!(err.contains(needle), "'{needle}' not in: {err}");
        }
        assert_eq!(
            snapshot_tree(&self.out),
            before,
            "the repository changed after: {err}"
        );
    }
}

#[tokio::test]
async fn a_key_not_listed_in_root_for_its_role_is_refused_naming_key_file_role_and_root() {
    let w = World::new().await;
    let (targets, manifest) = release(w.path(), "1.1.0");
    let keys = w.good_keys().role(Role::Snapshot, vec![w.keys[4].clone()]);
    let build = RepoBuild::new(&w.root_path, keys, w.now)
        .targets_dir(targets)
        .manifest(manifest);
    let key5 = w.path().join("keys/k5.pem").display().to_string();
    let root = w.root_path.display().to_string();
    w.refused(
        build,
        &[
            &format!("Key {key5} (ed25519, keyid "),
            &format!("is not listed in {root} (version 1) for role 'snapshot'"),
        ],
    )
    .await;
}

#[tokio::test]
async fn too_few_keys_for_a_roles_threshold_is_refused_with_the_counts() {
    let w = World::new().await;
    let (targets, manifest) = release(w.path(), "1.1.0");
    let keys = w.good_keys().role(Role::Targets, vec![w.keys[1].clone()]);
    let build = RepoBuild::new(&w.root_path, keys, w.now)
        .targets_dir(targets)
        .manifest(manifest);
    let root = w.root_path.display().to_string();
    w.refused(
        build,
        &[
            "Threshold for role 'targets' not met: 1 of 2 keys available",
            &root,
        ],
    )
    .await;
}

#[tokio::test]
async fn an_expired_root_is_refused_naming_the_root_file() {
    let w = World::new().await;
    let (targets, manifest) = release(w.path(), "1.1.0");
    let build = RepoBuild::new(&w.root_path, w.good_keys(), days_after(w.now, 31))
        .targets_dir(targets)
        .manifest(manifest);
    let root = w.root_path.display().to_string();
    w.refused(build, &[&root, "has expired (role 'root'"]).await;
}

#[tokio::test]
async fn a_manifest_naming_a_missing_target_is_refused_naming_manifest_and_target() {
    let w = World::new().await;
    let (targets, manifest) = release(w.path(), "1.1.0");
    std::fs::remove_file(targets.join("hash-1.1.0.lz4")).unwrap();
    let build = RepoBuild::new(&w.root_path, w.good_keys(), w.now)
        .targets_dir(&targets)
        .manifest(&manifest);
    w.refused(
        build,
        &[
            "Target 'hash-1.1.0.lz4'",
            &manifest.display().to_string(),
            "'targets'",
        ],
    )
    .await;
}

#[tokio::test]
async fn explicit_versions_that_do_not_increase_are_refused_naming_the_role() {
    let w = World::new().await;
    let far_future = n(u64::MAX / 2);
    let build = RepoBuild::new(&w.root_path, w.good_keys(), w.now).versions(RoleVersions {
        targets: far_future,
        snapshot: n(1),
        timestamp: far_future,
    });
    w.refused(build, &["for role 'snapshot' does not increase"])
        .await;
}

#[tokio::test]
async fn a_corrupted_published_target_fails_staged_verification_and_nothing_is_moved() {
    let w = World::new().await;
    let targets_dir = w.out.join("targets");
    let victim = std::fs::read_dir(&targets_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_str().unwrap().ends_with("boot-1.0.0.lz4"))
        .unwrap();
    std::fs::write(&victim, "short").unwrap();
    // New targets get staged, then verification fails: none of them may appear.
    let (targets, manifest) = release(w.path(), "1.1.0");
    let build = RepoBuild::new(&w.root_path, w.good_keys(), w.now)
        .targets_dir(targets)
        .manifest(manifest);
    w.refused(
        build,
        &[
            "nothing was published",
            "Target 'boot-1.0.0.lz4' has length 5",
        ],
    )
    .await;
    // The staging directory is gone too (snapshot_tree compares files; check directories).
    let leftovers: Vec<_> = std::fs::read_dir(&w.out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with(".staging-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[tokio::test]
async fn a_different_root_of_the_published_version_is_refused() {
    let w = World::new().await;
    let other = RootBuilder::new(days_after(w.now, 30))
        .role(Role::Root, vec![w.keys[0].clone()], n(1))
        .role(Role::Targets, vec![w.keys[4].clone()], n(1))
        .role(Role::Snapshot, vec![w.keys[4].clone()], n(1))
        .role(Role::Timestamp, vec![w.keys[4].clone()], n(1))
        .sign(w.now)
        .await
        .unwrap();
    let other_path = w.path().join("other-root.json");
    other.write(&other_path).unwrap();
    let build = RepoBuild::new(
        &other_path,
        RoleKeys::all_roles(std::slice::from_ref(&w.keys[4])),
        w.now,
    );
    w.refused(
        build,
        &[
            "other-root.json",
            "differs from the published",
            "1.root.json",
        ],
    )
    .await;
}

#[tokio::test]
async fn a_stale_staging_directory_from_a_crash_is_cleaned_up_by_the_next_build() {
    let w = World::new().await;
    let stale = w.out.join(".staging-crashed");
    std::fs::create_dir_all(stale.join("metadata")).unwrap();
    std::fs::write(stale.join("metadata/timestamp.json"), "{}").unwrap();
    RepoBuild::new(&w.root_path, w.good_keys(), w.now)
        .write(&w.out)
        .await
        .unwrap();
    assert!(!stale.exists());
}

/// Writes a config for the world, with `snapshot_key` as the snapshot role's key.
fn write_config(w: &World, snapshot_key: &str) -> PathBuf {
    let path = w.path().join("repo.toml");
    std::fs::write(
        &path,
        format!(
            r#"
root = "root.json"
repository = "repo"
metadata_base_url = "https://example.com/metadata/"
targets_base_url = "https://example.com/targets/"
[expiration]
root = "30 days"
targets = "20 days"
snapshot = "20 days"
timestamp = "7 days"
[roles.root]
keys = ["keys/k1.pem"]
[roles.targets]
keys = ["keys/k2.pem", "keys/k3.pem"]
threshold = 2
[roles.snapshot]
keys = ["{snapshot_key}"]
[roles.timestamp]
keys = ["keys/k4.pem"]
"#
        ),
    )
    .unwrap();
    path
}

#[tokio::test]
async fn a_missing_key_file_in_the_config_is_refused_naming_the_file_and_role() {
    let w = World::new().await;
    let before = snapshot_tree(&w.out);
    let config = RepoConfig::load(write_config(&w, "keys/missing.pem")).unwrap();
    let (targets, manifest) = release(w.path(), "1.1.0");
    let err = commands::build(&config, Some(&manifest), Some(&targets), w.now)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("keys/missing.pem")
            && err.contains("for role 'snapshot'")
            && err.contains("repo.toml"),
        "{err}"
    );
    assert_eq!(snapshot_tree(&w.out), before);

    // The same config with the right key builds.
    let config = RepoConfig::load(write_config(&w, "keys/k4.pem")).unwrap();
    let summary = commands::build(&config, Some(&manifest), Some(&targets), w.now)
        .await
        .unwrap();
    assert_eq!(summary.added.len(), 3);
}

#[tokio::test]
async fn a_failure_while_moving_files_into_place_takes_back_what_was_moved() {
    let w = World::new().await;
    let next = 4_000_000_000;
    // An obstacle where the new snapshot must go: the rename of N.snapshot.json fails after the
    // new targets and N.targets.json were already moved.
    let obstacle = w.out.join(format!("metadata/{next}.snapshot.json"));
    std::fs::create_dir_all(&obstacle).unwrap();
    std::fs::write(obstacle.join("keep"), "x").unwrap();
    let (targets, manifest) = release(w.path(), "1.1.0");
    let build = RepoBuild::new(&w.root_path, w.good_keys(), w.now)
        .targets_dir(targets)
        .manifest(manifest)
        .versions(RoleVersions {
            targets: n(next),
            snapshot: n(next),
            timestamp: n(next),
        });
    w.refused(build, &["Failed to move", &format!("{next}.snapshot.json")])
        .await;
}
