//! The four top-level TUF roles, named as they appear in messages and in the config file.

use serde::{Deserialize, Serialize};
use std::fmt;
use tough::schema::RoleType;

/// A top-level role. Delegated targets roles are not supported (Bottlerocket uses none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// root.json: which keys sign each role.
    Root,
    /// targets.json: the target files, their lengths and hashes.
    Targets,
    /// snapshot.json: the version of targets.json.
    Snapshot,
    /// timestamp.json: the version of snapshot.json; short-lived, re-signed often.
    Timestamp,
}

impl Role {
    /// All four roles, root first.
    pub const ALL: [Role; 4] = [Role::Root, Role::Targets, Role::Snapshot, Role::Timestamp];

    /// The three roles a build or refresh signs.
    pub const REPO: [Role; 3] = [Role::Targets, Role::Snapshot, Role::Timestamp];

    /// tough's name for this role.
    pub fn role_type(self) -> RoleType {
        match self {
            Role::Root => RoleType::Root,
            Role::Targets => RoleType::Targets,
            Role::Snapshot => RoleType::Snapshot,
            Role::Timestamp => RoleType::Timestamp,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Role::Root => "root",
            Role::Targets => "targets",
            Role::Snapshot => "snapshot",
            Role::Timestamp => "timestamp",
        })
    }
}
