//! Which update a node takes: upstream's `applicable_updates` and `update_required`, as pure
//! functions of the manifest, the node and the time.
//!
//! 1. Applicable: same variant, same arch, `version <= max_version`, and this node's wave has
//!    reached the update (unless waves are ignored). Sorted newest first.
//! 2. `--image V`: the applicable update with exactly version V (a downgrade or the running
//!    version included).
//! 3. `version_lock = V` (not `latest`): none if V is the running version, else the applicable
//!    update with exactly version V (downgrades allowed).
//! 4. `latest`: the first applicable update that is newer than the running version, or any
//!    (the newest) when the running version is above that update's `max_version`: the "regret"
//!    path that moves nodes back down when a release is pulled.
//!
//! Beyond upstream, [`decide`] also says *why* there is no update, so that check-update can tell
//! "up to date" from "an update exists but this node's wave has not reached it" (#990); and a version this node
//! fell back from (`/var/lib/updog/rolled-back.json`, [`crate::records`]) is not applicable unless named with
//! `--image`, so a broken release is never re-applied by itself.

use crate::records::RolledBack;
use chrono::{DateTime, Utc};
use semver::Version;
use std::fmt;
use std::str::FromStr;
use update_metadata::{Manifest, Update, ready_at};

/// `version_lock` in updog.toml.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionLock {
    /// Follow the newest applicable update.
    Latest,
    /// Move to exactly this version (up or down), and stay there.
    Version(Version),
}

/// A `version_lock` that is neither `latest` nor a (optionally `v`-prefixed) semantic version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadVersionLock(pub String);

impl fmt::Display for BadVersionLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "'{}' is neither \"latest\" nor a version like 1.2.3 or v1.2.3",
            self.0
        )
    }
}

impl std::error::Error for BadVersionLock {}

impl FromStr for VersionLock {
    type Err = BadVersionLock;

    /// Upstream's `FriendlyVersion`: `latest`, or a full semantic version with an optional `v`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "latest" {
            return Ok(Self::Latest);
        }
        let version = s.strip_prefix('v').unwrap_or(s);
        Version::parse(version)
            .map(Self::Version)
            .map_err(|_| BadVersionLock(s.to_string()))
    }
}

impl fmt::Display for VersionLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Latest => f.write_str("latest"),
            Self::Version(v) => write!(f, "{v}"),
        }
    }
}

/// Everything selection depends on besides the manifest.
#[derive(Debug, Clone)]
pub struct UpdateQuery<'a> {
    /// The node's variant (`VARIANT_ID`, or `--variant`).
    pub variant: &'a str,
    /// The node's architecture.
    pub arch: &'a str,
    /// The running version (`VERSION_ID`).
    pub current: &'a Version,
    /// The node's seed (updog.toml).
    pub seed: u32,
    /// `--now` or `ignore_waves = true`.
    pub ignore_waves: bool,
    /// The time the waves are evaluated at.
    pub now: DateTime<Utc>,
    pub version_lock: &'a VersionLock,
    /// `--image V`.
    pub image: Option<&'a Version>,
    /// The versions this node fell back from: skipped unless named by `image`.
    pub rolled_back: &'a [RolledBack],
}

impl UpdateQuery<'_> {
    /// The rollback record of `version`, when it is skipped for one (it is not when `--image` names it).
    #[must_use]
    pub fn skipped_as_rolled_back(&self, version: &Version) -> Option<&RolledBack> {
        if self.image == Some(version) {
            return None;
        }
        self.rolled_back.iter().find(|r| r.version == *version)
    }
}

/// The updates this node may take now, newest first (upstream's `applicable_updates`).
#[must_use]
pub fn applicable_updates<'m>(manifest: &'m Manifest, query: &UpdateQuery<'_>) -> Vec<&'m Update> {
    let mut updates: Vec<&Update> = manifest
        .updates
        .iter()
        .filter(|u| {
            u.variant == query.variant
                && u.arch == query.arch
                && u.version <= u.max_version
                && (query.ignore_waves || u.update_ready(query.seed, query.now))
                && query.skipped_as_rolled_back(&u.version).is_none()
        })
        .collect();
    updates.sort_by(|a, b| b.version.cmp(&a.version));
    updates
}

/// The update to take, if any (upstream's `update_required`).
#[must_use]
pub fn update_required<'m>(manifest: &'m Manifest, query: &UpdateQuery<'_>) -> Option<&'m Update> {
    let updates = applicable_updates(manifest, query);
    if let Some(image) = query.image {
        return updates.into_iter().find(|u| u.version == *image);
    }
    match query.version_lock {
        VersionLock::Version(locked) if locked == query.current => None,
        VersionLock::Version(locked) => updates.into_iter().find(|u| u.version == *locked),
        VersionLock::Latest => updates
            .into_iter()
            .find(|u| *query.current < u.version || *query.current > u.max_version),
    }
}

/// Why there is no update to take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoUpdate<'m, 'a> {
    /// Nothing newer for this variant and arch (and the node is not above `max_version`).
    UpToDate,
    /// `--image` or `version_lock` names a version no applicable update has.
    VersionNotOffered(Version),
    /// `version_lock` is the running version.
    LockedToCurrent,
    /// The update that would be taken is a version this node fell back from.
    RolledBack {
        update: &'m Update,
        record: &'a RolledBack,
    },
    /// An update would be taken with waves ignored, but this node's wave has not reached it.
    WaitingForWave {
        update: &'m Update,
        /// When it becomes available to this node (if nothing else changes).
        ready_at: DateTime<Utc>,
    },
}

/// What check-update decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision<'m, 'a> {
    Update(&'m Update),
    NoUpdate(NoUpdate<'m, 'a>),
}

/// [`update_required`], and when it gives nothing, the reason.
#[must_use]
pub fn decide<'m, 'a>(manifest: &'m Manifest, query: &UpdateQuery<'a>) -> Decision<'m, 'a> {
    if let Some(update) = update_required(manifest, query) {
        return Decision::Update(update);
    }
    // The update it would be without the rollback records, waves as they are.
    let with_rolled_back = UpdateQuery {
        rolled_back: &[],
        ..query.clone()
    };
    if let Some(update) = update_required(manifest, &with_rolled_back)
        && let Some(record) = query
            .rolled_back
            .iter()
            .find(|r| r.version == update.version)
    {
        return Decision::NoUpdate(NoUpdate::RolledBack { update, record });
    }
    if !query.ignore_waves {
        let without_waves = UpdateQuery {
            ignore_waves: true,
            ..query.clone()
        };
        if let Some(update) = update_required(manifest, &without_waves) {
            // Not ready now, so it has waves and a ready time after `now`
            // (update-metadata's wave timing, the same rule `update_ready` applies).
            let ready_at = ready_at(&update.waves, query.seed).unwrap_or(query.now);
            return Decision::NoUpdate(NoUpdate::WaitingForWave { update, ready_at });
        }
    }
    Decision::NoUpdate(match (query.image, query.version_lock) {
        (Some(image), _) => NoUpdate::VersionNotOffered(image.clone()),
        (None, VersionLock::Version(locked)) if locked == query.current => {
            NoUpdate::LockedToCurrent
        }
        (None, VersionLock::Version(locked)) => NoUpdate::VersionNotOffered(locked.clone()),
        (None, VersionLock::Latest) => NoUpdate::UpToDate,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;
    use std::collections::BTreeMap;
    use update_metadata::{Images, WavePolicy, builtin_policy};

    const ARCH: &str = "x86_64";

    fn v(s: &str) -> Version {
        s.parse().unwrap()
    }

    fn update(variant: &str, arch: &str, version: &str, max: &str) -> Update {
        Update {
            variant: variant.into(),
            arch: arch.into(),
            version: v(version),
            max_version: v(max),
            waves: BTreeMap::new(),
            images: Images {
                boot: format!("boot-{version}"),
                root: format!("root-{version}"),
                hash: format!("hash-{version}"),
            },
        }
    }

    fn manifest(updates: Vec<Update>) -> Manifest {
        Manifest {
            updates,
            migrations: BTreeMap::new(),
        }
    }

    fn now() -> DateTime<Utc> {
        "2030-06-01T12:00:00Z".parse().unwrap()
    }

    struct Node {
        variant: &'static str,
        arch: &'static str,
        current: Version,
        seed: u32,
        ignore_waves: bool,
        now: DateTime<Utc>,
        lock: VersionLock,
        image: Option<Version>,
        rolled_back: Vec<RolledBack>,
    }

    impl Node {
        fn at(version: &str) -> Self {
            Self {
                variant: "aws-dev",
                arch: ARCH,
                current: v(version),
                seed: 100,
                ignore_waves: false,
                now: now(),
                lock: VersionLock::Latest,
                image: None,
                rolled_back: Vec::new(),
            }
        }
        fn query(&self) -> UpdateQuery<'_> {
            UpdateQuery {
                variant: self.variant,
                arch: self.arch,
                current: &self.current,
                seed: self.seed,
                ignore_waves: self.ignore_waves,
                now: self.now,
                version_lock: &self.lock,
                image: self.image.as_ref(),
                rolled_back: &self.rolled_back,
            }
        }
        fn chooses<'m>(&self, m: &'m Manifest) -> Option<&'m Version> {
            update_required(m, &self.query()).map(|u| &u.version)
        }
    }

    fn chain() -> Manifest {
        manifest(vec![
            update("aws-dev", ARCH, "1.2.0", "1.2.0"),
            update("aws-dev", ARCH, "1.0.0", "1.2.0"),
            update("aws-dev", ARCH, "1.1.0", "1.2.0"),
            update("metal-dev", ARCH, "1.3.0", "1.3.0"),
            update("aws-dev", "aarch64", "1.4.0", "1.4.0"),
        ])
    }

    #[test]
    fn the_newest_update_of_the_nodes_variant_and_arch_is_chosen() {
        let m = chain();
        assert_eq!(Node::at("1.0.0").chooses(&m), Some(&v("1.2.0")));
        assert_eq!(Node::at("1.1.0").chooses(&m), Some(&v("1.2.0")));
    }

    #[test]
    fn applicable_updates_are_sorted_newest_first_and_filtered() {
        let m = chain();
        let node = Node::at("1.0.0");
        let versions: Vec<_> = applicable_updates(&m, &node.query())
            .into_iter()
            .map(|u| u.version.to_string())
            .collect();
        assert_eq!(versions, ["1.2.0", "1.1.0", "1.0.0"]);
    }

    #[test]
    fn an_up_to_date_node_gets_nothing() {
        let m = chain();
        let node = Node::at("1.2.0");
        assert_eq!(node.chooses(&m), None);
        assert_eq!(
            decide(&m, &node.query()),
            Decision::NoUpdate(NoUpdate::UpToDate)
        );
    }

    #[test]
    fn another_variant_is_never_chosen() {
        let m = chain();
        let mut node = Node::at("1.0.0");
        node.variant = "metal-dev";
        assert_eq!(node.chooses(&m), Some(&v("1.3.0")));
        node.variant = "k8s-dev";
        assert_eq!(node.chooses(&m), None);
        assert!(applicable_updates(&m, &node.query()).is_empty());
    }

    #[test]
    fn another_arch_is_never_chosen() {
        let m = chain();
        let mut node = Node::at("1.0.0");
        node.arch = "aarch64";
        assert_eq!(node.chooses(&m), Some(&v("1.4.0")));
        node.arch = "riscv64";
        assert_eq!(node.chooses(&m), None);
    }

    #[test]
    fn an_update_above_its_max_version_is_not_applicable() {
        let m = manifest(vec![
            update("aws-dev", ARCH, "1.3.0", "1.2.0"),
            update("aws-dev", ARCH, "1.2.0", "1.2.0"),
        ]);
        let node = Node::at("1.1.0");
        assert_eq!(node.chooses(&m), Some(&v("1.2.0")));
        assert_eq!(applicable_updates(&m, &node.query()).len(), 1);
        // Not even by name.
        let mut node = Node::at("1.1.0");
        node.image = Some(v("1.3.0"));
        assert_eq!(node.chooses(&m), None);
    }

    #[test]
    fn a_node_above_max_version_regrets_down_to_the_newest_allowed() {
        // 1.2.0 was pulled: max_version went back to 1.1.0.
        let m = manifest(vec![
            update("aws-dev", ARCH, "1.2.0", "1.1.0"),
            update("aws-dev", ARCH, "1.1.0", "1.1.0"),
            update("aws-dev", ARCH, "1.0.0", "1.1.0"),
        ]);
        assert_eq!(Node::at("1.2.0").chooses(&m), Some(&v("1.1.0")));
        assert_eq!(Node::at("1.5.0").chooses(&m), Some(&v("1.1.0")));
        // At max_version: nothing to do.
        assert_eq!(Node::at("1.1.0").chooses(&m), None);
    }

    #[test]
    fn image_picks_exactly_that_version_even_downwards_or_the_same() {
        let m = chain();
        for (current, image, expected) in [
            ("1.2.0", "1.0.0", Some("1.0.0")),
            ("1.0.0", "1.1.0", Some("1.1.0")),
            ("1.2.0", "1.2.0", Some("1.2.0")),
            ("1.0.0", "9.9.9", None),
        ] {
            let mut node = Node::at(current);
            node.image = Some(v(image));
            assert_eq!(
                node.chooses(&m),
                expected.map(v).as_ref(),
                "{current} --image {image}"
            );
        }
    }

    #[test]
    fn image_wins_over_the_version_lock() {
        let m = chain();
        let mut node = Node::at("1.0.0");
        node.lock = VersionLock::Version(v("1.1.0"));
        node.image = Some(v("1.2.0"));
        assert_eq!(node.chooses(&m), Some(&v("1.2.0")));
    }

    #[test]
    fn a_version_lock_moves_up_or_down_to_exactly_that_version() {
        let m = chain();
        let mut node = Node::at("1.0.0");
        node.lock = VersionLock::Version(v("1.1.0"));
        assert_eq!(node.chooses(&m), Some(&v("1.1.0")));

        let mut node = Node::at("1.2.0");
        node.lock = VersionLock::Version(v("1.0.0"));
        assert_eq!(node.chooses(&m), Some(&v("1.0.0")));
    }

    #[test]
    fn a_version_lock_on_the_running_version_or_an_unknown_one_gives_nothing() {
        let m = chain();
        let mut node = Node::at("1.1.0");
        node.lock = VersionLock::Version(v("1.1.0"));
        assert_eq!(node.chooses(&m), None);
        assert_eq!(
            decide(&m, &node.query()),
            Decision::NoUpdate(NoUpdate::LockedToCurrent)
        );
        node.lock = VersionLock::Version(v("1.1.5"));
        assert_eq!(
            decide(&m, &node.query()),
            Decision::NoUpdate(NoUpdate::VersionNotOffered(v("1.1.5")))
        );
    }

    #[test]
    fn version_lock_parses_like_friendly_version() {
        assert_eq!("latest".parse(), Ok(VersionLock::Latest));
        assert_eq!("1.2.3".parse(), Ok(VersionLock::Version(v("1.2.3"))));
        assert_eq!("v1.2.3".parse(), Ok(VersionLock::Version(v("1.2.3"))));
        assert_eq!(
            "1.2.3-rc.1".parse(),
            Ok(VersionLock::Version(v("1.2.3-rc.1")))
        );
        for bad in ["Latest", "1.2", "vv1.2.3", "", "v"] {
            assert!(bad.parse::<VersionLock>().is_err(), "{bad}");
        }
        assert_eq!(VersionLock::Version(v("1.2.3")).to_string(), "1.2.3");
    }

    /// The default policy from `start`: {0: +1h, 20: +4h, 102: +1d, 307: +2d, 819: +4d,
    /// 1228: +5d, 1843: +6d}.
    fn default_waves(start: DateTime<Utc>) -> BTreeMap<u32, DateTime<Utc>> {
        let policy: WavePolicy = builtin_policy("default").unwrap().policy().unwrap();
        policy.schedule(start).unwrap()
    }

    fn hours(h: i64) -> TimeDelta {
        TimeDelta::hours(h)
    }

    fn waved_chain(start: DateTime<Utc>) -> Manifest {
        let mut m = chain();
        m.updates[0].waves = default_waves(start);
        m
    }

    #[test]
    fn seed_zero_is_ready_before_any_wave_has_started() {
        let start = now() + hours(240);
        let m = waved_chain(start);
        let mut node = Node::at("1.1.0");
        node.seed = 0;
        assert_eq!(node.chooses(&m), Some(&v("1.2.0")));
        assert_eq!(ready_at(&m.updates[0].waves, 0), None);
    }

    #[test]
    fn a_node_whose_wave_has_not_started_waits_and_is_told_when() {
        // Seed 10 is in the wave 0..=20: starts at +1h, ends at +4h, 9 minutes per seed, so
        // (absolute seed) ready at +1h + 90 min.
        let start = now() + hours(24);
        let m = waved_chain(start);
        let mut node = Node::at("1.1.0");
        node.seed = 10;
        assert_eq!(node.chooses(&m), None);
        let expected_ready = start + hours(1) + TimeDelta::minutes(90);
        assert_eq!(
            decide(&m, &node.query()),
            Decision::NoUpdate(NoUpdate::WaitingForWave {
                update: &m.updates[0],
                ready_at: expected_ready
            })
        );
        // An older node still gets the previous release, which has no waves.
        let mut older = Node::at("1.0.0");
        older.seed = 10;
        assert_eq!(older.chooses(&m), Some(&v("1.1.0")));
    }

    #[test]
    fn inside_a_wave_a_node_waits_for_its_slot() {
        // now = start + 3h: the 0..=20 wave started 2 h ago and ends in 1 h.
        let start = now() - hours(3);
        let m = waved_chain(start);
        let mut node = Node::at("1.1.0");
        node.seed = 10; // slot +2h30: passed
        assert_eq!(node.chooses(&m), Some(&v("1.2.0")));
        node.seed = 15; // slot +3h15: not yet
        assert_eq!(node.chooses(&m), None);
        assert_eq!(
            ready_at(&m.updates[0].waves, 15),
            Some(start + hours(3) + TimeDelta::minutes(15))
        );
    }

    #[test]
    fn after_its_wave_a_node_is_ready() {
        let start = now() - hours(5);
        let m = waved_chain(start);
        let mut node = Node::at("1.1.0");
        node.seed = 15;
        assert_eq!(node.chooses(&m), Some(&v("1.2.0")));
    }

    #[test]
    fn the_absolute_seed_quirk_makes_later_waves_wait_for_their_end() {
        // Wave 819..=1228 runs from +4d to +5d. Seed 850 is 31 seeds into it: relative timing
        // would make it ready ~1.8 h after the wave starts, upstream's absolute timing only at
        // the wave's end.
        let start = now() - hours(4 * 24 + 12);
        let m = waved_chain(start);
        let mut node = Node::at("1.1.0");
        node.seed = 850;
        assert_eq!(node.chooses(&m), None);
        assert_eq!(
            ready_at(&m.updates[0].waves, 850),
            Some(start + hours(5 * 24))
        );
    }

    #[test]
    fn the_last_wave_is_ready_once_it_starts() {
        let start = now() - hours(6 * 24) + hours(1);
        let m = waved_chain(start);
        let mut node = Node::at("1.1.0");
        node.seed = 2000;
        assert_eq!(node.chooses(&m), None);
        assert_eq!(
            ready_at(&m.updates[0].waves, 2000),
            Some(start + hours(6 * 24))
        );
        node.now = start + hours(6 * 24);
        assert_eq!(node.chooses(&m), Some(&v("1.2.0")));
    }

    #[test]
    fn waves_whose_times_do_not_increase_are_timed_as_upstream_times_them() {
        // Two waves at one time (upstream's own test data): everyone above seed 0 opens then.
        let at = now() + hours(2);
        let mut m = chain();
        m.updates[0].waves = BTreeMap::from([(0, at), (2047, at)]);
        let mut node = Node::at("1.1.0");
        node.seed = 1000;
        assert_eq!(
            decide(&m, &node.query()),
            Decision::NoUpdate(NoUpdate::WaitingForWave {
                update: &m.updates[0],
                ready_at: at
            })
        );
        node.now = at;
        assert_eq!(node.chooses(&m), Some(&v("1.2.0")));

        // The wave (100, 120] starts at +10h and ends at +5h: seed 110 is told +5h (when the
        // wave has passed), not its slot computed with a negative time per seed (-17h30).
        m.updates[0].waves = BTreeMap::from([
            (0, now() - hours(1)),
            (100, now() + hours(10)),
            (120, now() + hours(5)),
        ]);
        node.now = now();
        node.seed = 110;
        assert_eq!(
            decide(&m, &node.query()),
            Decision::NoUpdate(NoUpdate::WaitingForWave {
                update: &m.updates[0],
                ready_at: now() + hours(5)
            })
        );
    }

    #[test]
    fn ignoring_waves_takes_the_update_at_once() {
        let start = now() + hours(24);
        let m = waved_chain(start);
        let mut node = Node::at("1.1.0");
        node.seed = 2000;
        node.ignore_waves = true;
        assert_eq!(node.chooses(&m), Some(&v("1.2.0")));
    }

    fn rolled_back(version: &str) -> RolledBack {
        RolledBack {
            version: v(version),
            boot_partuuid: "6b2f0a3e-0b1c-4d5e-8f90-123456789abc".into(),
            recorded_at: now(),
        }
    }

    #[test]
    fn a_rolled_back_version_is_skipped_with_the_reason_unless_named() {
        let m = chain();
        let mut node = Node::at("1.1.0");
        node.rolled_back = vec![rolled_back("1.2.0")];
        assert_eq!(node.chooses(&m), None);
        let versions: Vec<_> = applicable_updates(&m, &node.query())
            .into_iter()
            .map(|u| u.version.to_string())
            .collect();
        assert_eq!(versions, ["1.1.0", "1.0.0"]);
        match decide(&m, &node.query()) {
            Decision::NoUpdate(NoUpdate::RolledBack { update, record }) => {
                assert_eq!(update.version, v("1.2.0"));
                assert_eq!(*record, rolled_back("1.2.0"));
            }
            other => panic!("expected RolledBack, got {other:?}"),
        }

        // Named with --image, it is offered (and listed) again.
        node.image = Some(v("1.2.0"));
        assert_eq!(node.chooses(&m), Some(&v("1.2.0")));
        assert_eq!(applicable_updates(&m, &node.query()).len(), 3);
    }

    #[test]
    fn below_a_rolled_back_version_the_next_newer_one_is_taken() {
        let m = chain();
        let mut node = Node::at("1.0.0");
        node.rolled_back = vec![rolled_back("1.2.0")];
        assert_eq!(node.chooses(&m), Some(&v("1.1.0")));
        // A version lock on a rolled-back version is not enough: only --image re-applies it.
        node.lock = VersionLock::Version(v("1.2.0"));
        assert_eq!(node.chooses(&m), None);
        assert!(matches!(
            decide(&m, &node.query()),
            Decision::NoUpdate(NoUpdate::RolledBack { .. })
        ));
        // Nothing rolled back that the node would take: the usual reason.
        node.lock = VersionLock::Latest;
        node.current = v("1.2.0");
        node.rolled_back = vec![rolled_back("1.1.0")];
        assert_eq!(
            decide(&m, &node.query()),
            Decision::NoUpdate(NoUpdate::UpToDate)
        );
    }
}
