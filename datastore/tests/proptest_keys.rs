//! Hostile input: key names and on-disk path components never panic the parsers, and every key that parses
//! round-trips through its name, its segments and its file names.

use datastore::encoding::{decode_path_component, encode_path_component};
use datastore::{Key, KeyType};
use proptest::prelude::*;
use std::path::Path;

/// Names made mostly of what the key grammar cares about (dots, quotes, allowed and refused characters).
fn keyish_name() -> impl Strategy<Value = String> {
    let pieces = prop::sample::select(vec![
        "a", "Z", "0", "_", "-", "/", ".", "\"", "\"\"", "..", " ", "é", "%", "settings", "x.y",
    ]);
    prop::collection::vec(pieces, 0..40).prop_map(|pieces| pieces.concat())
}

/// A segment as `Key::from_segments` takes it: allowed characters and dots.
fn segment() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9_/.-]{1,40}"
}

/// Path components as they may be found on disk: percent escapes, valid or not, among other characters.
fn componentish() -> impl Strategy<Value = String> {
    let pieces = prop::sample::select(vec![
        "a", "_", "-", "%", "%2E", "%2e", "%2F", "%C3%A9", "%FF", "%ZZ", "%2", ".", "é", "/", " ",
    ]);
    prop::collection::vec(pieces, 0..20).prop_map(|pieces| pieces.concat())
}

fn check_parsed(key_type: KeyType, name: &str) -> Result<(), TestCaseError> {
    let Ok(key) = Key::new(key_type, name) else {
        return Ok(());
    };
    prop_assert_eq!(key.name(), name);
    prop_assert!(!key.segments().is_empty());
    // The same key from its segments, and from the name those segments are written as.
    let rebuilt = Key::from_segments(key_type, key.segments()).unwrap();
    prop_assert_eq!(&rebuilt, &key);
    prop_assert_eq!(Key::new(key_type, rebuilt.name()).unwrap(), key.clone());
    // Each segment's file name decodes back to it.
    for segment in key.segments() {
        let encoded = encode_path_component(segment);
        prop_assert_eq!(
            &decode_path_component(&encoded, Path::new("live")).unwrap(),
            segment
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_names_parse_or_are_refused(name in any::<String>()) {
        check_parsed(KeyType::Data, &name)?;
        check_parsed(KeyType::Meta, &name)?;
    }

    #[test]
    fn key_like_names_parse_or_are_refused(name in keyish_name()) {
        check_parsed(KeyType::Data, &name)?;
        check_parsed(KeyType::Meta, &name)?;
    }

    #[test]
    fn segments_round_trip_through_the_name(segments in prop::collection::vec(segment(), 1..6)) {
        match Key::from_segments(KeyType::Data, &segments) {
            Ok(key) => {
                prop_assert_eq!(key.segments(), &segments[..]);
                let reparsed = Key::new(KeyType::Data, key.name()).unwrap();
                prop_assert_eq!(reparsed.segments(), &segments[..]);
            }
            // Only the length limits refuse these segments.
            Err(datastore::Error::KeyTooLong { .. } | datastore::Error::SegmentTooLong { .. }) => {}
            Err(other) => prop_assert!(false, "{other}"),
        }
    }

    #[test]
    fn any_string_round_trips_through_its_file_name(name in any::<String>()) {
        let encoded = encode_path_component(&name);
        prop_assert!(!encoded.contains('/') && !encoded.contains('.'), "{encoded}");
        prop_assert_eq!(decode_path_component(&encoded, Path::new("live")).unwrap(), name);
    }

    #[test]
    fn a_decoded_component_is_canonical(component in prop_oneof![any::<String>(), componentish()]) {
        // Accepted only when it is exactly what the encoder writes: two spellings never name one key.
        if let Ok(decoded) = decode_path_component(&component, Path::new("live")) {
            prop_assert_eq!(encode_path_component(&decoded), component);
        }
    }
}
