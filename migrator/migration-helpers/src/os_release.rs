//! The `os.*` values upstream makes available to migrations (from os-release, plus the arch), so
//! a migration can act on the variant or the version it runs under.

use crate::error::{self, Result};
use nodeio::os_release::{OsRelease, OsReleaseError};
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
/// given. A malformed file is an error naming its line (the workspace's one parser,
/// [`nodeio::os_release`]).
pub fn os_values() -> Result<HashMap<String, serde_json::Value>> {
    let path = match std::env::var_os(OS_RELEASE_ENV) {
        Some(path) => Some(PathBuf::from(path)),
        None => ["/etc/os-release", "/usr/lib/os-release"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.is_file()),
    };
    let release = match &path {
        Some(path) => Some(read(path)?),
        None => None,
    };
    Ok(values_from(release.as_ref()))
}

/// The `os.*` values of an os-release file (only `os.arch` without one).
fn values_from(release: Option<&OsRelease>) -> HashMap<String, serde_json::Value> {
    let mut values: HashMap<String, serde_json::Value> = FIELDS
        .iter()
        .filter_map(|(field, key)| {
            release
                .and_then(|release| release.get(field))
                .map(|v| (key.to_string(), v.into()))
        })
        .collect();
    values.insert("os.arch".into(), std::env::consts::ARCH.into());
    values
}

/// Reads and parses an os-release file; a read error keeps its [`error::Error::OsRelease`] form.
fn read(path: &Path) -> Result<OsRelease> {
    OsRelease::read(path).map_err(|e| match e {
        OsReleaseError::Read { path, source } => error::Error::OsRelease { path, source },
        syntax => error::Error::OsReleaseSyntax { source: syntax },
    })
}

/// Reads `VERSION_ID` from an os-release file.
pub fn version_id(path: &Path) -> Result<Option<String>> {
    Ok(read(path)?.get("VERSION_ID").map(str::to_string))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> OsRelease {
        OsRelease::parse(text, Path::new("/usr/lib/os-release")).unwrap()
    }

    #[test]
    fn reads_bottlerocket_fields_as_os_keys() {
        let values = values_from(Some(&parse(
            "NAME=Bottlerocket\nPRETTY_NAME=\"Bottlerocket OS 1.2.0 (aws-dev)\"\nVARIANT_ID=aws-dev\nVERSION_ID=1.2.0\nBUILD_ID='abc123'\n# comment\n",
        )));
        assert_eq!(values["os.variant_id"], "aws-dev");
        assert_eq!(values["os.version_id"], "1.2.0");
        assert_eq!(values["os.build_id"], "abc123");
        assert_eq!(values["os.pretty_name"], "Bottlerocket OS 1.2.0 (aws-dev)");
        assert_eq!(values["os.arch"], std::env::consts::ARCH);
        assert!(!values.contains_key("os.name"));
        assert_eq!(values_from(None).len(), 1);
    }

    #[test]
    fn a_malformed_os_release_is_an_error_naming_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("os-release");
        std::fs::write(&path, "VERSION_ID=\"1.2.0\nVARIANT_ID=aws-dev\n").unwrap();
        let err = version_id(&path).unwrap_err();
        assert!(matches!(err, error::Error::OsReleaseSyntax { .. }), "{err}");
        assert_eq!(
            err.to_string(),
            format!(
                "os-release file {}, line 1: the value of VERSION_ID has an unterminated double quote (\"); a \
                 value must close its quotes on its line",
                path.display()
            )
        );
        std::fs::write(&path, "VERSION_ID=\"1.2.0\"\n").unwrap();
        assert_eq!(version_id(&path).unwrap().as_deref(), Some("1.2.0"));
        let missing = dir.path().join("missing");
        assert!(matches!(
            version_id(&missing).unwrap_err(),
            error::Error::OsRelease { .. }
        ));
    }
}
