//! Settings survive every OS swap, forward and back: the migrator binary on a simulated node,
//! with the fixture chain's real, signed migrations.

mod support;

use datastore::Committed;
use std::collections::BTreeSet;
use support::*;

#[test]
fn a_large_datastore_migrated_1_0_to_1_2_and_back_comes_back_identical() {
    let node = Node::new(step("1.2.0"), "1.2.0");
    let original_dir = node.create_datastore("1.0.0", &Contents::large());
    let original = tree(&original_dir);
    assert!(original.len() > 400, "{} files", original.len());

    // Boot 1.2.0: forward through both migrations.
    let output = node.run_migrator();
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(node.current_version(), "1.2.0");
    assert_ne!(node.current_data(), original_dir);
    assert_eq!(
        node.markers(),
        BTreeSet::from([
            "add-motd-default.forward".to_string(),
            "rename-hostname-setting.forward".to_string()
        ])
    );
    // The migration really changed the data, in live, metadata and pending transactions...
    assert_eq!(
        current_value(&node, "settings.hostname", &Committed::Live),
        None
    );
    assert_eq!(
        current_value(&node, "settings.network.hostname", &Committed::Live).as_deref(),
        Some("\"node-1.example\"")
    );
    assert_eq!(
        current_value(
            &node,
            "settings.network.hostname",
            &Committed::pending("default")
        )
        .as_deref(),
        Some("\"pending-name\"")
    );
    assert!(
        node.current_tree()
            .contains_key("live/settings/network/hostname.affected-services")
    );
    // ...kept everything else byte for byte...
    let migrated = node.current_tree();
    assert_eq!(migrated.len(), original.len());
    for (path, bytes) in &original {
        if !path.contains("hostname")
            || path.starts_with("live/services")
            || path.starts_with("live/configuration-files")
        {
            assert_eq!(migrated.get(path), Some(bytes), "{path}");
        }
    }
    // ...and never touched its source (I3).
    assert_eq!(tree(&original_dir), original);

    // On 1.2.0 the new release's default for the setting 1.1.0 added appears.
    datastore::FilesystemDataStore::new(node.current_data())
        .set_key(
            &datastore::Key::new(datastore::KeyType::Data, "settings.motd").unwrap(),
            "\"Welcome to 1.2.0\"",
            &Committed::Live,
        )
        .unwrap();

    // Roll back to 1.0.0: backward through both, in reverse order.
    node.clear_markers();
    node.set_os_version("1.0.0");
    let output = node.run_migrator();
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(node.current_version(), "1.0.0");
    assert_eq!(
        node.markers(),
        BTreeSet::from([
            "add-motd-default.backward".to_string(),
            "rename-hostname-setting.backward".to_string()
        ])
    );
    assert_ne!(
        node.current_data(),
        original_dir,
        "a new copy, migrated back"
    );
    assert_eq!(
        node.current_tree(),
        original,
        "settings did not survive the round trip"
    );
}

#[test]
fn one_release_at_a_time_keeps_exactly_the_current_and_previous_datastores() {
    let node = Node::new(step("1.1.0"), "1.1.0");
    let d0 = node.create_datastore("1.0.0", &Contents::large());
    let d0_name = d0.file_name().unwrap().to_string_lossy().into_owned();

    let output = node.run_migrator();
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(node.current_version(), "1.1.0");
    assert_eq!(
        node.markers(),
        BTreeSet::from(["add-motd-default.forward".to_string()])
    );
    let d1_name = node
        .current_data()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert!(d1_name.starts_with("v1.1.0_"), "{d1_name}");
    let expected: BTreeSet<String> = [
        "current", "v1", "v1.0", "v1.0.0", "v1.1", "v1.1.0", &d0_name, &d1_name,
    ]
    .map(String::from)
    .into();
    assert_eq!(node.entries(), expected);

    // The next update: 1.1.0 → 1.2.0. The 1.0.0 copy (two versions back) goes.
    node.install_repo(step("1.2.0"));
    node.set_os_version("1.2.0");
    node.clear_markers();
    let output = node.run_migrator();
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        node.markers(),
        BTreeSet::from(["rename-hostname-setting.forward".to_string()])
    );
    let d2_name = node
        .current_data()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let expected: BTreeSet<String> = [
        "current", "v1", "v1.1", "v1.1.0", "v1.2", "v1.2.0", &d1_name, &d2_name,
    ]
    .map(String::from)
    .into();
    assert_eq!(node.entries(), expected);
    assert!(!d0.exists());

    // A reboot into the same version migrates nothing and keeps both.
    node.clear_markers();
    let output = node.run_migrator();
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(node.markers().is_empty());
    assert_eq!(node.entries(), expected);

    // Rolling back to 1.1.0 migrates the 1.2.0 data back into a new 1.1.0 copy: 1.2.0's is kept
    // as the previous, the old 1.1.0 copy goes.
    node.set_os_version("1.1.0");
    let output = node.run_migrator();
    assert!(output.status.success(), "{}", stderr(&output));
    let d1b_name = node
        .current_data()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert_ne!(d1b_name, d1_name);
    let expected: BTreeSet<String> = [
        "current", "v1", "v1.1", "v1.1.0", "v1.2", "v1.2.0", &d1b_name, &d2_name,
    ]
    .map(String::from)
    .into();
    assert_eq!(node.entries(), expected);
}

#[test]
fn a_missing_datastore_on_first_boot_exits_0_and_creates_nothing() {
    let node = Node::new(step("1.2.0"), "1.2.0");
    let output = node.run_migrator();
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("Data store does not exist"),
        "{}",
        stderr(&output)
    );
    assert!(node.entries().is_empty());
}

#[test]
fn an_explicit_version_replaces_os_release() {
    let node = Node::new(step("1.2.0"), "1.0.0");
    node.create_datastore("1.0.0", &Contents::large());
    let output = node
        .migrator()
        .args(["--migrate-to-version", "1.1.0"])
        .output()
        .unwrap();
    // Both target flags given: a usage error (exit 2, as upstream's).
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));

    let mut command = std::process::Command::new(MIGRATOR);
    command
        .arg("--datastore-path")
        .arg(node.datastore_dir().join("current"))
        .arg("--migration-directory")
        .arg(node.migrations_dir())
        .arg("--root-path")
        .arg(node.root_json())
        .arg("--metadata-directory")
        .arg(node.metadata_dir())
        .args(["--migrate-to-version", "1.1.0"])
        .env("TMPDIR", node.tmp_dir());
    let output = command.output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(node.current_version(), "1.1.0");
}

#[test]
fn usage_errors_exit_2() {
    let node = Node::new(step("1.2.0"), "1.2.0");
    let paths = [
        "--datastore-path",
        "/x",
        "--migration-directory",
        "/x",
        "--root-path",
        "/x",
        "--metadata-directory",
        "/x",
    ];
    let with_paths = |rest: &[&'static str]| [&paths[..], rest].concat();
    let mut cases = vec![
        vec!["--datastore-path", "/nonexistent"],
        vec!["--no-color"],
        with_paths(&["--migrate-to-version", "not-a-version"]),
        // No target version.
        with_paths(&[]),
    ];
    // A migration timeout is a whole number of seconds, from 1 to a week.
    for timeout in ["0", "-1", "soon", "", "604801", "18446744073709551615"] {
        cases.push(with_paths(&[
            "--migrate-to-version",
            "1.0.0",
            "--migration-timeout",
            timeout,
        ]));
    }
    for args in cases {
        let output = std::process::Command::new(MIGRATOR)
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?}: {}",
            stderr(&output)
        );
    }
    drop(node);
}

/// A repository (fixture keys and root) whose manifest lists the migration `(1.0.0, 1.1.0)` with
/// no migrations in it: a release that does not change the datastore.
fn repo_without_migrations(out: &std::path::Path) -> repo_fixtures::chain::FixtureRepo {
    use repo_fixtures::chain;
    runtime().block_on(async {
        let inputs = out.join("inputs");
        let targets = inputs.join("targets");
        std::fs::create_dir_all(&targets).unwrap();
        for name in ["boot.lz4", "root.lz4", "hash.lz4"] {
            std::fs::write(targets.join(name), chain::lz4_compress(name.as_bytes())).unwrap();
        }
        let manifest = inputs.join("manifest.json");
        std::fs::write(
            &manifest,
            r#"{"updates": [{"variant": "aws-dev", "arch": "x86_64", "version": "1.1.0",
                "max_version": "1.1.0", "waves": {},
                "images": {"boot": "boot.lz4", "root": "root.lz4", "hash": "hash.lz4"}}],
               "migrations": {"(1.0.0, 1.1.0)": []}}"#,
        )
        .unwrap();
        let root = inputs.join("root.json");
        chain::fixture_root_builder(chain::fixture_expiry(), 1)
            .await
            .unwrap()
            .sign(chain::fixture_now())
            .await
            .unwrap()
            .write(&root)
            .unwrap();
        let repo = chain::FixtureRepo {
            dir: out.join("repo"),
        };
        tuftool_config::RepoBuild::new(
            &root,
            chain::fixture_role_keys().await.unwrap(),
            chain::fixture_now(),
        )
        .targets_dir(&targets)
        .manifest(&manifest)
        .expirations(tuftool_config::Expirations::Fixed(
            tuftool_config::RoleExpirations {
                targets: chain::fixture_expiry(),
                snapshot: chain::fixture_expiry(),
                timestamp: chain::fixture_expiry(),
            },
        ))
        .write(&repo.dir)
        .await
        .unwrap();
        std::fs::copy(&root, repo.trusted_root()).unwrap();
        repo
    })
}

#[test]
fn a_release_without_migrations_links_to_the_same_datastore_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let repo = repo_without_migrations(dir.path());
    let node = Node::new(&repo, "1.1.0");
    let data = node.create_datastore("1.0.0", &Contents::large());
    let original = tree(&data);
    let data_name = data.file_name().unwrap().to_string_lossy().into_owned();

    let output = node.run_migrator();
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(node.current_version(), "1.1.0");
    assert_eq!(
        node.current_data(),
        data,
        "no copy: the new version shares the data"
    );
    assert_eq!(
        std::fs::read_link(node.datastore_dir().join("v1.1.0")).unwrap(),
        std::path::Path::new(&data_name)
    );
    assert_eq!(
        node.entries(),
        [
            "current", "v1", "v1.0", "v1.0.0", "v1.1", "v1.1.0", &data_name
        ]
        .map(String::from)
        .into()
    );
    assert!(node.markers().is_empty());

    node.set_os_version("1.0.0");
    let output = node.run_migrator();
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(node.current_version(), "1.0.0");
    assert_eq!(node.current_data(), data);
    assert_eq!(tree(&data), original);
}
