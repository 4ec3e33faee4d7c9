//! Finding a target through delegated targets roles (TUF spec 1.0.x §5.6.7), as a function of the
//! already-verified top-level `targets` and a [`RoleLoader`] that fetches and verifies each
//! delegated role when the search first needs it. No I/O happens here.
//!
//! The reference is python-tuf's ngclient (`Updater._preorder_depth_first_walk`,
//! `DelegatedRole.is_delegated_path`), and this module follows it exactly:
//! - pre-order depth-first: a role's own `targets` first, then the delegations whose paths match,
//!   in listed order (a stack, children pushed in reverse);
//! - a matching `terminating` delegation empties the whole stack before its siblings (up to and
//!   including it) are pushed: nothing pending from any delegator is visited afterwards;
//! - a role name already visited is skipped (cycles, and a role reached by a second delegator);
//! - the walk stops once more than [`MAX_DELEGATIONS`] roles have been visited (the top-level
//!   `targets` counts as one, so at most that many delegated roles are loaded);
//! - path patterns match segment by segment with `fnmatch` semantics, so wildcards never cross
//!   `/` (tough's own matching uses globset, where `*` does).

use super::schema::{DelegatedRole, TargetFile, TargetsMeta as Targets};
use sha2::{Digest, Sha256};
use std::collections::HashSet;

/// The name of the top-level targets role: the delegator of the roles it delegates to.
const TOP_LEVEL: &str = "targets";

/// Loads (fetches + verifies) the delegated role `role` as delegated by `delegator` (a role name:
/// "targets" or a delegated role). Returns the verified Targets of that role. Errors are the
/// caller's error type.
#[allow(async_fn_in_trait)] // used with concrete loaders only, never as a trait object
pub trait RoleLoader {
    type Error;
    async fn load(&mut self, delegator: &str, role: &DelegatedRole)
    -> Result<Targets, Self::Error>;
}

/// python-tuf's `UpdaterConfig.max_delegations`: how many roles one search may visit beyond the
/// top-level `targets`.
pub const MAX_DELEGATIONS: usize = 32;

/// Where a target was found: the role that lists it and its Target entry.
#[derive(Debug, Clone, PartialEq)]
pub struct FoundTarget {
    pub role: String,
    pub target: TargetFile,
}

/// A role waiting on the search stack.
#[derive(Debug, Clone, Copy)]
enum Pending {
    /// The top-level `targets` (given, never loaded).
    Top,
    /// `delegations.roles[role]` of the delegator, which is the top-level `targets` (`None`) or
    /// the loaded role at that index.
    Delegated {
        delegator: Option<usize>,
        role: usize,
    },
}

/// Pre-order depth-first search for `target_path` starting at the top-level `targets` (already
/// verified). Delegated roles are loaded through `loader` only when the walk reaches them; a
/// loader error ends the search with that error (a delegated role that fails verification fails
/// the lookup, as in python-tuf). Returns `Ok(None)` when no visited role lists the target,
/// including when the walk stopped at [`MAX_DELEGATIONS`].
pub async fn find_target<L: RoleLoader>(
    top: &Targets,
    target_path: &str,
    loader: &mut L,
) -> Result<Option<FoundTarget>, L::Error> {
    // The delegated roles loaded so far, with their names; `Pending` refers to them by index.
    let mut loaded: Vec<(String, Targets)> = Vec::new();
    let mut visited: HashSet<String> = HashSet::new();
    let mut stack = vec![Pending::Top];

    while visited.len() <= MAX_DELEGATIONS {
        let Some(next) = stack.pop() else {
            return Ok(None);
        };
        let (name, slot) = match next {
            Pending::Top => (TOP_LEVEL.to_string(), None),
            Pending::Delegated { delegator, role } => {
                let (delegator_name, delegator_targets) = match delegator {
                    None => (TOP_LEVEL, top),
                    Some(index) => (loaded[index].0.as_str(), &loaded[index].1),
                };
                let role = delegator_targets
                    .delegations
                    .as_ref()
                    .map(|delegations| &delegations.roles[role])
                    .expect("a pending role comes from its delegator's delegations");
                if visited.contains(&role.name) {
                    log::debug!("delegated role {} already visited; skipped", role.name);
                    continue;
                }
                let name = role.name.clone();
                let targets = loader.load(delegator_name, role).await?;
                loaded.push((name.clone(), targets));
                (name, Some(loaded.len() - 1))
            }
        };
        let targets = slot.map_or(top, |index| &loaded[index].1);

        // Keys are compared exactly as given (TUF does not normalize paths).
        if let Some(target) = targets.targets.get(target_path) {
            return Ok(Some(FoundTarget {
                role: name,
                target: target.clone(),
            }));
        }
        visited.insert(name);

        if let Some(delegations) = &targets.delegations {
            let mut children = Vec::new();
            for (index, child) in delegations.roles.iter().enumerate() {
                if !role_matches(child, target_path) {
                    continue;
                }
                children.push(Pending::Delegated {
                    delegator: slot,
                    role: index,
                });
                if child.terminating {
                    // §5.6.7: after a terminating delegation the search never backtracks, to anything.
                    stack.clear();
                    break;
                }
            }
            // Reversed, so the first listed delegation is popped first.
            stack.extend(children.into_iter().rev());
        }
    }

    if !stack.is_empty() {
        log::warn!(
            "{target_path}: not found after visiting {} roles, the most one search may visit \
             ({MAX_DELEGATIONS} delegations); {} delegated roles left unvisited",
            visited.len(),
            stack.len()
        );
    }
    Ok(None)
}

/// TUF path matching: `pattern` matches `path` when both have the same number of '/'-separated
/// segments and each segment matches fnmatch-style (`*` any run of characters, `?` one character,
/// `[...]` classes with `!` negation), where wildcards never cross '/'; case-sensitive.
/// (python-tuf's `DelegatedRole._is_target_in_pathpattern`.)
pub fn path_matches(pattern: &str, path: &str) -> bool {
    let mut patterns = pattern.split('/');
    let mut segments = path.split('/');
    loop {
        match (patterns.next(), segments.next()) {
            (Some(pattern), Some(segment)) => {
                if !segment_matches(pattern, segment) {
                    return false;
                }
            }
            (None, None) => return true,
            // Different numbers of segments.
            _ => return false,
        }
    }
}

/// Hash-prefix delegation: sha256 of the target path (UTF-8), lowercase hex, starts with one of
/// the prefixes.
pub fn hash_prefix_matches(prefixes: &[impl AsRef<str>], path: &str) -> bool {
    let digest = hex::encode(Sha256::digest(path.as_bytes()));
    prefixes
        .iter()
        .any(|prefix| digest.starts_with(prefix.as_ref()))
}

/// Whether `role` is delegated `path` (by paths or path_hash_prefixes; a role with neither matches
/// nothing).
pub fn role_matches(role: &DelegatedRole, path: &str) -> bool {
    match (&role.paths, &role.path_hash_prefixes) {
        (Some(patterns), _) => patterns.iter().any(|pattern| path_matches(pattern, path)),
        (None, Some(prefixes)) => hash_prefix_matches(prefixes, path),
        (None, None) => false,
    }
}

/// One element of a compiled fnmatch pattern.
#[derive(Debug, PartialEq)]
enum Element {
    /// `*`: any run of characters, including none.
    Star,
    /// `?`: any one character.
    Any,
    /// `[...]`: one character in (or, negated, not in) the inclusive ranges; a single character
    /// is the range `c..=c`, and a range whose ends are reversed holds nothing.
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
    Literal(char),
}

impl Element {
    /// Whether this (non-`*`) element matches the one character `c`.
    fn matches(&self, c: char) -> bool {
        match self {
            Element::Star | Element::Any => true,
            Element::Class { negated, ranges } => {
                ranges.iter().any(|&(low, high)| low <= c && c <= high) != *negated
            }
            Element::Literal(literal) => *literal == c,
        }
    }
}

/// Compiles one segment as Python's `fnmatch.translate` reads it: a `[` without a closing `]` is
/// a literal `[`; a `]` right after `[` or `[!` is a member; in a class, `a-z` is a range and a
/// `-` first or last is literal; a backslash is an ordinary character.
fn compile(pattern: &str) -> Vec<Element> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut elements = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match c {
            '*' => {
                if elements.last() != Some(&Element::Star) {
                    elements.push(Element::Star);
                }
            }
            '?' => elements.push(Element::Any),
            '[' => {
                let mut end = i;
                let negated = chars.get(end) == Some(&'!');
                if negated {
                    end += 1;
                }
                let body_start = end;
                if chars.get(end) == Some(&']') {
                    end += 1;
                }
                while end < chars.len() && chars[end] != ']' {
                    end += 1;
                }
                if end >= chars.len() {
                    elements.push(Element::Literal('['));
                    continue;
                }
                elements.push(Element::Class {
                    negated,
                    ranges: class_ranges(&chars[body_start..end]),
                });
                i = end + 1;
            }
            _ => elements.push(Element::Literal(c)),
        }
    }
    elements
}

/// The members of a class body (without the `[`, `!` and `]`): `x-y` is a range when `-` has a
/// character on both sides, and the character after a range starts a new member.
fn class_ranges(body: &[char]) -> Vec<(char, char)> {
    let mut ranges = Vec::new();
    let mut i = 0;
    while i < body.len() {
        if body.get(i + 1) == Some(&'-') && i + 2 < body.len() {
            ranges.push((body[i], body[i + 2]));
            i += 3;
        } else {
            ranges.push((body[i], body[i]));
            i += 1;
        }
    }
    ranges
}

/// `fnmatch.fnmatchcase(segment, pattern)`.
fn segment_matches(pattern: &str, segment: &str) -> bool {
    let pattern = compile(pattern);
    let segment: Vec<char> = segment.chars().collect();
    let (mut p, mut s) = (0, 0);
    // The last `*` seen and the segment position it was tried at: on a mismatch, that `*`
    // takes one more character. Only the last `*` needs revisiting, since `*` matches any run.
    let mut backtrack: Option<(usize, usize)> = None;
    while s < segment.len() {
        if let Some(element) = pattern.get(p) {
            if *element == Element::Star {
                backtrack = Some((p, s));
                p += 1;
                continue;
            }
            if element.matches(segment[s]) {
                p += 1;
                s += 1;
                continue;
            }
        }
        match backtrack {
            Some((star, tried)) => {
                p = star + 1;
                s = tried + 1;
                backtrack = Some((star, tried + 1));
            }
            None => return false,
        }
    }
    pattern[p..].iter().all(|element| *element == Element::Star)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};
    use std::collections::HashMap;

    fn find(top: &Targets, path: &str, repo: &mut Repo) -> Result<Option<FoundTarget>, String> {
        futures::executor::block_on(find_target(top, path, repo))
    }

    // --- matching ---

    #[test]
    fn star_matches_any_run_within_one_segment() {
        assert!(path_matches("*", "file.tgz"));
        assert!(path_matches("*", ""));
        assert!(path_matches("targets/*.tgz", "targets/foo.tgz"));
        assert!(path_matches("targets/*.tgz", "targets/.tgz"));
        assert!(!path_matches("targets/*.tgz", "targets/foo.txt"));
        assert!(path_matches("a*b*c", "aXXbYYbc"));
        assert!(path_matches("*/*", "dir/file"));
        assert!(path_matches("**", "file"));
    }

    #[test]
    fn star_does_not_cross_a_slash() {
        assert!(!path_matches("*", "dir/file"));
        assert!(!path_matches("targets/*", "targets/sub/file"));
        assert!(!path_matches("a*", "a/b"));
        assert!(!path_matches("*.tgz", "dir/file.tgz"));
    }

    #[test]
    fn question_mark_matches_exactly_one_character() {
        assert!(path_matches("foo-version-?.tgz", "foo-version-2.tgz"));
        assert!(path_matches("foo-version-?.tgz", "foo-version-a.tgz"));
        assert!(!path_matches("foo-version-?.tgz", "foo-version-alpha.tgz"));
        assert!(!path_matches("foo-version-?.tgz", "foo-version-.tgz"));
        assert!(!path_matches("a?b", "a/b"));
        // One character, not one byte.
        assert!(path_matches("?", "é"));
    }

    #[test]
    fn classes_ranges_and_negation() {
        assert!(path_matches("file[0-9].txt", "file7.txt"));
        assert!(!path_matches("file[0-9].txt", "filex.txt"));
        assert!(path_matches("file[abc]", "fileb"));
        assert!(!path_matches("file[abc]", "filed"));
        assert!(path_matches("file[!0-9]", "filex"));
        assert!(!path_matches("file[!0-9]", "file5"));
        assert!(path_matches("[a-cx]", "x"));
        assert!(!path_matches("[a-cx]", "d"));
        // A class holds one character, never a '/'.
        assert!(!path_matches("a[!x]b", "a/b"));
    }

    #[test]
    fn class_edge_cases_follow_fnmatch() {
        // ']' first is a member; '-' first or last is literal.
        assert!(path_matches("[]]", "]"));
        assert!(path_matches("[!]]", "a"));
        assert!(!path_matches("[!]]", "]"));
        assert!(path_matches("[-a]", "-"));
        assert!(path_matches("[a-]", "-"));
        assert!(!path_matches("[a-]", "b"));
        // After a range, '-' starts a new member: [a-c-e] is a-c, '-', 'e'.
        assert!(path_matches("[a-c-e]", "-"));
        assert!(path_matches("[a-c-e]", "e"));
        assert!(!path_matches("[a-c-e]", "d"));
        // A reversed range holds nothing; negated, it admits anything.
        assert!(!path_matches("[z-a]", "m"));
        assert!(path_matches("[!z-a]", "m"));
        // No closing ']': a literal '['.
        assert!(path_matches("[ab", "[ab"));
        assert!(!path_matches("[ab", "a"));
        assert!(path_matches("[]", "[]"));
        assert!(path_matches("[!]", "[!]"));
        // A backslash escapes nothing.
        assert!(path_matches("a\\*", "a\\bc"));
        assert!(!path_matches("a\\*", "a*"));
        // Regex metacharacters are plain characters.
        assert!(path_matches("a.b+c", "a.b+c"));
        assert!(!path_matches("a.b", "axb"));
    }

    #[test]
    fn matching_is_case_sensitive() {
        assert!(!path_matches("File.txt", "file.txt"));
        assert!(!path_matches("*.TXT", "file.txt"));
        assert!(!path_matches("[A-Z]", "a"));
        assert!(path_matches("[A-Z]", "Q"));
    }

    #[test]
    fn segment_counts_must_agree() {
        assert!(path_matches("a/b/c", "a/b/c"));
        assert!(!path_matches("a/b", "a/b/c"));
        assert!(!path_matches("a/b/c", "a/b"));
        assert!(!path_matches("*/*", "file"));
        // A leading or trailing '/' is a segment of its own.
        assert!(!path_matches("/a", "a"));
        assert!(path_matches("/a", "/a"));
        assert!(!path_matches("a/", "a"));
        assert!(path_matches("a/*", "a/"));
    }

    #[test]
    fn empty_pattern_matches_only_the_empty_path() {
        assert!(path_matches("", ""));
        assert!(!path_matches("", "a"));
        assert!(!path_matches("", "/"));
        assert!(!path_matches("a", ""));
    }

    #[test]
    fn hash_prefixes() {
        // sha256("abc") = ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad
        assert!(hash_prefix_matches(&["ba"], "abc"));
        assert!(hash_prefix_matches(&["00", "ba78"], "abc"));
        assert!(hash_prefix_matches(
            &["ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"],
            "abc"
        ));
        assert!(!hash_prefix_matches(&["bb", "0"], "abc"));
        // Lowercase hex only: python-tuf's `startswith` on `hexdigest()`.
        assert!(!hash_prefix_matches(&["BA"], "abc"));
        // The digest is of the path's UTF-8 bytes, never a pattern.
        // sha256("") = e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
        assert!(hash_prefix_matches(&["e3b0"], ""));
        // An empty prefix is a prefix of every digest; no prefixes delegate nothing.
        assert!(hash_prefix_matches(&[""], "anything"));
        assert!(!hash_prefix_matches(&[] as &[&str], "abc"));
    }

    // --- the search ---

    /// A delegation entry: paths delegated by pattern.
    fn role(name: &str, paths: &[&str], terminating: bool) -> Value {
        json!({"name": name, "keyids": [], "threshold": 1, "paths": paths,
               "terminating": terminating})
    }

    /// A delegation entry: paths delegated by hash prefix.
    fn hashed_role(name: &str, prefixes: &[&str]) -> Value {
        json!({"name": name, "keyids": [], "threshold": 1, "path_hash_prefixes": prefixes,
               "terminating": false})
    }

    /// The targets metadata of role `by`, listing `listed` (each entry's custom `by` names the
    /// role, so a test sees whose entry was returned) and delegating to `roles`.
    fn targets(by: &str, listed: &[&str], roles: &[Value]) -> Targets {
        let entries: serde_json::Map<String, Value> = listed
            .iter()
            .map(|name| {
                let entry = json!({
                    "length": name.len(),
                    "hashes": {"sha256": hex::encode(Sha256::digest(name.as_bytes()))},
                    "custom": {"by": by},
                });
                ((*name).to_string(), entry)
            })
            .collect();
        let mut value = json!({
            "_type": "targets",
            "spec_version": "1.0.0",
            "version": 1,
            "expires": "2100-01-01T00:00:00Z",
            "targets": entries,
        });
        if !roles.is_empty() {
            value["delegations"] = json!({"keys": {}, "roles": roles});
        }
        serde_json::from_value(value).expect("test targets metadata")
    }

    /// The delegated roles of a repository, handed out as verified; records every load.
    #[derive(Default)]
    struct Repo {
        roles: HashMap<String, Targets>,
        /// (delegator, role) of each load, in order.
        calls: Vec<(String, String)>,
        /// A role whose load fails, as one failing verification would.
        failing: Option<String>,
    }

    impl Repo {
        fn with(mut self, name: &str, targets: Targets) -> Self {
            self.roles.insert(name.to_string(), targets);
            self
        }

        fn loaded(&self) -> Vec<String> {
            self.calls.iter().map(|(_, role)| role.clone()).collect()
        }
    }

    impl RoleLoader for Repo {
        type Error = String;

        async fn load(&mut self, delegator: &str, role: &DelegatedRole) -> Result<Targets, String> {
            self.calls.push((delegator.to_string(), role.name.clone()));
            if self.failing.as_deref() == Some(role.name.as_str()) {
                return Err(format!("{}: signature threshold not met", role.name));
            }
            self.roles
                .get(&role.name)
                .cloned()
                .ok_or_else(|| format!("{}: not in the repository", role.name))
        }
    }

    /// The role whose entry was found (from the entry itself, not only `FoundTarget::role`).
    fn found_in(found: &FoundTarget) -> &str {
        found.target.custom.as_ref().expect("custom")["by"]
            .as_str()
            .expect("custom by")
    }

    #[test]
    fn top_level_listing_wins_without_loading_anything() {
        let top = targets("targets", &["a.txt"], &[role("A", &["*"], false)]);
        let mut repo = Repo::default().with("A", targets("A", &["a.txt"], &[]));
        let found = find(&top, "a.txt", &mut repo).unwrap().unwrap();
        assert_eq!(found.role, "targets");
        assert_eq!(found_in(&found), "targets");
        assert_eq!(found.target.length, 5);
        assert!(repo.calls.is_empty());
    }

    #[test]
    fn exact_key_match_only() {
        // "dir/../a.txt" resolves to "a.txt" in tough, but TUF looks keys up as given.
        let top = targets("targets", &["dir/../a.txt", "b.txt"], &[]);
        let mut repo = Repo::default();
        assert_eq!(find(&top, "a.txt", &mut repo).unwrap(), None);
        assert_eq!(find(&top, "B.txt", &mut repo).unwrap(), None);
        assert!(find(&top, "dir/../a.txt", &mut repo).unwrap().is_some());
    }

    #[test]
    fn preorder_depth_first_a_subtree_before_b() {
        let top = targets(
            "targets",
            &[],
            &[role("A", &["*"], false), role("B", &["*"], false)],
        );
        let a = targets(
            "A",
            &[],
            &[role("A1", &["*"], false), role("A2", &["*"], false)],
        );
        let repo = || {
            Repo::default()
                .with("A", a.clone())
                .with("A1", targets("A1", &[], &[]))
                .with("A2", targets("A2", &["x"], &[]))
                .with("B", targets("B", &["x", "y"], &[]))
        };

        // Not listed anywhere: every matching role, in pre-order, with its delegator.
        let mut all = repo();
        assert_eq!(find(&top, "z", &mut all).unwrap(), None);
        let expected = [("targets", "A"), ("A", "A1"), ("A", "A2"), ("targets", "B")];
        assert_eq!(
            all.calls,
            expected.map(|(d, r)| (d.to_string(), r.to_string()))
        );

        // Listed by A2 and B: A's subtree is searched first, and B is never loaded.
        let mut both = repo();
        let found = find(&top, "x", &mut both).unwrap().unwrap();
        assert_eq!((found.role.as_str(), found_in(&found)), ("A2", "A2"));
        assert_eq!(both.loaded(), ["A", "A1", "A2"]);

        // Listed by B only.
        let mut b_only = repo();
        let found = find(&top, "y", &mut b_only).unwrap().unwrap();
        assert_eq!(found.role, "B");
        assert_eq!(b_only.loaded(), ["A", "A1", "A2", "B"]);
    }

    #[test]
    fn terminating_delegation_stops_later_siblings() {
        let top = targets(
            "targets",
            &[],
            &[
                role("A", &["*"], false),
                role("T", &["*"], true),
                role("C", &["*"], false),
            ],
        );
        let mut repo = Repo::default()
            .with("A", targets("A", &[], &[]))
            .with("T", targets("T", &[], &[]))
            .with("C", targets("C", &["x"], &[]));
        // C lists the target but comes after a terminating delegation: not consulted.
        assert_eq!(find(&top, "x", &mut repo).unwrap(), None);
        assert_eq!(repo.loaded(), ["A", "T"]);
    }

    #[test]
    fn terminating_delegation_abandons_every_pending_role() {
        // python-tuf empties the whole stack: Q (a sibling of the terminating role's delegator)
        // is never visited either, while P1 (listed before the terminating role) still is.
        let top = targets(
            "targets",
            &[],
            &[role("P", &["*"], false), role("Q", &["*"], false)],
        );
        let p = targets(
            "P",
            &[],
            &[
                role("P1", &["*"], false),
                role("PT", &["*"], true),
                role("P2", &["*"], false),
            ],
        );
        let mut repo = Repo::default()
            .with("P", p)
            .with("P1", targets("P1", &[], &[]))
            .with("PT", targets("PT", &[], &[role("PT1", &["*"], false)]))
            .with("PT1", targets("PT1", &[], &[]))
            .with("P2", targets("P2", &["x"], &[]))
            .with("Q", targets("Q", &["x"], &[]));
        assert_eq!(find(&top, "x", &mut repo).unwrap(), None);
        // The terminating role's own delegations are still searched.
        assert_eq!(repo.loaded(), ["P", "P1", "PT", "PT1"]);
    }

    #[test]
    fn terminating_role_that_does_not_match_changes_nothing() {
        let top = targets(
            "targets",
            &[],
            &[role("T", &["other/*"], true), role("A", &["*"], false)],
        );
        let mut repo = Repo::default()
            .with("T", targets("T", &[], &[]))
            .with("A", targets("A", &["x"], &[]));
        let found = find(&top, "x", &mut repo).unwrap().unwrap();
        assert_eq!(found.role, "A");
        assert_eq!(repo.loaded(), ["A"]);
    }

    #[test]
    fn roles_not_delegated_the_path_are_never_loaded() {
        let abc_prefix = "ba78"; // sha256("abc")
        let top = targets(
            "targets",
            &[],
            &[
                role("images", &["images/*"], false),
                role("txt", &["*.txt"], false),
                hashed_role("bin-00", &["00"]),
                hashed_role("bin-ba", &[abc_prefix]),
                role("star", &["*"], false),
            ],
        );
        let mut repo = Repo::default()
            .with("bin-ba", targets("bin-ba", &[], &[]))
            .with("star", targets("star", &["abc"], &[]));
        let found = find(&top, "abc", &mut repo).unwrap().unwrap();
        assert_eq!(found.role, "star");
        // Only the roles delegated "abc" were loaded; the others would have failed the load.
        assert_eq!(repo.loaded(), ["bin-ba", "star"]);
    }

    #[test]
    fn out_of_scope_entry_is_unreachable_in_scope_one_resolves() {
        let top = targets("targets", &[], &[role("images", &["images/*"], false)]);
        // The role lists a target outside its delegated paths.
        let images = targets("images", &["images/a.img", "secrets/key"], &[]);
        let mut repo = Repo::default().with("images", images);

        assert_eq!(find(&top, "secrets/key", &mut repo).unwrap(), None);
        assert!(repo.calls.is_empty());

        let found = find(&top, "images/a.img", &mut repo).unwrap().unwrap();
        assert_eq!(
            (found.role.as_str(), found_in(&found)),
            ("images", "images")
        );
    }

    #[test]
    fn a_path_must_be_delegated_along_the_whole_chain() {
        // B is delegated "*" by A, but A itself only "images/*": B cannot supply other paths.
        let top = targets("targets", &[], &[role("A", &["images/*"], false)]);
        let mut repo = Repo::default()
            .with("A", targets("A", &[], &[role("B", &["*", "*/*"], false)]))
            .with("B", targets("B", &["notes", "images/b.img"], &[]));
        assert_eq!(find(&top, "notes", &mut repo).unwrap(), None);
        assert!(repo.calls.is_empty());
        let found = find(&top, "images/b.img", &mut repo).unwrap().unwrap();
        assert_eq!(found.role, "B");
        assert_eq!(repo.loaded(), ["A", "B"]);
    }

    #[test]
    fn cycles_terminate() {
        let top = targets("targets", &[], &[role("A", &["*"], false)]);
        let mut repo = Repo::default()
            .with("A", targets("A", &[], &[role("B", &["*"], false)]))
            .with("B", targets("B", &[], &[role("A", &["*"], false)]));
        assert_eq!(find(&top, "x", &mut repo).unwrap(), None);
        assert_eq!(repo.loaded(), ["A", "B"]);
    }

    #[test]
    fn a_role_reached_twice_is_loaded_once() {
        // A diamond: C is delegated by A and by B; python-tuf visits a role name once.
        let top = targets(
            "targets",
            &[],
            &[role("A", &["*"], false), role("B", &["*"], false)],
        );
        let mut repo = Repo::default()
            .with("A", targets("A", &[], &[role("C", &["*"], false)]))
            .with("B", targets("B", &[], &[role("C", &["*"], false)]))
            .with("C", targets("C", &[], &[]));
        assert_eq!(find(&top, "x", &mut repo).unwrap(), None);
        let expected = [("targets", "A"), ("A", "C"), ("targets", "B")];
        assert_eq!(
            repo.calls,
            expected.map(|(d, r)| (d.to_string(), r.to_string()))
        );
    }

    /// A chain targets -> d1 -> d2 -> ... -> d{len}, every link delegating "*"; `listed_by`
    /// lists "x".
    fn chain(len: usize, listed_by: usize) -> (Targets, Repo) {
        let top = targets("targets", &[], &[role("d1", &["*"], false)]);
        let mut repo = Repo::default();
        for i in 1..=len {
            let name = format!("d{i}");
            let listed: &[&str] = if i == listed_by { &["x"] } else { &[] };
            let next = [role(&format!("d{}", i + 1), &["*"], false)];
            let delegates: &[Value] = if i < len { &next } else { &[] };
            repo = repo.with(&name, targets(&name, listed, delegates));
        }
        (top, repo)
    }

    #[test]
    fn at_most_max_delegations_roles_are_loaded() {
        // The deepest role the walk reaches still counts.
        let (top, mut repo) = chain(40, MAX_DELEGATIONS);
        let found = find(&top, "x", &mut repo).unwrap().unwrap();
        assert_eq!(found.role, format!("d{MAX_DELEGATIONS}"));
        assert_eq!(repo.calls.len(), MAX_DELEGATIONS);

        // One further and the walk stops before loading it.
        let (top, mut repo) = chain(40, MAX_DELEGATIONS + 1);
        assert_eq!(find(&top, "x", &mut repo).unwrap(), None);
        assert_eq!(repo.calls.len(), MAX_DELEGATIONS);
        assert_eq!(repo.calls.last().unwrap().1, format!("d{MAX_DELEGATIONS}"));

        // A short chain is walked to its end.
        let (top, mut repo) = chain(3, 0);
        assert_eq!(find(&top, "x", &mut repo).unwrap(), None);
        assert_eq!(repo.loaded(), ["d1", "d2", "d3"]);
    }

    #[test]
    fn a_loader_error_fails_the_lookup() {
        let top = targets(
            "targets",
            &[],
            &[role("A", &["*"], false), role("B", &["*"], false)],
        );
        let mut repo = Repo {
            failing: Some("A".to_string()),
            ..Repo::default()
        }
        .with("A", targets("A", &[], &[]))
        .with("B", targets("B", &["x"], &[]));
        // B lists the target, but A comes first and failed verification: no fallback to B.
        assert_eq!(
            find(&top, "x", &mut repo),
            Err("A: signature threshold not met".to_string())
        );
        assert_eq!(repo.loaded(), ["A"]);

        // Deeper in the tree, with the delegator passed through.
        let top = targets("targets", &[], &[role("A", &["*"], false)]);
        let mut repo = Repo {
            failing: Some("A1".to_string()),
            ..Repo::default()
        }
        .with("A", targets("A", &[], &[role("A1", &["*"], false)]));
        assert_eq!(
            find(&top, "x", &mut repo),
            Err("A1: signature threshold not met".to_string())
        );
        assert_eq!(
            repo.calls.last().unwrap(),
            &("A".to_string(), "A1".to_string())
        );
    }

    #[test]
    fn role_matches_by_paths_or_hash_prefixes() {
        let by_paths: DelegatedRole =
            serde_json::from_value(role("r", &["images/*", "manifest.json"], false)).unwrap();
        assert!(role_matches(&by_paths, "images/a.img"));
        assert!(role_matches(&by_paths, "manifest.json"));
        assert!(!role_matches(&by_paths, "images/sub/a.img"));
        assert!(!role_matches(&by_paths, "other"));
        let none: DelegatedRole = serde_json::from_value(role("r", &[], false)).unwrap();
        assert!(!role_matches(&none, "anything"));
        let by_hash: DelegatedRole =
            serde_json::from_value(hashed_role("r", &["ba7", "ffff"])).unwrap();
        assert!(role_matches(&by_hash, "abc"));
        assert!(!role_matches(&by_hash, "abd"));
    }
}
