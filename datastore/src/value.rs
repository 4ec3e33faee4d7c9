//! Stored values: one JSON document per file (upstream's "scalar" serialization: strings, numbers,
//! booleans, and lists, which the API stores whole).

use crate::error::{self, Result};
use snafu::ResultExt;
use std::path::Path;

/// Checks that `value` is one JSON document; `key` names the key in the error.
pub fn check(key: &str, value: &str) -> Result<()> {
    serde_json::from_str::<serde_json::Value>(value)
        .map(|_| ())
        .context(error::InvalidValueSnafu { key, value })
}

/// Parses a value read from `path`.
pub(crate) fn parse_stored(key: &str, path: &Path, raw: &str) -> Result<serde_json::Value> {
    serde_json::from_str(raw).context(error::CorruptValueSnafu { key, path })
}

/// Serializes a value as upstream's `serialize_scalar` does: compact JSON, no trailing newline.
#[must_use]
pub fn serialize(value: &serde_json::Value) -> String {
    value.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn scalars_and_lists_are_values() {
        for ok in [r#""x""#, "42", "-1.5", "true", "null", r#"["a"]"#, " 1 "] {
            check("k", ok).unwrap();
        }
        for bad in ["x", "", "1 2", "'x'", "[1,"] {
            assert!(check("k", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn serialization_is_compact() {
        assert_eq!(serialize(&json!("a \"q\"")), r#""a \"q\"""#);
        assert_eq!(serialize(&json!(["a", 1])), r#"["a",1]"#);
    }
}
