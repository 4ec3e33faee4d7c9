//! Which migrations a node runs to move its datastore from one OS version to another.

use crate::manifest::Manifest;
use semver::Version;
use snafu::{OptionExt, Snafu};
use std::collections::BTreeMap;
use std::ops::Bound::{Excluded, Included};

/// The chain of migrations between two versions is broken.
#[derive(Debug, Snafu)]
#[snafu(visibility(pub(crate)))]
pub enum Error {
    #[snafu(display(
        "No migration leads from {current} toward {target} (needed to migrate {from} to {to}): the manifest has no key ({current}, V) with {current} < V <= {target}",
        target = std::cmp::max(from, to),
    ))]
    MissingMigration {
        /// Where the chain stops: no key starts here and moves toward the higher of `from` and
        /// `to` (the chain is always searched upward).
        current: Version,
        /// The version migrated from, as requested.
        from: Version,
        /// The version migrated to, as requested.
        to: Version,
    },
}

/// The migration target names to run, in order, to move a datastore from `from` to `to`
/// (upstream's `update_metadata::find_migrations`).
///
/// - `from == to`: nothing to run.
/// - Forward (`from < to`): start at `v = from`; while `v != to`, among the keys `(v, t)` with
///   `t <= to` take the largest `t`, append its list, and continue from `t`.
/// - Backward (`from > to`): the forward chain from `to` to `from`, reversed as a whole (each
///   migration knows how to undo itself).
///
/// Keys whose target is not above their source, e.g. `(1.1.0, 1.1.0)` or `(1.1.0, 1.0.0)`, are
/// never followed: upstream could loop on them forever.
pub fn find_migrations(
    from: &Version,
    to: &Version,
    manifest: &Manifest,
) -> Result<Vec<String>, Error> {
    find_in_map(from, to, &manifest.migrations)
}

pub(crate) fn find_in_map(
    from: &Version,
    to: &Version,
    migrations: &BTreeMap<(Version, Version), Vec<String>>,
) -> Result<Vec<String>, Error> {
    if from == to {
        return Ok(Vec::new());
    }
    let (low, high) = if from < to { (from, to) } else { (to, from) };
    let mut targets = Vec::new();
    let mut version = low.clone();
    while version != *high {
        // Keys are ordered (from, to): this range is every (version, t) with version < t <= high,
        // and its last entry is the longest step, as upstream chooses.
        let range = (
            Excluded((version.clone(), version.clone())),
            Included((version.clone(), high.clone())),
        );
        let ((_, next), list) =
            migrations
                .range(range)
                .next_back()
                .context(MissingMigrationSnafu {
                    current: version.clone(),
                    from: from.clone(),
                    to: to.clone(),
                })?;
        targets.extend(list.iter().cloned());
        version = next.clone();
    }
    if from > to {
        targets.reverse();
    }
    Ok(targets)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    /// Upstream's `tests/data/migrations.json` migrations: a shortcut from 1.1.0 to 1.5.0.
    fn upstream_chain() -> BTreeMap<(Version, Version), Vec<String>> {
        BTreeMap::from([
            (
                (v("1.0.0"), v("1.1.0")),
                vec!["migration_1.1.0_a".into(), "migration_1.1.0_b".into()],
            ),
            (
                (v("1.1.0"), v("1.2.0")),
                vec!["migration_1.2.0_skip".into()],
            ),
            (
                (v("1.1.0"), v("1.5.0")),
                vec!["migration_1.5.0_shortcut".into()],
            ),
            (
                (v("1.2.0"), v("1.5.0")),
                vec!["migration_1.5.0_skip".into()],
            ),
        ])
    }

    #[test]
    fn forward_takes_the_longest_step_each_time() {
        let found = find_in_map(&v("1.0.0"), &v("1.5.0"), &upstream_chain()).unwrap();
        assert_eq!(
            found,
            [
                "migration_1.1.0_a",
                "migration_1.1.0_b",
                "migration_1.5.0_shortcut"
            ]
        );
    }

    #[test]
    fn backward_is_the_forward_chain_reversed() {
        let found = find_in_map(&v("1.5.0"), &v("1.0.0"), &upstream_chain()).unwrap();
        assert_eq!(
            found,
            [
                "migration_1.5.0_shortcut",
                "migration_1.1.0_b",
                "migration_1.1.0_a"
            ]
        );
    }

    #[test]
    fn a_step_past_the_target_is_not_taken() {
        // To 1.2.0, the shortcut to 1.5.0 overshoots: take (1.1.0, 1.2.0).
        let found = find_in_map(&v("1.0.0"), &v("1.2.0"), &upstream_chain()).unwrap();
        assert_eq!(
            found,
            [
                "migration_1.1.0_a",
                "migration_1.1.0_b",
                "migration_1.2.0_skip"
            ]
        );
        let back = find_in_map(&v("1.2.0"), &v("1.1.0"), &upstream_chain()).unwrap();
        assert_eq!(back, ["migration_1.2.0_skip"]);
    }

    #[test]
    fn equal_versions_need_no_migrations_even_without_keys() {
        assert!(
            find_in_map(&v("9.9.9"), &v("9.9.9"), &BTreeMap::new())
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn steps_with_empty_lists_are_walked_through() {
        let map = BTreeMap::from([
            ((v("1.25.0"), v("1.26.0")), vec![]),
            (
                (v("1.26.0"), v("1.26.1")),
                vec!["migrate_v1.26.1_foo.lz4".into()],
            ),
        ]);
        assert_eq!(
            find_in_map(&v("1.25.0"), &v("1.26.1"), &map).unwrap(),
            ["migrate_v1.26.1_foo.lz4"]
        );
        assert!(
            find_in_map(&v("1.25.0"), &v("1.26.0"), &map)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn a_gap_forward_names_where_the_chain_stops() {
        let mut map = upstream_chain();
        map.insert((v("1.5.0"), v("1.6.0")), vec!["m160".into()]);
        // Nothing from 1.6.0 toward 2.0.0.
        let err = find_in_map(&v("1.0.0"), &v("2.0.0"), &map).unwrap_err();
        let Error::MissingMigration { current, .. } = &err;
        assert_eq!(current, &v("1.6.0"));
        assert_eq!(
            err.to_string(),
            "No migration leads from 1.6.0 toward 2.0.0 (needed to migrate 1.0.0 to 2.0.0): \
             the manifest has no key (1.6.0, V) with 1.6.0 < V <= 2.0.0"
        );
    }

    #[test]
    fn a_gap_backward_is_reported_on_the_upward_chain() {
        let err = find_in_map(&v("1.5.0"), &v("0.9.0"), &upstream_chain()).unwrap_err();
        let Error::MissingMigration { current, from, to } = &err;
        assert_eq!((current, from, to), (&v("0.9.0"), &v("1.5.0"), &v("0.9.0")));
        assert!(
            err.to_string().starts_with(
                "No migration leads from 0.9.0 toward 1.5.0 (needed to migrate 1.5.0 to 0.9.0)"
            ),
            "{err}"
        );
    }

    #[test]
    fn a_source_not_in_any_key_is_a_gap_at_the_start() {
        let err = find_in_map(&v("1.0.5"), &v("1.5.0"), &upstream_chain()).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("No migration leads from 1.0.5 toward 1.5.0"),
            "{err}"
        );
    }

    #[test]
    fn self_and_downward_keys_are_never_followed() {
        // Upstream would loop forever on (1.0.0, 1.0.0); here it is not a step.
        let map = BTreeMap::from([
            ((v("1.0.0"), v("1.0.0")), vec!["loop".into()]),
            ((v("1.0.0"), v("0.5.0")), vec!["down".into()]),
        ]);
        let err = find_in_map(&v("1.0.0"), &v("1.1.0"), &map).unwrap_err();
        assert!(matches!(err, Error::MissingMigration { .. }));
    }

    #[test]
    fn prerelease_versions_order_before_their_release() {
        let map = BTreeMap::from([
            ((v("1.0.0"), v("1.1.0-rc.1")), vec!["rc".into()]),
            ((v("1.1.0-rc.1"), v("1.1.0")), vec!["final".into()]),
        ]);
        assert_eq!(
            find_in_map(&v("1.0.0"), &v("1.1.0"), &map).unwrap(),
            ["rc", "final"]
        );
    }
}
