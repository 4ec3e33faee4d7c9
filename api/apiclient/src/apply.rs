//! `apply [URI...|-]`: settings from TOML or JSON documents with a top-level `settings` table (the shape of
//! user data), read from files, `file://` URIs or stdin (`-`, also when no input is given).
//!
//! Every input is read and checked before anything is sent, so a bad input changes nothing; then each input
//! goes into its own transaction (`apiclient-apply-<random>`), committed and applied in the order given.
//! Unlike upstream, http(s) URIs are refused: the node's client fetches nothing from the network itself.

use crate::client::{self, ApiClient};
use crate::set;
use serde_json::{Map, Value};
use snafu::{OptionExt, ResultExt, Snafu, ensure};
use std::io::Read;
use std::path::PathBuf;

#[derive(Debug, Snafu)]
#[snafu(visibility(pub(crate)))]
pub enum Error {
    #[snafu(display("Failed to read standard input: {source}"))]
    StdinRead { source: std::io::Error },

    #[snafu(display("Failed to read given file '{}': {source}", path.display()))]
    FileRead {
        path: PathBuf,
        source: std::io::Error,
    },

    #[snafu(display("Given invalid file URI '{input_source}'"))]
    FileUri { input_source: String },

    #[snafu(display(
        "Input '{input_source}': {scheme} URIs are unsupported; apiclient apply reads files, file:// URIs \
         and standard input ('-'); download the file and give its path"
    ))]
    UnsupportedScheme {
        input_source: String,
        scheme: String,
    },

    #[snafu(display(
        "Input '{input_source}' is not valid TOML or JSON.  (TOML error: {toml_error})  (JSON error: {source})"
    ))]
    InputType {
        input_source: String,
        toml_error: String,
        source: serde_json::Error,
    },

    #[snafu(display("Input '{input_source}' has a TOML float that JSON cannot hold: {value}"))]
    NonFiniteFloat { input_source: String, value: f64 },

    #[snafu(display("Settings from '{input_source}' are not a TOML table / JSON object"))]
    NotObject { input_source: String },

    #[snafu(display(
        "Settings from '{input_source}' did not contain a 'settings' key at top level"
    ))]
    MissingSettings { input_source: String },

    #[snafu(display("The 'settings' of '{input_source}' is not a table / object"))]
    SettingsNotObject { input_source: String },

    #[snafu(display("Failed to apply settings from '{input_source}': {source}"))]
    Request {
        input_source: String,
        source: client::Error,
    },
}

pub type Result<T> = std::result::Result<T, Error>;

/// Reads and checks every input, then applies each in its own transaction.
pub async fn apply<S: AsRef<str>>(client: &ApiClient, input_sources: &[S]) -> Result<()> {
    let stdin_only = ["-".to_owned()];
    let sources: Vec<&str> = if input_sources.is_empty() {
        stdin_only.iter().map(String::as_str).collect()
    } else {
        input_sources.iter().map(AsRef::as_ref).collect()
    };

    let mut changes = Vec::with_capacity(sources.len());
    for source in &sources {
        let text = read_input(source)?;
        changes.push((*source, settings_of(&text, source)?));
    }
    for (input_source, settings) in changes {
        let transaction = set::transaction_name("apiclient-apply");
        set::patch_commit_apply(client, &settings, &transaction)
            .await
            .context(RequestSnafu { input_source })?;
        log::info!("Applied settings from '{input_source}'");
    }
    Ok(())
}

/// The text of one input: stdin for `-`, a `file://` URI's file, or a path.
fn read_input(input_source: &str) -> Result<String> {
    if input_source == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context(StdinReadSnafu)?;
        return Ok(text);
    }
    let path = match url::Url::parse(input_source) {
        Ok(uri) if uri.scheme() == "file" => uri
            .to_file_path()
            .ok()
            .context(FileUriSnafu { input_source })?,
        // A one-letter "scheme" is a Windows drive to the URL parser; here such inputs are relative paths.
        Ok(uri) if uri.scheme().len() > 1 || input_source.contains("://") => {
            return UnsupportedSchemeSnafu {
                input_source,
                scheme: uri.scheme(),
            }
            .fail();
        }
        _ => PathBuf::from(input_source),
    };
    std::fs::read_to_string(&path).context(FileReadSnafu { path })
}

/// The settings object of a TOML or JSON document (its top-level `settings` table, unwrapped).
pub fn settings_of(text: &str, input_source: &str) -> Result<Map<String, Value>> {
    let document = match toml::from_str::<toml::Value>(text) {
        Ok(toml) => toml_to_json(toml, input_source)?,
        // Not TOML: try JSON, and keep TOML's complaint in case TOML was meant.
        Err(toml_error) => serde_json::from_str(text).context(InputTypeSnafu {
            input_source,
            toml_error: toml_error.to_string().trim().to_owned(),
        })?,
    };
    let Value::Object(mut document) = document else {
        return NotObjectSnafu { input_source }.fail();
    };
    let settings = document
        .remove("settings")
        .context(MissingSettingsSnafu { input_source })?;
    let Value::Object(settings) = settings else {
        return SettingsNotObjectSnafu { input_source }.fail();
    };
    Ok(settings)
}

/// TOML as JSON: datetimes become their RFC 3339 text; NaN and infinities are refused.
fn toml_to_json(toml: toml::Value, input_source: &str) -> Result<Value> {
    Ok(match toml {
        toml::Value::String(s) => Value::String(s),
        toml::Value::Integer(i) => Value::from(i),
        toml::Value::Float(f) => {
            let number = serde_json::Number::from_f64(f);
            ensure!(
                number.is_some(),
                NonFiniteFloatSnafu {
                    input_source,
                    value: f
                }
            );
            number.map_or(Value::Null, Value::Number)
        }
        toml::Value::Boolean(b) => Value::Bool(b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(items) => Value::Array(
            items
                .into_iter()
                .map(|item| toml_to_json(item, input_source))
                .collect::<Result<_>>()?,
        ),
        toml::Value::Table(table) => Value::Object(
            table
                .into_iter()
                .map(|(key, value)| Ok((key, toml_to_json(value, input_source)?)))
                .collect::<Result<_>>()?,
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn toml_settings_become_the_json_the_api_takes() {
        let text = r#"
            [settings]
            motd = "hi"
            [settings.updates]
            seed = 42
            ignore-waves = true
            [settings.kernel.sysctl]
            "net.ipv4.ip_forward" = "1"
            [settings.ntp]
            time-servers = ["a", "b"]
        "#;
        assert_eq!(
            Value::Object(settings_of(text, "f.toml").unwrap()),
            json!({
                "motd": "hi",
                "updates": {"seed": 42, "ignore-waves": true},
                "kernel": {"sysctl": {"net.ipv4.ip_forward": "1"}},
                "ntp": {"time-servers": ["a", "b"]},
            })
        );
    }

    #[test]
    fn json_settings_are_taken_too() {
        assert_eq!(
            Value::Object(settings_of(r#"{"settings": {"motd": "hi"}}"#, "-").unwrap()),
            json!({"motd": "hi"})
        );
    }

    #[test]
    fn bad_documents_name_their_source() {
        let error = settings_of("motd = \"hi\"", "a.toml").unwrap_err();
        assert_eq!(
            error.to_string(),
            "Settings from 'a.toml' did not contain a 'settings' key at top level"
        );
        let error = settings_of("settings = 3", "b.toml").unwrap_err();
        assert!(matches!(error, Error::SettingsNotObject { .. }), "{error}");
        let error = settings_of("[1, 2]", "c.json").unwrap_err();
        assert!(matches!(error, Error::NotObject { .. }), "{error}");
        let error = settings_of("{ nope", "d").unwrap_err();
        let message = error.to_string();
        assert!(
            message.starts_with("Input 'd' is not valid TOML or JSON.  (TOML error: "),
            "{message}"
        );
        let error = settings_of("[settings]\nx = nan", "e.toml").unwrap_err();
        assert!(matches!(error, Error::NonFiniteFloat { .. }), "{error}");
    }

    #[test]
    fn toml_datetimes_become_text() {
        assert_eq!(
            Value::Object(settings_of("[settings]\nat = 2026-12-03T12:00:00Z", "f").unwrap()),
            json!({"at": "2026-12-03T12:00:00Z"})
        );
    }

    #[test]
    fn network_uris_are_refused_and_paths_and_file_uris_are_read() {
        for uri in ["http://example.com/s.toml", "https://example.com/s.toml"] {
            let error = read_input(uri).unwrap_err();
            assert!(
                matches!(&error, Error::UnsupportedScheme { scheme, .. } if uri.starts_with(scheme.as_str())),
                "{error}"
            );
            assert!(error.to_string().contains("unsupported"), "{error}");
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.toml");
        std::fs::write(&path, "[settings]\nmotd = \"x\"\n").unwrap();
        let by_path = read_input(path.to_str().unwrap()).unwrap();
        let by_uri = read_input(&format!("file://{}", path.display())).unwrap();
        assert_eq!(by_path, by_uri);
        let error = read_input(dir.path().join("missing.toml").to_str().unwrap()).unwrap_err();
        assert!(
            error.to_string().contains("missing.toml"),
            "names the file: {error}"
        );
    }
}
