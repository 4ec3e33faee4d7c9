//! `validate` reports every problem it finds.

mod common;

use common::*;
use tuftool_config::{Problem, RepoBuild, RepoValidator, Role, RoleKeys};

/// A repository built at t0 with the default policy (timestamp: 1 week).
async fn built(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let key = key(&fixed_ed25519_pem(&dir.join("k.pem"), 1)).await;
    let root = single_key_root(&key, t0(), 365).await;
    let root_path = dir.join("root.json");
    root.write(&root_path).unwrap();
    let (targets, manifest) = release(dir, "1.0.0");
    let out = dir.join("repo");
    RepoBuild::new(&root_path, RoleKeys::all_roles(&[key]), t0())
        .targets_dir(targets)
        .manifest(manifest)
        .write(&out)
        .await
        .unwrap();
    (root_path, out)
}

fn target_file(out: &std::path::Path, name: &str) -> std::path::PathBuf {
    std::fs::read_dir(out.join("targets"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .ends_with(&format!(".{name}"))
        })
        .unwrap()
}

#[tokio::test]
async fn a_good_repository_validates_with_no_problems() {
    let dir = tempfile::tempdir().unwrap();
    let (root, out) = built(dir.path()).await;
    let report = RepoValidator::for_directory(&root, &out, days_after(t0(), 1))
        .unwrap()
        .run()
        .await;
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.targets_checked, 4);
    assert_eq!(report.roles.len(), 4);
    assert!(report.to_string().contains("No problems found"));
}

#[tokio::test]
async fn an_expired_role_a_corrupted_target_and_a_missing_one_are_all_reported_together() {
    let dir = tempfile::tempdir().unwrap();
    let (root, out) = built(dir.path()).await;
    // Same length, different bytes: only the hash can tell.
    let corrupt = target_file(&out, "root-1.0.0.lz4");
    let mut bytes = std::fs::read(&corrupt).unwrap();
    bytes[0] ^= 0xff;
    std::fs::write(&corrupt, bytes).unwrap();
    std::fs::remove_file(target_file(&out, "hash-1.0.0.lz4")).unwrap();
    let longer = target_file(&out, "boot-1.0.0.lz4");
    let mut bytes = std::fs::read(&longer).unwrap();
    bytes.extend_from_slice(b"trailing junk");
    std::fs::write(&longer, bytes).unwrap();

    // Eight days later the one-week timestamp has expired; nothing else has.
    let report = RepoValidator::for_directory(&root, &out, days_after(t0(), 8))
        .unwrap()
        .run()
        .await;
    let p = &report.problems;
    assert_eq!(p.len(), 4, "{report}");
    assert!(
        matches!(
            &p[0],
            Problem::Expired {
                role: Role::Timestamp,
                ..
            }
        ),
        "{report}"
    );
    assert!(
        p.iter()
            .any(|p| matches!(p, Problem::TargetHash { name, .. } if name == "root-1.0.0.lz4")),
        "{report}"
    );
    assert!(
        p.iter()
            .any(|p| matches!(p, Problem::TargetMissing { name, .. } if name == "hash-1.0.0.lz4")),
        "{report}"
    );
    assert!(
        p.iter().any(|p| matches!(p, Problem::TargetLength { name, expected, .. } if name == "boot-1.0.0.lz4" && *expected == 2600)),
        "{report}"
    );
    let text = report.to_string();
    assert!(
        text.contains("4 problem(s)") && text.contains("Role 'timestamp'"),
        "{text}"
    );
    // The JSON form is stable and tagged.
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["problems"][0]["kind"], "expired");
    assert_eq!(json["problems"][0]["role"], "timestamp");
}

#[tokio::test]
async fn metadata_that_fails_to_load_is_one_problem_naming_the_cause() {
    let dir = tempfile::tempdir().unwrap();
    let (root, out) = built(dir.path()).await;
    // Tamper with the signed targets metadata: the snapshot's hash of it no longer matches.
    let targets_json = std::fs::read_dir(out.join("metadata"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_str().unwrap().ends_with(".targets.json"))
        .unwrap();
    let text = std::fs::read_to_string(&targets_json)
        .unwrap()
        .replace("\"length\": 2600", "\"length\": 2601");
    std::fs::write(&targets_json, text).unwrap();
    let report = RepoValidator::for_directory(&root, &out, days_after(t0(), 1))
        .unwrap()
        .run()
        .await;
    assert_eq!(report.problems.len(), 1, "{report}");
    assert!(
        matches!(&report.problems[0], Problem::Load { .. }),
        "{report}"
    );
}

#[tokio::test]
async fn a_client_root_that_is_not_the_newest_is_reported_when_a_version_is_expected() {
    let dir = tempfile::tempdir().unwrap();
    let (root, out) = built(dir.path()).await;
    let report = RepoValidator::for_directory(&root, &out, days_after(t0(), 1))
        .unwrap()
        .expect_root_version(2)
        .run()
        .await;
    assert_eq!(
        report.problems,
        [Problem::RootMismatch {
            expected: 2,
            found: 1
        }]
    );
}

#[tokio::test]
async fn validate_from_a_config_walks_the_chain_from_1_root_json_and_can_use_the_base_urls() {
    use tuftool_config::commands::{Source, validate};
    let dir = tempfile::tempdir().unwrap();
    let (_root, out) = built(dir.path()).await;
    let urls = |sub: &str| {
        url::Url::from_directory_path(out.join(sub))
            .unwrap()
            .to_string()
    };
    let text = format!(
        r#"root = "root.json"
repository = "repo"
metadata_base_url = "{}"
targets_base_url = "{}"
[expiration]
root = "52 weeks"
targets = "12 weeks"
snapshot = "12 weeks"
timestamp = "7 days"
[roles.root]
keys = ["k.pem"]
[roles.targets]
keys = ["k.pem"]
[roles.snapshot]
keys = ["k.pem"]
[roles.timestamp]
keys = ["k.pem"]
"#,
        urls("metadata"),
        urls("targets")
    );
    let path = dir.path().join("repo.toml");
    std::fs::write(&path, text).unwrap();
    let config = tuftool_config::RepoConfig::load(&path).unwrap();
    for source in [Source::Directory, Source::Remote] {
        let report = validate(&config, None, source, days_after(t0(), 1))
            .await
            .unwrap();
        assert!(report.is_ok(), "{source:?}: {report}");
        assert_eq!(report.targets_checked, 4);
    }
    let report = validate(&config, None, Source::Remote, days_after(t0(), 100))
        .await
        .unwrap();
    // 100 days: timestamp (7 days), snapshot and targets (12 weeks) have all expired.
    assert_eq!(report.problems.len(), 3, "{report}");
}
