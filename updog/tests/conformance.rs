//! The tuf-conformance client-under-test (`tuf-conformance-client`) as a process against the
//! fixture repositories: init, refresh (good chain, every attack, consistent and non-consistent
//! snapshots, a root rotation), download (order, caching, replacement, hash failures).

mod support;

use repo_fixtures::attacks::{ATTACKS, Stage};
use repo_fixtures::chain::FixtureRepo;
use repo_fixtures::http::FaultServer;
use std::path::{Path, PathBuf};
use std::process::Command;
use support::World;
use url::Url;

fn world() -> &'static World {
    World::get("conformance")
}

/// One client: its metadata and target directories.
struct Client {
    dir: tempfile::TempDir,
}

#[derive(Debug)]
struct Exit {
    code: Option<i32>,
    stderr: String,
}

impl Client {
    fn new() -> Self {
        let client = Self {
            dir: tempfile::tempdir().unwrap(),
        };
        std::fs::create_dir_all(client.metadata_dir()).unwrap();
        std::fs::create_dir_all(client.target_dir()).unwrap();
        client
    }

    /// A client initialised with the fixture root.
    fn initialised() -> Self {
        let client = Self::new();
        let exit = client.init(&world().chain("1.2.0").trusted_root());
        assert_eq!(exit.code, Some(0), "{exit:?}");
        client
    }

    fn metadata_dir(&self) -> PathBuf {
        self.dir.path().join("metadata")
    }

    fn target_dir(&self) -> PathBuf {
        self.dir.path().join("targets")
    }

    fn run(&self, args: &[&str]) -> Exit {
        let output = Command::new(env!("CARGO_BIN_EXE_tuf-conformance-client"))
            .arg("--metadata-dir")
            .arg(self.metadata_dir())
            .args(args)
            .output()
            .unwrap();
        Exit {
            code: output.status.code(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    fn init(&self, root: &Path) -> Exit {
        self.run(&["init", root.to_str().unwrap()])
    }

    fn refresh(&self, metadata_url: &Url) -> Exit {
        self.run(&["--metadata-url", metadata_url.as_str(), "refresh"])
    }

    fn download(&self, metadata_url: &Url, targets_url: &Url, names: &[&str]) -> Exit {
        let target_dir = self.target_dir();
        let mut args = vec!["--metadata-url", metadata_url.as_str()];
        for name in names {
            args.extend(["--target-name", name]);
        }
        args.extend([
            "--target-base-url",
            targets_url.as_str(),
            "--target-dir",
            target_dir.to_str().unwrap(),
            "download",
        ]);
        self.run(&args)
    }

    /// The files in the metadata directory, sorted.
    fn metadata_files(&self) -> Vec<String> {
        files_in(&self.metadata_dir())
    }

    fn metadata(&self, file: &str) -> Vec<u8> {
        std::fs::read(self.metadata_dir().join(file)).unwrap()
    }

    fn version(&self, role: &str) -> u64 {
        let json: serde_json::Value =
            serde_json::from_slice(&self.metadata(&format!("{role}.json"))).unwrap();
        json["signed"]["version"].as_u64().unwrap()
    }
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    files
}

fn served(server: &FaultServer, repo: &FixtureRepo) -> (Url, Url) {
    support::served_urls(&server.base_url(), repo)
}

fn assert_ok(exit: &Exit) {
    assert_eq!(exit.code, Some(0), "{exit:?}");
}

const TOP_LEVEL: [&str; 4] = [
    "root.json",
    "snapshot.json",
    "targets.json",
    "timestamp.json",
];

#[test]
fn init_copies_a_root_and_refuses_garbage() {
    let client = Client::new();
    let root = world().chain("1.2.0").trusted_root();
    assert_ok(&client.init(&root));
    assert_eq!(client.metadata("root.json"), std::fs::read(&root).unwrap());
    assert_eq!(client.metadata_files(), ["root.json"]);

    let other = Client::new();
    let garbage = other.dir.path().join("garbage.json");
    std::fs::write(&garbage, b"this is not json").unwrap();
    let exit = other.init(&garbage);
    assert_eq!(exit.code, Some(1), "{exit:?}");
    assert!(exit.stderr.contains("is not a root.json"), "{exit:?}");
    assert!(other.metadata_files().is_empty());
    let exit = other.init(&other.dir.path().join("missing.json"));
    assert_eq!(exit.code, Some(1), "{exit:?}");

    // The flag form of the same command.
    let flagged = Client::new();
    assert_ok(&flagged.run(&["init", "--trusted-root", root.to_str().unwrap()]));
    assert_eq!(flagged.metadata("root.json"), std::fs::read(&root).unwrap());
}

#[test]
fn refresh_stores_exactly_the_served_top_level_metadata() {
    let server = FaultServer::serve(&world().dir).unwrap();
    let repo = world().chain("1.2.0");
    let (metadata_url, _) = served(&server, &repo);
    let client = Client::initialised();
    assert_ok(&client.refresh(&metadata_url));

    assert_eq!(client.metadata_files(), TOP_LEVEL);
    let published = |file: &str| std::fs::read(repo.metadata_dir().join(file)).unwrap();
    assert_eq!(
        client.metadata("timestamp.json"),
        published("timestamp.json")
    );
    assert_eq!(
        client.metadata("snapshot.json"),
        published("3.snapshot.json")
    );
    assert_eq!(client.metadata("targets.json"), published("3.targets.json"));
    assert_eq!(
        client.metadata("root.json"),
        std::fs::read(repo.trusted_root()).unwrap()
    );

    // The workflow's requests, in order (no 2.root.json exists).
    let paths: Vec<String> = server.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(
        paths,
        [
            "/chain-1.2.0/metadata/2.root.json",
            "/chain-1.2.0/metadata/timestamp.json",
            "/chain-1.2.0/metadata/3.snapshot.json",
            "/chain-1.2.0/metadata/3.targets.json",
        ]
    );
}

#[test]
fn refresh_moves_forward_from_an_older_trusted_state() {
    let server = FaultServer::serve(&world().dir).unwrap();
    let client = Client::initialised();
    assert_ok(&client.refresh(&served(&server, &world().chain("1.1.0")).0));
    assert_eq!(client.version("timestamp"), 2);
    assert_ok(&client.refresh(&served(&server, &world().chain("1.2.0")).0));
    for role in ["timestamp", "snapshot", "targets"] {
        assert_eq!(client.version(role), 3, "{role}");
    }
    // And refuses to go back.
    let exit = client.refresh(&served(&server, &world().chain("1.1.0")).0);
    assert_eq!(exit.code, Some(1), "{exit:?}");
    assert!(exit.stderr.contains("Rollback refused"), "{exit:?}");
    assert_eq!(client.version("timestamp"), 3);
}

#[test]
fn refresh_fails_for_every_metadata_attack_and_download_for_every_target_attack() {
    let server = FaultServer::serve(&world().dir).unwrap();
    let good = world().chain("1.2.0");
    let mut failures = Vec::new();
    for attack in &ATTACKS {
        let client = Client::initialised();
        if attack.trusts_good_chain_first {
            assert_ok(&client.refresh(&served(&server, &good).0));
        }
        let (metadata_url, targets_url) = served(&server, &world().repo(attack.name));
        let words = support::attack_words(attack);
        let exit = match attack.stage {
            Stage::Load => client.refresh(&metadata_url),
            Stage::ReadTarget(name) => {
                let refreshed = client.refresh(&metadata_url);
                if refreshed.code != Some(0) {
                    failures.push(format!("{}: refresh failed: {refreshed:?}", attack.name));
                    continue;
                }
                let exit = client.download(&metadata_url, &targets_url, &[name]);
                let left = files_in(&client.target_dir());
                if !left.is_empty() {
                    failures.push(format!("{}: left {left:?} in the target dir", attack.name));
                }
                exit
            }
        };
        if exit.code != Some(1) || !words.iter().all(|w| exit.stderr.contains(w.as_str())) {
            failures.push(format!(
                "{}: expected exit 1 naming {words:?}: {exit:?}",
                attack.name
            ));
        }
        // (A rollback attack may bump the roles above the one it rolls back: those were
        // verified and are trusted; only a version below the good chain's would be wrong.)
        if attack.trusts_good_chain_first && client.version("timestamp") < 3 {
            failures.push(format!("{}: trusted state lowered", attack.name));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn download_stores_verified_targets_in_order_and_does_not_fetch_them_twice() {
    let server = FaultServer::serve(&world().dir).unwrap();
    let repo = world().chain("1.2.0");
    let (metadata_url, targets_url) = served(&server, &repo);
    let image = format!(
        "bottlerocket-aws-dev-{}-1.2.0-fixture-boot.ext4.lz4",
        support::ARCH
    );
    let client = Client::initialised();
    assert_ok(&client.download(&metadata_url, &targets_url, &["manifest.json", &image]));

    assert_eq!(files_in(&client.target_dir()), {
        let mut expected = vec!["manifest.json".to_string(), image.clone()];
        expected.sort();
        expected
    });
    for name in ["manifest.json", image.as_str()] {
        assert_eq!(
            std::fs::read(client.target_dir().join(name)).unwrap(),
            std::fs::read(repo.target_file(name).unwrap()).unwrap(),
            "{name}"
        );
    }
    let target_requests = |server: &FaultServer| -> Vec<String> {
        server
            .requests()
            .into_iter()
            .filter(|r| r.path.contains("/targets/"))
            .map(|r| r.path)
            .collect()
    };
    let first = target_requests(&server);
    assert_eq!(first.len(), 2, "{first:?}");
    assert!(
        first[0].ends_with(".manifest.json") && first[1].ends_with(&image),
        "{first:?}"
    );
    assert_eq!(client.metadata_files(), TOP_LEVEL);

    // Again: metadata is refreshed, the artifacts are not fetched.
    server.clear_requests();
    assert_ok(&client.download(&metadata_url, &targets_url, &["manifest.json", &image]));
    assert!(
        target_requests(&server).is_empty(),
        "{:?}",
        server.requests()
    );
    assert!(!server.requests_for("timestamp.json").is_empty());

    // A local copy that no longer matches is replaced.
    std::fs::write(client.target_dir().join("manifest.json"), b"tampered").unwrap();
    server.clear_requests();
    assert_ok(&client.download(&metadata_url, &targets_url, &["manifest.json"]));
    assert_eq!(target_requests(&server).len(), 1);
    assert_eq!(
        std::fs::read(client.target_dir().join("manifest.json")).unwrap(),
        std::fs::read(repo.target_file("manifest.json").unwrap()).unwrap()
    );
}

#[test]
fn a_changed_artifact_is_stored_under_the_same_name() {
    let site = tempfile::tempdir().unwrap();
    let link = site.path().join("repo");
    std::os::unix::fs::symlink(world().chain("1.1.0").dir, &link).unwrap();
    let server = FaultServer::serve(site.path()).unwrap();
    let metadata_url = server.url_for("repo/metadata/");
    let targets_url = server.url_for("repo/targets/");
    let client = Client::initialised();
    assert_ok(&client.download(&metadata_url, &targets_url, &["manifest.json"]));
    let old = std::fs::read(client.target_dir().join("manifest.json")).unwrap();

    let temp = site.path().join("repo.new");
    std::os::unix::fs::symlink(world().chain("1.2.0").dir, &temp).unwrap();
    std::fs::rename(&temp, &link).unwrap();
    assert_ok(&client.download(&metadata_url, &targets_url, &["manifest.json"]));
    let new = std::fs::read(client.target_dir().join("manifest.json")).unwrap();
    assert_ne!(old, new);
    assert_eq!(
        new,
        std::fs::read(world().chain("1.2.0").target_file("manifest.json").unwrap()).unwrap()
    );
    assert_eq!(files_in(&client.target_dir()), ["manifest.json"]);
}

#[test]
fn an_unlisted_target_fails_and_leaves_nothing() {
    let server = FaultServer::serve(&world().dir).unwrap();
    let (metadata_url, targets_url) = served(&server, &world().chain("1.2.0"));
    let client = Client::initialised();
    let exit = client.download(&metadata_url, &targets_url, &["no-such-target.txt"]);
    assert_eq!(exit.code, Some(1), "{exit:?}");
    assert!(
        exit.stderr.contains("'no-such-target.txt' is not listed"),
        "{exit:?}"
    );
    assert!(files_in(&client.target_dir()).is_empty());
}

/// chain-1.2.0 rebuilt as a repository without consistent snapshots: a root saying
/// `consistent_snapshot: false` (same keys), `snapshot.json`/`targets.json` without version
/// prefixes, and targets under their plain names.
fn non_consistent_repo(out: &Path) -> FixtureRepo {
    let good = world().chain("1.2.0");
    let repo = FixtureRepo {
        dir: out.to_owned(),
    };
    std::fs::create_dir_all(repo.metadata_dir()).unwrap();
    std::fs::create_dir_all(repo.targets_dir()).unwrap();
    support::runtime().block_on(async {
        let root =
            repo_fixtures::chain::fixture_root_builder(repo_fixtures::chain::fixture_expiry(), 1)
                .await
                .unwrap()
                .consistent_snapshot(false)
                .sign(repo_fixtures::chain::fixture_now())
                .await
                .unwrap();
        root.write(repo.trusted_root()).unwrap();
        root.write(repo.metadata_dir().join("1.root.json")).unwrap();
    });
    let copy = |from: &str, to: &str| {
        std::fs::copy(good.metadata_dir().join(from), repo.metadata_dir().join(to)).unwrap();
    };
    copy("timestamp.json", "timestamp.json");
    copy("3.snapshot.json", "snapshot.json");
    copy("3.targets.json", "targets.json");
    // The targets the newest targets.json lists (older steps' files share names).
    let targets: serde_json::Value =
        serde_json::from_slice(&std::fs::read(good.metadata_dir().join("3.targets.json")).unwrap())
            .unwrap();
    for (name, target) in targets["signed"]["targets"].as_object().unwrap() {
        let sha256 = target["hashes"]["sha256"].as_str().unwrap();
        std::fs::copy(
            good.targets_dir().join(format!("{sha256}.{name}")),
            repo.targets_dir().join(name),
        )
        .unwrap();
    }
    repo
}

#[test]
fn a_repository_without_consistent_snapshots_works_too() {
    let dir = tempfile::tempdir().unwrap();
    let repo = non_consistent_repo(&dir.path().join("plain"));
    let server = FaultServer::serve(dir.path()).unwrap();
    let (metadata_url, targets_url) = served(&server, &repo);

    let client = Client::new();
    assert_ok(&client.init(&repo.trusted_root()));
    assert_ok(&client.download(&metadata_url, &targets_url, &["manifest.json"]));
    assert_eq!(client.metadata_files(), TOP_LEVEL);
    assert_eq!(
        client.metadata("snapshot.json"),
        std::fs::read(repo.metadata_dir().join("snapshot.json")).unwrap()
    );
    assert_eq!(
        std::fs::read(client.target_dir().join("manifest.json")).unwrap(),
        std::fs::read(repo.targets_dir().join("manifest.json")).unwrap()
    );
    let paths: Vec<String> = server.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(
        paths,
        [
            "/plain/metadata/2.root.json",
            "/plain/metadata/timestamp.json",
            "/plain/metadata/snapshot.json",
            "/plain/metadata/targets.json",
            "/plain/targets/manifest.json",
        ]
    );
}

#[test]
fn a_root_rotation_is_followed_and_stored() {
    let dir = tempfile::tempdir().unwrap();
    let rotated = dir.path().join("rotated");
    repo_fixtures::chain::copy_dir(&world().chain("1.2.0").dir, &rotated).unwrap();
    let root_v2 = rotated.join("metadata/2.root.json");
    support::runtime().block_on(async {
        repo_fixtures::chain::fixture_root_builder(repo_fixtures::chain::fixture_expiry(), 2)
            .await
            .unwrap()
            .sign(repo_fixtures::chain::fixture_now())
            .await
            .unwrap()
            .write(&root_v2)
            .unwrap();
    });
    let server = FaultServer::serve(dir.path()).unwrap();
    let client = Client::initialised();
    assert_ok(&client.refresh(&server.url_for("rotated/metadata/")));
    assert_eq!(client.version("root"), 2);
    assert_eq!(
        client.metadata("root.json"),
        std::fs::read(&root_v2).unwrap()
    );

    // Refreshing again starts from root v2: it asks for 3.root.json.
    server.clear_requests();
    assert_ok(&client.refresh(&server.url_for("rotated/metadata/")));
    assert_eq!(server.requests()[0].path, "/rotated/metadata/3.root.json");
}

#[test]
fn refresh_before_init_fails() {
    let server = FaultServer::serve(&world().dir).unwrap();
    let client = Client::new();
    let exit = client.refresh(&served(&server, &world().chain("1.2.0")).0);
    assert_eq!(exit.code, Some(1), "{exit:?}");
    assert!(
        exit.stderr.contains("run `init TRUSTED_ROOT` first"),
        "{exit:?}"
    );
    assert!(server.requests().is_empty());
}

#[test]
fn refresh_works_over_file_urls() {
    let repo = world().chain("1.2.0");
    let (metadata_url, targets_url) = repo.file_urls();
    let client = Client::initialised();
    assert_ok(&client.download(&metadata_url, &targets_url, &["manifest.json"]));
    assert_eq!(client.metadata_files(), TOP_LEVEL);
    assert_eq!(client.version("targets"), 3);
}
