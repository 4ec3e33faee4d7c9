//! The repository config file (TOML): where root.json and the signing keys live, the base URLs,
//! the expiration policy and the repository directory. See docs/publishing.md for an example.
//!
//! Relative paths are resolved against the directory holding the config file, so a config and
//! its keys can be moved together.

use crate::error::{self, Result};
use crate::expiry::ExpirationPolicy;
use crate::keys::{RoleKeys, SigningKey};
use crate::role::Role;
use crate::root::RootBuilder;
use jiff::Timestamp;
use serde::Deserialize;
use snafu::{ResultExt, ensure};
use std::collections::BTreeMap;
use std::num::NonZeroU64;
use std::path::{Path, PathBuf};
use url::Url;

/// The keys and threshold of one role.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleConfig {
    /// Private key files (PEM; rsa, ed25519 or ecdsa p256). A key may serve several roles.
    pub keys: Vec<PathBuf>,
    /// How many of them must sign (default 1).
    #[serde(default = "one")]
    pub threshold: NonZeroU64,
}

fn one() -> NonZeroU64 {
    NonZeroU64::MIN
}

/// The `[roles.*]` tables: all four are required.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolesConfig {
    /// `[roles.root]`
    pub root: RoleConfig,
    /// `[roles.targets]`
    pub targets: RoleConfig,
    /// `[roles.snapshot]`
    pub snapshot: RoleConfig,
    /// `[roles.timestamp]`
    pub timestamp: RoleConfig,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    root: PathBuf,
    repository: PathBuf,
    metadata_base_url: String,
    targets_base_url: String,
    expiration: ExpirationPolicy,
    roles: RolesConfig,
}

/// A loaded repository config, paths resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoConfig {
    /// The config file itself.
    pub path: PathBuf,
    /// The current root.json (the newest version; what `create-root` writes).
    pub root: PathBuf,
    /// The repository directory (`metadata/` and `targets/` inside).
    pub repository: PathBuf,
    /// Where clients fetch metadata (updog.toml's `metadata_base_url`).
    pub metadata_base_url: Url,
    /// Where clients fetch targets (updog.toml's `targets_base_url`).
    pub targets_base_url: Url,
    /// Role lifetimes.
    pub expiration: ExpirationPolicy,
    /// Keys and thresholds per role.
    pub roles: RolesConfig,
}

impl RepoConfig {
    /// Reads and checks a config file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).context(error::ReadConfigSnafu { path })?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Self::from_toml(&text, path, &base)
    }

    /// Parses config text; `path` names it in errors, relative paths are resolved against `base`.
    pub fn from_toml(text: &str, path: &Path, base: &Path) -> Result<Self> {
        let raw: RawConfig = toml::from_str(text).context(error::ParseConfigSnafu { path })?;
        let resolve = |p: &Path| {
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                base.join(p)
            }
        };
        let url = |field: &'static str, text: &str| {
            Url::parse(text).context(error::ConfigUrlSnafu {
                path,
                field,
                url: text,
            })
        };
        let mut roles = raw.roles;
        for role in Role::ALL {
            let rc = role_mut(&mut roles, role);
            ensure!(!rc.keys.is_empty(), error::ConfigNoKeysSnafu { path, role });
            let distinct = rc
                .keys
                .iter()
                .collect::<std::collections::BTreeSet<_>>()
                .len() as u64;
            ensure!(
                rc.threshold.get() <= distinct,
                error::ConfigThresholdSnafu {
                    path,
                    role,
                    threshold: rc.threshold.get(),
                    keys: distinct
                }
            );
            rc.keys = rc.keys.iter().map(|k| resolve(k)).collect();
        }
        Ok(Self {
            path: path.to_path_buf(),
            root: resolve(&raw.root),
            repository: resolve(&raw.repository),
            metadata_base_url: url("metadata_base_url", &raw.metadata_base_url)?,
            targets_base_url: url("targets_base_url", &raw.targets_base_url)?,
            expiration: raw.expiration,
            roles,
        })
    }

    /// The config of one role.
    pub fn role(&self, role: Role) -> &RoleConfig {
        match role {
            Role::Root => &self.roles.root,
            Role::Targets => &self.roles.targets,
            Role::Snapshot => &self.roles.snapshot,
            Role::Timestamp => &self.roles.timestamp,
        }
    }

    /// Loads every key file once (a key may serve several roles); an error names the file and
    /// the role it was listed for.
    pub async fn load_keys(&self) -> Result<ConfigKeys> {
        let mut loaded: BTreeMap<PathBuf, SigningKey> = BTreeMap::new();
        let mut by_role = BTreeMap::new();
        for role in Role::ALL {
            let mut keys = Vec::new();
            for path in &self.role(role).keys {
                let key = match loaded.get(path) {
                    Some(key) => key.clone(),
                    None => {
                        let key = SigningKey::from_pem_file(path).await.map_err(|e| {
                            error::Error::ConfigKey {
                                path: path.clone(),
                                role,
                                config: self.path.clone(),
                                source: Box::new(e),
                            }
                        })?;
                        loaded.insert(path.clone(), key.clone());
                        key
                    }
                };
                keys.push(key);
            }
            by_role.insert(role, keys);
        }
        Ok(ConfigKeys { by_role })
    }

    /// A root builder for this config's roles, thresholds and root lifetime, at `now`.
    pub fn root_builder(&self, keys: &ConfigKeys, now: Timestamp) -> Result<RootBuilder> {
        let mut builder = RootBuilder::new(self.expiration.root.after(now)?);
        for role in Role::ALL {
            builder = builder.role(role, keys.get(role).to_vec(), self.role(role).threshold);
        }
        Ok(builder)
    }
}

fn role_mut(roles: &mut RolesConfig, role: Role) -> &mut RoleConfig {
    match role {
        Role::Root => &mut roles.root,
        Role::Targets => &mut roles.targets,
        Role::Snapshot => &mut roles.snapshot,
        Role::Timestamp => &mut roles.timestamp,
    }
}

/// The keys a config names, loaded, by role.
#[derive(Debug, Clone)]
pub struct ConfigKeys {
    by_role: BTreeMap<Role, Vec<SigningKey>>,
}

impl ConfigKeys {
    /// The keys of `role`.
    pub fn get(&self, role: Role) -> &[SigningKey] {
        self.by_role.get(&role).map_or(&[], Vec::as_slice)
    }

    /// The targets, snapshot and timestamp keys, for a build or refresh.
    pub fn repo_keys(&self) -> RoleKeys {
        Role::REPO.iter().fold(RoleKeys::new(), |keys, &role| {
            keys.role(role, self.get(role).to_vec())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
root = "root.json"
repository = "/srv/repo"
metadata_base_url = "https://updates.example.com/metadata/"
targets_base_url = "https://updates.example.com/targets/"

[expiration]
root = "52 weeks"
targets = "12 weeks"
snapshot = "12 weeks"
timestamp = "7 days"

[roles.root]
keys = ["keys/root-1.pem", "keys/root-2.pem"]
threshold = 2

[roles.targets]
keys = ["keys/signing.pem"]

[roles.snapshot]
keys = ["keys/signing.pem"]

[roles.timestamp]
keys = ["keys/signing.pem"]
"#;

    #[test]
    fn the_documented_example_parses_with_paths_resolved_against_the_config_dir() {
        let c = RepoConfig::from_toml(
            EXAMPLE,
            Path::new("/etc/pub/repo.toml"),
            Path::new("/etc/pub"),
        )
        .unwrap();
        assert_eq!(c.root, Path::new("/etc/pub/root.json"));
        assert_eq!(c.repository, Path::new("/srv/repo"));
        assert_eq!(c.roles.root.keys[1], Path::new("/etc/pub/keys/root-2.pem"));
        assert_eq!(c.roles.root.threshold.get(), 2);
        assert_eq!(c.roles.targets.threshold.get(), 1);
        assert_eq!(c.expiration.timestamp.as_secs(), 7 * 86_400);
        assert_eq!(
            c.metadata_base_url.as_str(),
            "https://updates.example.com/metadata/"
        );
    }

    #[test]
    fn config_mistakes_name_the_file_and_the_role() {
        let path = Path::new("/etc/pub/repo.toml");
        let bad = EXAMPLE.replace("threshold = 2", "threshold = 3");
        let err = RepoConfig::from_toml(&bad, path, Path::new("/"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("repo.toml") && err.contains("'root'") && err.contains('3'),
            "{err}"
        );

        let bad = EXAMPLE.replace("timestamp = \"7 days\"", "timestamp = \"7 moons\"");
        let err = RepoConfig::from_toml(&bad, path, Path::new("/"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("repo.toml") && err.contains("7 moons"),
            "{err}"
        );

        let bad = EXAMPLE.replace(
            "[roles.snapshot]\nkeys = [\"keys/signing.pem\"]",
            "[roles.snapshot]\nkeys = []",
        );
        let err = RepoConfig::from_toml(&bad, path, Path::new("/"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("'snapshot'"), "{err}");

        let bad = EXAMPLE.replace("https://updates.example.com/targets/", "not a url");
        let err = RepoConfig::from_toml(&bad, path, Path::new("/"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("targets_base_url"), "{err}");
    }
}
