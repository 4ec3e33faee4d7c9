//! `updog check-update` as a process, against fixture repositories served over HTTP (the fault
//! server, and nginx in one test) and file://: every selection rule, the output formats and exit
//! codes, the query parameters, persisted trust, attacks, and the lock.

mod support;

use chrono::{DateTime, SubsecRound, TimeDelta, Utc};
use repo_fixtures::attacks::ATTACKS;
use repo_fixtures::http::{AfterStall, Fault, FaultServer, PathMatch, Rule};
use semver::Version;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use support::{ARCH, Node, NodeConfig, World, other_arch};
use update_metadata::{Images, Manifest, Update};

fn world() -> &'static World {
    World::get("check-update")
}

/// A server over the whole fixture world.
fn serve_world() -> FaultServer {
    FaultServer::serve(&world().dir).expect("serve the fixture world")
}

/// A node at `version` of `variant`, configured for the world's `chain-1.2.0` served by `server`.
fn chain_node(server: &FaultServer, variant: &str, version: &str) -> (Node, NodeConfig) {
    Node::for_repo(
        &world().chain("1.2.0"),
        Some(&server.base_url()),
        variant,
        version,
    )
}

fn v(s: &str) -> Version {
    s.parse().unwrap()
}

// ---- outputs and the basic rule ---------------------------------------------------------------

#[test]
fn an_older_node_is_offered_the_newest_release() {
    let server = serve_world();
    for version in ["1.0.0", "1.1.0"] {
        let (node, _) = chain_node(&server, "aws-dev", version);
        node.updog(&["check-update"])
            .assert_offers("aws-dev 1.2.0\n");
    }
}

#[test]
fn whats_is_an_alias_of_check_update() {
    let server = serve_world();
    let (node, _) = chain_node(&server, "metal-dev", "1.0.0");
    node.updog(&["whats"]).assert_offers("metal-dev 1.2.0\n");
}

#[test]
fn json_output_is_the_update_object_from_the_manifest() {
    let server = serve_world();
    let (node, _) = chain_node(&server, "aws-dev", "1.0.0");
    let run = node.updog(&["check-update", "--json"]);
    assert_eq!((run.code, run.stderr.as_str()), (Some(0), ""), "{run:#?}");

    let manifest = support::chain_manifest(&world().chain("1.2.0"));
    let expected = manifest
        .updates
        .iter()
        .find(|u| u.variant == "aws-dev" && u.arch == ARCH && u.version == v("1.2.0"))
        .unwrap();
    assert_eq!(
        run.stdout,
        format!("{}\n", serde_json::to_string_pretty(expected).unwrap())
    );
    // Upstream's field names, pretty-printed.
    assert!(
        run.stdout
            .starts_with("{\n  \"variant\": \"aws-dev\",\n  \"arch\": "),
        "{}",
        run.stdout
    );
    let value: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(value["max_version"], "1.2.0");
    assert_eq!(value["waves"]["0"], "2026-01-01T01:00:00Z");
    assert_eq!(
        value["images"]["root"],
        format!("bottlerocket-aws-dev-{ARCH}-1.2.0-fixture-root.ext4.lz4")
    );
}

#[test]
fn all_with_json_lists_every_applicable_update_newest_first() {
    let server = serve_world();
    let (node, _) = chain_node(&server, "aws-dev", "1.2.0");
    // -a -j before the subcommand, as thar-be-updates' `updog whats --all --json` after it.
    for args in [
        &["-a", "-j", "check-update"][..],
        &["whats", "--all", "--json"][..],
    ] {
        let run = node.updog(args);
        assert_eq!((run.code, run.stderr.as_str()), (Some(0), ""), "{run:#?}");
        let updates: Vec<Update> = serde_json::from_str(&run.stdout).unwrap();
        let listed: Vec<(String, String, String)> = updates
            .iter()
            .map(|u| (u.variant.clone(), u.arch.clone(), u.version.to_string()))
            .collect();
        let expect = |version: &str| ("aws-dev".to_string(), ARCH.to_string(), version.to_string());
        assert_eq!(listed, [expect("1.2.0"), expect("1.1.0"), expect("1.0.0")]);
    }
}

#[test]
fn all_without_json_prints_the_list_on_stderr() {
    let server = serve_world();
    let (node, _) = chain_node(&server, "metal-dev", "1.2.0");
    let run = node.updog(&["check-update", "-a"]);
    assert_eq!(
        (run.code, run.stdout.as_str(), run.stderr.as_str()),
        (
            Some(0),
            "",
            "metal-dev 1.2.0\nmetal-dev 1.1.0\nmetal-dev 1.0.0\n"
        )
    );
}

#[test]
fn an_up_to_date_node_gets_no_update_available_and_exit_1() {
    let server = serve_world();
    let (node, _) = chain_node(&server, "aws-dev", "1.2.0");
    node.updog(&["check-update"])
        .assert_fails_with("No update available");
    node.updog(&["check-update", "--json"])
        .assert_fails_with("No update available");
}

#[test]
fn every_request_carries_the_version_and_seed_query_parameters() {
    let server = serve_world();
    let (node, mut config) = chain_node(&server, "aws-dev", "1.1.0");
    config.seed = 42;
    node.set_config(&config);
    node.updog(&["check-update"])
        .assert_offers("aws-dev 1.2.0\n");

    let requests = server.requests();
    let paths: Vec<&str> = requests.iter().map(|r| r.path.as_str()).collect();
    for expected in [
        "/chain-1.2.0/metadata/2.root.json",
        "/chain-1.2.0/metadata/timestamp.json",
        "/chain-1.2.0/metadata/3.snapshot.json",
        "/chain-1.2.0/metadata/3.targets.json",
    ] {
        assert!(
            paths.contains(&expected),
            "{expected} not requested: {paths:?}"
        );
    }
    assert!(
        paths
            .iter()
            .any(|p| p.starts_with("/chain-1.2.0/targets/") && p.ends_with(".manifest.json")),
        "{paths:?}"
    );
    for request in &requests {
        // Sorted by key, as upstream: seed before version.
        assert_eq!(
            request.query.as_deref(),
            Some("seed=42&version=1.1.0"),
            "{}",
            request.path
        );
    }
}

#[test]
fn a_file_url_repository_works_without_query_parameters() {
    let (node, _) = Node::for_repo(&world().chain("1.1.0"), None, "aws-dev", "1.0.0");
    node.updog(&["check-update"])
        .assert_offers("aws-dev 1.1.0\n");
}

// ---- variant and arch ---------------------------------------------------------------------------

#[test]
fn another_variant_gets_nothing() {
    let server = serve_world();
    let (node, _) = chain_node(&server, "k8s-dev", "1.0.0");
    node.updog(&["check-update"])
        .assert_fails_with("No update available");
    let run = node.updog(&["check-update", "--all", "--json"]);
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (Some(0), "[]\n"),
        "{run:#?}"
    );
}

#[test]
fn the_hidden_variant_flag_overrides_os_release() {
    let server = serve_world();
    let (node, _) = chain_node(&server, "aws-dev", "1.0.0");
    node.updog(&["check-update", "--variant", "metal-dev"])
        .assert_offers("metal-dev 1.2.0\n");
}

#[test]
fn updates_for_another_arch_are_never_offered() {
    let dir = tempfile::tempdir().unwrap();
    let foreign = |version: &str| update("aws-dev", other_arch(), version, version);
    let repo = support::custom_repo(
        &dir.path().join("repo"),
        &manifest(vec![
            foreign("1.5.0"),
            update("aws-dev", ARCH, "1.1.0", "1.5.0"),
        ]),
    );
    let (node, _) = Node::for_repo(&repo, None, "aws-dev", "1.1.0");
    node.updog(&["check-update"])
        .assert_fails_with("No update available");
    let run = node.updog(&["check-update", "-a", "-j"]);
    let listed: Vec<Update> = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(listed.len(), 1, "{run:#?}");
    assert_eq!(listed[0].arch, ARCH);
    // The hidden --arch flag plays a node of the other arch.
    node.updog(&["check-update", "--arch", other_arch()])
        .assert_offers("aws-dev 1.5.0\n");
}

// ---- max_version, regret, --image, version_lock --------------------------------------------------

fn update(variant: &str, arch: &str, version: &str, max_version: &str) -> Update {
    Update {
        variant: variant.into(),
        arch: arch.into(),
        version: v(version),
        max_version: v(max_version),
        waves: BTreeMap::new(),
        images: Images {
            boot: format!("{variant}-{arch}-{version}-boot.ext4.lz4"),
            root: format!("{variant}-{arch}-{version}-root.ext4.lz4"),
            hash: format!("{variant}-{arch}-{version}-root.verity.lz4"),
        },
    }
}

fn manifest(updates: Vec<Update>) -> Manifest {
    Manifest {
        updates,
        migrations: BTreeMap::new(),
    }
}

#[test]
fn an_update_above_its_max_version_is_never_offered() {
    let dir = tempfile::tempdir().unwrap();
    // 1.3.0 is published but max_version says 1.2.0 is the newest allowed.
    let repo = support::custom_repo(
        &dir.path().join("repo"),
        &manifest(vec![
            update("aws-dev", ARCH, "1.3.0", "1.2.0"),
            update("aws-dev", ARCH, "1.2.0", "1.2.0"),
            update("aws-dev", ARCH, "1.1.0", "1.2.0"),
        ]),
    );
    let (node, _) = Node::for_repo(&repo, None, "aws-dev", "1.1.0");
    node.updog(&["check-update"])
        .assert_offers("aws-dev 1.2.0\n");
    node.updog(&["check-update", "--image", "1.3.0"])
        .assert_fails_with(&format!(
            "No update available: version 1.3.0 is not offered for variant 'aws-dev', arch '{ARCH}'"
        ));
}

#[test]
fn a_node_above_max_version_is_moved_back_to_the_newest_allowed_release() {
    let server = serve_world();
    // The chain's max_version is 1.2.0: a node at 1.3.0 regrets down to 1.2.0.
    let (node, _) = chain_node(&server, "aws-dev", "1.3.0");
    node.updog(&["check-update"])
        .assert_offers("aws-dev 1.2.0\n");

    // A pulled release: 1.2.0 is still listed but max_version went back to 1.1.0.
    let dir = tempfile::tempdir().unwrap();
    let repo = support::custom_repo(
        &dir.path().join("repo"),
        &manifest(vec![
            update("aws-dev", ARCH, "1.2.0", "1.1.0"),
            update("aws-dev", ARCH, "1.1.0", "1.1.0"),
            update("aws-dev", ARCH, "1.0.0", "1.1.0"),
        ]),
    );
    let (node, _) = Node::for_repo(&repo, None, "aws-dev", "1.2.0");
    node.updog(&["check-update"])
        .assert_offers("aws-dev 1.1.0\n");
    node.set_release("aws-dev", "1.1.0");
    node.updog(&["check-update"])
        .assert_fails_with("No update available");
}

#[test]
fn image_selects_exactly_that_version_up_down_or_the_same() {
    let server = serve_world();
    let (node, _) = chain_node(&server, "aws-dev", "1.2.0");
    node.updog(&["check-update", "--image", "1.0.0"])
        .assert_offers("aws-dev 1.0.0\n");
    node.updog(&["check-update", "-i", "1.2.0"])
        .assert_offers("aws-dev 1.2.0\n");
    node.set_release("aws-dev", "1.0.0");
    node.updog(&["check-update", "-i", "1.1.0"])
        .assert_offers("aws-dev 1.1.0\n");
    node.updog(&["check-update", "-i", "1.9.0"])
        .assert_fails_with(&format!(
            "No update available: version 1.9.0 is not offered for variant 'aws-dev', arch '{ARCH}'"
        ));
}

#[test]
fn a_malformed_image_version_is_a_usage_error_with_exit_1() {
    let server = serve_world();
    let (node, _) = chain_node(&server, "aws-dev", "1.0.0");
    let run = node.updog(&["check-update", "--image", "1.2"]);
    assert_eq!((run.code, run.stdout.as_str()), (Some(1), ""), "{run:#?}");
    assert!(
        run.stderr.contains("'1.2' is not a semantic version"),
        "{run:#?}"
    );
    // Nothing was fetched.
    assert!(server.requests().is_empty());
}

#[test]
fn version_lock_moves_up_to_the_locked_version() {
    let server = serve_world();
    let (node, mut config) = chain_node(&server, "aws-dev", "1.0.0");
    config.version_lock = "v1.1.0".into();
    node.set_config(&config);
    node.updog(&["check-update"])
        .assert_offers("aws-dev 1.1.0\n");
}

#[test]
fn version_lock_moves_down_to_the_locked_version() {
    let server = serve_world();
    let (node, mut config) = chain_node(&server, "aws-dev", "1.2.0");
    config.version_lock = "1.0.0".into();
    node.set_config(&config);
    node.updog(&["check-update"])
        .assert_offers("aws-dev 1.0.0\n");
    // --image wins over the lock.
    node.updog(&["check-update", "--image", "1.1.0"])
        .assert_offers("aws-dev 1.1.0\n");
}

#[test]
fn version_lock_on_the_running_version_or_an_unpublished_one_offers_nothing() {
    let server = serve_world();
    let (node, mut config) = chain_node(&server, "aws-dev", "1.1.0");
    config.version_lock = "1.1.0".into();
    node.set_config(&config);
    node.updog(&["check-update"])
        .assert_fails_with("No update available: version_lock is 1.1.0, the running version");
    config.version_lock = "1.1.5".into();
    node.set_config(&config);
    node.updog(&["check-update"]).assert_fails_with(&format!(
        "No update available: version 1.1.5 is not offered for variant 'aws-dev', arch '{ARCH}'"
    ));
}

// ---- waves ------------------------------------------------------------------------------------

/// The waves of the chain's newest release, from `start` (default policy): {0: +1h, 20: +4h,
/// 102: +1d, 307: +2d, 819: +4d, 1228: +5d, 1843: +6d}.
struct WavedChain {
    _dir: tempfile::TempDir,
    server: FaultServer,
    start: DateTime<Utc>,
    waves: BTreeMap<u32, DateTime<Utc>>,
}

impl WavedChain {
    /// A chain whose waves started `ago` before now (negative: start in the future).
    fn started(ago: TimeDelta) -> Self {
        let start = Utc::now().trunc_subsecs(0) - ago;
        let dir = tempfile::tempdir().unwrap();
        let steps = support::chain_with_waves(dir.path(), start);
        let waves = support::chain_manifest(&steps[2]).updates[0].waves.clone();
        let server = FaultServer::serve(dir.path()).unwrap();
        Self {
            _dir: dir,
            server,
            start,
            waves,
        }
    }

    fn node(&self, version: &str, seed: u32) -> (Node, NodeConfig) {
        let repo = repo_fixtures::chain::FixtureRepo {
            dir: self._dir.path().join("chain-1.2.0"),
        };
        let (node, mut config) =
            Node::for_repo(&repo, Some(&self.server.base_url()), "aws-dev", version);
        config.seed = seed;
        node.set_config(&config);
        (node, config)
    }

    /// Runs check-update for a node at 1.1.0 with `seed`, cross-checking the answer with
    /// update-metadata's `update_ready` (evaluated just before and after the run).
    fn check(&self, seed: u32, args: &[&str]) -> support::Run {
        let (node, _) = self.node("1.1.0", seed);
        let before = update_metadata::update_ready(&self.waves, seed, Utc::now());
        let run = node.updog(&[&["check-update"][..], args].concat());
        let after = update_metadata::update_ready(&self.waves, seed, Utc::now());
        assert_eq!(
            before, after,
            "seed {seed}: the answer changed during the run"
        );
        if args.is_empty() {
            assert_eq!(run.code == Some(0), before, "seed {seed}: {run:#?}");
        }
        run
    }

    fn waiting(&self, seed: u32, ready_at: DateTime<Utc>) -> String {
        format!(
            "No update available: aws-dev 1.2.0 is in a later wave for this node (seed {seed}); it becomes available at {} (use --now to ignore waves)",
            ready_at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
        )
    }
}

fn hours(h: i64) -> TimeDelta {
    TimeDelta::hours(h)
}

#[test]
fn before_any_wave_only_seed_zero_is_offered_the_release() {
    let chain = WavedChain::started(-hours(24));
    assert_eq!(chain.waves[&0], chain.start + hours(1));
    // Seed 0 is the initial wave: ready at once.
    chain.check(0, &[]).assert_offers("aws-dev 1.2.0\n");
    // Seed 10 is in the 0..=20 wave (+1h to +4h, 9 min per seed): ready at +1h + 10 * 9 min.
    chain
        .check(10, &[])
        .assert_fails_with(&chain.waiting(10, chain.start + hours(1) + TimeDelta::minutes(90)));
    // --now, -n, --ignore-waves and ignore_waves = true all bypass the waves.
    for flag in ["--now", "-n", "--ignore-waves"] {
        chain.check(10, &[flag]).assert_offers("aws-dev 1.2.0\n");
    }
    let (node, mut config) = chain.node("1.1.0", 10);
    config.ignore_waves = true;
    node.set_config(&config);
    node.updog(&["check-update"])
        .assert_offers("aws-dev 1.2.0\n");
    // A node two releases behind still gets 1.1.0, which has no waves.
    let (older, _) = chain.node("1.0.0", 10);
    older
        .updog(&["check-update"])
        .assert_offers("aws-dev 1.1.0\n");
    // --all lists only what this node may take now.
    let run = older.updog(&["check-update", "--all", "--json"]);
    let listed: Vec<Update> = serde_json::from_str(&run.stdout).unwrap();
    let versions: Vec<String> = listed.iter().map(|u| u.version.to_string()).collect();
    assert_eq!(versions, ["1.1.0", "1.0.0"], "{run:#?}");
}

#[test]
fn inside_a_wave_each_node_waits_for_its_slot() {
    // now = start + 3h: the 0..=20 wave started at +1h and ends at +4h (9 min per seed).
    let chain = WavedChain::started(hours(3));
    // Seed 10's slot (+2h30) has passed.
    chain.check(10, &[]).assert_offers("aws-dev 1.2.0\n");
    // Seed 15's slot (+3h15) is 15 minutes away.
    chain
        .check(15, &[])
        .assert_fails_with(&chain.waiting(15, chain.start + hours(3) + TimeDelta::minutes(15)));
    // Seed 102's wave (20..=102, +4h to +1d) has not started; with the absolute-seed timing its
    // slot falls after the wave's end, so it is ready at +1d.
    chain
        .check(102, &[])
        .assert_fails_with(&chain.waiting(102, chain.start + hours(24)));
    // The last wave (above 1843) starts at +6d.
    chain
        .check(2000, &[])
        .assert_fails_with(&chain.waiting(2000, chain.start + hours(144)));
    chain
        .check(2000, &["--now"])
        .assert_offers("aws-dev 1.2.0\n");
}

#[test]
fn after_its_wave_and_in_a_started_last_wave_a_node_is_offered_the_release() {
    // now = start + 6d + 1h: every wave has started.
    let chain = WavedChain::started(hours(6 * 24 + 1));
    chain.check(1000, &[]).assert_offers("aws-dev 1.2.0\n");
    chain.check(2000, &[]).assert_offers("aws-dev 1.2.0\n");
    chain.check(2048, &[]).assert_offers("aws-dev 1.2.0\n");
}

#[test]
fn later_waves_keep_upstreams_absolute_seed_timing() {
    // now = start + 4d12h: the 819..=1228 wave (+4d to +5d) is half over. Seed 850 is 31 seeds
    // into it: relative timing would have made it ready ~1.8 h after the wave's start; upstream's
    // absolute timing (start + 211 s * 850) is past the wave's end, so it waits for +5d.
    let chain = WavedChain::started(hours(4 * 24 + 12));
    chain
        .check(850, &[])
        .assert_fails_with(&chain.waiting(850, chain.start + hours(5 * 24)));
    // Seed 300 is in the 102..=307 wave, which ended at +2d.
    chain.check(300, &[]).assert_offers("aws-dev 1.2.0\n");
}

#[test]
fn a_manifest_with_waves_at_one_time_is_read_and_used_as_upstream() {
    // Upstream's own updog test data has updates whose waves share a start time; its manifest
    // reading accepts them, and so must a node here (refusing would refuse the whole manifest).
    let past = Utc::now().trunc_subsecs(0) - hours(1);
    let future = Utc::now().trunc_subsecs(0) + hours(5);
    let mut aws = update("aws-dev", ARCH, "1.2.0", "1.2.0");
    aws.waves = BTreeMap::from([(0, past), (2047, past)]);
    let mut metal = update("metal-dev", ARCH, "1.2.0", "1.2.0");
    metal.waves = BTreeMap::from([(0, future), (20, future), (102, future)]);
    let dir = tempfile::tempdir().unwrap();
    let repo = support::custom_repo(
        &dir.path().join("repo"),
        &manifest(vec![aws, update("aws-dev", ARCH, "1.1.0", "1.2.0"), metal]),
    );
    let server = FaultServer::serve(dir.path()).unwrap();
    let (node, _) = Node::for_repo(&repo, Some(&server.base_url()), "aws-dev", "1.1.0");
    let rfc3339 = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);

    // Seed 1487 is in the wave (0, 2047], which starts and ends at `past`: offered.
    let run = node.updog(&["check-update"]);
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (Some(0), "aws-dev 1.2.0\n"),
        "{run:#?}"
    );
    for warning in [
        format!(
            "[WARN] updog::check: manifest.json: updates[0] (variant 'aws-dev', arch '{ARCH}', version '1.2.0'): \
             wave 2047 starts at {}, at the same time as wave 0 at {}",
            rfc3339(past),
            rfc3339(past)
        ),
        format!(
            "[WARN] updog::check: manifest.json: updates[2] (variant 'metal-dev', arch '{ARCH}', version \
             '1.2.0'): wave 20 starts at {}, at the same time as wave 0",
            rfc3339(future)
        ),
    ] {
        assert!(run.stderr.contains(&warning), "{warning}\n{run:#?}");
    }

    // A node of the other variant in the last wave (above 102) waits for its start.
    node.set_release("metal-dev", "1.1.0");
    node.updog(&["check-update"]).assert_fails_mentioning(&[&format!(
        "No update available: metal-dev 1.2.0 is in a later wave for this node (seed 1487); it becomes \
         available at {} (use --now to ignore waves)",
        rfc3339(future)
    )]);
    let run = node.updog(&["check-update", "--now"]);
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (Some(0), "metal-dev 1.2.0\n"),
        "{run:#?}"
    );
}

// ---- attacks, expiry, persisted trust -------------------------------------------------------------

#[test]
fn every_attack_repository_is_refused_with_a_message_naming_the_problem() {
    let server = serve_world();
    let base = server.base_url();
    let mut failures = Vec::new();
    for attack in &ATTACKS {
        let repo = world().repo(attack.name);
        let (node, _) = Node::for_repo(&repo, Some(&base), "aws-dev", "1.1.0");
        if attack.trusts_good_chain_first {
            let (metadata, targets) = support::served_urls(&base, &world().chain("1.2.0"));
            node.set_config(&NodeConfig::new(&metadata, &targets));
            node.updog(&["check-update"])
                .assert_offers("aws-dev 1.2.0\n");
            let (metadata, targets) = support::served_urls(&base, &repo);
            node.set_config(&NodeConfig::new(&metadata, &targets));
        }
        let run = node.updog(&["check-update"]);
        let words = support::attack_words(attack);
        let named = words.iter().all(|w| run.stderr.contains(w.as_str()));
        if run.code != Some(1) || !run.stdout.is_empty() || !named {
            failures.push(format!("{}: expected {words:?}, got {run:#?}", attack.name));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn an_expired_timestamp_gives_the_exact_message() {
    let server = serve_world();
    let (node, config) = Node::for_repo(
        &world().repo("expired-timestamp"),
        Some(&server.base_url()),
        "aws-dev",
        "1.1.0",
    );
    node.updog(&["check-update"]).assert_fails_with(&format!(
        "Failed to load the update repository at {}: The repository's timestamp metadata has expired; refusing it (expired metadata may be a freeze attack). The publisher must refresh the repository.",
        config.metadata_base_url
    ));
}

#[test]
fn a_stalled_timestamp_fails_after_the_stall_timeout_saying_it_timed_out() {
    // The server accepts the request, sends the headers and then nothing. tough's own transport
    // took 4 tries of 30 s and ended in "error decoding response body"; updog's fails after
    // stall_timeout_seconds, and says so.
    let server = serve_world();
    server.add_rule(Rule::new(
        PathMatch::suffix("timestamp.json"),
        Fault::StallAfter {
            bytes: 0,
            duration: Duration::from_secs(300),
            then: AfterStall::Continue,
        },
    ));
    let (node, mut config) = chain_node(&server, "aws-dev", "1.1.0");
    config.extra = "stall_timeout_seconds = 2\n".into();
    node.set_config(&config);
    let started = Instant::now();
    let run = node.updog(&["check-update"]);
    let took = started.elapsed();
    run.assert_fails_with(&format!(
        "Failed to load the update repository at {0}: Failed to fetch {0}timestamp.json: timed out: no data for \
         2 s (stall timeout) after byte 0; giving up",
        config.metadata_base_url
    ));
    // A bound on a hang, far above the 2 s it should take and far below tough's 150 s.
    assert!(took < Duration::from_secs(60), "check-update took {took:?}");
    assert_eq!(
        server.requests_for("timestamp.json").len(),
        1,
        "a stall is not retried"
    );
}

#[test]
fn a_trickling_timestamp_fails_within_the_window_as_too_slow() {
    // TUF's slow-retrieval attack: a byte every 10 ms never stalls, but is far below 1024 bytes per window.
    let server = serve_world();
    server.add_rule(Rule::new(
        PathMatch::suffix("timestamp.json"),
        Fault::RateLimit(100),
    ));
    let (node, mut config) = chain_node(&server, "aws-dev", "1.1.0");
    config.extra = "stall_timeout_seconds = 2\n".into();
    node.set_config(&config);
    let run = node.updog(&["check-update"]);
    run.assert_fails_mentioning(&[
        &format!(
            "Failed to load the update repository at {0}: Failed to fetch {0}timestamp.json: timed out: fewer \
             than 1024 bytes in 2 s (transfer too slow) after byte ",
            config.metadata_base_url
        ),
        "; giving up",
    ]);
    assert_eq!(server.requests_for("timestamp.json").len(), 1);
}

#[test]
fn a_redirect_to_another_host_is_refused_and_that_host_sees_no_request() {
    let server = serve_world();
    let elsewhere = serve_world();
    let (node, config) = chain_node(&server, "aws-dev", "1.1.0");
    let mut location = url::Url::parse(&config.metadata_base_url)
        .unwrap()
        .join("timestamp.json")
        .unwrap();
    location.set_port(Some(elsewhere.addr().port())).unwrap();
    server.add_rule(Rule::new(
        PathMatch::suffix("timestamp.json"),
        Fault::Redirect {
            status: 302,
            location: location.to_string(),
        },
    ));
    let run = node.updog(&["check-update"]);
    run.assert_fails_with(&format!(
        "Failed to load the update repository at {0}: Failed to fetch {0}timestamp.json: the server answered \
         HTTP 302 Found: the server redirected to {location}; updog follows no redirects: configure the final URL \
         in updog.toml",
        config.metadata_base_url
    ));
    // The query parameters (version, seed) never reached the other host.
    assert!(
        elsewhere.requests().is_empty(),
        "{:?}",
        elsewhere.requests()
    );
    assert_eq!(elsewhere.connections_accepted(), 0);
    assert_eq!(server.requests_for("timestamp.json").len(), 1);
}

/// A site whose `current/` is a symlink to one chain step, swappable between runs.
struct Site {
    dir: tempfile::TempDir,
}

impl Site {
    fn new(step: &str) -> Self {
        let site = Self {
            dir: tempfile::tempdir().unwrap(),
        };
        site.point_at(step);
        site
    }

    fn point_at(&self, step: &str) {
        let link = self.dir.path().join("current");
        let temp = self.dir.path().join("current.new");
        std::os::unix::fs::symlink(world().chain(step).dir, &temp).unwrap();
        std::fs::rename(&temp, &link).unwrap();
    }

    fn node(&self, base: &url::Url, version: &str) -> Node {
        let metadata = base.join("current/metadata/").unwrap();
        let targets = base.join("current/targets/").unwrap();
        Node::new(
            &world().chain("1.2.0").trusted_root(),
            "aws-dev",
            version,
            &NodeConfig::new(&metadata, &targets),
        )
    }
}

/// The version of `role` the node trusts; for the root, the newest of the chain it stored (`N.root.json`).
fn trusted_version(node: &Node, role: &str) -> u64 {
    let file = if role == "root" {
        let newest = std::fs::read_dir(node.datastore())
            .unwrap()
            .filter_map(|e| {
                e.unwrap()
                    .file_name()
                    .to_str()?
                    .strip_suffix(".root.json")?
                    .parse::<u64>()
                    .ok()
            })
            .max()
            .expect("a stored root");
        format!("{newest}.root.json")
    } else {
        format!("{role}.json")
    };
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(node.datastore().join(file)).unwrap()).unwrap();
    json["signed"]["version"].as_u64().unwrap()
}

/// The replay scenario over any server of the site: trust 1.2.0, then the same URL serves the
/// older (validly signed, unexpired) 1.1.0.
fn replay_of_older_metadata_is_refused(site: &Site, base: &url::Url) {
    let node = site.node(base, "1.0.0");
    node.updog(&["check-update"])
        .assert_offers("aws-dev 1.2.0\n");
    for role in ["timestamp", "snapshot", "targets"] {
        assert_eq!(trusted_version(&node, role), 3, "{role}");
    }

    site.point_at("1.1.0");
    node.updog(&["check-update"]).assert_fails_with(&format!(
        "Failed to load the update repository at {base}current/metadata/: Rollback refused: the repository offers timestamp metadata version 2, but this node already trusts version 3 (trust kept in {}). The repository was rolled back, or is replaying old metadata.",
        node.datastore().display()
    ));
    // The refused load did not lower the trust.
    assert_eq!(trusted_version(&node, "timestamp"), 3);

    // A node with no trust yet accepts the same repository (it is validly signed and unexpired).
    let fresh = site.node(base, "1.0.0");
    fresh
        .updog(&["check-update"])
        .assert_offers("aws-dev 1.1.0\n");
    assert_eq!(trusted_version(&fresh, "timestamp"), 2);

    // The newer state is accepted again.
    site.point_at("1.2.0");
    node.updog(&["check-update"])
        .assert_offers("aws-dev 1.2.0\n");
    fresh
        .updog(&["check-update"])
        .assert_offers("aws-dev 1.2.0\n");
}

#[test]
fn a_replay_of_older_metadata_after_newer_was_trusted_is_refused() {
    let site = Site::new("1.2.0");
    let server = FaultServer::serve(site.dir.path()).unwrap();
    replay_of_older_metadata_is_refused(&site, &server.base_url());
}

#[test]
fn a_replay_of_older_metadata_is_refused_through_nginx() {
    if !repo_fixtures::require::require_tool("nginx") {
        return;
    }
    let site = Site::new("1.2.0");
    let nginx = repo_fixtures::nginx::Nginx::serve(site.dir.path()).unwrap();
    replay_of_older_metadata_is_refused(&site, &nginx.base_url());
    // nginx logged the query parameters of every request.
    let log = std::fs::read_to_string(nginx.access_log_path()).unwrap();
    let requests: Vec<&str> = log.lines().filter(|l| l.contains("GET /")).collect();
    assert!(requests.len() >= 15, "{log}");
    for line in requests {
        assert!(
            line.contains("?seed=1487&version=1.0.0 "),
            "request without the query parameters: {line}"
        );
    }
}

#[test]
fn a_truncated_root_chain_cannot_take_back_a_rotated_key() {
    use repo_fixtures::keys::FixtureKey;
    use repo_fixtures::tuf_edit::{self, PublishedRoles};
    // chain-1.2.0 plus 2.root.json that rotates the timestamp key to root-3 (signed by the
    // unchanged root keys), with the timestamp re-signed by root-3.
    let dir = tempfile::tempdir().unwrap();
    let site = dir.path().join("site");
    let rotated = site.join("rotated");
    repo_fixtures::chain::copy_dir(&world().chain("1.2.0").dir, &rotated).unwrap();
    support::runtime().block_on(async {
        let metadata = rotated.join("metadata");
        repo_fixtures::chain::fixture_root_builder(repo_fixtures::chain::fixture_expiry(), 2)
            .await
            .unwrap()
            .role(
                tuftool_config::Role::Timestamp,
                repo_fixtures::chain::signing_keys(&[FixtureKey::Root3])
                    .await
                    .unwrap(),
                std::num::NonZeroU64::MIN,
            )
            .sign(repo_fixtures::chain::fixture_now())
            .await
            .unwrap()
            .write(metadata.join("2.root.json"))
            .unwrap();
        let mut roles = PublishedRoles::load(&metadata).unwrap();
        roles.timestamp.signed.version = roles.timestamp.signed.version.checked_add(1).unwrap();
        roles.timestamp = tuf_edit::sign_role(roles.timestamp.signed, &[FixtureKey::Root3])
            .await
            .unwrap();
        roles.publish_timestamp().unwrap();
    });
    let server = FaultServer::serve(&site).unwrap();
    let url = |p: &str| server.url_for(p);
    let node = Node::new(
        &world().chain("1.2.0").trusted_root(),
        "aws-dev",
        "1.1.0",
        &NodeConfig::new(&url("rotated/metadata/"), &url("rotated/targets/")),
    );
    node.updog(&["check-update"])
        .assert_offers("aws-dev 1.2.0\n");
    assert_eq!(trusted_version(&node, "root"), 2);

    // The repository drops 2.root.json and serves a timestamp signed with the old key again
    // (version 5, so only the key can refuse it). Upstream, starting from the shipped root v1
    // every time, would accept it; this node starts from the root it persisted.
    std::fs::remove_file(rotated.join("metadata/2.root.json")).unwrap();
    support::runtime().block_on(async {
        let metadata = rotated.join("metadata");
        let mut roles = PublishedRoles::load(&metadata).unwrap();
        roles.timestamp.signed.version = roles.timestamp.signed.version.checked_add(1).unwrap();
        roles.timestamp = tuf_edit::sign_role(roles.timestamp.signed, &[FixtureKey::Timestamp1])
            .await
            .unwrap();
        roles.publish_timestamp().unwrap();
    });
    node.updog(&["check-update"])
        .assert_fails_mentioning(&["Signature check failed for timestamp metadata"]);
    // A node without that history accepts it.
    let fresh = Node::new(
        &world().chain("1.2.0").trusted_root(),
        "aws-dev",
        "1.1.0",
        &NodeConfig::new(&url("rotated/metadata/"), &url("rotated/targets/")),
    );
    fresh
        .updog(&["check-update"])
        .assert_offers("aws-dev 1.2.0\n");
}

#[test]
fn a_clock_that_went_backwards_is_explained_with_the_file_to_remove() {
    let server = serve_world();
    let (node, config) = chain_node(&server, "aws-dev", "1.1.0");
    std::fs::create_dir_all(node.datastore()).unwrap();
    let file = node.datastore().join("latest_known_time.json");
    std::fs::write(&file, "\"2999-01-01T00:00:00Z\"").unwrap();
    let run = node.updog(&["check-update"]);
    run.assert_fails_mentioning(&[
        &format!(
            "Failed to load the update repository at {}",
            config.metadata_base_url
        ),
        "The system clock (",
        "is earlier than the latest time this node has seen (2999-01-01T00:00:00Z",
        &format!("remove {}.", file.display()),
    ]);
    assert!(server.requests().is_empty(), "nothing may be fetched");
    std::fs::remove_file(&file).unwrap();
    node.updog(&["check-update"])
        .assert_offers("aws-dev 1.2.0\n");
}

#[test]
fn a_root_planted_in_the_trust_store_is_never_an_anchor() {
    use repo_fixtures::keys::FixtureKey;
    let server = serve_world();
    let (node, _) = chain_node(&server, "aws-dev", "1.1.0");
    node.updog(&["check-update"])
        .assert_offers("aws-dev 1.2.0\n");
    // An attacker with write access to /var (not to the verity-protected ROOT) plants a root signed by its own
    // key, with a high version, where the previous trust code took its starting root from.
    let attacker_root = support::runtime().block_on(async {
        repo_fixtures::chain::fixture_root_builder(repo_fixtures::chain::fixture_expiry(), 9)
            .await
            .unwrap()
            .role(
                tuftool_config::Role::Root,
                repo_fixtures::chain::signing_keys(&[FixtureKey::Root3])
                    .await
                    .unwrap(),
                std::num::NonZeroU64::MIN,
            )
            .sign(repo_fixtures::chain::fixture_now())
            .await
            .unwrap()
    });
    let planted = node.datastore().join("root.json");
    attacker_root.write(&planted).unwrap();
    // It is ignored: trust starts from the shipped root and its verified chain.
    node.updog(&["check-update"])
        .assert_offers("aws-dev 1.2.0\n");
    // Planted as the next root of the chain, it does not chain from the shipped root: refused, named.
    std::fs::rename(&planted, node.datastore().join("2.root.json")).unwrap();
    node.updog(&["check-update"]).assert_fails_mentioning(&[
        "is damaged",
        "2.root.json",
        "does not chain from the shipped root",
        "To recover, remove",
    ]);
}

#[test]
fn a_damaged_trust_store_is_an_error_not_a_silent_reset_of_rollback_protection() {
    let server = serve_world();
    let (node, _) = chain_node(&server, "aws-dev", "1.1.0");
    node.updog(&["check-update"])
        .assert_offers("aws-dev 1.2.0\n");
    for role in ["timestamp", "snapshot"] {
        let file = node.datastore().join(format!("{role}.json"));
        let good = std::fs::read(&file).unwrap();
        std::fs::write(&file, &good[..good.len() / 3]).unwrap();
        node.updog(&["check-update"]).assert_fails_mentioning(&[
            "is damaged",
            &format!("{role}.json"),
            &format!("To recover, remove {}", node.datastore().display()),
        ]);
        std::fs::write(&file, &good).unwrap();
    }
    node.updog(&["check-update"])
        .assert_offers("aws-dev 1.2.0\n");
}

// ---- the lock ---------------------------------------------------------------------------------

#[test]
fn a_second_updog_fails_fast_naming_the_running_one() {
    let server = serve_world();
    let stall = server.add_rule(Rule::new(
        PathMatch::suffix("timestamp.json"),
        Fault::StallAfter {
            bytes: 0,
            duration: Duration::from_secs(25),
            then: AfterStall::Continue,
        },
    ));
    let (node, _) = chain_node(&server, "aws-dev", "1.1.0");
    let mut first = node.command(&["check-update"]).spawn().unwrap();
    let pid = first.id();

    // Wait until the first run holds the lock and is stuck on timestamp.json.
    let deadline = Instant::now() + Duration::from_secs(20);
    while server.requests_for("timestamp.json").is_empty() {
        assert!(
            Instant::now() < deadline,
            "the first updog never fetched timestamp.json"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let lock = node.path("run/abupdate/updog.lock");
    assert_eq!(std::fs::read_to_string(&lock).unwrap(), format!("{pid}\n"));

    let started = Instant::now();
    let second = node.updog(&["check-update"]);
    let took = started.elapsed();
    second.assert_fails_mentioning(&[
        &format!("updog's state (trusted TUF metadata and caches) is in use: pid {pid} ("),
        &format!("holds lock {}. Wait for it to finish.", lock.display()),
    ]);
    assert!(
        took < Duration::from_secs(5),
        "the second run waited {took:?}"
    );
    assert_eq!(
        server.requests_for("timestamp.json").len(),
        1,
        "the second run fetched"
    );

    // When the holder dies, the kernel releases the lock.
    first.kill().unwrap();
    first.wait().unwrap();
    server.remove_rule(stall);
    node.updog(&["check-update"])
        .assert_offers("aws-dev 1.2.0\n");
}

// ---- config and release errors, proxies -------------------------------------------------------------

#[test]
fn a_missing_or_malformed_config_names_the_file_and_key() {
    let server = serve_world();
    let (node, config) = chain_node(&server, "aws-dev", "1.1.0");
    let toml = node.path("etc/updog.toml");
    std::fs::remove_file(&toml).unwrap();
    node.updog(&["check-update"]).assert_fails_with(&format!(
        "Failed to read config file {}: No such file or directory (os error 2)",
        toml.display()
    ));

    std::fs::write(
        &toml,
        config.toml().replace("seed = 1487", "seed = \"lots\""),
    )
    .unwrap();
    node.updog(&["check-update"]).assert_fails_with(&format!(
        "Config file {}: key 'seed' must be an integer from 0 to 4294967295 (nodes use 0..2048), found \"lots\"",
        toml.display()
    ));

    std::fs::write(&toml, config.toml().replace("ignore_waves = false\n", "")).unwrap();
    node.updog(&["check-update"]).assert_fails_with(&format!(
        "Config file {}: missing key 'ignore_waves' (expected true or false)",
        toml.display()
    ));

    let ftp = "ftp://updates.example.com/metadata/";
    std::fs::write(&toml, config.toml().replace(&config.metadata_base_url, ftp)).unwrap();
    node.updog(&["check-update"]).assert_fails_with(&format!(
        "Config file {}: key 'metadata_base_url' must be an absolute URL string (http://, https:// or file://), \
         found '{ftp}' (scheme 'ftp' is not supported)",
        toml.display()
    ));

    std::fs::write(&toml, config.toml().replace("\"latest\"", "\"1.2\"")).unwrap();
    node.updog(&["check-update"]).assert_fails_with(&format!(
        "Config file {}: key 'version_lock' must be \"latest\" or a version like \"1.2.3\" or \"v1.2.3\", found \"1.2\"",
        toml.display()
    ));
    assert!(server.requests().is_empty());
}

#[test]
fn a_missing_or_malformed_os_release_names_the_file_and_key() {
    let server = serve_world();
    let (node, _) = chain_node(&server, "aws-dev", "1.1.0");
    let release = node.path("usr/lib/os-release");
    std::fs::write(&release, "VARIANT_ID=aws-dev\n").unwrap();
    node.updog(&["check-update"]).assert_fails_with(&format!(
        "Release file {}: missing key 'VERSION_ID' (expected the image's semantic version, e.g. VERSION_ID=1.2.3)",
        release.display()
    ));
    std::fs::write(&release, "VARIANT_ID=aws-dev\nVERSION_ID=\"1.1\"\n").unwrap();
    node.updog(&["check-update"])
        .assert_fails_mentioning(&[&format!(
            "Release file {}: key 'VERSION_ID' must be a semantic version like 1.2.3, found '1.1'",
            release.display()
        )]);
    // A lost closing quote is refused, not read as the variant `"aws-dev` or `aws-dev`.
    std::fs::write(&release, "VERSION_ID=1.1.0\nVARIANT_ID=\"aws-dev\n").unwrap();
    node.updog(&["check-update"]).assert_fails_with(&format!(
        "os-release file {}, line 2: the value of VARIANT_ID has an unterminated double quote (\"); a value \
         must close its quotes on its line",
        release.display()
    ));
    std::fs::remove_file(&release).unwrap();
    node.updog(&["check-update"]).assert_fails_with(&format!(
        "Failed to read os-release file {}: No such file or directory (os error 2)",
        release.display()
    ));
}

#[test]
fn a_missing_trusted_root_is_named() {
    let server = serve_world();
    let (node, config) = chain_node(&server, "aws-dev", "1.1.0");
    let root = node.path("usr/share/updog/root.json");
    std::fs::remove_file(&root).unwrap();
    node.updog(&["check-update"]).assert_fails_with(&format!(
        "Failed to load the update repository at {}: Failed to read trusted root {}: No such file or directory (os error 2)",
        config.metadata_base_url,
        root.display()
    ));
}

#[test]
fn usage_errors_exit_1() {
    let server = serve_world();
    let (node, _) = chain_node(&server, "aws-dev", "1.1.0");
    for args in [
        &[][..],
        &["prepare"][..],
        &["check-update", "--timestamp", "2020-01-01T00:00:00Z"][..],
        &["check-update", "--log-level", "loud"][..],
    ] {
        let run = node.updog(args);
        assert_eq!(
            (run.code, run.stdout.as_str()),
            (Some(1), ""),
            "{args:?}: {run:#?}"
        );
        assert!(!run.stderr.is_empty());
    }
    let help = node.updog(&["--help"]);
    assert_eq!(help.code, Some(0));
    assert!(help.stdout.contains("check-update"), "{help:#?}");
    assert!(server.requests().is_empty());
}

#[test]
fn log_level_debug_logs_on_stderr_and_keeps_stdout_clean() {
    let server = serve_world();
    let (node, _) = chain_node(&server, "aws-dev", "1.1.0");
    let run = node.updog(&["--log-level", "debug", "check-update", "--json"]);
    assert_eq!(run.code, Some(0), "{run:#?}");
    let update: Update = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(update.version, v("1.2.0"));
    assert!(run.stderr.contains("[DEBUG]"), "{run:#?}");
    let quiet = node.updog(&["--log-level", "error", "check-update"]);
    quiet.assert_offers("aws-dev 1.2.0\n");
}

#[test]
fn log_levels_are_read_in_any_case_and_off_is_accepted_as_upstream() {
    let server = serve_world();
    let (node, _) = chain_node(&server, "aws-dev", "1.1.0");
    let run = node.updog(&["--log-level", "Debug", "check-update"]);
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (Some(0), "aws-dev 1.2.0\n"),
        "{run:#?}"
    );
    assert!(run.stderr.contains("[DEBUG]"), "{run:#?}");
    for level in ["off", "OFF", "Warn", "ERROR"] {
        node.updog(&["check-update", "--log-level", level])
            .assert_offers("aws-dev 1.2.0\n");
    }
    let run = node.updog(&["check-update", "--log-level", "verbose"]);
    assert_eq!((run.code, run.stdout.as_str()), (Some(1), ""), "{run:#?}");
    assert!(
        run.stderr.contains(
            "invalid log level 'verbose' (expected off, error, warn, info, debug or trace, in any case)"
        ),
        "{run:#?}"
    );
}

/// A stand-in proxy: records the first line of each request, answers 502, closes.
struct RecordingProxy {
    addr: std::net::SocketAddr,
    seen: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl RecordingProxy {
    fn start() -> Self {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let record = std::sync::Arc::clone(&seen);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut line = String::new();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                if reader.read_line(&mut line).is_ok() {
                    record.lock().unwrap().push(line.trim_end().to_string());
                }
                let _ = stream.write_all(
                    b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
            }
        });
        Self { addr, seen }
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }

    /// Whether, among the requests after the first `since`, one asked to CONNECT to `host:443`.
    fn connected_to(&self, since: usize, host: &str) -> bool {
        let connect = format!("CONNECT {host}:443 HTTP/1.1");
        self.seen()[since..].contains(&connect)
    }
}

/// A node that trusts the chain's root and fetches from `https://{host}/metadata/` and
/// `…/targets/`, with `extra` appended to its updog.toml. Failed requests are not retried
/// (`download_retries = 0`): every request these tests make fails, and one try says enough.
fn https_node(node: Option<Node>, host: &str, extra: &str) -> Node {
    let metadata: url::Url = format!("https://{host}/metadata/").parse().unwrap();
    let targets: url::Url = format!("https://{host}/targets/").parse().unwrap();
    let mut config = NodeConfig::new(&metadata, &targets);
    config.extra = format!("download_retries = 0\n{extra}");
    match node {
        Some(node) => {
            node.set_config(&config);
            node
        }
        None => Node::new(
            &world().chain("1.2.0").trusted_root(),
            "aws-dev",
            "1.1.0",
            &config,
        ),
    }
}

/// A loopback address nothing listens on.
fn closed_port() -> std::net::SocketAddr {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    closed.local_addr().unwrap()
}

#[test]
fn https_proxy_and_no_proxy_from_updog_toml_are_used_as_upstream() {
    let proxy = RecordingProxy::start();

    // Through the proxy: the client asks it to CONNECT to the repository host (which need not
    // resolve, as only the proxy connects to it). check-update and update-image (which loads
    // the repository before it touches a disk) both go through it.
    let node = https_node(
        None,
        "updates.example.test",
        &format!("https_proxy = \"http://{}\"\n", proxy.addr),
    );
    // update-image needs the node's disk (it refuses before fetching on a disk it may not write).
    let disk = repo_fixtures::disk::DiskBuilder::new()
        .build(node.path("disk.img"))
        .unwrap();
    repo_fixtures::node::Node::new(node.path(""), &disk.path)
        .boot()
        .unwrap();
    let disk_arg = disk.path.to_str().unwrap();
    for command in ["check-update", "update-image"] {
        let before = proxy.seen().len();
        node.updog(&["--disk", disk_arg, command])
            .assert_fails_mentioning(&["Failed to load the update repository"]);
        assert!(
            proxy.connected_to(before, "updates.example.test"),
            "{command}: {:?}",
            proxy.seen()
        );
    }

    // A proxy without a scheme is an http:// proxy, as upstream (reqwest) takes it.
    let before = proxy.seen().len();
    let node = https_node(
        Some(node),
        "no-scheme.example.test",
        &format!("https_proxy = \"{}\"\n", proxy.addr),
    );
    node.updog(&["check-update"])
        .assert_fails_mentioning(&["Failed to load the update repository"]);
    assert!(
        proxy.connected_to(before, "no-scheme.example.test"),
        "{:?}",
        proxy.seen()
    );

    // no_proxy bypasses it: the request goes straight to the (closed) port.
    let before = proxy.seen().len();
    let node = https_node(
        Some(node),
        &closed_port().to_string(),
        &format!(
            "https_proxy = \"http://{}\"\nno_proxy = [\"localhost\", \"127.0.0.1\"]\n",
            proxy.addr
        ),
    );
    node.updog(&["check-update"])
        .assert_fails_mentioning(&["Failed to load the update repository"]);
    assert_eq!(proxy.seen().len(), before, "{:?}", proxy.seen());
}

#[test]
fn the_environments_proxy_applies_only_where_updog_toml_sets_none() {
    let env_proxy = RecordingProxy::start();
    let toml_proxy = RecordingProxy::start();
    let env_proxy_url = format!("http://{}", env_proxy.addr);
    let run = |node: &Node, env: &[(&str, &str)]| {
        let mut command = node.command(&["check-update"]);
        command.envs(env.iter().copied());
        support::Run::from(command.output().unwrap())
    };

    // No proxy in updog.toml: HTTPS_PROXY from the environment is used, as upstream.
    let node = https_node(None, "updates.example.test", "");
    run(&node, &[("HTTPS_PROXY", &env_proxy_url)])
        .assert_fails_mentioning(&["Failed to load the update repository"]);
    assert!(
        env_proxy.connected_to(0, "updates.example.test"),
        "{:?}",
        env_proxy.seen()
    );

    // updog.toml's proxy wins over the environment's (upstream overwrites HTTPS_PROXY).
    let env_seen = env_proxy.seen().len();
    let node = https_node(
        Some(node),
        "updates.example.test",
        &format!("https_proxy = \"http://{}\"\n", toml_proxy.addr),
    );
    run(&node, &[("HTTPS_PROXY", &env_proxy_url)])
        .assert_fails_mentioning(&["Failed to load the update repository"]);
    assert!(
        toml_proxy.connected_to(0, "updates.example.test"),
        "{:?}",
        toml_proxy.seen()
    );
    assert_eq!(env_proxy.seen().len(), env_seen, "{:?}", env_proxy.seen());

    // updog.toml gives a proxy but no no_proxy: the environment's NO_PROXY still applies
    // (upstream leaves it alone then).
    let toml_seen = toml_proxy.seen().len();
    let node = https_node(
        Some(node),
        &closed_port().to_string(),
        &format!("https_proxy = \"http://{}\"\n", toml_proxy.addr),
    );
    run(&node, &[("NO_PROXY", "127.0.0.1")])
        .assert_fails_mentioning(&["Failed to load the update repository"]);
    assert_eq!(
        toml_proxy.seen().len(),
        toml_seen,
        "{:?}",
        toml_proxy.seen()
    );
}

#[test]
fn a_link_or_a_foreign_directory_at_the_lock_is_refused_and_nothing_is_written_through_it() {
    use std::os::unix::fs::{PermissionsExt, symlink};
    let dir = tempfile::tempdir().unwrap();
    let sysroot = dir.path().join("sysroot");
    // Whatever planted these (a mistake, a restored backup, a compromised service): nothing is written through them.
    let run = sysroot.join("run");
    std::fs::create_dir_all(&run).unwrap();
    let victim = dir.path().join("shadow");
    std::fs::write(&victim, "root:secret\n").unwrap();

    // A symlink where the lock file goes.
    let lock_dir = run.join("abupdate");
    std::fs::create_dir(&lock_dir).unwrap();
    let lock = lock_dir.join("updog.lock");
    symlink(&victim, &lock).unwrap();
    for command in ["check-update", "update-revert", "update-image"] {
        let run = support::run_updog(&sysroot, &[command]);
        run.assert_fails_with(&format!(
            "Refusing lock file {}: it is a symbolic link",
            lock.display()
        ));
    }
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "root:secret\n");

    // The lock directory itself replaced by a link, or made writable by others.
    std::fs::remove_file(&lock).unwrap();
    std::fs::remove_dir(&lock_dir).unwrap();
    symlink(dir.path(), &lock_dir).unwrap();
    support::run_updog(&sysroot, &["check-update"]).assert_fails_with(&format!(
        "Refusing lock directory {}: it is a symbolic link",
        lock_dir.display()
    ));
    std::fs::remove_file(&lock_dir).unwrap();
    std::fs::create_dir(&lock_dir).unwrap();
    std::fs::set_permissions(&lock_dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    support::run_updog(&sysroot, &["check-update"]).assert_fails_with(&format!(
        "Refusing lock directory {}: others can write it (mode 777); it must be writable by its owner only",
        lock_dir.display()
    ));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "root:secret\n");
    assert_eq!(std::fs::read_dir(&lock_dir).unwrap().count(), 0);
}

#[test]
fn a_fifo_or_a_device_at_the_config_or_os_release_is_refused_at_once_not_read_forever() {
    let dir = tempfile::tempdir().unwrap();
    let sysroot = dir.path();
    std::fs::create_dir_all(sysroot.join("etc")).unwrap();
    std::fs::create_dir_all(sysroot.join("usr/lib")).unwrap();
    let mkfifo = |path: &std::path::Path| {
        let status = std::process::Command::new("mkfifo")
            .arg(path)
            .status()
            .unwrap();
        assert!(status.success());
    };
    // A FIFO with no writer would block a plain open forever; /dev/zero would be read forever.
    mkfifo(&sysroot.join("etc/updog.toml"));
    for command in ["check-update", "update-image", "update-revert"] {
        let started = Instant::now();
        let run = support::run_updog(sysroot, &[command]);
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{command} hung"
        );
        if command == "update-revert" {
            // update-revert ignores a broken updog.toml (it needs none) and goes on to look for the disk.
            assert!(run.stderr.contains("not a regular file"), "{run:?}");
            continue;
        }
        run.assert_fails_mentioning(&["etc/updog.toml", "not a regular file"]);
    }
    std::fs::remove_file(sysroot.join("etc/updog.toml")).unwrap();
    let config = NodeConfig::new(
        &url::Url::parse("http://127.0.0.1:9/metadata/").unwrap(),
        &url::Url::parse("http://127.0.0.1:9/targets/").unwrap(),
    );
    std::fs::write(sysroot.join("etc/updog.toml"), config.toml()).unwrap();
    std::os::unix::fs::symlink("/dev/zero", sysroot.join("usr/lib/os-release")).unwrap();
    let run = support::run_updog(sysroot, &["check-update"]);
    run.assert_fails_mentioning(&["usr/lib/os-release", "not a regular file"]);
}

#[test]
fn repository_credentials_in_a_url_never_reach_the_logs_or_errors() {
    let mut config = NodeConfig::new(
        &url::Url::parse(&format!("http://admin:s3cret@{}/metadata/", closed_port())).unwrap(),
        &url::Url::parse(&format!("http://admin:s3cret@{}/targets/", closed_port())).unwrap(),
    );
    config.extra = "download_retries = 1\n".into();
    let node = Node::new(
        &world().chain("1.2.0").trusted_root(),
        "aws-dev",
        "1.1.0",
        &config,
    );
    let run = node.updog(&["--log-level", "debug", "check-update"]);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        run.stderr.contains("admin:***@"),
        "the URL is still named: {run:?}"
    );
    assert!(!run.stderr.contains("s3cret"), "{}", run.stderr);
}
