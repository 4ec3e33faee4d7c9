//! `set KEY=VALUE...` and `set -j JSON`: the settings to change, as the nested JSON object `PATCH /settings`
//! takes, sent into a transaction of our own (`apiclient-set-<random>`, so nobody else's pending changes are
//! committed with ours) that is then committed and applied.
//!
//! Keys are dotted names with an optional `settings.` prefix; a segment holding dots is double-quoted
//! (`kernel.sysctl."net.ipv4.ip_forward"=1`). A value is taken as JSON when it parses as JSON (`seed=42` is a
//! number, `ignore-waves=true` a boolean), else as a string (`motd=hello`), as upstream.

use crate::client::{self, ApiClient};
use serde_json::{Map, Value};
use snafu::{ResultExt, Snafu, ensure};

#[derive(Debug, Snafu)]
#[snafu(visibility(pub(crate)))]
pub enum Error {
    #[snafu(display("Setting '{arg}' has no '=': give KEY=VALUE"))]
    MissingEquals { arg: String },

    #[snafu(display("Setting key '{key}' has an unterminated double quote"))]
    UnterminatedQuote { key: String },

    #[snafu(display(
        "Setting key '{key}' has an empty segment (two dots in a row, a leading or trailing dot, or \"\")"
    ))]
    EmptySegment { key: String },

    #[snafu(display(
        "Setting key '{key}' has a double quote inside a segment; quote a whole segment: a.\"b.c\".d"
    ))]
    MisplacedQuote { key: String },

    #[snafu(display("Setting key '{key}' names no setting under 'settings'"))]
    NoSetting { key: String },

    #[snafu(display(
        "Setting '{key}' conflicts with another given setting (one is a value, the other a table)"
    ))]
    Conflict { key: String },

    #[snafu(display("Couldn't parse given JSON input: {source}"))]
    JsonInput { source: serde_json::Error },

    #[snafu(display("JSON input must be an object (map), not {value}"))]
    JsonNotObject { value: String },

    #[snafu(display("JSON 'settings' value must be an object (map), not {value}"))]
    JsonSettingsNotObject { value: String },

    #[snafu(display("Failed to change settings: {source}"))]
    Request { source: client::Error },
}

pub type Result<T> = std::result::Result<T, Error>;

/// Splits `KEY=VALUE` at the first `=` outside double quotes into the key's segments (without a leading
/// `settings`) and the value.
pub fn parse_key_value(arg: &str) -> Result<(Vec<String>, Value)> {
    let mut in_quotes = false;
    let equals = arg.char_indices().find_map(|(i, c)| match c {
        '"' => {
            in_quotes = !in_quotes;
            None
        }
        '=' if !in_quotes => Some(i),
        _ => None,
    });
    let Some(equals) = equals else {
        return MissingEqualsSnafu { arg }.fail();
    };
    let (key, value) = (&arg[..equals], &arg[equals + 1..]);

    let mut segments = parse_key(key)?;
    if segments.first().is_some_and(|first| first == "settings") {
        segments.remove(0);
    }
    ensure!(!segments.is_empty(), NoSettingSnafu { key });
    let value = serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_owned()));
    Ok((segments, value))
}

/// A dotted key's segments; a double-quoted segment keeps its dots and loses its quotes.
fn parse_key(key: &str) -> Result<Vec<String>> {
    let mut segments = Vec::new();
    let mut rest = key;
    loop {
        let (segment, after) = if let Some(quoted) = rest.strip_prefix('"') {
            let Some(end) = quoted.find('"') else {
                return UnterminatedQuoteSnafu { key }.fail();
            };
            (&quoted[..end], &quoted[end + 1..])
        } else {
            let end = rest.find('.').unwrap_or(rest.len());
            ensure!(!rest[..end].contains('"'), MisplacedQuoteSnafu { key });
            (&rest[..end], &rest[end..])
        };
        ensure!(!segment.is_empty(), EmptySegmentSnafu { key });
        segments.push(segment.to_owned());
        if after.is_empty() {
            return Ok(segments);
        }
        // After a segment comes a dot and another segment, or the end.
        let Some(next) = after.strip_prefix('.') else {
            return MisplacedQuoteSnafu { key }.fail();
        };
        rest = next;
    }
}

/// The settings object for `KEY=VALUE` pairs, nested by key segments (`{"updates": {"seed": 42}}`); a later
/// pair for the same key wins.
pub fn settings_from_pairs<S: AsRef<str>>(pairs: &[S]) -> Result<Map<String, Value>> {
    let mut settings = Map::new();
    for pair in pairs {
        let (segments, value) = parse_key_value(pair.as_ref())?;
        insert(&mut settings, &segments, value)
            .then_some(())
            .ok_or_else(|| Error::Conflict {
                key: segments.join("."),
            })?;
    }
    Ok(settings)
}

/// Puts `value` at `segments` in `map`, making tables on the way; false if a value is in the way (or a table
/// would be replaced by a value).
fn insert(map: &mut Map<String, Value>, segments: &[String], value: Value) -> bool {
    match segments {
        [] => false,
        [last] => {
            if map.get(last).is_some_and(Value::is_object) {
                return false;
            }
            map.insert(last.clone(), value);
            true
        }
        [first, rest @ ..] => {
            let entry = map
                .entry(first.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            match entry {
                Value::Object(inner) => insert(inner, rest, value),
                _ => false,
            }
        }
    }
}

/// The settings object given with `set -j`; an outer `settings` layer is removed, as upstream.
pub fn settings_from_json(json: &str) -> Result<Map<String, Value>> {
    let value: Value = serde_json::from_str(json).context(JsonInputSnafu)?;
    let Value::Object(mut map) = value else {
        return JsonNotObjectSnafu {
            value: value.to_string(),
        }
        .fail();
    };
    if let Some(inner) = map.remove("settings") {
        let Value::Object(inner) = inner else {
            return JsonSettingsNotObjectSnafu {
                value: inner.to_string(),
            }
            .fail();
        };
        map.extend(inner);
    }
    Ok(map)
}

/// A transaction name of our own: `<prefix>-<16 random alphanumerics>`, as upstream's.
#[must_use]
pub fn transaction_name(prefix: &str) -> String {
    let random: String = std::iter::repeat_with(fastrand::alphanumeric)
        .take(16)
        .collect();
    format!("{prefix}-{random}")
}

/// PATCHes `settings` into a new transaction, then commits and applies it.
pub async fn set(client: &ApiClient, settings: &Map<String, Value>) -> Result<()> {
    patch_commit_apply(client, settings, &transaction_name("apiclient-set"))
        .await
        .context(RequestSnafu)
}

/// `PATCH /settings?tx=<tx>` with `settings`, then `POST /tx/commit_and_apply?tx=<tx>`.
pub(crate) async fn patch_commit_apply(
    client: &ApiClient,
    settings: &Map<String, Value>,
    transaction: &str,
) -> client::Result<()> {
    let body = Value::Object(settings.clone()).to_string();
    client
        .request("PATCH", &format!("/settings?tx={transaction}"), Some(&body))
        .await?;
    client
        .request(
            "POST",
            &format!("/tx/commit_and_apply?tx={transaction}"),
            None,
        )
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn segments(key: &[&str]) -> Vec<String> {
        key.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn the_settings_prefix_is_optional() {
        assert_eq!(
            parse_key_value("settings.motd=hi").unwrap(),
            (segments(&["motd"]), json!("hi"))
        );
        assert_eq!(
            parse_key_value("motd=hi").unwrap(),
            (segments(&["motd"]), json!("hi"))
        );
    }

    #[test]
    fn a_quoted_segment_keeps_its_dots_and_equals_signs() {
        assert_eq!(
            parse_key_value(r#"kernel.sysctl."net.ipv4.ip_forward"=1"#).unwrap(),
            (
                segments(&["kernel", "sysctl", "net.ipv4.ip_forward"]),
                json!(1)
            )
        );
        assert_eq!(
            parse_key_value(r#"kubernetes.node-labels."a=b"=c=d"#).unwrap(),
            (
                segments(&["kubernetes", "node-labels", "a=b"]),
                json!("c=d")
            )
        );
    }

    #[test]
    fn values_are_json_when_they_parse_else_strings() {
        for (arg, value) in [
            ("updates.seed=42", json!(42)),
            ("updates.ignore-waves=true", json!(true)),
            ("motd=hello world", json!("hello world")),
            (r#"motd="quoted""#, json!("quoted")),
            ("motd=", json!("")),
            ("motd=1.2.3", json!("1.2.3")),
            (r#"ntp.time-servers=["a","b"]"#, json!(["a", "b"])),
            ("motd=null", json!(null)),
        ] {
            assert_eq!(parse_key_value(arg).unwrap().1, value, "{arg}");
        }
    }

    #[test]
    fn malformed_keys_are_refused_with_the_key_named() {
        for (arg, message) in [
            ("motd", "Setting 'motd' has no '=': give KEY=VALUE"),
            ("=x", "Setting key '' has an empty segment"),
            ("a..b=x", "Setting key 'a..b' has an empty segment"),
            ("a.=x", "Setting key 'a.' has an empty segment"),
            (
                r#"a."".b=x"#,
                r#"Setting key 'a."".b' has an empty segment"#,
            ),
            (r#"a."b=x"#, "Setting 'a.\"b=x' has no '='"),
            (
                r#"a.b"c"=x"#,
                r#"Setting key 'a.b"c"' has a double quote inside a segment"#,
            ),
            (
                r#"a."b"c=x"#,
                r#"Setting key 'a."b"c' has a double quote inside a segment"#,
            ),
            (
                "settings=x",
                "Setting key 'settings' names no setting under 'settings'",
            ),
        ] {
            let error = parse_key_value(arg).map(|_| ()).unwrap_err().to_string();
            assert!(error.starts_with(message), "{arg}: {error}");
        }
        assert!(matches!(
            parse_key(r#"a."b"#),
            Err(Error::UnterminatedQuote { .. })
        ));
    }

    #[test]
    fn pairs_nest_into_one_object_and_later_pairs_win() {
        let settings = settings_from_pairs(&[
            "settings.motd=hi",
            "updates.seed=42",
            "updates.version-lock=latest",
            r#"kernel.sysctl."net.ipv4.ip_forward"=1"#,
            "motd=bye",
        ])
        .unwrap();
        assert_eq!(
            Value::Object(settings),
            json!({
                "motd": "bye",
                "updates": {"seed": 42, "version-lock": "latest"},
                "kernel": {"sysctl": {"net.ipv4.ip_forward": 1}},
            })
        );
    }

    #[test]
    fn a_value_and_a_table_at_one_key_conflict() {
        for pairs in [["motd=x", "motd.a=y"], ["motd.a=y", "motd=x"]] {
            let error = settings_from_pairs(&pairs).unwrap_err();
            assert!(matches!(error, Error::Conflict { .. }), "{pairs:?}");
        }
    }

    #[test]
    fn json_input_loses_an_outer_settings_layer() {
        assert_eq!(
            Value::Object(settings_from_json(r#"{"settings": {"motd": "hi"}}"#).unwrap()),
            json!({"motd": "hi"})
        );
        assert_eq!(
            Value::Object(settings_from_json(r#"{"motd": "hi"}"#).unwrap()),
            json!({"motd": "hi"})
        );
        assert!(matches!(
            settings_from_json("[1]"),
            Err(Error::JsonNotObject { .. })
        ));
        assert!(matches!(
            settings_from_json(r#"{"settings": 3}"#),
            Err(Error::JsonSettingsNotObject { .. })
        ));
        assert!(matches!(
            settings_from_json("{"),
            Err(Error::JsonInput { .. })
        ));
    }

    #[test]
    fn transaction_names_are_prefixed_and_random() {
        let first = transaction_name("apiclient-set");
        let second = transaction_name("apiclient-set");
        assert!(first.starts_with("apiclient-set-"), "{first}");
        assert_eq!(first.len(), "apiclient-set-".len() + 16);
        assert!(
            first["apiclient-set-".len()..]
                .chars()
                .all(|c| c.is_ascii_alphanumeric())
        );
        assert_ne!(first, second);
    }
}
