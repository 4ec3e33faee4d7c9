//! `GET /os`: the booted release from `<sysroot>/usr/lib/os-release`, plus the build's architecture.

use crate::error::{self, RequestError};
use serde_json::{Map, Value};
use snafu::{OptionExt, ResultExt};
use std::path::Path;

/// os-release under the sysroot.
pub const OS_RELEASE: &str = "usr/lib/os-release";

/// The architecture as upstream names it: Rust's names are already upstream's (`x86_64`, `aarch64`).
pub const ARCH: &str = std::env::consts::ARCH;

/// `(field, os-release key, required)`: the fields `GET /os` shows. The update operator reads `version_id`, and a
/// release without a variant cannot be updated, so those two must be there.
const FIELDS: [(&str, &str, bool); 4] = [
    ("build_id", "BUILD_ID", false),
    ("pretty_name", "PRETTY_NAME", false),
    ("variant_id", "VARIANT_ID", true),
    ("version_id", "VERSION_ID", true),
];

/// The `os` object: `arch`, `build_id`, `pretty_name`, `variant_id`, `version_id`.
pub fn os_info(sysroot: &Path) -> Result<Map<String, Value>, RequestError> {
    let path = sysroot.join(OS_RELEASE);
    let release = nodeio::os_release::OsRelease::read(&path).context(error::OsReleaseSnafu)?;
    let mut os = Map::new();
    os.insert("arch".into(), Value::from(ARCH));
    for (field, key, required) in FIELDS {
        match release.get(key) {
            Some(value) => {
                os.insert(field.into(), Value::from(value));
            }
            None if required => {
                return None.context(error::OsReleaseKeySnafu { path: &path, key });
            }
            None => {}
        }
    }
    Ok(os)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_release_fields_and_arch() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("usr/lib")).unwrap();
        std::fs::write(
            dir.path().join(OS_RELEASE),
            "NAME=Bottlerocket\nVERSION_ID=1.2.0\nVARIANT_ID=aws-dev\nBUILD_ID=abc\nPRETTY_NAME=\"Bottlerocket OS 1.2.0\"\n",
        )
        .unwrap();
        let os = os_info(dir.path()).unwrap();
        assert_eq!(
            Value::Object(os),
            serde_json::json!({"arch": ARCH, "build_id": "abc", "pretty_name": "Bottlerocket OS 1.2.0",
                               "variant_id": "aws-dev", "version_id": "1.2.0"})
        );
        std::fs::write(dir.path().join(OS_RELEASE), "VARIANT_ID=aws-dev\n").unwrap();
        let err = os_info(dir.path()).unwrap_err();
        assert!(err.to_string().contains("VERSION_ID"), "{err}");
    }
}
