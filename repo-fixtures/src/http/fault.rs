//! What can go wrong with a response, and the rules that say which requests it happens to.

use std::time::Duration;

/// One way to misbehave while answering a request.
///
/// Byte counts in `DropAfter` and `StallAfter` are counted in the response body as sent (so they are relative to
/// the start of a Range); `FlipByte` names an absolute offset in the file, so a resumed download meets the same
/// corrupt byte. When several rules apply to one request their faults combine: `Status` wins outright, the others
/// all take effect (e.g. `IgnoreRange` with `DropAfter` is a server that drops and cannot resume); a `Redirect`
/// wins over everything but `Status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Send the headers (with the full Content-Length) and this many body bytes, then close the connection.
    DropAfter(u64),
    /// Send this many body bytes, then hold the connection silent for `duration`, then go on or close.
    StallAfter {
        bytes: u64,
        duration: Duration,
        then: AfterStall,
    },
    /// Serve the byte at this absolute file offset XOR 0xFF (when the response covers it).
    FlipByte(u64),
    /// Answer with this status and an empty body.
    Status(u16),
    /// Answer 200 with the whole body and no `Accept-Ranges`, even when a Range was asked for.
    IgnoreRange,
    /// Answer 200 with no Content-Length (close-delimited): the file, then filler bytes for as long as the client
    /// reads. The filler is ASCII spaces, so a JSON file stays valid JSON for a parser that does not limit its
    /// input: only a client that caps the size it reads notices.
    Endless,
    /// Send the body at no more than this many bytes per second. A small rate is a trickle: `RateLimit(10)` sends
    /// one byte every 100 ms (a slow-retrieval attack).
    RateLimit(u64),
    /// Answer with this 3xx status, a `Location` header with this value, and an empty body.
    Redirect { status: u16, location: String },
}

/// What a [`Fault::StallAfter`] does once the stall is over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterStall {
    /// Send the rest of the body: a slow server.
    Continue,
    /// Close the connection: a server that hung and gave up.
    Close,
}

/// Which request paths a rule looks at. Paths are the percent-decoded request path, starting with `/`, without the
/// query string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathMatch {
    /// Every request.
    Any,
    /// Exactly this path, e.g. `/metadata/timestamp.json`.
    Exact(String),
    /// Paths ending with this, e.g. `timestamp.json` or a target name.
    Suffix(String),
}

impl PathMatch {
    /// Exactly this path; a leading `/` is added when missing.
    pub fn exact(path: impl Into<String>) -> PathMatch {
        let path = path.into();
        if path.starts_with('/') {
            PathMatch::Exact(path)
        } else {
            PathMatch::Exact(format!("/{path}"))
        }
    }

    /// Paths ending with `suffix`.
    pub fn suffix(suffix: impl Into<String>) -> PathMatch {
        PathMatch::Suffix(suffix.into())
    }

    pub fn matches(&self, path: &str) -> bool {
        match self {
            PathMatch::Any => true,
            PathMatch::Exact(exact) => path == exact,
            PathMatch::Suffix(suffix) => path.ends_with(suffix.as_str()),
        }
    }
}

/// Which of the requests a rule's path matches it applies to, counted from 1 per rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applies {
    /// Every matching request.
    Every,
    /// Only the nth matching request.
    Nth(u32),
    /// The first n matching requests.
    FirstN(u32),
    /// The nth matching request and every one after it.
    FromNth(u32),
}

impl Applies {
    /// Whether the `seen`th matching request (1-based) is one this applies to.
    pub fn includes(self, seen: u32) -> bool {
        match self {
            Applies::Every => true,
            Applies::Nth(n) => seen == n,
            Applies::FirstN(n) => seen <= n,
            Applies::FromNth(n) => seen >= n,
        }
    }
}

/// A fault, the paths it watches, and which of their requests it hits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    matcher: PathMatch,
    fault: Fault,
    applies: Applies,
}

impl Rule {
    /// `fault` on every request whose path matches; narrow it with [`nth`](Rule::nth), [`first`](Rule::first) or
    /// [`from_nth`](Rule::from_nth).
    #[must_use]
    pub fn new(matcher: PathMatch, fault: Fault) -> Rule {
        Rule {
            matcher,
            fault,
            applies: Applies::Every,
        }
    }

    /// Only the nth matching request (1-based).
    #[must_use]
    pub fn nth(self, n: u32) -> Rule {
        self.applies(Applies::Nth(n))
    }

    /// The first n matching requests.
    #[must_use]
    pub fn first(self, n: u32) -> Rule {
        self.applies(Applies::FirstN(n))
    }

    /// The nth matching request and all later ones.
    #[must_use]
    pub fn from_nth(self, n: u32) -> Rule {
        self.applies(Applies::FromNth(n))
    }

    #[must_use]
    pub fn applies(mut self, applies: Applies) -> Rule {
        self.applies = applies;
        self
    }

    pub fn matcher(&self) -> &PathMatch {
        &self.matcher
    }

    pub fn fault(&self) -> &Fault {
        &self.fault
    }
}

/// Names a rule added to a running server, to remove it or ask how often it fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RuleId(u64);

struct RuleEntry {
    id: RuleId,
    rule: Rule,
    /// Matching requests seen so far: the counter `Applies` is judged against.
    seen: u32,
    /// Requests the fault was applied to.
    hits: u32,
}

/// The rules of one server, in the order they were added.
#[derive(Default)]
pub(crate) struct RuleTable {
    next_id: u64,
    entries: Vec<RuleEntry>,
}

impl RuleTable {
    pub(crate) fn add(&mut self, rule: Rule) -> RuleId {
        let id = RuleId(self.next_id);
        self.next_id += 1;
        self.entries.push(RuleEntry {
            id,
            rule,
            seen: 0,
            hits: 0,
        });
        id
    }

    pub(crate) fn remove(&mut self, id: RuleId) -> bool {
        let before = self.entries.len();
        self.entries.retain(|entry| entry.id != id);
        self.entries.len() != before
    }

    pub(crate) fn clear(&mut self) {
        self.entries.clear();
    }

    pub(crate) fn hits(&self, id: RuleId) -> Option<u32> {
        self.entries
            .iter()
            .find(|entry| entry.id == id)
            .map(|entry| entry.hits)
    }

    /// Counts a request against every rule whose path matches and returns the faults that apply to it.
    pub(crate) fn faults_for(&mut self, path: &str) -> Vec<Fault> {
        let mut faults = Vec::new();
        for entry in &mut self.entries {
            if entry.rule.matcher.matches(path) {
                entry.seen = entry.seen.saturating_add(1);
                if entry.rule.applies.includes(entry.seen) {
                    entry.hits = entry.hits.saturating_add(1);
                    faults.push(entry.rule.fault.clone());
                }
            }
        }
        faults
    }
}

/// A stall inside a body, at a byte count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stall {
    pub(crate) bytes: u64,
    pub(crate) duration: Duration,
    pub(crate) then: AfterStall,
}

/// The faults of one request, combined into what the response writer needs to know.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct FaultPlan {
    pub(crate) status: Option<u16>,
    pub(crate) ignore_range: bool,
    pub(crate) endless: bool,
    pub(crate) drop_after: Option<u64>,
    /// Sorted by byte count.
    pub(crate) stalls: Vec<Stall>,
    pub(crate) flips: Vec<u64>,
    pub(crate) rate: Option<u64>,
    /// The status and Location of a redirect (the first one added).
    pub(crate) redirect: Option<(u16, String)>,
}

impl FaultPlan {
    pub(crate) fn new(faults: &[Fault]) -> FaultPlan {
        let mut plan = FaultPlan::default();
        for fault in faults {
            match fault {
                Fault::Status(code) => {
                    plan.status.get_or_insert(*code);
                }
                Fault::IgnoreRange => plan.ignore_range = true,
                Fault::Endless => plan.endless = true,
                Fault::DropAfter(bytes) => {
                    plan.drop_after = Some(plan.drop_after.map_or(*bytes, |d| d.min(*bytes)));
                }
                Fault::StallAfter {
                    bytes,
                    duration,
                    then,
                } => plan.stalls.push(Stall {
                    bytes: *bytes,
                    duration: *duration,
                    then: *then,
                }),
                Fault::FlipByte(offset) => plan.flips.push(*offset),
                // Several limits: the slowest one is the one a client would see.
                Fault::RateLimit(rate) => {
                    plan.rate = Some(plan.rate.map_or(*rate, |r| r.min(*rate)));
                }
                Fault::Redirect { status, location } => {
                    plan.redirect
                        .get_or_insert_with(|| (*status, location.clone()));
                }
            }
        }
        plan.stalls.sort_by_key(|stall| stall.bytes);
        plan
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_matchers_match_exact_paths_and_suffixes() {
        assert!(PathMatch::exact("metadata/timestamp.json").matches("/metadata/timestamp.json"));
        assert!(!PathMatch::exact("/timestamp.json").matches("/metadata/timestamp.json"));
        assert!(PathMatch::suffix("timestamp.json").matches("/metadata/timestamp.json"));
        assert!(!PathMatch::suffix("timestamp.json").matches("/metadata/1.root.json"));
        assert!(PathMatch::Any.matches("/anything"));
    }

    #[test]
    fn applies_counts_from_one() {
        assert!(!Applies::Nth(2).includes(1));
        assert!(Applies::Nth(2).includes(2));
        assert!(!Applies::Nth(2).includes(3));
        assert!(Applies::FirstN(2).includes(2) && !Applies::FirstN(2).includes(3));
        assert!(!Applies::FromNth(2).includes(1) && Applies::FromNth(2).includes(9));
        assert!(!Applies::Nth(0).includes(1));
    }

    #[test]
    fn a_rule_counts_only_requests_its_path_matches() {
        let mut table = RuleTable::default();
        let id = table.add(Rule::new(PathMatch::suffix("a.json"), Fault::Status(503)).nth(2));
        assert!(table.faults_for("/a.json").is_empty());
        assert!(table.faults_for("/b.json").is_empty());
        assert_eq!(table.faults_for("/a.json"), vec![Fault::Status(503)]);
        assert!(table.faults_for("/a.json").is_empty());
        assert_eq!(table.hits(id), Some(1));
        assert!(table.remove(id));
        assert!(!table.remove(id));
        assert_eq!(table.hits(id), None);
    }

    #[test]
    fn faults_combine_into_one_plan() {
        let stall = |bytes| Fault::StallAfter {
            bytes,
            duration: Duration::from_millis(1),
            then: AfterStall::Continue,
        };
        let plan = FaultPlan::new(&[
            Fault::DropAfter(100),
            Fault::DropAfter(50),
            stall(30),
            stall(10),
            Fault::IgnoreRange,
            Fault::Status(503),
            Fault::Status(404),
            Fault::RateLimit(10),
            Fault::RateLimit(5),
            Fault::Redirect {
                status: 302,
                location: "http://127.0.0.2/".into(),
            },
            Fault::Redirect {
                status: 301,
                location: "http://127.0.0.3/".into(),
            },
        ]);
        assert_eq!(plan.drop_after, Some(50));
        assert_eq!(
            plan.stalls.iter().map(|s| s.bytes).collect::<Vec<_>>(),
            vec![10, 30]
        );
        assert!(plan.ignore_range && !plan.endless);
        assert_eq!(plan.status, Some(503));
        assert_eq!(plan.rate, Some(5));
        assert_eq!(plan.redirect, Some((302, "http://127.0.0.2/".into())));
    }
}
