//! Hostile input: the os-release parser on arbitrary text and bytes never panics, and values written with the
//! quoting os-release(5) allows read back exactly.

use nodeio::os_release::{OsRelease, OsReleaseError};
use proptest::prelude::*;
use std::path::Path;

/// Text made mostly of the characters the parser treats specially, so that the cases reach quotes, escapes,
/// comments and line ends far more often than uniformly random text would.
fn shellish_text() -> impl Strategy<Value = String> {
    let pieces = prop::sample::select(vec![
        "A",
        "_",
        "1",
        "=",
        "\"",
        "'",
        "\\",
        " ",
        "\t",
        "#",
        "\n",
        "\r",
        "$",
        "`",
        "é",
        "\u{a0}",
        "\u{2028}",
        "\0",
        "VARIANT_ID=",
        "VERSION_ID=",
    ]);
    prop::collection::vec(pieces, 0..64).prop_map(|pieces| pieces.concat())
}

/// A value as a publisher may write it: any text without a line end.
fn value() -> impl Strategy<Value = String> {
    any::<String>().prop_map(|value| value.replace(['\n', '\r'], ""))
}

/// Quotes `value` for os-release: single quotes, a literal `'` as `'\''`, as a shell writes it.
fn quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_text_is_parsed_or_refused(text in any::<String>()) {
        let _ = OsRelease::parse(&text, Path::new("/usr/lib/os-release"));
    }

    #[test]
    fn shell_like_text_is_parsed_or_refused(text in shellish_text()) {
        match OsRelease::parse(&text, Path::new("/usr/lib/os-release")) {
            // Whatever is accepted has well-formed keys.
            Ok(release) => {
                for (key, _) in release.entries() {
                    prop_assert!(!key.is_empty() && !key.starts_with(|c: char| c.is_ascii_digit()), "{key:?}");
                    prop_assert!(key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'), "{key:?}");
                }
            }
            // A syntax error names a line that exists.
            Err(OsReleaseError::Syntax { line, .. }) => {
                prop_assert!(line >= 1 && line <= text.lines().count(), "line {line} of {text:?}");
            }
            Err(other) => prop_assert!(false, "not a syntax error: {other}"),
        }
    }

    #[test]
    fn arbitrary_bytes_in_a_file_are_read_or_refused(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("os-release");
        std::fs::write(&path, &bytes).unwrap();
        let result = OsRelease::read(&path);
        if std::str::from_utf8(&bytes).is_err() {
            prop_assert!(matches!(result, Err(OsReleaseError::Read { .. })), "{result:?}");
        }
    }

    #[test]
    fn quoted_values_round_trip(
        entries in prop::collection::vec(("[A-Za-z_][A-Za-z0-9_]{0,12}", value()), 0..8),
    ) {
        let text: String = entries.iter().map(|(key, value)| format!("{key}={}\n", quote(value))).collect();
        let release = OsRelease::parse(&text, Path::new("/usr/lib/os-release")).unwrap();
        let read: Vec<(String, String)> =
            release.entries().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        prop_assert_eq!(read, entries);
    }
}
