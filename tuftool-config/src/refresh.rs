//! Refreshing expirations: re-signing targets, snapshot and timestamp with new versions and new
//! expiry times, without adding targets. Run it on a schedule well inside the shortest lifetime
//! (see docs/publishing.md). It also publishes a newer root.json if the root path names one
//! (that is how a rotation is published).

use crate::error::Result;
use crate::expiry::Expirations;
use crate::keys::RoleKeys;
use crate::repo::{BuildSummary, Mode, RepoBuild, RoleVersions};
use jiff::Timestamp;
use std::path::{Path, PathBuf};

/// Re-signs an existing repository. Required things in [`Refresh::new`], optional as methods.
#[derive(Debug, Clone)]
pub struct Refresh {
    build: RepoBuild,
}

impl Refresh {
    /// A refresh under the root.json at `root_path`, with `keys` for targets, snapshot and
    /// timestamp, at time `now`.
    #[must_use]
    pub fn new(root_path: impl Into<PathBuf>, keys: RoleKeys, now: Timestamp) -> Self {
        Self {
            build: RepoBuild::new(root_path, keys, now),
        }
    }

    /// Explicit versions (each must increase). Default: [`RoleVersions::derived`].
    #[must_use]
    pub fn versions(mut self, versions: RoleVersions) -> Self {
        self.build = self.build.versions(versions);
        self
    }

    /// Expiry policy or fixed times. Default: [`crate::ExpirationPolicy::default`].
    #[must_use]
    pub fn expirations(mut self, expirations: impl Into<Expirations>) -> Self {
        self.build = self.build.expirations(expirations);
        self
    }

    /// Re-signs and atomically publishes. Errors if `out` holds no repository yet, and leaves
    /// `out` as it was on any error.
    pub async fn write(self, out: impl AsRef<Path>) -> Result<BuildSummary> {
        self.build.run(out.as_ref(), Mode::Refresh).await
    }
}
