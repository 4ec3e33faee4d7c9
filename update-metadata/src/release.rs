//! `Release.toml`: the OS source tree's record of its version and migration chain, from which
//! `updata set-migrations` copies the `migrations` map into manifest.json.
//!
//! ```toml
//! version = "1.26.1"
//!
//! [migrations]
//! "(1.25.0, 1.26.0)" = []
//! "(1.26.0, 1.26.1)" = ["migrate_v1.26.1_foo.lz4"]
//! ```

use crate::de::Entries;
use crate::migration_key;
use semver::Version;
use serde::{Deserialize, Serialize};
use snafu::{ResultExt, Snafu};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Errors reading a Release.toml; every variant names the file.
#[derive(Debug, Snafu)]
#[snafu(visibility(pub(crate)))]
pub enum Error {
    #[snafu(display("Failed to read release file '{}': {source}", path.display()))]
    ReadRelease {
        path: PathBuf,
        source: std::io::Error,
    },

    #[snafu(display("Invalid TOML in release file '{}': {source}", path.display()))]
    ParseRelease {
        path: PathBuf,
        #[snafu(source(from(toml::de::Error, Box::new)))]
        source: Box<toml::de::Error>,
    },

    #[snafu(display("Release file '{}': version '{value}' is not a semantic version: {source}", path.display()))]
    ReleaseVersion {
        path: PathBuf,
        value: String,
        source: semver::Error,
    },

    #[snafu(display("Release file '{}': {source}", path.display()))]
    ReleaseMigrations {
        path: PathBuf,
        source: migration_key::Error,
    },
}

/// The parts of Release.toml this crate uses; other keys are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Release {
    pub version: Version,
    /// Same keys and meaning as [`crate::Manifest::migrations`].
    #[serde(serialize_with = "migration_key::serialize_migrations")]
    pub migrations: BTreeMap<(Version, Version), Vec<String>>,
}

#[derive(Deserialize)]
struct RawRelease {
    version: String,
    // Upstream requires the table; a release with no migrations yet is accepted here.
    #[serde(default)]
    migrations: Entries<Vec<String>>,
}

impl Release {
    /// Parses Release.toml text; `path` names it in errors.
    pub fn from_toml_str(text: &str, path: &Path) -> Result<Self, Error> {
        let raw: RawRelease = toml::from_str(text).context(ParseReleaseSnafu { path })?;
        let version = Version::parse(&raw.version).context(ReleaseVersionSnafu {
            path,
            value: &raw.version,
        })?;
        let migrations = migration_key::migrations_from_entries(raw.migrations.0)
            .context(ReleaseMigrationsSnafu { path })?;
        Ok(Self {
            version,
            migrations,
        })
    }

    /// Reads a Release.toml file.
    pub fn from_path(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).context(ReadReleaseSnafu { path })?;
        Self::from_toml_str(&text, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    const UPSTREAM_TEST_RELEASE: &str = r#"version = "0.2.2"

[migrations]
"(0.0.0, 0.0.2)" = ["migrate_0.0.1_foo", "migrate_0.0.1_baz", "migrate_0.0.2_bar"]
"(0.0.2, 0.0.3)" = ["migrate_0.0.3_foobar"]
"(0.0.0, 0.0.1)" = ["migrate_0.0.1_foo", "migrate_0.0.1_baz"]
"#;

    #[test]
    fn upstream_release_toml_parses() {
        let release =
            Release::from_toml_str(UPSTREAM_TEST_RELEASE, Path::new("Release.toml")).unwrap();
        assert_eq!(release.version, v("0.2.2"));
        assert_eq!(release.migrations.len(), 3);
        assert_eq!(
            release.migrations[&(v("0.0.2"), v("0.0.3"))],
            ["migrate_0.0.3_foobar"]
        );
    }

    #[test]
    fn other_keys_are_ignored_and_migrations_may_be_absent() {
        let release = Release::from_toml_str(
            "version = \"1.0.0\"\ndigest = \"abc\"\n[extra]\nx = 1\n",
            Path::new("R.toml"),
        )
        .unwrap();
        assert!(release.migrations.is_empty());
    }

    #[test]
    fn same_pair_written_two_ways_is_a_duplicate() {
        let err = Release::from_toml_str(
            "version = \"1.0.0\"\n[migrations]\n\"(1.0.0, 1.1.0)\" = []\n\"(1.0.0,1.1.0)\" = []\n",
            Path::new("Release.toml"),
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with("Release file 'Release.toml': Duplicate migration key '(1.0.0,1.1.0)'"),
            "{msg}"
        );
    }

    #[test]
    fn errors_name_the_file() {
        let path = Path::new("/definitely/not/here/Release.toml");
        let msg = Release::from_path(path).unwrap_err().to_string();
        assert!(msg.contains("/definitely/not/here/Release.toml"), "{msg}");

        let msg = Release::from_toml_str("version = \"one\"\n", Path::new("R.toml"))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("'R.toml'") && msg.contains("'one'"), "{msg}");

        let msg = Release::from_toml_str("version = \n", Path::new("R.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            msg.starts_with("Invalid TOML in release file 'R.toml'"),
            "{msg}"
        );
    }
}
