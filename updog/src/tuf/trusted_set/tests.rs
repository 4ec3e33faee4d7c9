//! The trust rules of §5.3–§5.6, one by one, over metadata signed in the test with the fixture keys. The helpers
//! are `pub(crate)` for the workflow's tests.

use super::*;
use repo_fixtures::keys::FixtureKey;
use serde_json::{Value, json};

/// A signed part of any role, signed as given (tough's canonical form of exactly this JSON).
#[derive(Debug, Clone, serde::Serialize)]
#[serde(transparent)]
pub(crate) struct RawRole(pub Value);

impl tough::schema::Role for RawRole {
    const TYPE: tough::schema::RoleType = tough::schema::RoleType::Targets;
    fn expires(&self) -> jiff::Timestamp {
        jiff::Timestamp::MAX
    }
    fn version(&self) -> std::num::NonZeroU64 {
        std::num::NonZeroU64::MIN
    }
    fn filename(&self, _: bool) -> String {
        String::new()
    }
}

/// `signed` signed by `keys`, as file bytes.
pub(crate) fn sign(signed: &Value, keys: &[FixtureKey]) -> Vec<u8> {
    let role = futures::executor::block_on(repo_fixtures::tuf_edit::sign_role(
        RawRole(signed.clone()),
        keys,
    ))
    .expect("fixture keys sign");
    serde_json::to_vec_pretty(&role).expect("serializable")
}

pub(crate) fn key_id(key: FixtureKey) -> String {
    key.key_id().expect("fixture key id")
}

/// The public key entry of `key` as root.json lists it.
pub(crate) fn public_key(key: FixtureKey) -> Value {
    serde_json::to_value(key.signer().expect("fixture key").tuf_key()).expect("serializable key")
}

pub(crate) fn far_future() -> String {
    "2099-01-01T00:00:00Z".into()
}

pub(crate) fn now() -> DateTime<Utc> {
    "2026-06-01T00:00:00Z".parse().expect("a time")
}

/// A root (signed part) of `version` where each top-level role has the given keys and threshold 1 (root: all of
/// `root_keys`, threshold `root_threshold`).
pub(crate) fn root_value(
    version: u64,
    expires: &str,
    root_keys: &[FixtureKey],
    root_threshold: u64,
) -> Value {
    let mut keys = serde_json::Map::new();
    let all = root_keys.iter().chain(&[
        FixtureKey::Targets1,
        FixtureKey::Snapshot1,
        FixtureKey::Timestamp1,
    ]);
    for &key in all {
        keys.insert(key_id(key), public_key(key));
    }
    let ids = |ks: &[FixtureKey]| ks.iter().map(|&k| key_id(k)).collect::<Vec<_>>();
    json!({
        "_type": "root",
        "spec_version": "1.0.31",
        "consistent_snapshot": true,
        "version": version,
        "expires": expires,
        "keys": keys,
        "roles": {
            "root": {"keyids": ids(root_keys), "threshold": root_threshold},
            "targets": {"keyids": ids(&[FixtureKey::Targets1]), "threshold": 1},
            "snapshot": {"keyids": ids(&[FixtureKey::Snapshot1]), "threshold": 1},
            "timestamp": {"keyids": ids(&[FixtureKey::Timestamp1]), "threshold": 1},
        }
    })
}

pub(crate) fn meta_entry(bytes: &[u8], version: u64) -> Value {
    use sha2::Digest;
    json!({
        "version": version,
        "length": bytes.len(),
        "hashes": {"sha256": hex::encode(sha2::Sha256::digest(bytes))},
    })
}

pub(crate) fn timestamp_value(
    version: u64,
    expires: &str,
    snapshot: &[u8],
    snapshot_version: u64,
) -> Value {
    json!({
        "_type": "timestamp", "spec_version": "1.0.31", "version": version, "expires": expires,
        "meta": {"snapshot.json": meta_entry(snapshot, snapshot_version)},
    })
}

pub(crate) fn snapshot_value(version: u64, expires: &str, roles: &[(&str, &[u8], u64)]) -> Value {
    let meta: serde_json::Map<_, _> = roles
        .iter()
        .map(|(name, bytes, v)| (format!("{name}.json"), meta_entry(bytes, *v)))
        .collect();
    json!({"_type": "snapshot", "spec_version": "1.0.31", "version": version, "expires": expires, "meta": meta})
}

#[allow(clippy::needless_pass_by_value)] // callers pass json!(…) literals
pub(crate) fn targets_value(
    version: u64,
    expires: &str,
    targets: Value,
    delegations: Option<Value>,
) -> Value {
    let mut v = json!({
        "_type": "targets", "spec_version": "1.0.31", "version": version, "expires": expires, "targets": targets,
    });
    if let Some(d) = delegations {
        v["delegations"] = d;
    }
    v
}

/// A consistent repository state: root v1, targets/snapshot/timestamp of the given versions.
pub(crate) struct State {
    pub root: Vec<u8>,
    pub targets: Vec<u8>,
    pub snapshot: Vec<u8>,
    pub timestamp: Vec<u8>,
}

pub(crate) fn state(timestamp: u64, snapshot: u64, targets: u64) -> State {
    let root = sign(
        &root_value(1, &far_future(), &[FixtureKey::Root1], 1),
        &[FixtureKey::Root1],
    );
    let targets_bytes = sign(
        &targets_value(targets, &far_future(), json!({}), None),
        &[FixtureKey::Targets1],
    );
    let snapshot_bytes = sign(
        &snapshot_value(
            snapshot,
            &far_future(),
            &[("targets", &targets_bytes, targets)],
        ),
        &[FixtureKey::Snapshot1],
    );
    let timestamp_bytes = sign(
        &timestamp_value(timestamp, &far_future(), &snapshot_bytes, snapshot),
        &[FixtureKey::Timestamp1],
    );
    State {
        root,
        targets: targets_bytes,
        snapshot: snapshot_bytes,
        timestamp: timestamp_bytes,
    }
}

fn loaded(s: &State) -> TrustedSet {
    let mut set = TrustedSet::new(&s.root, now()).unwrap();
    set.check_root_expiry().unwrap();
    assert_eq!(
        set.update_timestamp(&s.timestamp),
        Ok(TimestampUpdate::Updated)
    );
    set.update_snapshot(&s.snapshot, false).unwrap();
    set.update_targets(TARGETS, "root", &s.targets).unwrap();
    set
}

#[test]
fn a_consistent_repository_loads_and_keeps_the_bytes_it_verified() {
    let s = state(1, 1, 1);
    let set = loaded(&s);
    assert_eq!(set.timestamp().unwrap().bytes, s.timestamp);
    assert_eq!(set.snapshot().unwrap().bytes, s.snapshot);
    assert_eq!(set.targets(TARGETS).unwrap().bytes, s.targets);
}

#[test]
fn the_initial_root_must_be_signed_by_its_own_keys() {
    let unsigned = sign(
        &root_value(1, &far_future(), &[FixtureKey::Root1], 1),
        &[FixtureKey::Root2],
    );
    let err = TrustedSet::new(&unsigned, now()).unwrap_err();
    assert!(
        matches!(err, TrustError::Signature { ref role, .. } if role == "root"),
        "{err}"
    );
    assert!(
        err.to_string().contains("0 valid signature(s), 1 required"),
        "{err}"
    );
}

#[test]
fn a_root_rotation_needs_the_old_and_the_new_threshold_and_exactly_the_next_version() {
    let s = state(1, 1, 1);
    let v2 = root_value(2, &far_future(), &[FixtureKey::Root2], 1);
    // Signed by the new key only: the trusted root's keys did not vouch for it.
    let mut set = TrustedSet::new(&s.root, now()).unwrap();
    let err = set
        .update_root(&sign(&v2, &[FixtureKey::Root2]))
        .unwrap_err();
    assert!(matches!(err, TrustError::Signature { .. }), "{err}");
    // Signed by the old key only: the new root's own keys did not.
    let err = set
        .update_root(&sign(&v2, &[FixtureKey::Root1]))
        .unwrap_err();
    assert!(matches!(err, TrustError::Signature { .. }), "{err}");
    // Version 3 where 2 is due.
    let v3 = root_value(3, &far_future(), &[FixtureKey::Root2], 1);
    let err = set
        .update_root(&sign(&v3, &[FixtureKey::Root1, FixtureKey::Root2]))
        .unwrap_err();
    assert_eq!(
        err,
        TrustError::RootVersion {
            trusted: 1,
            offered: 3
        }
    );
    assert!(
        err.to_string().contains("2.root.json is version 3"),
        "{err}"
    );
    // Both: accepted.
    set.update_root(&sign(&v2, &[FixtureKey::Root1, FixtureKey::Root2]))
        .unwrap();
    assert_eq!(set.root().meta.version, 2);
    // The same version again is not the next one.
    let err = set
        .update_root(&sign(&v2, &[FixtureKey::Root2]))
        .unwrap_err();
    assert_eq!(
        err,
        TrustError::RootVersion {
            trusted: 2,
            offered: 2
        }
    );
}

#[test]
fn an_expired_intermediate_root_is_fine_but_the_final_root_must_not_be_expired() {
    let s = state(1, 1, 1);
    let mut set = TrustedSet::new(&s.root, now()).unwrap();
    let expired = root_value(2, "2020-01-01T00:00:00Z", &[FixtureKey::Root1], 1);
    set.update_root(&sign(&expired, &[FixtureKey::Root1]))
        .unwrap();
    assert_eq!(
        set.check_root_expiry(),
        Err(TrustError::Expired {
            role: "root".into()
        })
    );
    let fresh = root_value(3, &far_future(), &[FixtureKey::Root1], 1);
    set.update_root(&sign(&fresh, &[FixtureKey::Root1]))
        .unwrap();
    set.check_root_expiry().unwrap();
}

#[test]
fn an_older_timestamp_or_one_naming_an_older_snapshot_is_a_rollback() {
    let new = state(3, 3, 3);
    let old = state(2, 2, 2);
    let mut set = TrustedSet::new(&new.root, now()).unwrap();
    set.update_timestamp(&new.timestamp).unwrap();
    assert_eq!(
        set.update_timestamp(&old.timestamp),
        Err(TrustError::Rollback {
            role: "timestamp".into(),
            trusted: 3,
            offered: 2
        })
    );
    // A newer timestamp that names an older snapshot.
    let sneaky = sign(
        &timestamp_value(4, &far_future(), &old.snapshot, 2),
        &[FixtureKey::Timestamp1],
    );
    assert_eq!(
        set.update_timestamp(&sneaky),
        Err(TrustError::Rollback {
            role: "snapshot".into(),
            trusted: 3,
            offered: 2
        })
    );
    assert_eq!(
        set.timestamp().unwrap().bytes,
        new.timestamp,
        "the trusted timestamp is kept"
    );
}

#[test]
fn a_same_version_timestamp_with_other_content_keeps_the_trusted_one() {
    let s = state(3, 3, 3);
    let other = state(3, 4, 4);
    assert_ne!(s.timestamp, other.timestamp);
    let mut set = TrustedSet::new(&s.root, now()).unwrap();
    set.update_timestamp(&s.timestamp).unwrap();
    assert_eq!(
        set.update_timestamp(&other.timestamp),
        Ok(TimestampUpdate::KeptTrusted)
    );
    assert_eq!(set.timestamp().unwrap().bytes, s.timestamp);
    assert_eq!(
        set.snapshot_listing().unwrap().version,
        3,
        "its snapshot is not followed"
    );
}

#[test]
fn an_expired_timestamp_is_refused_but_stays_for_rollback_checks() {
    let s = state(5, 5, 5);
    let expired = sign(
        &timestamp_value(5, "2020-01-01T00:00:00Z", &s.snapshot, 5),
        &[FixtureKey::Timestamp1],
    );
    let mut set = TrustedSet::new(&s.root, now()).unwrap();
    assert_eq!(
        set.update_timestamp(&expired),
        Err(TrustError::Expired {
            role: "timestamp".into()
        })
    );
    let older = state(4, 4, 4);
    assert!(matches!(
        set.update_timestamp(&older.timestamp),
        Err(TrustError::Rollback { .. })
    ));
    // And the snapshot it names cannot be loaded on an expired timestamp.
    assert_eq!(
        set.update_snapshot(&s.snapshot, false),
        Err(TrustError::Expired {
            role: "timestamp".into()
        })
    );
}

#[test]
fn a_snapshot_must_match_the_timestamps_listing_unless_it_is_the_nodes_own_copy() {
    let s = state(2, 2, 2);
    let other = state(2, 2, 3);
    let mut set = TrustedSet::new(&s.root, now()).unwrap();
    set.update_timestamp(&s.timestamp).unwrap();
    let err = set.update_snapshot(&other.snapshot, false).unwrap_err();
    assert!(
        matches!(err, TrustError::HashMismatch { ref role, .. } if role == "snapshot"),
        "{err}"
    );
    // From the local store the listing's hashes are not checked (a newer timestamp lists a newer snapshot), but
    // the version still is.
    let mut set = TrustedSet::new(&s.root, now()).unwrap();
    set.update_timestamp(&s.timestamp).unwrap();
    set.update_snapshot(&other.snapshot, true).unwrap();
    let newer = state(3, 3, 3);
    let mut set = TrustedSet::new(&s.root, now()).unwrap();
    set.update_timestamp(&newer.timestamp).unwrap();
    assert_eq!(
        set.update_snapshot(&s.snapshot, true),
        Err(TrustError::VersionMismatch {
            role: "snapshot".into(),
            fetched: 2,
            expected: 3
        })
    );
    // ... it stays as intermediate: the repository's own snapshot v3 is then checked against it.
    set.update_snapshot(&newer.snapshot, false).unwrap();
}

#[test]
fn a_snapshot_that_lowers_or_drops_a_role_version_is_a_rollback() {
    let s = state(3, 3, 5);
    let mut set = TrustedSet::new(&s.root, now()).unwrap();
    set.update_timestamp(&s.timestamp).unwrap();
    set.update_snapshot(&s.snapshot, true).unwrap();
    // A newer snapshot listing targets version 4.
    let targets4 = sign(
        &targets_value(4, &far_future(), json!({}), None),
        &[FixtureKey::Targets1],
    );
    let snapshot4 = sign(
        &snapshot_value(4, &far_future(), &[("targets", &targets4, 4)]),
        &[FixtureKey::Snapshot1],
    );
    let timestamp4 = sign(
        &timestamp_value(4, &far_future(), &snapshot4, 4),
        &[FixtureKey::Timestamp1],
    );
    // The timestamp cannot be replaced once a snapshot is loaded: the workflow loads the timestamp first.
    assert!(matches!(
        set.update_timestamp(&timestamp4),
        Err(TrustError::OutOfOrder { .. })
    ));
    let mut set = TrustedSet::new(&s.root, now()).unwrap();
    set.update_timestamp(&s.timestamp).unwrap();
    set.update_snapshot(&s.snapshot, true).unwrap();
    // Snapshot is trusted (v3, targets v5); a v4 snapshot with targets v4 is offered under a v4 timestamp.
    let mut set2 = TrustedSet::new(&s.root, now()).unwrap();
    set2.update_timestamp(&s.timestamp).unwrap();
    set2.update_snapshot(&s.snapshot, true).unwrap();
    set2.timestamp = Some(parse_file(&timestamp4, "timestamp").unwrap());
    assert_eq!(
        set2.update_snapshot(&snapshot4, false),
        Err(TrustError::Rollback {
            role: "targets".into(),
            trusted: 5,
            offered: 4
        })
    );
    // A snapshot that drops a listed role.
    let dropped = sign(
        &snapshot_value(4, &far_future(), &[]),
        &[FixtureKey::Snapshot1],
    );
    let timestamp_dropped = sign(
        &timestamp_value(4, &far_future(), &dropped, 4),
        &[FixtureKey::Timestamp1],
    );
    set.timestamp = Some(parse_file(&timestamp_dropped, "timestamp").unwrap());
    assert_eq!(
        set.update_snapshot(&dropped, false),
        Err(TrustError::RoleRemoved {
            role: "targets".into()
        })
    );
}

#[test]
fn targets_must_be_listed_match_the_listing_and_be_signed_by_the_targets_keys() {
    let s = state(1, 1, 1);
    let mut set = TrustedSet::new(&s.root, now()).unwrap();
    set.update_timestamp(&s.timestamp).unwrap();
    set.update_snapshot(&s.snapshot, false).unwrap();
    let other = sign(
        &targets_value(
            1,
            &far_future(),
            json!({"x": {"length": 1, "hashes": {}}}),
            None,
        ),
        &[FixtureKey::Targets1],
    );
    assert!(matches!(
        set.update_targets(TARGETS, "root", &other),
        Err(TrustError::HashMismatch { .. })
    ));
    assert!(matches!(
        set.update_targets("elsewhere", TARGETS, &s.targets),
        Err(TrustError::NotInSnapshot { .. })
    ));
    set.update_targets(TARGETS, "root", &s.targets).unwrap();
}

#[test]
fn a_targets_version_other_than_the_snapshots_is_refused() {
    let targets = sign(
        &targets_value(2, &far_future(), json!({}), None),
        &[FixtureKey::Targets1],
    );
    // The snapshot lists version 3 with these very bytes (so only the version differs).
    let snapshot = sign(
        &snapshot_value(1, &far_future(), &[("targets", &targets, 3)]),
        &[FixtureKey::Snapshot1],
    );
    let timestamp = sign(
        &timestamp_value(1, &far_future(), &snapshot, 1),
        &[FixtureKey::Timestamp1],
    );
    let s = state(1, 1, 1);
    let mut set = TrustedSet::new(&s.root, now()).unwrap();
    set.update_timestamp(&timestamp).unwrap();
    set.update_snapshot(&snapshot, false).unwrap();
    assert_eq!(
        set.update_targets(TARGETS, "root", &targets),
        Err(TrustError::VersionMismatch {
            role: "targets".into(),
            fetched: 2,
            expected: 3
        })
    );
}

/// A repository whose top-level targets delegate `role` (paths `paths`) to the Targets2 key.
pub(crate) fn delegating_state(role: &str, delegated_targets: Value) -> (State, Vec<u8>) {
    let delegated = sign(
        &targets_value(1, &far_future(), delegated_targets, None),
        &[FixtureKey::Targets2],
    );
    let delegations = json!({
        "keys": {key_id(FixtureKey::Targets2): public_key(FixtureKey::Targets2)},
        "roles": [{"name": role, "keyids": [key_id(FixtureKey::Targets2)], "threshold": 1,
                   "terminating": false, "paths": ["*.json"]}],
    });
    let targets = sign(
        &targets_value(1, &far_future(), json!({}), Some(delegations)),
        &[FixtureKey::Targets1],
    );
    let snapshot = sign(
        &snapshot_value(
            1,
            &far_future(),
            &[("targets", &targets, 1), (role, &delegated, 1)],
        ),
        &[FixtureKey::Snapshot1],
    );
    let timestamp = sign(
        &timestamp_value(1, &far_future(), &snapshot, 1),
        &[FixtureKey::Timestamp1],
    );
    let root = state(1, 1, 1).root;
    (
        State {
            root,
            targets,
            snapshot,
            timestamp,
        },
        delegated,
    )
}

#[test]
fn a_delegated_role_is_verified_with_its_delegators_keys() {
    let (s, delegated) = delegating_state("a/../../b?#", json!({}));
    let mut set = loaded(&s);
    assert!(matches!(
        set.update_targets("other", TARGETS, &delegated),
        Err(TrustError::NotInSnapshot { .. })
    ));
    set.update_targets("a/../../b?#", TARGETS, &delegated)
        .unwrap();
    // Signed by the top-level targets key instead of the delegated one: refused.
    let (s, _) = delegating_state("d", json!({}));
    let mut set = loaded(&s);
    let forged = sign(
        &targets_value(1, &far_future(), json!({}), None),
        &[FixtureKey::Targets1],
    );
    // (listed with the forged bytes' hash, so only the signature is wrong)
    let snapshot = set.snapshot.as_mut().unwrap();
    snapshot.meta.meta.insert(
        "d.json".into(),
        serde_json::from_value(meta_entry(&forged, 1)).unwrap(),
    );
    assert!(matches!(
        set.update_targets("d", TARGETS, &forged),
        Err(TrustError::Signature { ref role, .. }) if role == "d"
    ));
}

#[test]
fn key_ids_need_not_be_the_hash_of_the_key_and_extra_fields_are_signed_as_received() {
    let mut root = root_value(1, &far_future(), &[FixtureKey::Root1], 1);
    // Re-key the root key under an arbitrary hex id, as python-tuf allows.
    let id = key_id(FixtureKey::Root1);
    let key = root["keys"][&id].take();
    root["keys"].as_object_mut().unwrap().remove(&id);
    root["keys"]["abcdef"] = key;
    root["roles"]["root"]["keyids"] = json!(["abcdef"]);
    root["x-extra"] = json!({"b": 1, "a": [1, 2]});
    let signed = futures::executor::block_on(repo_fixtures::tuf_edit::sign_role(
        RawRole(root),
        &[FixtureKey::Root1],
    ))
    .unwrap();
    let mut file = serde_json::to_value(&signed).unwrap();
    file["signatures"][0]["keyid"] = json!("abcdef");
    let bytes = serde_json::to_vec(&file).unwrap();
    TrustedSet::new(&bytes, now()).unwrap();
    // Changing an extra field breaks the signature.
    file["signed"]["x-extra"]["b"] = json!(2);
    let err = TrustedSet::new(&serde_json::to_vec(&file).unwrap(), now()).unwrap_err();
    assert!(matches!(err, TrustError::Signature { .. }), "{err}");
}

#[test]
fn hashes_every_supported_algorithm_at_least_one_known() {
    use sha2::Digest;
    let data = b"payload";
    let sha256 = hex::encode(sha2::Sha256::digest(data));
    let sha512 = hex::encode(sha2::Sha512::digest(data));
    let map = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(a, h)| ((*a).to_string(), (*h).to_string()))
            .collect()
    };
    schema::check_length_and_hashes(data, Some(7), Some(&map(&[("sha512", &sha512)]))).unwrap();
    schema::check_length_and_hashes(
        data,
        Some(7),
        Some(&map(&[("sha256", &sha256), ("sha512", &sha512)])),
    )
    .unwrap();
    // A wrong sha512 beside a right sha256 is still a mismatch.
    let err = schema::check_length_and_hashes(
        data,
        None,
        Some(&map(&[("sha256", &sha256), ("sha512", &sha256)])),
    )
    .unwrap_err();
    assert!(err.starts_with("sha512 is"), "{err}");
    let err =
        schema::check_length_and_hashes(data, None, Some(&map(&[("md5", "00")]))).unwrap_err();
    assert!(
        err.contains("none of the listed hash algorithms (md5)"),
        "{err}"
    );
    let err = schema::check_length_and_hashes(data, Some(8), None).unwrap_err();
    assert_eq!(err, "7 bytes where 8 were listed");
}

#[test]
fn malformed_metadata_is_named() {
    for (bytes, want) in [
        (&b"not json"[..], "not a TUF metadata file"),
        (
            br#"{"signed": [], "signatures": []}"#,
            "\"signed\" is not an object",
        ),
        (
            br#"{"signed": {"_type": "targets"}, "signatures": []}"#,
            "\"_type\" is \"targets\", expected \"root\"",
        ),
        (
            br#"{"signed": {"_type": "root", "spec_version": "2.0.0"}, "signatures": []}"#,
            "unsupported spec_version",
        ),
    ] {
        let err = TrustedSet::new(bytes, now()).unwrap_err();
        assert!(err.to_string().contains(want), "{err}");
    }
}

#[test]
fn key_rotation_of_a_role_is_detected() {
    let one = root_value(1, &far_future(), &[FixtureKey::Root1], 1);
    let mut two = root_value(2, &far_future(), &[FixtureKey::Root1], 1);
    let one: RootMeta = serde_json::from_value(one).unwrap();
    assert!(!role_keys_changed(
        &one,
        &serde_json::from_value(two.clone()).unwrap(),
        "timestamp"
    ));
    two["roles"]["timestamp"]["threshold"] = json!(2);
    let two: RootMeta = serde_json::from_value(two).unwrap();
    assert!(role_keys_changed(&one, &two, "timestamp"));
    assert!(!role_keys_changed(&one, &two, "snapshot"));
}
