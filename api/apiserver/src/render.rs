//! What `POST /tx/commit_and_apply` applies: the config files rendered from the live `settings.updates.*`, so the
//! settings API steers updates.
//!
//! - `/etc/thar-be-updates.toml`: `version-lock` (the setting, default `"latest"`, as upstream's template).
//! - `/etc/updog.toml`: `seed`, `version_lock`, `ignore_waves`, `metadata_base_url`, `targets_base_url` from the
//!   settings that are set; every other key is kept (a setting that is not set leaves its key as it was). A missing
//!   file is created only when there is something to put in it. Comments are not kept (the file is re-serialized).
//!
//! Both are written atomically (nodeio), keeping an existing file's mode.

use crate::error::RequestError;
use datastore::Key;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// `/etc/thar-be-updates.toml` under the sysroot.
pub const THAR_BE_UPDATES_TOML: &str = "etc/thar-be-updates.toml";
/// `/etc/updog.toml` under the sysroot.
pub const UPDOG_TOML: &str = "etc/updog.toml";

/// `settings.updates.<name>` → updog.toml key.
const UPDOG_KEYS: [(&str, &str); 5] = [
    ("seed", "seed"),
    ("version-lock", "version_lock"),
    ("ignore-waves", "ignore_waves"),
    ("metadata-base-url", "metadata_base_url"),
    ("targets-base-url", "targets_base_url"),
];

/// Renders both files from the live settings (`settings.*` keys with raw values); returns the files written.
pub fn render(sysroot: &Path, live: &BTreeMap<Key, String>) -> Result<Vec<PathBuf>, RequestError> {
    let mut updates = BTreeMap::new();
    for (key, raw) in live {
        if let [_, group, name] = key.segments()
            && group == "updates"
        {
            let path = sysroot.join(UPDOG_TOML);
            let value: Value = serde_json::from_str(raw).map_err(|e| RequestError::Render {
                path,
                reason: format!("setting '{key}' is not JSON: {e}"),
            })?;
            updates.insert(name.clone(), value);
        }
    }
    // Both files are prepared before either is written: a broken updog.toml leaves both as they were.
    let tbu_path = sysroot.join(THAR_BE_UPDATES_TOML);
    let mut tbu = read_table(&tbu_path)?.unwrap_or_default();
    let lock = match updates.get("version-lock") {
        Some(value) => to_toml(&tbu_path, "version-lock", value)?,
        None => toml::Value::String("latest".into()),
    };
    tbu.insert("version-lock".into(), lock);

    let updog_path = sysroot.join(UPDOG_TOML);
    let existing = read_table(&updog_path)?;
    let had_file = existing.is_some();
    let mut updog = existing.unwrap_or_default();
    let mut changed = false;
    for (setting, updog_key) in UPDOG_KEYS {
        if let Some(value) = updates.get(setting) {
            updog.insert(updog_key.into(), to_toml(&updog_path, setting, value)?);
            changed = true;
        }
    }

    write_table(&tbu_path, &tbu)?;
    let mut written = vec![tbu_path];
    if had_file || changed {
        write_table(&updog_path, &updog)?;
        written.push(updog_path);
    }
    Ok(written)
}

fn to_toml(path: &Path, setting: &str, value: &Value) -> Result<toml::Value, RequestError> {
    let unrepresentable = |what: &str| RequestError::Render {
        path: path.to_path_buf(),
        reason: format!("settings.updates.{setting} is {what}, which the file cannot hold"),
    };
    Ok(match value {
        Value::String(s) => toml::Value::String(s.clone()),
        Value::Bool(b) => toml::Value::Boolean(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => toml::Value::Integer(i),
            None => return Err(unrepresentable("a non-integer number")),
        },
        Value::Null | Value::Array(_) | Value::Object(_) => {
            return Err(unrepresentable("not a scalar"));
        }
    })
}

fn read_table(path: &Path) -> Result<Option<toml::Table>, RequestError> {
    let text = match nodeio::read_small_text_file(path, nodeio::SMALL_FILE_LIMIT) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(RequestError::Render {
                path: path.to_path_buf(),
                reason: format!("cannot read it: {e}"),
            });
        }
    };
    toml::from_str(&text)
        .map(Some)
        .map_err(|e| RequestError::Render {
            path: path.to_path_buf(),
            reason: format!("it is not valid TOML, so its other keys cannot be kept: {e}"),
        })
}

fn write_table(path: &Path, table: &toml::Table) -> Result<(), RequestError> {
    let failed = |reason: String| RequestError::Render {
        path: path.to_path_buf(),
        reason,
    };
    let text = toml::to_string(table).map_err(|e| failed(format!("cannot serialize it: {e}")))?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| failed(format!("cannot create {}: {e}", dir.display())))?;
    }
    nodeio::write_atomically(path, text.as_bytes()).map_err(|e| failed(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datastore::KeyType;

    fn live(pairs: &[(&str, &str)]) -> BTreeMap<Key, String> {
        pairs
            .iter()
            .map(|(k, v)| (Key::new(KeyType::Data, k).unwrap(), (*v).to_string()))
            .collect()
    }

    #[test]
    fn updates_settings_reach_both_files_and_other_keys_stay() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        std::fs::write(
            dir.path().join(UPDOG_TOML),
            "metadata_base_url = \"http://a/\"\ntargets_base_url = \"http://b/\"\nseed = 1\n\
             version_lock = \"latest\"\nignore_waves = false\nhttps_proxy = \"http://p:3128\"\n",
        )
        .unwrap();
        let written = render(
            dir.path(),
            &live(&[
                ("settings.updates.seed", "77"),
                ("settings.updates.version-lock", "\"v1.1.0\""),
                ("settings.updates.ignore-waves", "true"),
                ("settings.motd", "\"hi\""),
            ]),
        )
        .unwrap();
        assert_eq!(written.len(), 2);
        let tbu: toml::Table = toml::from_str(
            &std::fs::read_to_string(dir.path().join(THAR_BE_UPDATES_TOML)).unwrap(),
        )
        .unwrap();
        assert_eq!(tbu["version-lock"].as_str(), Some("v1.1.0"));
        let updog: toml::Table =
            toml::from_str(&std::fs::read_to_string(dir.path().join(UPDOG_TOML)).unwrap()).unwrap();
        assert_eq!(updog["seed"].as_integer(), Some(77));
        assert_eq!(updog["version_lock"].as_str(), Some("v1.1.0"));
        assert_eq!(updog["ignore_waves"].as_bool(), Some(true));
        assert_eq!(updog["metadata_base_url"].as_str(), Some("http://a/"));
        assert_eq!(updog["https_proxy"].as_str(), Some("http://p:3128"));
    }

    #[test]
    fn without_settings_the_lock_is_latest_and_no_updog_toml_is_invented() {
        let dir = tempfile::tempdir().unwrap();
        let written = render(dir.path(), &live(&[("settings.motd", "\"hi\"")])).unwrap();
        assert_eq!(written, [dir.path().join(THAR_BE_UPDATES_TOML)]);
        assert_eq!(
            std::fs::read_to_string(dir.path().join(THAR_BE_UPDATES_TOML)).unwrap(),
            "version-lock = \"latest\"\n"
        );
        assert!(!dir.path().join(UPDOG_TOML).exists());
    }

    #[test]
    fn a_broken_updog_toml_is_named_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        std::fs::write(dir.path().join(UPDOG_TOML), "seed = [").unwrap();
        let err = render(dir.path(), &live(&[("settings.updates.seed", "3")])).unwrap_err();
        assert!(err.to_string().contains("updog.toml"), "{err}");
        assert_eq!(
            std::fs::read_to_string(dir.path().join(UPDOG_TOML)).unwrap(),
            "seed = ["
        );
        assert!(!dir.path().join(THAR_BE_UPDATES_TOML).exists());
    }
}
