//! The running image's identity: `/usr/lib/os-release` (upstream's `bottlerocket-release`) plus
//! the architecture this binary was built for.
//!
//! The file is read by the workspace's one os-release parser, [`nodeio::os_release`] (shell-style
//! quoting; a malformed line, such as an unterminated quote, is an error naming the file, line and
//! problem). updog needs `VARIANT_ID` and `VERSION_ID` (a full semantic version); `PRETTY_NAME`
//! and `BUILD_ID` are read when present.

use nodeio::os_release::{OsRelease, OsReleaseError};
use semver::Version;
use snafu::{ResultExt, Snafu};
use std::path::{Path, PathBuf};

#[derive(Debug, Snafu)]
#[snafu(visibility(pub(crate)))]
pub enum ReleaseError {
    #[snafu(display("{source}"))]
    OsRelease { source: OsReleaseError },

    #[snafu(display("Release file {}: missing key '{key}' (expected {expected})", path.display()))]
    MissingKey {
        path: PathBuf,
        key: &'static str,
        expected: &'static str,
    },

    #[snafu(display(
        "Release file {}: key 'VERSION_ID' must be a semantic version like 1.2.3, found '{value}': {source}",
        path.display()
    ))]
    BadVersion {
        path: PathBuf,
        value: String,
        source: semver::Error,
    },
}

/// What the running image says it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    pub pretty_name: Option<String>,
    pub variant_id: String,
    pub version_id: Version,
    pub build_id: Option<String>,
    /// The architecture of this build (`x86_64`, `aarch64`).
    pub arch: String,
}

/// The architecture updates must be built for: the one this binary was compiled for, named as
/// manifest.json names it (`x86_64`, `aarch64`; Rust uses the same names).
pub fn build_arch() -> &'static str {
    std::env::consts::ARCH
}

impl Release {
    /// Reads the release file at `path`.
    pub fn load(path: &Path) -> Result<Self, ReleaseError> {
        Self::from_os_release(&OsRelease::read(path).context(OsReleaseSnafu)?)
    }

    /// Parses release text; `path` is only used in error messages.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ReleaseError> {
        Self::from_os_release(&OsRelease::parse(text, path).context(OsReleaseSnafu)?)
    }

    fn from_os_release(release: &OsRelease) -> Result<Self, ReleaseError> {
        let path = release.path();
        let required = |key: &'static str, expected: &'static str| {
            release
                .get(key)
                .filter(|v| !v.is_empty())
                .ok_or_else(|| ReleaseError::MissingKey {
                    path: path.to_owned(),
                    key,
                    expected,
                })
        };

        let variant_id = required("VARIANT_ID", "the variant name, e.g. VARIANT_ID=aws-dev")?;
        let version = required(
            "VERSION_ID",
            "the image's semantic version, e.g. VERSION_ID=1.2.3",
        )?;
        let version_id = Version::parse(version).context(BadVersionSnafu {
            path,
            value: version,
        })?;
        Ok(Self {
            pretty_name: release.get("PRETTY_NAME").map(str::to_string),
            variant_id: variant_id.to_string(),
            version_id,
            build_id: release.get("BUILD_ID").map(str::to_string),
            arch: build_arch().to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Release, ReleaseError> {
        Release::parse(text, Path::new("/usr/lib/os-release"))
    }

    #[test]
    fn a_bottlerocket_os_release_parses() {
        let release = parse(
            "NAME=Bottlerocket\nID=bottlerocket\nVERSION=\"1.26.1 (aws-dev)\"\n\
             PRETTY_NAME=\"Bottlerocket OS 1.26.1 (aws-dev)\"\nVARIANT_ID=aws-dev\n\
             VERSION_ID=1.26.1\nBUILD_ID=943d9a41\n# a comment=ignored\n",
        )
        .unwrap();
        assert_eq!(release.variant_id, "aws-dev");
        assert_eq!(release.version_id, Version::new(1, 26, 1));
        assert_eq!(release.build_id.as_deref(), Some("943d9a41"));
        assert_eq!(
            release.pretty_name.as_deref(),
            Some("Bottlerocket OS 1.26.1 (aws-dev)")
        );
        assert_eq!(release.arch, std::env::consts::ARCH);
    }

    #[test]
    fn quotes_of_either_kind_are_stripped() {
        let release = parse("VARIANT_ID='metal-dev'\nVERSION_ID=\"1.0.0\"\n").unwrap();
        assert_eq!(release.variant_id, "metal-dev");
        assert_eq!(release.version_id, Version::new(1, 0, 0));
    }

    #[test]
    fn a_missing_key_is_named() {
        let message = parse("VARIANT_ID=aws-dev\n").unwrap_err().to_string();
        assert_eq!(
            message,
            "Release file /usr/lib/os-release: missing key 'VERSION_ID' (expected the image's semantic version, e.g. VERSION_ID=1.2.3)"
        );
        let message = parse("VERSION_ID=1.0.0\nVARIANT_ID=\n")
            .unwrap_err()
            .to_string();
        assert!(message.contains("missing key 'VARIANT_ID'"), "{message}");
    }

    #[test]
    fn an_unterminated_quote_is_refused_naming_file_line_and_key() {
        let message = parse("VERSION_ID=1.0.0\nVARIANT_ID=\"aws-dev\n")
            .unwrap_err()
            .to_string();
        assert_eq!(
            message,
            "os-release file /usr/lib/os-release, line 2: the value of VARIANT_ID has an unterminated double \
             quote (\"); a value must close its quotes on its line"
        );
    }

    #[test]
    fn a_version_that_is_not_semver_is_named() {
        let message = parse("VARIANT_ID=aws-dev\nVERSION_ID=1.2\n")
            .unwrap_err()
            .to_string();
        assert!(
            message.starts_with("Release file /usr/lib/os-release: key 'VERSION_ID' must be a semantic version like 1.2.3, found '1.2'"),
            "{message}"
        );
    }
}
