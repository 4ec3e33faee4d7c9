//! Key segment ↔ file name: percent-encoding of everything but ASCII alphanumerics, `_` and `-`,
//! as upstream's `FilesystemDataStore` (so `.` is `%2E` and `/` is `%2F`, and the only literal dot
//! in a path under `live/` separates a data key from a metadata key).

use crate::error::{self, Result};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use std::path::Path;

const ENCODE_CHARACTERS: &AsciiSet = &NON_ALPHANUMERIC.remove(b'_').remove(b'-');

/// Encodes a key segment or transaction name as one path component.
pub fn encode_path_component(segment: &str) -> String {
    utf8_percent_encode(segment, ENCODE_CHARACTERS).to_string()
}

/// Decodes a path component written by [`encode_path_component`]; `path` names the file for the
/// error if someone wrote a name that is not valid percent-encoded UTF-8.
pub fn decode_path_component(component: &str, path: &Path) -> Result<String> {
    match percent_decode_str(component).decode_utf8() {
        Ok(decoded) => Ok(decoded.into_owned()),
        Err(_) => error::CorruptionSnafu {
            path,
            reason: format!("invalid UTF-8 in encoded name '{component}'"),
        }
        .fail(),
    }
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
    fn invalid_utf8_is_corruption() {
        let err = decode_path_component("%C3%28", Path::new("/ds/live/x")).unwrap_err();
        assert!(err.to_string().contains("/ds/live/x"), "{err}");
    }
}
