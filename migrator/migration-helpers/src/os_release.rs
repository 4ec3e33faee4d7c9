//! The `os.*` values upstream makes available to migrations (from os-release, plus the arch), so
//! a migration can act on the variant or the version it runs under.

use crate::error::{self, Result};
use snafu::ResultExt;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Environment variable naming the os-release file to read (migrator sets it to the booted
/// image's os-release under its `--sysroot`); without it, `/etc/os-release` then
/// `/usr/lib/os-release` are read.
pub const OS_RELEASE_ENV: &str = "MIGRATION_OS_RELEASE";

/// os-release fields and the `os.*` keys they become (upstream's `BottlerocketRelease` fields).
const FIELDS: [(&str, &str); 4] = [
    ("PRETTY_NAME", "os.pretty_name"),
    ("VARIANT_ID", "os.variant_id"),
    ("VERSION_ID", "os.version_id"),
    ("BUILD_ID", "os.build_id"),
];

/// The `os.*` values: `os.arch` always, the others when os-release has them. A file named by
/// [`OS_RELEASE_ENV`] must be readable; with no such file at the default paths only `os.arch` is
/// given.
pub fn os_values() -> Result<HashMap<String, serde_json::Value>> {
    let path = match std::env::var_os(OS_RELEASE_ENV) {
        Some(path) => Some(PathBuf::from(path)),
        None => ["/etc/os-release", "/usr/lib/os-release"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.is_file()),
    };
    let text = match &path {
        Some(path) => std::fs::read_to_string(path).context(error::OsReleaseSnafu { path })?,
        None => String::new(),
    };
    Ok(values_from(&text))
}

/// The `os.*` values of an os-release text.
pub fn values_from(text: &str) -> HashMap<String, serde_json::Value> {
    let fields = parse(text);
    let mut values: HashMap<String, serde_json::Value> = FIELDS
        .iter()
        .filter_map(|(field, key)| {
            fields
                .get(*field)
                .map(|v| (key.to_string(), v.clone().into()))
        })
        .collect();
    values.insert("os.arch".into(), std::env::consts::ARCH.into());
    values
}

/// `KEY=value` lines; values may be single- or double-quoted; comments and blank lines skipped.
pub fn parse(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|line| {
            let line = line.trim();
            if line.starts_with('#') {
                return None;
            }
            let (key, value) = line.split_once('=')?;
            let value = value.trim();
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(value);
            Some((key.trim().to_string(), value.to_string()))
        })
        .collect()
}

/// Reads `VERSION_ID` from an os-release file.
pub fn version_id(path: &Path) -> Result<Option<String>> {
    let text = std::fs::read_to_string(path).context(error::OsReleaseSnafu { path })?;
    Ok(parse(&text).remove("VERSION_ID"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_bottlerocket_fields_as_os_keys() {
        let values = values_from(
            "NAME=Bottlerocket\nPRETTY_NAME=\"Bottlerocket OS 1.2.0 (aws-dev)\"\nVARIANT_ID=aws-dev\nVERSION_ID=1.2.0\nBUILD_ID='abc123'\n# comment\n",
        );
        assert_eq!(values["os.variant_id"], "aws-dev");
        assert_eq!(values["os.version_id"], "1.2.0");
        assert_eq!(values["os.build_id"], "abc123");
        assert_eq!(values["os.pretty_name"], "Bottlerocket OS 1.2.0 (aws-dev)");
        assert_eq!(values["os.arch"], std::env::consts::ARCH);
        assert!(!values.contains_key("os.name"));
    }
}
