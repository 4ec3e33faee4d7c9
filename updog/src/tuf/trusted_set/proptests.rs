//! Hostile input: the TUF metadata parser and the trusted set on arbitrary bytes, on valid files with bytes
//! changed, and on valid roots with a field replaced and re-signed: an error or the original content, never a
//! panic.

use super::tests::{far_future, now, root_value, sign, state};
use super::*;
use proptest::prelude::*;
use repo_fixtures::keys::FixtureKey;
use serde_json::{Value, json};

/// A change to a file's bytes.
#[derive(Debug, Clone)]
enum Mutation {
    Set { at: usize, byte: u8 },
    Insert { at: usize, bytes: Vec<u8> },
    Truncate { at: usize },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Mutation::Set { at, byte }),
        (
            any::<usize>(),
            prop::collection::vec(
                prop_oneof![
                    any::<u8>(),
                    prop::sample::select(b" \n{}[],:\"0-9e.\\".to_vec())
                ],
                1..8
            )
        )
            .prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        any::<usize>().prop_map(|at| Mutation::Truncate { at }),
    ]
}

fn mutate(bytes: &[u8], mutations: &[Mutation]) -> Vec<u8> {
    let mut bytes = bytes.to_vec();
    for mutation in mutations {
        let len = bytes.len().max(1);
        match mutation {
            Mutation::Set { at, byte } => {
                if !bytes.is_empty() {
                    bytes[at % len] = *byte;
                }
            }
            Mutation::Insert { at, bytes: new } => {
                let at = at % (bytes.len() + 1);
                bytes.splice(at..at, new.iter().copied());
            }
            Mutation::Truncate { at } => bytes.truncate(at % len),
        }
    }
    bytes
}

/// JSON values a hostile publisher might put in any field (no floats: canonical JSON, hence a signature, has none).
fn json_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        Just(json!(0)),
        Just(json!(u64::MAX)),
        Just(json!(-1)),
        any::<String>().prop_map(Value::from),
        Just(json!("+262143-12-31T23:59:59Z")),
        Just(json!("2024-01-01T00:00:00+01:00")),
        Just(json!("1.0")),
        Just(json!("2.0.0")),
        Just(json!("1.0.0.0")),
        Just(json!([])),
        Just(json!({})),
        Just(json!({"keyids": ["x"], "threshold": 1})),
        Just(json!({"keyids": [], "threshold": 0})),
        Just(json!({"keytype": "ed25519", "scheme": "ed25519", "keyval": {"public": "zz"}})),
    ]
}

/// The fields of a root a mutation may replace (a path of object keys).
const ROOT_FIELDS: [&[&str]; 10] = [
    &["_type"],
    &["spec_version"],
    &["version"],
    &["expires"],
    &["consistent_snapshot"],
    &["keys"],
    &["roles"],
    &["roles", "root"],
    &["roles", "root", "threshold"],
    &["roles", "root", "keyids"],
];

fn replace(value: &mut Value, path: &[&str], new: Value) {
    let mut target = value;
    for key in path {
        target = &mut target[*key];
    }
    *target = new;
}

/// Runs the whole load order over `s`'s files with `root` as the shipped root; nothing may panic.
fn load_all(root: &[u8], timestamp: &[u8], snapshot: &[u8], targets: &[u8]) {
    let Ok(mut set) = TrustedSet::new(root, now()) else {
        return;
    };
    let _ = set.check_root_expiry();
    let _ = set.update_root(root);
    if set.update_timestamp(timestamp).is_err() {
        return;
    }
    let _ = set.snapshot_listing();
    if set.update_snapshot(snapshot, false).is_err() {
        return;
    }
    let _ = set.check_final_snapshot();
    let _ = set.role_listing(TARGETS);
    let _ = set.update_targets(TARGETS, "root", targets);
}

/// Found by `a_re_signed_root_with_any_field_replaced_is_refused_or_read`: a validly signed root at version
/// u64::MAX overflowed `trusted + 1` when any next root was offered.
#[test]
fn a_root_at_the_last_version_has_no_successor() {
    let last = sign(
        &root_value(u64::MAX, &far_future(), &[FixtureKey::Root1], 1),
        &[FixtureKey::Root1],
    );
    let mut set = TrustedSet::new(&last, now()).unwrap();
    let err = set.update_root(&last).unwrap_err();
    assert!(
        matches!(
            err,
            TrustError::RootVersion {
                trusted: u64::MAX,
                offered: u64::MAX
            }
        ),
        "{err}"
    );
    assert_eq!(set.root().meta.version, u64::MAX);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_are_not_metadata(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        prop_assert!(TrustedSet::new(&bytes, now()).is_err());
        let _ = schema::parse::<RootMeta>(&bytes, "root");
        let _ = schema::parse::<MetaListing>(&bytes, "timestamp");
        let _ = schema::parse::<TargetsMeta>(&bytes, "targets");
    }

    #[test]
    fn a_changed_file_is_refused_or_means_what_was_signed(
        role in 0usize..4, mutations in prop::collection::vec(mutation(), 1..4),
    ) {
        let s = state(1, 1, 1);
        let mut files = [s.root.clone(), s.timestamp.clone(), s.snapshot.clone(), s.targets.clone()];
        let original: Value = serde_json::from_slice::<Value>(&files[role]).unwrap()["signed"].clone();
        files[role] = mutate(&files[role], &mutations);
        // The root alone: accepted only when what it says is what was signed (whitespace, a signature's case).
        if role == 0
            && let Ok(set) = TrustedSet::new(&files[0], now())
        {
            prop_assert_eq!(&set.root().envelope.signed, &original);
        }
        load_all(&files[0], &files[1], &files[2], &files[3]);
    }

    #[test]
    fn a_re_signed_root_with_any_field_replaced_is_refused_or_read(
        field in 0..ROOT_FIELDS.len(), new in json_value(),
    ) {
        let mut signed = root_value(1, &far_future(), &[FixtureKey::Root1], 1);
        replace(&mut signed, ROOT_FIELDS[field], new);
        let root = sign(&signed, &[FixtureKey::Root1]);
        let s = state(1, 1, 1);
        load_all(&root, &s.timestamp, &s.snapshot, &s.targets);
    }
}
