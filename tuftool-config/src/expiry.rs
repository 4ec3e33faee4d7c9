//! Expiration policy: how long each role's metadata stays valid after it is signed.
//!
//! Lifetimes are written the way a publisher thinks about them, `"7 days"`, `"12 weeks"`,
//! `"1 week 3 days"`, `"in 6 weeks"` (tuftool's spelling), and turned into absolute expiry
//! times only against an explicit `now`, so a fixed clock gives byte-identical metadata.
//! Months and years are refused on purpose: their length depends on the calendar.

use crate::error::{self, Result};
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use snafu::{OptionExt, ensure};
use std::fmt;
use std::str::FromStr;

/// A positive length of time, e.g. `7 days`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Lifetime(SignedDuration);

impl Lifetime {
    /// A lifetime of `seconds` seconds; `None` unless positive.
    pub fn from_secs(seconds: i64) -> Option<Self> {
        (seconds > 0).then(|| Self(SignedDuration::from_secs(seconds)))
    }

    /// A lifetime of `days` whole days; `None` unless positive.
    pub fn days(days: i64) -> Option<Self> {
        days.checked_mul(86_400).and_then(Self::from_secs)
    }

    /// The length in seconds.
    pub fn as_secs(&self) -> i64 {
        self.0.as_secs()
    }

    /// The instant `now + self`, truncated to whole seconds (metadata reads better without
    /// fractions, and truncating can only make the expiry earlier).
    pub fn after(&self, now: Timestamp) -> Result<Timestamp> {
        let at = now
            .checked_add(self.0)
            .ok()
            .context(error::ExpiryOverflowSnafu {
                lifetime: self.to_string(),
            })?;
        Timestamp::from_second(at.as_second())
            .ok()
            .context(error::ExpiryOverflowSnafu {
                lifetime: self.to_string(),
            })
    }
}

const UNITS: &[(&[&str], i64)] = &[
    (&["s", "sec", "secs", "second", "seconds"], 1),
    (&["m", "min", "mins", "minute", "minutes"], 60),
    (&["h", "hr", "hrs", "hour", "hours"], 3_600),
    (&["d", "day", "days"], 86_400),
    (&["w", "week", "weeks"], 604_800),
];

impl FromStr for Lifetime {
    type Err = error::Error;

    fn from_str(text: &str) -> Result<Self> {
        let bad = || error::Error::BadLifetime {
            text: text.to_string(),
        };
        let mut words = text.split_whitespace().peekable();
        if words.peek() == Some(&"in") {
            words.next();
        }
        let mut total: i64 = 0;
        let mut parts = 0;
        while let Some(word) = words.next() {
            // Accept both "7 days" and "7days".
            let split = word
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(word.len());
            let (number, glued_unit) = word.split_at(split);
            let number: i64 = number.parse().map_err(|_| bad())?;
            let unit = if glued_unit.is_empty() {
                words.next().ok_or_else(bad)?
            } else {
                glued_unit
            };
            let unit = unit.trim_end_matches(',').to_ascii_lowercase();
            let seconds = UNITS
                .iter()
                .find(|(names, _)| names.contains(&unit.as_str()))
                .map(|(_, seconds)| *seconds)
                .ok_or_else(bad)?;
            total = number
                .checked_mul(seconds)
                .and_then(|s| total.checked_add(s))
                .ok_or_else(bad)?;
            parts += 1;
        }
        ensure!(parts > 0, error::BadLifetimeSnafu { text });
        Self::from_secs(total).ok_or_else(bad)
    }
}

impl fmt::Display for Lifetime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.as_secs();
        for (names, unit) in UNITS.iter().rev() {
            if secs % unit == 0 {
                let n = secs / unit;
                let name = names[names.len() - 1];
                let name = if n == 1 {
                    name.trim_end_matches('s')
                } else {
                    name
                };
                return write!(f, "{n} {name}");
            }
        }
        write!(f, "{secs} seconds")
    }
}

impl<'de> Deserialize<'de> for Lifetime {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl Serialize for Lifetime {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// How long each role stays valid after signing. The `[expiration]` table of the config file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ExpirationPolicy {
    /// Lifetime of a newly created or rotated root.json.
    pub root: Lifetime,
    /// Lifetime of targets.json.
    pub targets: Lifetime,
    /// Lifetime of snapshot.json.
    pub snapshot: Lifetime,
    /// Lifetime of timestamp.json: the shortest, re-signed most often (see `refresh`).
    pub timestamp: Lifetime,
}

impl Default for ExpirationPolicy {
    /// 52 weeks for root, 12 weeks for targets and snapshot, 1 week for timestamp.
    fn default() -> Self {
        let weeks = |n: i64| Lifetime(SignedDuration::from_secs(n * 604_800));
        Self {
            root: weeks(52),
            targets: weeks(12),
            snapshot: weeks(12),
            timestamp: weeks(1),
        }
    }
}

impl ExpirationPolicy {
    /// Absolute expiry times of the repository roles for metadata signed at `now`.
    pub fn at(&self, now: Timestamp) -> Result<RoleExpirations> {
        Ok(RoleExpirations {
            targets: self.targets.after(now)?,
            snapshot: self.snapshot.after(now)?,
            timestamp: self.timestamp.after(now)?,
        })
    }
}

/// Absolute expiry times for the three roles a build or refresh signs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoleExpirations {
    /// Expiry of targets.json.
    pub targets: Timestamp,
    /// Expiry of snapshot.json.
    pub snapshot: Timestamp,
    /// Expiry of timestamp.json.
    pub timestamp: Timestamp,
}

/// Either a policy (relative to `now`) or absolute expiry times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expirations {
    /// Each role expires its lifetime after `now`.
    Policy(ExpirationPolicy),
    /// Each role expires at the given instant (a fixture may want an already expired role).
    Fixed(RoleExpirations),
}

impl Expirations {
    pub(crate) fn resolve(&self, now: Timestamp) -> Result<RoleExpirations> {
        match self {
            Self::Policy(policy) => policy.at(now),
            Self::Fixed(fixed) => Ok(*fixed),
        }
    }
}

impl From<ExpirationPolicy> for Expirations {
    fn from(policy: ExpirationPolicy) -> Self {
        Self::Policy(policy)
    }
}

impl From<RoleExpirations> for Expirations {
    fn from(fixed: RoleExpirations) -> Self {
        Self::Fixed(fixed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes_parse_in_the_publisher_spellings() {
        let secs = |s: &str| s.parse::<Lifetime>().unwrap().as_secs();
        assert_eq!(secs("7 days"), 7 * 86_400);
        assert_eq!(secs("1 day"), 86_400);
        assert_eq!(secs("in 6 weeks"), 6 * 604_800);
        assert_eq!(secs("1 week 3 days"), 10 * 86_400);
        assert_eq!(secs("12h"), 12 * 3_600);
        assert_eq!(secs("90 minutes"), 5_400);
        assert_eq!(secs("30 s"), 30);
        assert_eq!(secs("2 Weeks, 1 day"), 15 * 86_400);
    }

    #[test]
    fn bad_lifetimes_are_refused() {
        for text in [
            "",
            "7",
            "days",
            "7 fortnights",
            "1 month",
            "0 days",
            "-3 days",
            "in",
            "x days",
        ] {
            let err = text.parse::<Lifetime>().unwrap_err();
            assert!(err.to_string().contains("lifetime"), "{text}: {err}");
        }
    }

    #[test]
    fn lifetimes_display_in_the_largest_whole_unit() {
        let show = |s: &str| s.parse::<Lifetime>().unwrap().to_string();
        assert_eq!(show("14 days"), "2 weeks");
        assert_eq!(show("1 week"), "1 week");
        assert_eq!(show("36 hours"), "36 hours");
        assert_eq!(show("61 seconds"), "61 seconds");
    }

    #[test]
    fn expiry_is_now_plus_lifetime_in_whole_seconds() {
        let now: Timestamp = "2025-01-01T00:00:00.75Z".parse().unwrap();
        let at = "7 days".parse::<Lifetime>().unwrap().after(now).unwrap();
        assert_eq!(at.to_string(), "2025-01-08T00:00:00Z");
    }
}
