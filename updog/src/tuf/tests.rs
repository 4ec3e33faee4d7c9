//! The client workflow against repositories built in the test (signed with the fixture keys, written to disk,
//! read over `file://` through tough's filesystem transport wrapped to record what was fetched).

use super::repository::check_cache;
use super::store::role_file_name;
use super::trusted_set::tests::{
    far_future, key_id, public_key, root_value, sign, snapshot_value, targets_value,
    timestamp_value,
};
use super::*;
use chrono::Utc;
use repo_fixtures::keys::FixtureKey;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// A delegated or top-level targets role being built.
#[derive(Debug, Clone, Default)]
struct RoleState {
    version: u64,
    targets: serde_json::Map<String, Value>,
    delegations: Vec<Value>,
}

/// A repository on disk: `metadata/` and `targets/`, root v1 signed by Root1, top-level roles by the fixture
/// keys, delegated roles by Targets2.
struct TestRepo {
    dir: tempfile::TempDir,
    consistent: bool,
    root: Vec<u8>,
    roles: BTreeMap<String, RoleState>,
    snapshot_version: u64,
    timestamp_version: u64,
    /// Role names in delegation order, for a stable publish.
    order: Vec<String>,
}

impl TestRepo {
    fn new(consistent: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("metadata")).unwrap();
        std::fs::create_dir_all(dir.path().join("targets")).unwrap();
        let mut root_signed = root_value(1, &far_future(), &[FixtureKey::Root1], 1);
        root_signed["consistent_snapshot"] = json!(consistent);
        let root = sign(&root_signed, &[FixtureKey::Root1]);
        std::fs::write(dir.path().join("metadata/1.root.json"), &root).unwrap();
        let mut roles = BTreeMap::new();
        roles.insert("targets".to_string(), RoleState::default());
        Self {
            dir,
            consistent,
            root,
            roles,
            snapshot_version: 0,
            timestamp_version: 0,
            order: vec!["targets".into()],
        }
    }

    fn metadata_url(&self) -> Url {
        Url::from_directory_path(self.dir.path().join("metadata")).unwrap()
    }

    fn targets_url(&self) -> Url {
        Url::from_directory_path(self.dir.path().join("targets")).unwrap()
    }

    /// Lists `name` with `bytes` in `role` (hashes: `algorithms` of sha256/sha512) and writes the file where a
    /// client fetches it.
    fn add_target(&mut self, role: &str, name: &str, bytes: &[u8], algorithms: &[&str]) {
        use sha2::Digest;
        let mut hashes = serde_json::Map::new();
        for algorithm in algorithms {
            let hash = match *algorithm {
                "sha256" => hex::encode(sha2::Sha256::digest(bytes)),
                "sha512" => hex::encode(sha2::Sha512::digest(bytes)),
                other => panic!("no {other}"),
            };
            hashes.insert((*algorithm).to_string(), json!(hash));
        }
        let first_hash = hashes
            .values()
            .next()
            .unwrap()
            .as_str()
            .unwrap()
            .to_string();
        self.roles.get_mut(role).unwrap().targets.insert(
            name.to_string(),
            json!({"length": bytes.len(), "hashes": hashes}),
        );
        let path = if self.consistent {
            match name.rsplit_once('/') {
                Some((dir, file)) => format!("{dir}/{first_hash}.{file}"),
                None => format!("{first_hash}.{name}"),
            }
        } else {
            name.to_string()
        };
        let path = self.dir.path().join("targets").join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }

    /// `delegator` delegates `role` (key Targets2) for `paths`.
    fn delegate(&mut self, delegator: &str, role: &str, paths: &[&str], terminating: bool) {
        self.roles
            .get_mut(delegator)
            .unwrap()
            .delegations
            .push(json!({
                "name": role, "keyids": [key_id(FixtureKey::Targets2)], "threshold": 1,
                "terminating": terminating, "paths": paths,
            }));
        self.roles.insert(role.to_string(), RoleState::default());
        self.order.push(role.to_string());
    }

    /// Signs and writes every targets role (each version bumped), the snapshot and the timestamp.
    fn publish(&mut self) {
        let mut listed = Vec::new();
        for name in self.order.clone() {
            let state = self.roles.get_mut(&name).unwrap();
            state.version += 1;
            let delegations = (!state.delegations.is_empty()).then(|| {
                json!({
                    "keys": {key_id(FixtureKey::Targets2): public_key(FixtureKey::Targets2)},
                    "roles": state.delegations,
                })
            });
            let key = if name == "targets" {
                FixtureKey::Targets1
            } else {
                FixtureKey::Targets2
            };
            let bytes = sign(
                &targets_value(
                    state.version,
                    &far_future(),
                    Value::Object(state.targets.clone()),
                    delegations,
                ),
                &[key],
            );
            let file = role_file_name(&name);
            let file = if self.consistent {
                format!("{}.{file}", state.version)
            } else {
                file
            };
            std::fs::write(self.dir.path().join("metadata").join(file), &bytes).unwrap();
            listed.push((name.clone(), bytes, state.version));
        }
        self.snapshot_version += 1;
        let entries: Vec<(&str, &[u8], u64)> = listed
            .iter()
            .map(|(n, b, v)| (n.as_str(), b.as_slice(), *v))
            .collect();
        let snapshot = sign(
            &snapshot_value(self.snapshot_version, &far_future(), &entries),
            &[FixtureKey::Snapshot1],
        );
        let snapshot_file = if self.consistent {
            format!("{}.snapshot.json", self.snapshot_version)
        } else {
            "snapshot.json".into()
        };
        std::fs::write(
            self.dir.path().join("metadata").join(snapshot_file),
            &snapshot,
        )
        .unwrap();
        self.timestamp_version += 1;
        self.write_timestamp(&timestamp_value(
            self.timestamp_version,
            &far_future(),
            &snapshot,
            self.snapshot_version,
        ));
    }

    fn write_timestamp(&self, signed: &Value) {
        std::fs::write(
            self.dir.path().join("metadata/timestamp.json"),
            sign(signed, &[FixtureKey::Timestamp1]),
        )
        .unwrap();
    }
}

/// tough's filesystem transport, recording the file names asked for (as the URL spells them; tough's
/// filesystem transport opens exactly that name).
#[derive(Debug, Clone, Default)]
struct Recording {
    fetched: Arc<Mutex<Vec<String>>>,
}

impl Recording {
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut self.fetched.lock().unwrap())
    }
}

#[tough::async_trait]
impl Transport for Recording {
    async fn fetch(&self, url: Url) -> Result<tough::TransportStream, tough::TransportError> {
        let name = url
            .path_segments()
            .and_then(|mut s| s.next_back())
            .unwrap_or("")
            .to_string();
        self.fetched.lock().unwrap().push(name);
        tough::FilesystemTransport.fetch(url).await
    }
}

struct Node {
    store: tempfile::TempDir,
    transport: Recording,
}

impl Node {
    fn new() -> Self {
        Self {
            store: tempfile::tempdir().unwrap(),
            transport: Recording::default(),
        }
    }

    fn load(&self, repo: &TestRepo) -> Result<Repository, TufError> {
        self.load_root(repo, &repo.root)
    }

    fn load_root(&self, repo: &TestRepo, root: &[u8]) -> Result<Repository, TufError> {
        block_on(Repository::load(
            root,
            self.store.path(),
            Arc::new(self.transport.clone()),
            Arc::new(self.transport.clone()),
            repo.metadata_url(),
            repo.targets_url(),
            Utc::now(),
        ))
    }
}

fn read(repository: &mut Repository, name: &str) -> Result<Vec<u8>, TufError> {
    block_on(repository.read_target(name))
}

/// A repository whose top-level targets delegate, in order: `a` (paths `a/*`), `b` (`*.txt`, which delegates
/// `c` for `x/*.txt` and `d` for `*`), `e` (`*.txt`).
fn delegating_repo() -> TestRepo {
    let mut repo = TestRepo::new(true);
    repo.add_target("targets", "top.txt", b"top", &["sha256"]);
    repo.delegate("targets", "a", &["a/*"], false);
    repo.delegate("targets", "b", &["*.txt"], false);
    repo.delegate("b", "c", &["x/*.txt"], false);
    repo.delegate("b", "d", &["*"], false);
    repo.delegate("targets", "e", &["*.txt"], false);
    repo.add_target("a", "a/1.bin", b"a1", &["sha256"]);
    repo.add_target("d", "found.txt", b"from d", &["sha256"]);
    repo.add_target("e", "found.txt", b"from e", &["sha256"]);
    repo.add_target("e", "only-e.txt", b"e", &["sha256"]);
    repo.publish();
    repo
}

#[test]
fn delegated_roles_are_fetched_lazily_and_searched_pre_order() {
    let repo = delegating_repo();
    let node = Node::new();
    let mut repository = node.load(&repo).unwrap();
    let loaded = node.transport.take();
    assert_eq!(
        loaded,
        [
            "2.root.json",
            "timestamp.json",
            "1.snapshot.json",
            "1.targets.json"
        ],
        "no delegated role is fetched at load time"
    );
    // b before e (listed order), and within b: c does not match found.txt (x/*.txt), d does: d wins over e.
    assert_eq!(read(&mut repository, "found.txt").unwrap(), b"from d");
    assert_eq!(
        node.transport.take(),
        [
            "1.b.json".to_string(),
            "1.d.json".into(),
            format!("{}.found.txt", sha256_hex(b"from d"))
        ]
    );
    // Only a's paths match a/1.bin.
    assert_eq!(read(&mut repository, "a/1.bin").unwrap(), b"a1");
    assert_eq!(
        node.transport.take(),
        [
            "1.a.json".to_string(),
            format!("{}.1.bin", sha256_hex(b"a1"))
        ]
    );
    // e is reached after b's subtree found nothing.
    assert_eq!(read(&mut repository, "only-e.txt").unwrap(), b"e");
    assert_eq!(
        node.transport.take(),
        [
            "1.e.json".to_string(),
            format!("{}.only-e.txt", sha256_hex(b"e"))
        ]
    );
    let err = read(&mut repository, "nowhere.bin").unwrap_err();
    assert!(matches!(err, TufError::NotListed { .. }), "{err}");
}

/// tough's filesystem transport runs on tokio.
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

#[test]
fn a_terminating_role_ends_the_search() {
    let mut repo = TestRepo::new(false);
    repo.delegate("targets", "first", &["*.txt"], true);
    repo.delegate("targets", "second", &["*.txt"], false);
    repo.add_target("second", "f.txt", b"second", &["sha256"]);
    repo.publish();
    let node = Node::new();
    let mut repository = node.load(&repo).unwrap();
    node.transport.take();
    let err = read(&mut repository, "f.txt").unwrap_err();
    assert!(matches!(err, TufError::NotListed { .. }), "{err}");
    assert_eq!(
        node.transport.take(),
        ["first.json"],
        "second is never fetched"
    );
}

#[test]
fn a_delegation_cycle_ends() {
    let mut repo = TestRepo::new(false);
    repo.delegate("targets", "a", &["*"], false);
    repo.delegate("a", "b", &["*"], false);
    // b delegates back to a (as its own delegator's child: a new (role, delegator) pair, then a cycle).
    repo.roles.get_mut("b").unwrap().delegations.push(json!({
        "name": "a", "keyids": [key_id(FixtureKey::Targets2)], "threshold": 1, "terminating": false,
        "paths": ["*"],
    }));
    repo.publish();
    let node = Node::new();
    let mut repository = node.load(&repo).unwrap();
    let err = read(&mut repository, "x").unwrap_err();
    assert!(matches!(err, TufError::NotListed { .. }), "{err}");
}

#[test]
fn a_target_outside_its_roles_paths_is_unreachable_and_the_rest_resolves() {
    let mut repo = TestRepo::new(true);
    repo.delegate("targets", "images", &["images/*"], false);
    repo.add_target("images", "images/root.img", b"root", &["sha256"]);
    // Listed by "images", but "images" is not delegated manifest.json.
    repo.add_target("images", "manifest.json", b"evil", &["sha256"]);
    repo.add_target("targets", "other.json", b"other", &["sha256"]);
    repo.publish();
    let node = Node::new();
    let mut repository = node.load(&repo).unwrap();
    assert!(matches!(
        read(&mut repository, "manifest.json"),
        Err(TufError::NotListed { .. })
    ));
    assert_eq!(read(&mut repository, "images/root.img").unwrap(), b"root");
    assert_eq!(read(&mut repository, "other.json").unwrap(), b"other");
}

#[test]
fn trusted_local_metadata_is_reused_not_downloaded_again() {
    let mut repo = TestRepo::new(true);
    repo.add_target("targets", "t.txt", b"t", &["sha256"]);
    repo.delegate("targets", "d", &["d/*"], false);
    repo.add_target("d", "d/x", b"x", &["sha256"]);
    repo.publish();
    let node = Node::new();
    let mut repository = node.load(&repo).unwrap();
    read(&mut repository, "d/x").unwrap();
    node.transport.take();
    let mut repository = node.load(&repo).unwrap();
    assert_eq!(
        node.transport.take(),
        ["2.root.json", "timestamp.json"],
        "snapshot and targets from the store"
    );
    read(&mut repository, "d/x").unwrap();
    assert_eq!(
        node.transport.take(),
        [format!("{}.x", sha256_hex(b"x"))],
        "the delegated role from the store"
    );
    // A new publish: everything new is fetched again.
    repo.publish();
    let _ = node.load(&repo).unwrap();
    assert_eq!(
        node.transport.take(),
        [
            "2.root.json",
            "timestamp.json",
            "2.snapshot.json",
            "2.targets.json"
        ]
    );
}

#[test]
fn a_same_version_timestamp_with_other_content_is_not_followed() {
    let mut repo = TestRepo::new(true);
    repo.add_target("targets", "t.txt", b"one", &["sha256"]);
    repo.publish();
    let node = Node::new();
    node.load(&repo).unwrap();
    let trusted = std::fs::read(node.store.path().join("timestamp.json")).unwrap();
    // The repository publishes new targets and snapshot but re-signs the timestamp with the same version.
    repo.add_target("targets", "t.txt", b"two", &["sha256"]);
    repo.publish();
    repo.timestamp_version -= 1;
    let snapshot = std::fs::read(repo.dir.path().join("metadata/2.snapshot.json")).unwrap();
    repo.write_timestamp(&timestamp_value(1, &far_future(), &snapshot, 2));
    node.transport.take();
    let mut repository = node.load(&repo).unwrap();
    assert_eq!(
        node.transport.take(),
        ["2.root.json", "timestamp.json"],
        "its snapshot is not followed"
    );
    assert_eq!(
        std::fs::read(node.store.path().join("timestamp.json")).unwrap(),
        trusted
    );
    assert_eq!(
        read(&mut repository, "t.txt").unwrap(),
        b"one",
        "the trusted state is the one served"
    );
}

#[test]
fn a_target_with_only_sha512_or_both_hashes_is_verified_by_each() {
    let mut repo = TestRepo::new(true);
    repo.add_target("targets", "only512", b"five-twelve", &["sha512"]);
    repo.add_target("targets", "both", b"both", &["sha256", "sha512"]);
    repo.publish();
    // Corrupt the sha512 of "both" in a second target entry that keeps sha256 right.
    let node = Node::new();
    let mut repository = node.load(&repo).unwrap();
    assert_eq!(read(&mut repository, "only512").unwrap(), b"five-twelve");
    assert_eq!(read(&mut repository, "both").unwrap(), b"both");
    let mut bad = TestRepo::new(true);
    bad.add_target("targets", "both", b"both", &["sha256", "sha512"]);
    let entry = bad
        .roles
        .get_mut("targets")
        .unwrap()
        .targets
        .get_mut("both")
        .unwrap();
    entry["hashes"]["sha512"] = json!(hex::encode([0u8; 64]));
    bad.publish();
    let node = Node::new();
    let mut repository = node.load(&bad).unwrap();
    let err = read(&mut repository, "both").unwrap_err().to_string();
    assert!(
        err.contains("sha512 is") && err.contains("Hash mismatch"),
        "{err}"
    );
}

#[test]
fn consistent_snapshot_target_urls_prefix_the_file_name_and_keep_directories() {
    let mut climbing = TestRepo::new(false);
    climbing.add_target("targets", "a/../../x", b"x", &["sha256"]);
    climbing.publish();
    let node = Node::new();
    let mut repository = node.load(&climbing).unwrap();
    let target = block_on(repository.find_target("a/../../x")).unwrap();
    let err = repository.target_url(&target).unwrap_err().to_string();
    assert!(
        err.contains("'a/../../x'") && err.contains("'..' segment"),
        "{err}"
    );

    let mut repo = TestRepo::new(true);
    repo.add_target("targets", "path/to/file.txt", b"deep", &["sha256"]);
    repo.publish();
    let node = Node::new();
    let mut repository = node.load(&repo).unwrap();
    let target = block_on(repository.find_target("path/to/file.txt")).unwrap();
    let url = repository.target_url(&target).unwrap();
    assert!(
        url.as_str().ends_with(&format!(
            "/targets/path/to/{}.file.txt",
            sha256_hex(b"deep")
        )),
        "{url}"
    );
    assert_eq!(read(&mut repository, "path/to/file.txt").unwrap(), b"deep");
}

#[test]
fn role_names_are_quoted_in_urls_and_store_file_names() {
    let hostile = "../../esc?a#b";
    let mut repo = TestRepo::new(true);
    repo.delegate("targets", hostile, &["*"], false);
    repo.add_target(hostile, "f", b"f", &["sha256"]);
    repo.publish();
    let outside = repo.dir.path().join("esc?a#b.json");
    let node = Node::new();
    let mut repository = node.load(&repo).unwrap();
    assert_eq!(read(&mut repository, "f").unwrap(), b"f");
    let fetched = node.transport.take();
    assert!(
        fetched.contains(&format!("1.{}", role_file_name(hostile))),
        "{fetched:?}"
    );
    // The store holds the role inside its directory under the quoted name, nothing above it.
    assert!(node.store.path().join(role_file_name(hostile)).is_file());
    assert!(!outside.exists());
    for entry in std::fs::read_dir(node.store.path().parent().unwrap()).unwrap() {
        let name = entry.unwrap().file_name();
        assert!(
            !name.to_string_lossy().contains("esc"),
            "{name:?} written outside the store"
        );
    }
}

#[test]
fn a_root_planted_in_the_store_that_does_not_chain_from_the_shipped_root_is_refused() {
    let mut repo = TestRepo::new(true);
    repo.add_target("targets", "t", b"t", &["sha256"]);
    repo.publish();
    let node = Node::new();
    node.load(&repo).unwrap();
    // An attacker's root, signed by its own key (Root3) only, planted as the next version.
    let evil = sign(
        &root_value(2, &far_future(), &[FixtureKey::Root3], 1),
        &[FixtureKey::Root3],
    );
    std::fs::write(node.store.path().join("2.root.json"), &evil).unwrap();
    let err = node.load(&repo).unwrap_err().to_string();
    assert!(
        err.contains("2.root.json") && err.contains("does not chain from the shipped root"),
        "{err}"
    );
    // The legacy root.json is never an anchor, however new.
    std::fs::remove_file(node.store.path().join("2.root.json")).unwrap();
    let evil9 = sign(
        &root_value(9, &far_future(), &[FixtureKey::Root3], 1),
        &[FixtureKey::Root3],
    );
    std::fs::write(node.store.path().join("root.json"), &evil9).unwrap();
    let repository = node.load(&repo).unwrap();
    assert_eq!(repository.client().trusted().root().meta.version, 1);
}

#[test]
fn a_rotated_root_is_re_verified_from_the_shipped_root_at_every_start() {
    let mut repo = TestRepo::new(false);
    repo.publish();
    let mut v2 = root_value(2, &far_future(), &[FixtureKey::Root2], 1);
    v2["consistent_snapshot"] = json!(false);
    std::fs::write(
        repo.dir.path().join("metadata/2.root.json"),
        sign(&v2, &[FixtureKey::Root1, FixtureKey::Root2]),
    )
    .unwrap();
    let node = Node::new();
    node.load(&repo).unwrap();
    assert!(node.store.path().join("2.root.json").is_file());
    // The repository stops serving 2.root.json: the node keeps v2 from its store (it chains).
    std::fs::remove_file(repo.dir.path().join("metadata/2.root.json")).unwrap();
    let repository = node.load(&repo).unwrap();
    assert_eq!(repository.client().trusted().root().meta.version, 2);
    assert_eq!(repository.client().root_chain().len(), 2);
}

#[test]
fn a_damaged_stored_timestamp_is_an_error_not_a_reset_of_rollback_protection() {
    let mut repo = TestRepo::new(true);
    repo.publish();
    let node = Node::new();
    node.load(&repo).unwrap();
    let stored = node.store.path().join("timestamp.json");
    let bytes = std::fs::read(&stored).unwrap();
    std::fs::write(&stored, &bytes[..bytes.len() / 2]).unwrap();
    let err = node.load(&repo).unwrap_err().to_string();
    assert!(
        err.contains("is damaged")
            && err.contains("timestamp.json")
            && err.contains("To recover, remove"),
        "{err}"
    );
}

#[test]
fn the_latest_known_time_is_recorded_only_after_a_verified_load() {
    let mut repo = TestRepo::new(true);
    repo.publish();
    let node = Node::new();
    let file = node.store.path().join(LATEST_KNOWN_TIME);
    // A far-future clock: the metadata is expired at that time, nothing is recorded.
    let future: chrono::DateTime<Utc> = "2200-01-01T00:00:00Z".parse().unwrap();
    let err = block_on(Repository::load(
        &repo.root,
        node.store.path(),
        Arc::new(node.transport.clone()),
        Arc::new(node.transport.clone()),
        repo.metadata_url(),
        repo.targets_url(),
        future,
    ))
    .unwrap_err();
    assert!(matches!(err, TufError::Expired { .. }), "{err}");
    assert!(!file.exists(), "a refused load records no time");
    // The right clock works at once, and is recorded.
    node.load(&repo).unwrap();
    assert!(file.exists());
}

#[test]
fn the_migrator_cache_holds_exactly_the_verified_metadata_even_if_the_repository_moves_on() {
    let mut repo = TestRepo::new(true);
    repo.add_target("targets", "manifest.json", b"{}", &["sha256"]);
    repo.add_target("targets", "migrate_v1.1_x.lz4", b"migration", &["sha256"]);
    repo.publish();
    let node = Node::new();
    let mut repository = node.load(&repo).unwrap();
    // A publish between load and cache (a live repository): the cache must still be the loaded state.
    repo.publish();
    let cache = tempfile::tempdir().unwrap();
    let (metadata, targets) = (cache.path().join("metadata"), cache.path().join("targets"));
    std::fs::create_dir_all(&metadata).unwrap();
    std::fs::create_dir_all(&targets).unwrap();
    let names = vec![
        "migrate_v1.1_x.lz4".to_string(),
        "manifest.json".to_string(),
    ];
    block_on(repository.cache(&metadata, &targets, &names)).unwrap();
    let timestamp = repository
        .client()
        .trusted()
        .timestamp()
        .unwrap()
        .bytes
        .clone();
    assert_eq!(
        std::fs::read(metadata.join("timestamp.json")).unwrap(),
        timestamp
    );
    assert!(
        metadata.join("1.snapshot.json").is_file() && !metadata.join("2.snapshot.json").exists()
    );
    // A root left by an earlier update from another repository would be tried next by migrator: removed.
    std::fs::write(metadata.join("2.root.json"), b"another repository's root").unwrap();
    block_on(repository.cache(&metadata, &targets, &names)).unwrap();
    assert!(!metadata.join("2.root.json").exists());
    block_on(check_cache(&repo.root, &metadata, &targets, &names)).unwrap();
    // The offline check catches a cache migrator could not load.
    std::fs::remove_file(metadata.join("1.snapshot.json")).unwrap();
    assert!(block_on(check_cache(&repo.root, &metadata, &targets, &names)).is_err());
}
