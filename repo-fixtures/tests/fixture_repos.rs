//! The fixture repositories as a TUF client sees them: the good chain loads over file://, the fault server and
//! nginx; every attack repository is rejected with the rejection it names, over each transport.

use repo_fixtures::attacks::{self, ATTACKS, Rejection};
use repo_fixtures::chain::{self, ChainOptions, FixtureRepo, RELEASES};
use repo_fixtures::http::{Fault, FaultServer, PathMatch, Rule};
use repo_fixtures::nginx::Nginx;
use repo_fixtures::require::require_tool;
use repo_fixtures::verify::{self, FileUrls, FixtureUrls, ServedUrls};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use tough::schema::RoleType;

/// Every fixture, built once per test binary (building signs ~60 files; each test only reads).
fn world() -> &'static BTreeMap<String, FixtureRepo> {
    static WORLD: OnceLock<(tempfile::TempDir, BTreeMap<String, FixtureRepo>)> = OnceLock::new();
    &WORLD
        .get_or_init(|| {
            let dir = tempfile::tempdir().expect("temp dir");
            let built = runtime()
                .block_on(attacks::build_all(dir.path()))
                .expect("the fixture world builds");
            (dir, built.into_iter().collect())
        })
        .1
}

fn world_dir() -> PathBuf {
    world()
        .values()
        .next()
        .expect("fixtures")
        .dir
        .parent()
        .expect("fixtures share a parent")
        .to_owned()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn good() -> &'static FixtureRepo {
    &world()[&attacks::chain_step_name(RELEASES[RELEASES.len() - 1])]
}

/// Plays every attack through `urls` and checks each rejection; collects all failures before panicking.
fn every_attack_is_rejected(urls: &dyn FixtureUrls) {
    let rt = runtime();
    let mut failures = Vec::new();
    for attack in &ATTACKS {
        let repo = &world()[attack.name];
        match rt.block_on(verify::attempt(attack, repo, good(), urls)) {
            Ok(()) => failures.push(format!("{}: accepted", attack.name)),
            Err(error) => {
                let got = error.tough().and_then(attacks::classify);
                if got != Some(attack.rejection) {
                    failures.push(format!(
                        "{}: expected {}, got {:?} from: {error}",
                        attack.name, attack.rejection, got
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "attacks not rejected as expected:\n{}",
        failures.join("\n")
    );
}

#[test]
fn every_attack_is_rejected_over_file_urls() {
    every_attack_is_rejected(&FileUrls);
}

#[test]
fn every_attack_is_rejected_over_the_fault_server() {
    let server = FaultServer::serve(world_dir()).expect("fault server");
    every_attack_is_rejected(&ServedUrls(server.base_url()));
}

#[test]
fn every_attack_is_rejected_over_nginx() {
    if !require_tool("nginx") {
        return;
    }
    let nginx = Nginx::serve(world_dir()).expect("nginx starts");
    every_attack_is_rejected(&ServedUrls(nginx.base_url()));
}

#[test]
fn rollback_attacks_are_accepted_by_a_client_with_no_prior_trust() {
    // The rollback repositories are internally consistent and correctly signed: only the client's memory of newer
    // versions makes them attacks. This proves the rollback tests test the datastore, not a broken fixture.
    let rt = runtime();
    for name in [
        "rollback-timestamp",
        "rollback-snapshot",
        "rollback-targets",
    ] {
        let attack = attacks::find(name).expect("attack exists");
        let mut fresh = *attack;
        fresh.trusts_good_chain_first = false;
        rt.block_on(verify::attempt(&fresh, &world()[name], good(), &FileUrls))
            .unwrap_or_else(|e| panic!("{name} should load without prior trust: {e}"));
    }
}

#[test]
fn every_good_chain_step_loads_with_its_targets_over_file_and_http() {
    let rt = runtime();
    let server = FaultServer::serve(world_dir()).expect("fault server");
    for (step, release) in RELEASES.iter().enumerate() {
        let repo = &world()[&attacks::chain_step_name(release)];
        for urls in [
            &FileUrls as &dyn FixtureUrls,
            &ServedUrls(server.base_url()),
        ] {
            let (metadata, targets) = urls.urls(repo);
            let report = rt
                .block_on(verify::check_repository(repo, metadata, targets))
                .unwrap_or_else(|e| panic!("chain step {release} must load: {e}"));
            let version = step as u64 + 1;
            assert_eq!(
                (
                    report.timestamp_version,
                    report.snapshot_version,
                    report.targets_version
                ),
                (version, version, version)
            );
            // 4 variant/arch pairs × 3 images per release so far, the migrations so far, and manifest.json.
            assert_eq!(report.target_count, 12 * (step + 1) + step + 1);
            assert_eq!(report.manifest.updates.len(), 4 * (step + 1));
            assert_eq!(report.manifest.migrations.len(), step);
        }
    }
}

#[test]
fn the_good_chain_loads_over_nginx() {
    if !require_tool("nginx") {
        return;
    }
    let nginx = Nginx::serve(world_dir()).expect("nginx starts");
    let (metadata, targets) = ServedUrls(nginx.base_url()).urls(good());
    let report = runtime()
        .block_on(verify::check_repository(good(), metadata, targets))
        .expect("the good chain loads over nginx");
    assert_eq!(report.manifest.updates.len(), 12);
}

#[test]
fn newest_manifest_has_waves_on_the_newest_release_and_the_whole_migration_chain() {
    let manifest =
        chain::manifest_at(RELEASES.len() - 1, &ChainOptions::default()).expect("manifest");
    let newest: semver::Version = RELEASES[RELEASES.len() - 1].parse().unwrap();
    for update in &manifest.updates {
        assert_eq!(update.max_version, newest);
        let keys: Vec<u32> = update.waves.keys().copied().collect();
        if update.version == newest {
            assert_eq!(keys, [0, 20, 102, 307, 819, 1228, 1843]);
        } else {
            assert!(keys.is_empty(), "{} carries waves", update.version);
        }
    }
    let from: semver::Version = "1.0.0".parse().unwrap();
    assert_eq!(
        manifest
            .find_migrations(&from, &newest)
            .expect("a migration path"),
        [
            "migrate_v1.1.0_add-motd-default.lz4",
            "migrate_v1.2.0_rename-hostname-setting.lz4"
        ]
    );
}

#[test]
fn building_twice_gives_byte_identical_repositories() {
    let rt = runtime();
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    for dir in [&a, &b] {
        rt.block_on(chain::build_chain(dir.path(), &ChainOptions::default()))
            .expect("chain builds");
    }
    let files_a = tree(a.path());
    assert!(
        files_a.len() > 40,
        "the chain has its files: {}",
        files_a.len()
    );
    assert_eq!(files_a, tree(b.path()));
}

/// Serves the good chain with `fault` on manifest.json and reads it as `attack` does: must be rejected as `expected`.
fn in_flight_fault_is_rejected(fault: Fault, attack: &str, expected: Rejection) {
    let server = FaultServer::serve(world_dir()).expect("fault server");
    server.add_rule(Rule::new(PathMatch::suffix(".manifest.json"), fault));
    let attack = attacks::find(attack).expect("attack");
    let error = runtime()
        .block_on(verify::attempt(
            attack,
            good(),
            good(),
            &ServedUrls(server.base_url()),
        ))
        .expect_err("the fault must be rejected");
    assert_eq!(
        error.tough().and_then(attacks::classify),
        Some(expected),
        "{error}"
    );
}

#[test]
fn an_endless_target_from_the_server_is_cut_off_at_its_listed_length() {
    // The server streams spaces for ever after manifest.json; the client must stop at the listed length.
    in_flight_fault_is_rejected(Fault::Endless, "endless-target-data", Rejection::TooLarge);
}

#[test]
fn a_corrupted_byte_in_flight_is_a_hash_mismatch() {
    in_flight_fault_is_rejected(
        Fault::FlipByte(3),
        "target-hash-mismatch",
        Rejection::HashMismatch,
    );
}

#[test]
fn attack_rejections_name_the_role_they_concern() {
    // The table itself: every role appears in an expiry attack and a rollback attack.
    for role in [
        RoleType::Root,
        RoleType::Timestamp,
        RoleType::Snapshot,
        RoleType::Targets,
    ] {
        assert!(
            ATTACKS
                .iter()
                .any(|a| a.rejection == Rejection::Expired(role)),
            "no expired-{role}"
        );
        assert!(
            ATTACKS
                .iter()
                .any(|a| a.rejection == Rejection::Rollback(role)),
            "no rollback-{role}"
        );
    }
}

/// Relative path → bytes of every file under `dir`.
fn tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.insert(
                    path.strip_prefix(dir).unwrap().to_owned(),
                    std::fs::read(&path).unwrap(),
                );
            }
        }
    }
    files
}

#[test]
fn expired_attacks_are_only_expired_everything_else_verifies() {
    // With expiry not enforced, each expired-role repository loads: expiry is the one thing wrong with it.
    let rt = runtime();
    for attack in ATTACKS
        .iter()
        .filter(|a| matches!(a.rejection, Rejection::Expired(_)))
    {
        let repo = &world()[attack.name];
        let root = std::fs::read(repo.trusted_root()).unwrap();
        let (metadata, targets) = repo.file_urls();
        rt.block_on(
            tough::RepositoryLoader::new(&root, metadata, targets)
                .expiration_enforcement(tough::ExpirationEnforcement::Unsafe)
                .load(),
        )
        .unwrap_or_else(|e| {
            panic!(
                "{} should load when expiry is not enforced: {e}",
                attack.name
            )
        });
    }
}
