//! Key segment ↔ file name: percent-encoding of everything but ASCII alphanumerics, `_` and `-`,
//! as upstream's `FilesystemDataStore` (so `.` is `%2E` and `/` is `%2F`, and the only literal dot
//! in a path under `live/` separates a data key from a metadata key).

use crate::error::{self, Result};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use std::path::Path;

const ENCODE_CHARACTERS: &AsciiSet = &NON_ALPHANUMERIC.remove(b'_').remove(b'-');

/// Encodes a key segment or transaction name as one path component.
#[must_use]
pub fn encode_path_component(segment: &str) -> String {
    utf8_percent_encode(segment, ENCODE_CHARACTERS).to_string()
}

/// Decodes a path component found on disk, which must be exactly what
/// [`encode_path_component`] writes for some name: `%ZZ`, a `%2` at the end, lower-case hex or
/// an escape of a character that is never escaped could otherwise make two files stand for one
/// key (and one would be lost when the datastore is copied). `path` names the file for the error.
pub fn decode_path_component(component: &str, path: &Path) -> Result<String> {
    let decoded = match percent_decode_str(component).decode_utf8() {
        Ok(decoded) => decoded.into_owned(),
        Err(_) => {
            return error::UnrepresentableSnafu {
                path,
                reason: format!("'{component}' percent-decodes to bytes that are not UTF-8"),
            }
            .fail();
        }
    };
    let canonical = encode_path_component(&decoded);
    snafu::ensure!(
        canonical == component,
        error::UnrepresentableSnafu {
            path,
            reason: format!(
                "'{component}' is not percent-encoded as a key is (the name {decoded:?} is written '{canonical}')"
            ),
        }
    );
    Ok(decoded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_as_upstream() {
        assert_eq!(encode_path_component("a-b_42"), "a-b_42");
        assert_eq!(encode_path_component("a.b"), "a%2Eb");
        assert_eq!(encode_path_component("a/b"), "a%2Fb");
        assert_eq!(encode_path_component("a b%c<d>e"), "a%20b%25c%3Cd%3Ee");
        assert_eq!(
            encode_path_component("test transaction"),
            "test%20transaction"
        );
    }

    #[test]
    fn decodes_what_it_encodes() {
        for s in ["a-b_42", "a.b", "a/b", "a b%c<d>e", "ünïcödé"] {
            assert_eq!(
                decode_path_component(&encode_path_component(s), Path::new("")).unwrap(),
                s
            );
        }
    }

    #[test]
    fn only_the_canonical_encoding_is_decoded_strictly() {
        for s in ["a-b_42", "a.b", "a/b", "a b%c<d>e", "ünïcödé"] {
            let encoded = encode_path_component(s);
            assert_eq!(decode_path_component(&encoded, Path::new("")).unwrap(), s);
        }
        for bad in ["%ZZ", "abc%2", "a%", "a%2e", "%41", "a%2Eb%", "%C3%28"] {
            let err = decode_path_component(bad, Path::new("/ds/live/x")).unwrap_err();
            let message = err.to_string();
            assert!(
                matches!(err, error::Error::Unrepresentable { .. }),
                "{bad}: {message}"
            );
            assert!(message.contains("/ds/live/x"), "{message}");
            assert!(message.contains(&format!("'{bad}'")), "{message}");
        }
    }
}
