//! Settings as the API shows them: nested JSON without the `settings` prefix (`{"updates": {"seed": 12}}`), stored
//! as one datastore key per leaf (`settings.updates.seed` = `12`).
//!
//! A PATCH body is checked whole before anything is written: a JSON object whose top-level names are known
//! settings ([`KNOWN_SETTINGS`]); leaves are strings, numbers, booleans or arrays of those (never `null`, objects in
//! arrays or nested arrays); every key is a valid datastore key that stays inside the settings tree (no `/`, no `.`
//! or `..` segment, no empty segment, at most 255 bytes); the `updates.*` settings have the types updog needs.

use crate::error::{self, RequestError};
use datastore::{Key, KeyType};
use serde_json::{Map, Value};
use snafu::ResultExt;
use std::collections::BTreeMap;

/// The datastore prefix of every setting.
pub const SETTINGS: &str = "settings";

/// The known top-level settings (upstream's model); anything else is refused.
pub const KNOWN_SETTINGS: [&str; 15] = [
    "motd",
    "hostname",
    "network",
    "kernel",
    "updates",
    "ntp",
    "host-containers",
    "kubernetes",
    "container-registry",
    "dns",
    "metrics",
    "pki",
    "boot",
    "oci-defaults",
    "aws",
];

/// The `updates.*` settings and what each must be.
pub const UPDATES_SETTINGS: [&str; 5] = [
    "seed",
    "version-lock",
    "ignore-waves",
    "metadata-base-url",
    "targets-base-url",
];

/// The largest wave seed (upstream's `bork` draws 0..2048).
pub const MAX_SEED: u64 = 2047;

/// A checked PATCH: each leaf's datastore key and its value as stored (compact JSON).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SettingsPatch {
    pub values: Vec<(Key, String)>,
}

/// Parses and checks a PATCH body (already UTF-8 text).
pub fn parse_patch(body: &str) -> Result<SettingsPatch, RequestError> {
    let document: Value = serde_json::from_str(body).context(error::MalformedJsonSnafu)?;
    let Value::Object(top) = document else {
        return error::NotAnObjectSnafu {
            found: describe(&document),
        }
        .fail();
    };
    let mut patch = SettingsPatch::default();
    for (name, value) in &top {
        if !KNOWN_SETTINGS.contains(&name.as_str()) {
            return error::UnknownSettingSnafu {
                name: format!("{SETTINGS}.{name}"),
                hint: format!(" (known: {})", KNOWN_SETTINGS.join(", ")),
            }
            .fail();
        }
        let mut path = vec![SETTINGS.to_string(), name.clone()];
        flatten(&mut path, value, &mut patch)?;
    }
    Ok(patch)
}

fn flatten(
    path: &mut Vec<String>,
    value: &Value,
    patch: &mut SettingsPatch,
) -> Result<(), RequestError> {
    match value {
        Value::Object(members) => {
            for (name, member) in members {
                path.push(name.clone());
                flatten(path, member, patch)?;
                path.pop();
            }
            Ok(())
        }
        Value::Null => error::InvalidValueSnafu {
            key: display_path(path),
            reason: "null is not a value (settings are strings, numbers, booleans or arrays of those)",
        }
        .fail(),
        Value::Array(items) => {
            if let Some(bad) = items.iter().find(|item| !is_scalar(item)) {
                return error::InvalidValueSnafu {
                    key: display_path(path),
                    reason: format!(
                        "an array holds only strings, numbers and booleans, not {}",
                        describe(bad)
                    ),
                }
                .fail();
            }
            leaf(path, value, patch)
        }
        Value::Bool(_) | Value::Number(_) | Value::String(_) => leaf(path, value, patch),
    }
}

fn leaf(path: &[String], value: &Value, patch: &mut SettingsPatch) -> Result<(), RequestError> {
    for segment in path {
        let reason = if segment.is_empty() {
            Some("empty key segment")
        } else if segment.contains('/') {
            Some("a key segment may not contain '/'")
        } else if segment.chars().all(|c| c == '.') {
            Some("a key segment may not be '.' or '..'")
        } else {
            None
        };
        if let Some(reason) = reason {
            return error::InvalidKeySnafu {
                key: display_path(path),
                reason,
            }
            .fail();
        }
    }
    let key = Key::from_segments(KeyType::Data, path).map_err(|e| RequestError::InvalidKey {
        key: display_path(path),
        reason: e.to_string(),
    })?;
    check_type(&key, value)?;
    patch.values.push((key, value.to_string()));
    Ok(())
}

/// The typed checks of the settings that steer updates; other settings take any value.
fn check_type(key: &Key, value: &Value) -> Result<(), RequestError> {
    let segments = key.segments();
    if segments.get(1).map(String::as_str) != Some("updates") {
        return Ok(());
    }
    let invalid = |reason: String| {
        error::InvalidValueSnafu {
            key: key.name(),
            reason,
        }
        .fail()
    };
    let name = match &segments[2..] {
        [name] if UPDATES_SETTINGS.contains(&name.as_str()) => name.as_str(),
        _ => {
            return error::UnknownSettingSnafu {
                name: key.name(),
                hint: format!(" (known under updates: {})", UPDATES_SETTINGS.join(", ")),
            }
            .fail();
        }
    };
    match name {
        "seed" => match value.as_u64() {
            Some(seed) if seed <= MAX_SEED => Ok(()),
            _ => invalid(format!(
                "must be an integer from 0 to {MAX_SEED}, found {value}"
            )),
        },
        "ignore-waves" => match value {
            Value::Bool(_) => Ok(()),
            _ => invalid(format!("must be true or false, found {value}")),
        },
        "version-lock" => match value.as_str() {
            Some(lock) if valid_version_lock(lock) => Ok(()),
            _ => invalid(format!(
                "must be \"latest\" or a version like \"1.2.3\" or \"v1.2.3\", found {value}"
            )),
        },
        _ => match value.as_str().map(url::Url::parse) {
            Some(Ok(url)) if matches!(url.scheme(), "http" | "https" | "file") => Ok(()),
            _ => invalid(format!(
                "must be an absolute http, https or file URL, found {value}"
            )),
        },
    }
}

/// `latest`, or a semantic version with an optional `v` (as updog reads `version_lock`).
#[must_use]
pub fn valid_version_lock(lock: &str) -> bool {
    lock == "latest" || semver::Version::parse(lock.strip_prefix('v').unwrap_or(lock)).is_ok()
}

/// Datastore keys with their raw values, nested as JSON objects; `skip` leading segments are dropped
/// (1 drops `settings`).
pub fn nest(values: &BTreeMap<Key, String>, skip: usize) -> Result<Value, RequestError> {
    let mut root = Map::new();
    for (key, raw) in values {
        let parsed: Value =
            serde_json::from_str(raw).map_err(|e| RequestError::CorruptSetting {
                key: key.name().to_string(),
                reason: format!("not JSON ({e})"),
            })?;
        let segments = key.segments().get(skip..).unwrap_or_default();
        let Some((last, parents)) = segments.split_last() else {
            return error::CorruptSettingSnafu {
                key: key.name(),
                reason: "a value at the top of the tree",
            }
            .fail();
        };
        let mut node = &mut root;
        for parent in parents {
            let entry = node
                .entry(parent.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            let Value::Object(map) = entry else {
                return error::CorruptSettingSnafu {
                    key: key.name(),
                    reason: format!("'{parent}' holds a value and keys below it"),
                }
                .fail();
            };
            node = map;
        }
        node.insert(last.clone(), parsed);
    }
    Ok(Value::Object(root))
}

/// A key name as the user wrote it (segments joined by dots), for messages.
fn display_path(path: &[String]) -> String {
    path.iter()
        .map(|s| {
            if s.contains('.') {
                format!("\"{s}\"")
            } else {
                s.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(".")
}

fn is_scalar(value: &Value) -> bool {
    matches!(value, Value::Bool(_) | Value::Number(_) | Value::String(_))
}

fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(_) => "a boolean".into(),
        Value::Number(_) => "a number".into(),
        Value::String(_) => "a string".into(),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(patch: &SettingsPatch) -> Vec<(String, String)> {
        patch
            .values
            .iter()
            .map(|(k, v)| (k.name().to_string(), v.clone()))
            .collect()
    }

    #[test]
    fn nested_objects_become_dotted_keys() {
        let patch = parse_patch(
            r#"{"motd": "hi", "updates": {"seed": 12, "ignore-waves": true},
                "kernel": {"sysctl": {"net.ipv4.ip_forward": "1"}}, "ntp": {"time-servers": ["a", "b"]}}"#,
        )
        .unwrap();
        let mut got = names(&patch);
        got.sort();
        assert_eq!(
            got,
            [
                (
                    r#"settings.kernel.sysctl."net.ipv4.ip_forward""#.into(),
                    r#""1""#.into()
                ),
                ("settings.motd".into(), r#""hi""#.into()),
                ("settings.ntp.time-servers".into(), r#"["a","b"]"#.into()),
                ("settings.updates.ignore-waves".into(), "true".into()),
                ("settings.updates.seed".into(), "12".into()),
            ]
        );
    }

    #[test]
    fn bad_bodies_are_refused_naming_the_key() {
        let cases = [
            ("[1]", "must be a JSON object"),
            ("{\"motd\": ", "not valid JSON"),
            (
                r#"{"settings": {"motd": "x"}}"#,
                "Unknown setting 'settings.settings'",
            ),
            (r#"{"motd": null}"#, "'settings.motd': null"),
            (
                r#"{"ntp": {"servers": [["a"]]}}"#,
                "'settings.ntp.servers': an array holds",
            ),
            (r#"{"ntp": {"servers": [{"a": 1}]}}"#, "not an object"),
            (r#"{"network": {"..": "x"}}"#, "'.' or '..'"),
            (r#"{"network": {"a/b": "x"}}"#, "'/'"),
            (r#"{"network": {"": "x"}}"#, "empty key segment"),
            (
                r#"{"network": {"a b": "x"}}"#,
                "Invalid key 'settings.network.a b'",
            ),
            (
                r#"{"updates": {"seed": 2048}}"#,
                "'settings.updates.seed': must be an integer",
            ),
            (r#"{"updates": {"seed": -1}}"#, "must be an integer"),
            (r#"{"updates": {"seed": "12"}}"#, "must be an integer"),
            (
                r#"{"updates": {"ignore-waves": "yes"}}"#,
                "must be true or false",
            ),
            (
                r#"{"updates": {"version-lock": "newest"}}"#,
                "must be \"latest\"",
            ),
            (
                r#"{"updates": {"metadata-base-url": "not a url"}}"#,
                "absolute http",
            ),
            (
                r#"{"updates": {"sed": 1}}"#,
                "Unknown setting 'settings.updates.sed'",
            ),
        ];
        for (body, expected) in cases {
            let err = parse_patch(body).unwrap_err();
            assert!(err.to_string().contains(expected), "{body}: {err}");
            assert_eq!(err.status(), hyper::StatusCode::BAD_REQUEST, "{body}");
        }
        let long = format!(r#"{{"network": {{"{}": 1}}}}"#, "a".repeat(250));
        let err = parse_patch(&long).unwrap_err();
        assert!(err.to_string().contains("255"), "{err}");
    }

    #[test]
    fn version_locks_follow_updog() {
        for ok in ["latest", "1.2.3", "v1.2.3", "1.0.0-rc1"] {
            assert!(valid_version_lock(ok), "{ok}");
        }
        for bad in ["", "Latest", "1.2", "vv1.2.3", "x"] {
            assert!(!valid_version_lock(bad), "{bad}");
        }
    }

    #[test]
    fn nesting_drops_the_prefix_and_parses_values() {
        let mut values = BTreeMap::new();
        for (k, v) in [
            ("settings.motd", r#""hi""#),
            ("settings.updates.seed", "12"),
            (r#"settings.kernel.sysctl."a.b""#, r#""1""#),
        ] {
            values.insert(Key::new(KeyType::Data, k).unwrap(), v.to_string());
        }
        assert_eq!(
            nest(&values, 1).unwrap(),
            serde_json::json!({"motd": "hi", "updates": {"seed": 12}, "kernel": {"sysctl": {"a.b": "1"}}})
        );
        assert_eq!(
            nest(&values, 0).unwrap()["settings"]["motd"],
            serde_json::json!("hi")
        );
    }
}
