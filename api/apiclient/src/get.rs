//! `get [PREFIX...|/uri]`: settings (and OS facts) as one pretty JSON object.
//!
//! Each prefix is one `GET /?prefix=<prefix>`; the answers are merged (a later prefix wins where two
//! overlap). A prefix that does not start with `settings` or `os` is a setting name (`motd` means
//! `settings.motd`). With no argument, `GET /` returns everything; a `/uri` argument is a plain GET.

use crate::client::{self, ApiClient};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::Value;
use snafu::{ResultExt, Snafu};

/// Query-value escaping: everything but the characters of a plain dotted key.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'.').remove(b'-').remove(b'_');

#[derive(Debug, Snafu)]
#[snafu(visibility(pub(crate)))]
pub enum Error {
    #[snafu(display("Failed to get settings: {source}"))]
    Request { source: client::Error },

    #[snafu(display("Response to GET '{uri}' is not JSON ({source}): {body}"))]
    ResponseJson {
        uri: String,
        body: String,
        source: serde_json::Error,
    },
}

pub type Result<T> = std::result::Result<T, Error>;

/// The API name of a prefix given on the command line: `settings…` and `os…` as given, anything else under
/// `settings.`.
#[must_use]
pub fn full_prefix(prefix: &str) -> String {
    let first = prefix.split('.').next().unwrap_or_default();
    if first == "settings" || first == "os" {
        prefix.to_owned()
    } else {
        format!("settings.{prefix}")
    }
}

/// The URI that fetches `prefix` (already a full prefix).
#[must_use]
pub fn prefix_uri(prefix: &str) -> String {
    format!("/?prefix={}", utf8_percent_encode(prefix, QUERY_VALUE))
}

/// Fetches each prefix and merges the answers; with no prefix, everything (`GET /`).
pub async fn get_prefixes<S: AsRef<str>>(client: &ApiClient, prefixes: &[S]) -> Result<Value> {
    if prefixes.is_empty() {
        return get_uri(client, "/").await;
    }
    let mut merged = Value::Object(serde_json::Map::new());
    for prefix in prefixes {
        let value = get_uri(client, &prefix_uri(&full_prefix(prefix.as_ref()))).await?;
        merge_json(&mut merged, value);
    }
    Ok(merged)
}

/// GETs `uri` and parses the answer as JSON.
pub async fn get_uri(client: &ApiClient, uri: &str) -> Result<Value> {
    let response = client
        .request("GET", uri, None)
        .await
        .context(RequestSnafu)?;
    serde_json::from_str(&response.body).context(ResponseJsonSnafu {
        uri,
        body: response.body.clone(),
    })
}

/// Merges `from` into `into`: objects key by key, recursively; anything else is replaced.
pub fn merge_json(into: &mut Value, from: Value) {
    match (into, from) {
        (Value::Object(into), Value::Object(from)) => {
            for (key, value) in from {
                match into.get_mut(&key) {
                    Some(existing) => merge_json(existing, value),
                    None => {
                        into.insert(key, value);
                    }
                }
            }
        }
        (into, from) => *into = from,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bare_names_are_settings() {
        assert_eq!(full_prefix("motd"), "settings.motd");
        assert_eq!(full_prefix("updates.seed"), "settings.updates.seed");
        assert_eq!(full_prefix("settings.motd"), "settings.motd");
        assert_eq!(full_prefix("settings"), "settings");
        assert_eq!(full_prefix("os.version_id"), "os.version_id");
        assert_eq!(full_prefix("oscar"), "settings.oscar");
    }

    #[test]
    fn prefixes_are_escaped_in_the_query() {
        assert_eq!(prefix_uri("settings.motd"), "/?prefix=settings.motd");
        assert_eq!(
            prefix_uri(r#"settings.kernel.sysctl."a.b""#),
            "/?prefix=settings.kernel.sysctl.%22a.b%22"
        );
        assert_eq!(prefix_uri("a&b=c d"), "/?prefix=a%26b%3Dc%20d");
    }

    #[test]
    fn answers_merge_recursively_and_later_ones_win() {
        let mut merged = json!({"settings": {"motd": "hi", "updates": {"seed": 1}}});
        merge_json(
            &mut merged,
            json!({"settings": {"updates": {"version-lock": "latest", "seed": 2}}, "os": {"arch": "x86_64"}}),
        );
        assert_eq!(
            merged,
            json!({
                "settings": {"motd": "hi", "updates": {"seed": 2, "version-lock": "latest"}},
                "os": {"arch": "x86_64"},
            })
        );
    }
}
