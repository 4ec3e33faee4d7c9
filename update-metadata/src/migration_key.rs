//! The `"(X, Y)"` keys of the `migrations` map, in manifest.json and in Release.toml.
//!
//! Upstream parses a key with the regex `\(([^ ,]+),[ ]*([^ ,]+)\)` (unanchored, leftmost-first)
//! and then parses both captures as semver. [`parse_migration_key`] is a hand-written matcher
//! with exactly those semantics, so keys upstream accepts are accepted here and keys upstream
//! rejects are rejected here. Keys are always written as `"(X, Y)"`: the space is required by
//! Bottlerocket releases older than 0.2.0.

use semver::Version;
use snafu::{OptionExt, ResultExt, Snafu};
use std::collections::BTreeMap;

/// A malformed or duplicate migration key. Every variant names the key as it was written.
#[derive(Debug, Snafu)]
#[snafu(visibility(pub(crate)))]
pub enum Error {
    #[snafu(display(
        "Malformed migration key '{key}': expected \"(FROM, TO)\" with two semantic versions"
    ))]
    MalformedKey { key: String },

    #[snafu(display(
        "Migration key '{key}': the {which} version '{value}' is not a semantic version: {source}"
    ))]
    KeyVersion {
        key: String,
        which: &'static str,
        value: String,
        source: semver::Error,
    },

    #[snafu(display(
        "Duplicate migration key '{key}': the same versions are already given by key '{first}'"
    ))]
    DuplicateKey { key: String, first: String },
}

/// The two captures of upstream's regex, as string slices of `key`, or `None` when the regex
/// does not match anywhere in `key`.
///
/// Regex `\(([^ ,]+),[ ]*([^ ,]+)\)` under backtracking (leftmost-first) semantics:
/// - the match starts at the leftmost `(` from which the rest can match;
/// - group 1 cannot contain `,`, and must be followed by `,`, so it is the whole run of
///   non-space, non-comma bytes after the `(`;
/// - the spaces are greedy and group 2 cannot start with a space, so all spaces are taken;
/// - group 2 is greedy but must be followed by `)`, so it ends at the *last* `)` inside the
///   following run of non-space, non-comma bytes (and is at least one byte long).
///
/// All delimiters are ASCII, so scanning bytes of UTF-8 text is exact.
fn regex_captures(key: &str) -> Option<(&str, &str)> {
    let bytes = key.as_bytes();
    let in_class = |b: u8| b != b' ' && b != b',';
    let run_end = |from: usize| {
        let mut end = from;
        while end < bytes.len() && in_class(bytes[end]) {
            end += 1;
        }
        end
    };

    for open in (0..bytes.len()).filter(|&i| bytes[i] == b'(') {
        let from_start = open + 1;
        let from_end = run_end(from_start);
        if from_end == from_start || bytes.get(from_end) != Some(&b',') {
            continue;
        }
        let mut to_start = from_end + 1;
        while bytes.get(to_start) == Some(&b' ') {
            to_start += 1;
        }
        let run = to_start..run_end(to_start);
        // The last ')' in the run that leaves group 2 non-empty.
        if let Some(close) = run
            .clone()
            .rev()
            .find(|&i| i > to_start && bytes[i] == b')')
        {
            return Some((&key[from_start..from_end], &key[to_start..close]));
        }
    }
    None
}

/// Parses a migration key such as `"(1.25.0, 1.26.0)"` into its `(from, to)` versions.
pub fn parse_migration_key(key: &str) -> Result<(Version, Version), Error> {
    let (from, to) = regex_captures(key).context(MalformedKeySnafu { key })?;
    let parse = |which: &'static str, value: &str| {
        Version::parse(value).context(KeyVersionSnafu { key, which, value })
    };
    Ok((parse("from", from)?, parse("to", to)?))
}

/// Formats a migration key the way upstream writes it: `"(X, Y)"`, with one space.
pub fn format_migration_key(from: &Version, to: &Version) -> String {
    format!("({from}, {to})")
}

/// Builds the migrations map from its entries in file order, rejecting malformed keys and
/// keys that parse to a pair of versions already seen (also when written differently, e.g.
/// `"(1.0.0,1.1.0)"` after `"(1.0.0, 1.1.0)"`).
pub(crate) fn migrations_from_entries(
    entries: Vec<(String, Vec<String>)>,
) -> Result<BTreeMap<(Version, Version), Vec<String>>, Error> {
    let mut map = BTreeMap::new();
    let mut written: BTreeMap<(Version, Version), String> = BTreeMap::new();
    for (key, list) in entries {
        let pair = parse_migration_key(&key)?;
        if let Some(first) = written.get(&pair) {
            return DuplicateKeySnafu {
                key,
                first: first.clone(),
            }
            .fail();
        }
        written.insert(pair.clone(), key);
        map.insert(pair, list);
    }
    Ok(map)
}

/// Serializes the migrations map with `"(X, Y)"` keys. Like upstream, the entries are written
/// in the order of the key *strings* (so `"(1.10.0, …)"` sorts before `"(1.9.0, …)"`).
pub(crate) fn serialize_migrations<S>(
    map: &BTreeMap<(Version, Version), Vec<String>>,
    serializer: S,
) -> Result<S::Ok, S::Error>
where
    S: serde::Serializer,
{
    let by_key: BTreeMap<String, &Vec<String>> = map
        .iter()
        .map(|((from, to), list)| (format_migration_key(from, to), list))
        .collect();
    serde::Serialize::serialize(&by_key, serializer)
}

/// Whether a key, once parsed and written back, parses to the same pair.
#[cfg(test)]
fn round_trips(key: &str) -> bool {
    match parse_migration_key(key) {
        Ok((from, to)) => parse_migration_key(&format_migration_key(&from, &to))
            .map(|pair| pair == (from, to))
            .unwrap_or(false),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    #[test]
    fn canonical_key_parses_to_both_versions() {
        assert_eq!(
            parse_migration_key("(1.25.0, 1.26.0)").unwrap(),
            (v("1.25.0"), v("1.26.0"))
        );
    }

    #[test]
    fn key_without_space_or_with_many_spaces_parses() {
        assert_eq!(
            parse_migration_key("(1.0.0,1.1.0)").unwrap(),
            (v("1.0.0"), v("1.1.0"))
        );
        assert_eq!(
            parse_migration_key("(1.0.0,    1.1.0)").unwrap(),
            (v("1.0.0"), v("1.1.0"))
        );
    }

    #[test]
    fn key_with_prerelease_and_build_metadata_parses() {
        assert_eq!(
            parse_migration_key("(1.0.0-rc.1, 1.0.0+build.5)").unwrap(),
            (v("1.0.0-rc.1"), v("1.0.0+build.5"))
        );
    }

    #[test]
    fn regex_is_unanchored_like_upstream() {
        // The upstream regex is used with `captures`, which searches: text around the
        // parenthesised pair is ignored.
        assert_eq!(
            parse_migration_key("junk (1.0.0, 1.1.0) trailing").unwrap(),
            (v("1.0.0"), v("1.1.0"))
        );
    }

    #[test]
    fn leftmost_open_paren_that_matches_wins() {
        // The first '(' cannot start a match (a space follows "x"), the second one can.
        assert_eq!(
            parse_migration_key("(x y) (2.0.0, 3.0.0)").unwrap(),
            (v("2.0.0"), v("3.0.0"))
        );
    }

    #[test]
    fn group_two_ends_at_last_close_paren_in_its_run() {
        // Greedy group 2 backtracks to the last ')' of "1.1.0)x)": captures "1.1.0)x".
        let err = parse_migration_key("(1.0.0, 1.1.0)x)").unwrap_err();
        assert!(
            matches!(&err, Error::KeyVersion { which: "to", value, .. } if value == "1.1.0)x"),
            "{err}"
        );
    }

    #[test]
    fn malformed_keys_are_rejected_and_named() {
        for key in [
            "1.0.0, 1.1.0",
            "(1.0.0 1.1.0)",
            "(1.0.0, )",
            "(, 1.1.0)",
            "(1.0.0 ,1.1.0)",
            "(1.0.0, 1.1.0",
            "()",
            "",
        ] {
            let err = parse_migration_key(key).unwrap_err();
            assert!(matches!(err, Error::MalformedKey { .. }), "{key}: {err}");
            assert!(err.to_string().contains(&format!("'{key}'")), "{err}");
        }
    }

    #[test]
    fn non_semver_halves_are_rejected_and_named() {
        let err = parse_migration_key("(1.0, 1.1.0)").unwrap_err();
        assert!(
            matches!(&err, Error::KeyVersion { which: "from", value, .. } if value == "1.0"),
            "{err}"
        );
        let msg = err.to_string();
        assert!(
            msg.contains("'(1.0, 1.1.0)'") && msg.contains("'1.0'"),
            "{msg}"
        );

        let err = parse_migration_key("(1.0.0, v1.1.0)").unwrap_err();
        assert!(
            matches!(&err, Error::KeyVersion { which: "to", value, .. } if value == "v1.1.0"),
            "{err}"
        );
    }

    #[test]
    fn formatted_key_has_one_space_and_round_trips() {
        assert_eq!(
            format_migration_key(&v("1.0.0"), &v("1.1.0")),
            "(1.0.0, 1.1.0)"
        );
        assert!(round_trips("(1.0.0,1.1.0)"));
        assert!(round_trips("(0.3.1, 0.3.2-alpha.1)"));
    }

    #[test]
    fn duplicate_pair_written_two_ways_is_rejected_naming_both_keys() {
        let err = migrations_from_entries(vec![
            ("(1.0.0, 1.1.0)".to_string(), vec![]),
            ("(1.0.0,1.1.0)".to_string(), vec!["m".to_string()]),
        ])
        .unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, Error::DuplicateKey { .. }), "{msg}");
        assert!(
            msg.contains("'(1.0.0,1.1.0)'") && msg.contains("'(1.0.0, 1.1.0)'"),
            "{msg}"
        );
    }
}
