//! The node's well-known paths, resolved under `--sysroot` (docs/architecture.md, "The node's paths"): with the default
//! sysroot `/` they are the real paths; a test points the sysroot at a temporary directory and
//! gets a whole node there.

use std::path::{Path, PathBuf};

/// updog's configuration (upstream's path).
pub const UPDOG_TOML: &str = "/etc/updog.toml";
/// The trusted root the OS image ships (upstream's path).
pub const TRUSTED_ROOT: &str = "/usr/share/updog/root.json";
/// The release identity of the running image (upstream's path).
pub const OS_RELEASE: &str = "/usr/lib/os-release";
/// updog's persisted TUF trust: tough's datastore (`root.json`, `timestamp.json`,
/// `snapshot.json`, `targets.json`, `latest_known_time.json`). Not upstream: upstream loads into
/// a temporary directory and so forgets what it trusted (invariant I5, docs/architecture.md). Under `/var/lib`
/// because it must survive reboots, and not inside `/var/cache`, which may be wiped.
pub const TUF_DATASTORE: &str = "/var/lib/updog/tuf";
/// The lock that keeps two updog runs from interleaving (invariant I6, docs/architecture.md).
pub const LOCK_FILE: &str = "/run/abupdate/updog.lock";
/// Where update-image caches the TUF metadata migrator verifies after reboot (upstream's path).
pub const METADATA_CACHE: &str = "/var/cache/bottlerocket-metadata";
/// Where update-image caches the migration targets (upstream's path).
pub const MIGRATIONS_DIR: &str = "/var/lib/bottlerocket-migrations";
/// The health checks `mark-successful-boot` runs before marking the boot (ours).
pub const HEALTH_DIR: &str = "/etc/updog/health.d";
/// The version update-image wrote into the inactive set (ours; [`crate::records`]).
pub const STAGED_IMAGE: &str = "/var/lib/updog/staged-image.json";
/// The version made the next boot and not yet confirmed by a boot's health checks (ours).
pub const PENDING_UPGRADE: &str = "/var/lib/updog/pending-upgrade.json";
/// The versions the node fell back from, skipped unless named with `--image` (ours).
pub const ROLLED_BACK: &str = "/var/lib/updog/rolled-back.json";

/// A root directory under which every well-known path resolves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sysroot {
    root: PathBuf,
}

impl Default for Sysroot {
    fn default() -> Self {
        Self::new("/")
    }
}

impl Sysroot {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The sysroot directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `absolute` (a path of the running node, e.g. `/etc/updog.toml`) under this sysroot.
    pub fn resolve(&self, absolute: &str) -> PathBuf {
        self.root.join(absolute.trim_start_matches('/'))
    }

    pub fn updog_toml(&self) -> PathBuf {
        self.resolve(UPDOG_TOML)
    }

    pub fn trusted_root(&self) -> PathBuf {
        self.resolve(TRUSTED_ROOT)
    }

    pub fn os_release(&self) -> PathBuf {
        self.resolve(OS_RELEASE)
    }

    pub fn tuf_datastore(&self) -> PathBuf {
        self.resolve(TUF_DATASTORE)
    }

    pub fn lock_file(&self) -> PathBuf {
        self.resolve(LOCK_FILE)
    }

    pub fn metadata_cache(&self) -> PathBuf {
        self.resolve(METADATA_CACHE)
    }

    pub fn migrations_dir(&self) -> PathBuf {
        self.resolve(MIGRATIONS_DIR)
    }

    pub fn health_dir(&self) -> PathBuf {
        self.resolve(HEALTH_DIR)
    }

    pub fn staged_image(&self) -> PathBuf {
        self.resolve(STAGED_IMAGE)
    }

    pub fn pending_upgrade(&self) -> PathBuf {
        self.resolve(PENDING_UPGRADE)
    }

    pub fn rolled_back(&self) -> PathBuf {
        self.resolve(ROLLED_BACK)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_sysroot_gives_the_real_paths() {
        let sysroot = Sysroot::default();
        assert_eq!(sysroot.updog_toml(), Path::new("/etc/updog.toml"));
        assert_eq!(
            sysroot.trusted_root(),
            Path::new("/usr/share/updog/root.json")
        );
        assert_eq!(sysroot.os_release(), Path::new("/usr/lib/os-release"));
        assert_eq!(sysroot.tuf_datastore(), Path::new("/var/lib/updog/tuf"));
        assert_eq!(sysroot.lock_file(), Path::new("/run/abupdate/updog.lock"));
        assert_eq!(sysroot.health_dir(), Path::new("/etc/updog/health.d"));
        assert_eq!(
            sysroot.pending_upgrade(),
            Path::new("/var/lib/updog/pending-upgrade.json")
        );
        assert_eq!(
            sysroot.rolled_back(),
            Path::new("/var/lib/updog/rolled-back.json")
        );
    }

    #[test]
    fn paths_resolve_under_another_sysroot() {
        let sysroot = Sysroot::new("/tmp/node");
        assert_eq!(sysroot.updog_toml(), Path::new("/tmp/node/etc/updog.toml"));
        assert_eq!(
            sysroot.metadata_cache(),
            Path::new("/tmp/node/var/cache/bottlerocket-metadata")
        );
        assert_eq!(
            sysroot.migrations_dir(),
            Path::new("/tmp/node/var/lib/bottlerocket-migrations")
        );
    }
}
