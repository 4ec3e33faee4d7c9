//! Update waves: the wave policy files publishers write, the seed-keyed schedule they become in
//! manifest.json, and the rule a node uses to decide whether its wave lets it update.
//!
//! A node has a *seed* in `0..MAX_SEED` (upstream `bork seed`). An update's `waves` map is keyed
//! by the first seed of each wave; the value is the time that wave starts. See
//! `docs/formats.md` for the whole story, including the absolute-seed quirk of
//! [`update_ready`], which is kept on purpose because fleets depend on its timing.

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use snafu::{OptionExt, ResultExt, Snafu, ensure};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Seeds are `0..MAX_SEED`; a fleet percentage `p` maps to seed `p / 100 * MAX_SEED`.
pub const MAX_SEED: u32 = 2048;

/// Errors from reading wave policies and turning them into schedules.
#[derive(Debug, Snafu)]
#[snafu(visibility(pub(crate)))]
pub enum Error {
    #[snafu(display("Failed to read wave policy '{}': {source}", path.display()))]
    ReadPolicy {
        path: PathBuf,
        source: std::io::Error,
    },

    #[snafu(display("Invalid wave policy {origin}: {source}"))]
    ParsePolicy {
        origin: String,
        #[snafu(source(from(toml::de::Error, Box::new)))]
        source: Box<toml::de::Error>,
    },

    #[snafu(display(
        "Wave policy '{name}' is neither an existing file nor a built-in policy (built-in: {builtins})"
    ))]
    UnknownPolicy { name: String, builtins: String },

    #[snafu(display("The wave policy has no waves"))]
    EmptyPolicy,

    #[snafu(display("Wave {wave}: fleet_percentage must be between 1 and 100, got {provided}"))]
    FleetPercentage { wave: usize, provided: u32 },

    #[snafu(display(
        "Wave {wave}: fleet_percentage {percentage} does not increase on wave {previous_wave}'s {previous_percentage}"
    ))]
    PercentageNotIncreasing {
        wave: usize,
        percentage: u32,
        previous_wave: usize,
        previous_percentage: u32,
    },

    #[snafu(display("Invalid time offset '{input}': {reason}"))]
    BadOffset { input: String, reason: String },

    #[snafu(display(
        "Wave {wave}: start_after '{value}' is neither an RFC3339 time nor an offset like '4 hours': {reason}"
    ))]
    BadStartAfter {
        wave: usize,
        value: String,
        reason: String,
    },

    #[snafu(display(
        "Wave {wave}: start_after '{value}' from {} is outside the representable time range",
        rfc3339(start)
    ))]
    StartOutOfRange {
        wave: usize,
        value: String,
        start: DateTime<Utc>,
    },

    #[snafu(display(
        "Wave {wave} (seed {seed}) starts at {}, not after wave {previous_wave} (seed {previous_seed}) at {}; wave start times must strictly increase",
        rfc3339(time),
        rfc3339(previous_time)
    ))]
    TimeNotIncreasing {
        wave: usize,
        seed: u32,
        time: DateTime<Utc>,
        previous_wave: usize,
        previous_seed: u32,
        previous_time: DateTime<Utc>,
    },
}

type Result<T, E = Error> = std::result::Result<T, E>;

/// A time as manifest.json writes it (RFC3339, `Z`, fractional seconds only if any).
pub fn rfc3339(time: &DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// The wave a seed falls in, for one update's `waves` map. The key of each entry is the first
/// seed of that wave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wave {
    /// The seed is at or below the first key: no start time, only the time the next wave starts.
    Initial {
        end_seed: u32,
        end_time: DateTime<Utc>,
    },
    /// Between two keys: `start_seed < seed <= end_seed`.
    General {
        start_seed: u32,
        start_time: DateTime<Utc>,
        end_seed: u32,
        end_time: DateTime<Utc>,
    },
    /// Above the last key: the wave has a start and no end.
    Last {
        start_seed: u32,
        start_time: DateTime<Utc>,
    },
}

impl Wave {
    /// Whether the wave has begun at `now`. The initial wave always has.
    pub fn has_started(&self, now: DateTime<Utc>) -> bool {
        match self {
            Self::Initial { .. } => true,
            Self::General { start_time, .. } | Self::Last { start_time, .. } => *start_time <= now,
        }
    }

    /// Whether every host of the wave may update at `now`: the wave's end has been reached,
    /// or, for the last wave (which has no end), its start.
    pub fn has_passed(&self, now: DateTime<Utc>) -> bool {
        match self {
            Self::Initial { end_time, .. } | Self::General { end_time, .. } => *end_time <= now,
            Self::Last { start_time, .. } => *start_time <= now,
        }
    }
}

/// The wave `seed` belongs to, as upstream computes it: the start is the last key *below* the
/// seed, the end the first key *at or above* it (up to [`MAX_SEED`]). `None` if there are no
/// waves.
///
/// Upstream panics for a seed above [`MAX_SEED`] (an inverted `BTreeMap` range); here such a
/// seed simply has no end key, so it falls in the last wave.
#[must_use]
pub fn update_wave(waves: &BTreeMap<u32, DateTime<Utc>>, seed: u32) -> Option<Wave> {
    let start = waves.range(..seed).next_back().map(|(k, v)| (*k, *v));
    let end = if seed <= MAX_SEED {
        waves.range(seed..=MAX_SEED).next().map(|(k, v)| (*k, *v))
    } else {
        None
    };
    match (start, end) {
        (None, Some((end_seed, end_time))) => Some(Wave::Initial { end_seed, end_time }),
        (Some((start_seed, start_time)), Some((end_seed, end_time))) => Some(Wave::General {
            start_seed,
            start_time,
            end_seed,
            end_time,
        }),
        (Some((start_seed, start_time)), None) => Some(Wave::Last {
            start_seed,
            start_time,
        }),
        (None, None) => None,
    }
}

/// Whether a host with `seed` may take an update with these `waves` at `now` (upstream's
/// `Update::update_ready`, same results): whether `now` has reached [`ready_at`].
///
/// Upstream's rule, step by step:
///
/// 1. No waves: ready.
/// 2. The wave has passed (its end, or the last wave's start, is `<= now`): ready.
/// 3. The wave has not started: not ready.
/// 4. The initial wave: ready (only seeds at or below the first key, normally just seed 0).
/// 5. A general wave spreads its hosts over its duration: with
///    `time_per_seed = (end_time - start_time) / (end_seed - start_seed)` (chrono integer
///    division), the host is ready when `now >= start_time + time_per_seed * seed`.
///
/// **Quirk kept on purpose:** in step 5 `seed` is the host's *absolute* seed, not its offset
/// `seed - start_seed` in the wave. Upstream computes it this way, and the fleets that run
/// Bottlerocket roll out on that timing, so a compatible updater must too. The effect is that
/// hosts in later waves reach their target time late, usually after the wave's end, so they
/// update only when the wave has passed (step 2). If the target time cannot be represented
/// (upstream would panic), the host waits for the wave's end.
///
/// Wave times that do not strictly increase with the seed (which upstream's manifest reading
/// accepts) go through the same steps: a wave whose end is not after its start is open to all
/// its hosts from the earlier of the two times.
#[must_use]
pub fn update_ready(waves: &BTreeMap<u32, DateTime<Utc>>, seed: u32, now: DateTime<Utc>) -> bool {
    ready_at(waves, seed).is_none_or(|at| now >= at)
}

/// The earliest time at which a host with `seed` may take an update with these `waves`, or
/// `None` when it may at any time (no waves, or the initial wave). [`update_ready`] is exactly
/// `now >= ready_at`.
///
/// Following [`update_ready`]'s steps: the last wave opens at its start; a general wave opens
/// for the host at `min(end, max(start, start + time_per_seed * seed))`: at its end if it has
/// passed (step 2), never before its start (step 3), and otherwise at the host's slot (step 5,
/// with the absolute seed). The `max` matters only when the wave's end is before its start (a
/// negative time per seed); an unrepresentable slot means the wave's end.
#[must_use]
pub fn ready_at(waves: &BTreeMap<u32, DateTime<Utc>>, seed: u32) -> Option<DateTime<Utc>> {
    match update_wave(waves, seed)? {
        Wave::Initial { .. } => None,
        Wave::Last { start_time, .. } => Some(start_time),
        Wave::General {
            start_seed,
            start_time,
            end_seed,
            end_time,
        } => {
            let slot = match (i32::try_from(end_seed - start_seed), i32::try_from(seed)) {
                (Ok(seeds_in_wave), Ok(seed)) => {
                    match (end_time - start_time).checked_div(seeds_in_wave) {
                        // The absolute seed, not `seed - start_seed`: see update_ready.
                        Some(time_per_seed) => time_per_seed
                            .checked_mul(seed)
                            .and_then(|offset| start_time.checked_add_signed(offset)),
                        // An empty wave (upstream: "no host should have been allocated to it"):
                        // open from its start.
                        None => Some(start_time),
                    }
                }
                // Unreachable: a general wave ends at or below MAX_SEED.
                _ => None,
            };
            Some(slot.map_or(end_time, |slot| end_time.min(slot.max(start_time))))
        }
    }
}

/// A wave's first seed and start time.
pub type WaveStart = (u32, DateTime<Utc>);

/// The first adjacent pair of waves (in seed order) whose start times do not strictly
/// increase, as `((seed, time), (next_seed, next_time))`.
#[must_use]
pub fn first_unordered_pair(
    waves: &BTreeMap<u32, DateTime<Utc>>,
) -> Option<(WaveStart, WaveStart)> {
    waves
        .iter()
        .zip(waves.iter().skip(1))
        .find(|((_, time), (_, next_time))| next_time <= time)
        .map(|((seed, time), (next_seed, next_time))| ((*seed, *time), (*next_seed, *next_time)))
}

/// The seed a fleet percentage maps to, computed in `f32` exactly as upstream does
/// (`1` → 20, `5` → 102, `15` → 307, `40` → 819, `60` → 1228, `90` → 1843, `100` → 2048).
#[must_use]
pub fn seed_for_percentage(fleet_percentage: u32) -> u32 {
    // The float arithmetic is the format: a different rounding would move wave boundaries.
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss
    )]
    let seed = (fleet_percentage as f32 / 100_f32 * MAX_SEED as f32) as u32;
    seed
}

/// A wave policy file: the publisher's description of a rollout, relative to its start.
///
/// ```toml
/// [[waves]]
/// start_after = "1 hour"     # or an RFC3339 time
/// fleet_percentage = 1       # 1..=100: share of the fleet updated once this wave is over
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WavePolicy {
    pub waves: Vec<PolicyWave>,
}

/// One `[[waves]]` entry of a wave policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyWave {
    /// An offset from the rollout start (`"4 hours"`, `"1 day 4 hours"`, `"in 2 weeks"`) or an
    /// absolute RFC3339 time.
    pub start_after: String,
    /// The percentage of the fleet (1..=100) that may have updated when this wave is over.
    pub fleet_percentage: u32,
}

/// A wave policy shipped inside this crate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuiltinPolicy {
    /// The short name tools accept, e.g. `default`.
    pub name: &'static str,
    /// The file name in `update-metadata/waves/`, e.g. `default-waves.toml`.
    pub file_name: &'static str,
    /// The file's TOML text.
    pub toml: &'static str,
}

impl BuiltinPolicy {
    /// Whether `name` designates this policy: its short name, its file name, or its file stem.
    pub fn is_named(&self, name: &str) -> bool {
        name == self.name
            || name == self.file_name
            || self.file_name.strip_suffix(".toml") == Some(name)
    }

    /// The parsed policy.
    pub fn policy(&self) -> Result<WavePolicy> {
        WavePolicy::from_toml_str(self.toml, &format!("(built-in '{}')", self.name))
    }
}

/// Upstream's four wave policies (`sources/updater/waves/` in Bottlerocket).
pub const BUILTIN_POLICIES: [BuiltinPolicy; 4] = [
    BuiltinPolicy {
        name: "default",
        file_name: "default-waves.toml",
        toml: include_str!("../waves/default-waves.toml"),
    },
    BuiltinPolicy {
        name: "accelerated",
        file_name: "accelerated-waves.toml",
        toml: include_str!("../waves/accelerated-waves.toml"),
    },
    BuiltinPolicy {
        name: "slow-roll",
        file_name: "slow-roll.toml",
        toml: include_str!("../waves/slow-roll.toml"),
    },
    BuiltinPolicy {
        name: "ohno",
        file_name: "ohno.toml",
        toml: include_str!("../waves/ohno.toml"),
    },
];

/// The built-in policy called `name` (short name, file name or file stem), if any.
pub fn builtin_policy(name: &str) -> Option<&'static BuiltinPolicy> {
    BUILTIN_POLICIES.iter().find(|policy| policy.is_named(name))
}

/// When a wave starts: an offset from the rollout start, or a fixed time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAfter {
    Offset(TimeDelta),
    At(DateTime<Utc>),
}

impl StartAfter {
    /// Parses `start_after`: an RFC3339 time, else an offset (see [`parse_offset`]).
    pub fn parse(value: &str) -> Result<Self> {
        if let Ok(at) = DateTime::parse_from_rfc3339(value.trim()) {
            return Ok(Self::At(at.with_timezone(&Utc)));
        }
        parse_offset(value).map(Self::Offset)
    }
}

/// Parses an offset such as `"4 hours"`, `"1 day"`, `"in 2 weeks"` or `"1 day 4 hours"`.
///
/// Grammar: an optional leading `in`, then one or more `<count> <unit>` pairs separated by
/// whitespace; `<count>` is an unsigned integer and `<unit>` is `second`, `minute`, `hour`,
/// `day` or `week`, singular or plural. Upstream's `parse_offset` takes exactly one pair of
/// hours, days or weeks; every string it accepts means the same here.
pub fn parse_offset(input: &str) -> Result<TimeDelta> {
    parse_offset_parts(input).map_err(|reason| Error::BadOffset {
        input: input.to_string(),
        reason,
    })
}

fn parse_offset_parts(input: &str) -> std::result::Result<TimeDelta, String> {
    let mut words = input.split_whitespace().peekable();
    if words.peek() == Some(&"in") {
        words.next();
    }
    let words: Vec<&str> = words.collect();
    if words.is_empty() {
        return Err("expected something like '4 hours' or '1 day 4 hours'".to_string());
    }
    let mut total = TimeDelta::zero();
    for pair in words.chunks(2) {
        let [count, unit] = pair else {
            return Err(format!("'{}' has no unit", pair[0]));
        };
        let count: i64 = count
            .parse::<u32>()
            .map_err(|e| format!("count '{count}' is not an unsigned integer: {e}"))?
            .into();
        let part = match *unit {
            "second" | "seconds" => TimeDelta::try_seconds(count),
            "minute" | "minutes" => TimeDelta::try_minutes(count),
            "hour" | "hours" => TimeDelta::try_hours(count),
            "day" | "days" => TimeDelta::try_days(count),
            "week" | "weeks" => TimeDelta::try_weeks(count),
            other => {
                return Err(format!(
                    "unit '{other}' is not one of seconds, minutes, hours, days, weeks"
                ));
            }
        };
        total = part
            .and_then(|part| total.checked_add(&part))
            .ok_or_else(|| "offset is too large".to_string())?;
    }
    Ok(total)
}

impl WavePolicy {
    /// Parses a policy from TOML; `origin` names it in errors (e.g. `'waves.toml'`).
    pub fn from_toml_str(text: &str, origin: &str) -> Result<Self> {
        toml::from_str(text).context(ParsePolicySnafu { origin })
    }

    /// Reads a policy file.
    pub fn from_path(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).context(ReadPolicySnafu { path })?;
        Self::from_toml_str(&text, &format!("'{}'", path.display()))
    }

    /// Loads a policy by file path or built-in name. An existing file wins over a built-in of
    /// the same name, so a path given to upstream's `updata` means the same here; a name that
    /// is not a built-in and looks like a path (a directory part or an extension) is read as a
    /// file, so a missing file is reported as such.
    pub fn load(name_or_path: &str) -> Result<Self> {
        let path = Path::new(name_or_path);
        let builtin = builtin_policy(name_or_path);
        let looks_like_path = path.components().count() > 1 || path.extension().is_some();
        if path.exists() || (builtin.is_none() && looks_like_path) {
            return Self::from_path(path);
        }
        builtin
            .context(UnknownPolicySnafu {
                name: name_or_path,
                builtins: BUILTIN_POLICIES
                    .iter()
                    .map(|policy| policy.name)
                    .collect::<Vec<_>>()
                    .join(", "),
            })?
            .policy()
    }

    /// The manifest `waves` map for a rollout starting at `start`, exactly as upstream's
    /// `set_waves` computes it: the first wave is keyed by seed 0, each later wave by the seed
    /// of the *previous* wave's `fleet_percentage` (see [`seed_for_percentage`]); so the last
    /// wave's percentage never becomes a key. The value is `start + start_after` (or the
    /// `start_after` time itself).
    ///
    /// Stricter than upstream: the policy must have a wave, and both the percentages that
    /// become keys and the start times must strictly increase in file order (upstream silently
    /// drops a wave whose seed repeats, and only checks the times in seed order).
    pub fn schedule(&self, start: DateTime<Utc>) -> Result<BTreeMap<u32, DateTime<Utc>>> {
        ensure!(!self.waves.is_empty(), EmptyPolicySnafu);
        let mut schedule = BTreeMap::new();
        let mut seed = 0;
        // (wave number, seed, start time, fleet percentage) of the previous wave.
        let mut previous: Option<(usize, u32, DateTime<Utc>, u32)> = None;
        for (index, entry) in self.waves.iter().enumerate() {
            let wave = index + 1;
            ensure!(
                (1..=100).contains(&entry.fleet_percentage),
                FleetPercentageSnafu {
                    wave,
                    provided: entry.fleet_percentage
                }
            );
            let time = match StartAfter::parse(&entry.start_after) {
                Ok(StartAfter::At(time)) => time,
                Ok(StartAfter::Offset(offset)) => {
                    start
                        .checked_add_signed(offset)
                        .context(StartOutOfRangeSnafu {
                            wave,
                            value: &entry.start_after,
                            start,
                        })?
                }
                Err(Error::BadOffset { reason, .. }) => {
                    return BadStartAfterSnafu {
                        wave,
                        value: &entry.start_after,
                        reason,
                    }
                    .fail();
                }
                Err(other) => return Err(other),
            };
            if let Some((previous_wave, previous_seed, previous_time, previous_percentage)) =
                previous
            {
                // This wave's seed comes from the previous wave's percentage; it only moves
                // forward if that percentage rose. The last wave's own percentage is unused.
                ensure!(
                    seed > previous_seed,
                    PercentageNotIncreasingSnafu {
                        wave: previous_wave,
                        percentage: previous_percentage,
                        previous_wave: previous_wave.saturating_sub(1),
                        previous_percentage: self
                            .waves
                            .get(previous_wave.saturating_sub(2))
                            .map_or(0, |w| w.fleet_percentage),
                    }
                );
                ensure!(
                    time > previous_time,
                    TimeNotIncreasingSnafu {
                        wave,
                        seed,
                        time,
                        previous_wave,
                        previous_seed,
                        previous_time,
                    }
                );
            }
            schedule.insert(seed, time);
            previous = Some((wave, seed, time, entry.fleet_percentage));
            seed = seed_for_percentage(entry.fleet_percentage);
        }
        Ok(schedule)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> DateTime<Utc> {
        "2024-10-24T20:00:00Z".parse().unwrap()
    }

    fn secs(n: i64) -> TimeDelta {
        TimeDelta::seconds(n)
    }

    fn ms(n: i64) -> TimeDelta {
        TimeDelta::milliseconds(n)
    }

    fn default_schedule() -> BTreeMap<u32, DateTime<Utc>> {
        builtin_policy("default")
            .unwrap()
            .policy()
            .unwrap()
            .schedule(t0())
            .unwrap()
    }

    // ---- percentages and offsets --------------------------------------------------------

    #[test]
    fn percentages_map_to_upstream_seeds() {
        let seeds: Vec<u32> = [1, 3, 5, 12, 15, 25, 40, 50, 60, 80, 90, 100]
            .into_iter()
            .map(seed_for_percentage)
            .collect();
        assert_eq!(
            seeds,
            [
                20, 61, 102, 245, 307, 512, 819, 1024, 1228, 1638, 1843, 2048
            ]
        );
    }

    #[test]
    fn offsets_accept_upstream_forms_and_more_units() {
        assert_eq!(parse_offset("1 hour").unwrap(), secs(3600));
        assert_eq!(parse_offset("4 hours").unwrap(), secs(4 * 3600));
        assert_eq!(parse_offset("in 2 weeks").unwrap(), secs(14 * 86400));
        assert_eq!(parse_offset("1 day").unwrap(), secs(86400));
        assert_eq!(parse_offset("30 minutes").unwrap(), secs(1800));
        assert_eq!(parse_offset("1 second").unwrap(), secs(1));
        assert_eq!(parse_offset("0 hours").unwrap(), secs(0));
        assert_eq!(parse_offset("  6   days ").unwrap(), secs(6 * 86400));
        assert_eq!(
            parse_offset("1 day 4 hours 30 minutes").unwrap(),
            secs(86400 + 4 * 3600 + 1800)
        );
    }

    #[test]
    fn bad_offsets_are_rejected_with_the_input_named() {
        for input in [
            "",
            "in",
            "hours",
            "4",
            "four hours",
            "-1 hour",
            "1 month",
            "0 hou",
            "1 day 4",
        ] {
            let err = parse_offset(input).unwrap_err();
            assert!(
                err.to_string().contains(&format!("'{input}'")),
                "{input}: {err}"
            );
        }
    }

    #[test]
    fn start_after_accepts_rfc3339_as_an_absolute_time() {
        assert_eq!(
            StartAfter::parse("2024-10-25T00:00:00+02:00").unwrap(),
            StartAfter::At("2024-10-24T22:00:00Z".parse().unwrap())
        );
        assert_eq!(
            StartAfter::parse("2 days").unwrap(),
            StartAfter::Offset(secs(2 * 86400))
        );
    }

    // ---- policies -> schedules ----------------------------------------------------------

    #[test]
    fn default_policy_yields_upstream_keys_and_times() {
        let schedule = default_schedule();
        let hour = 3600;
        let day = 24 * hour;
        let expected: BTreeMap<u32, DateTime<Utc>> = [
            (0, hour),
            (20, 4 * hour),
            (102, day),
            (307, 2 * day),
            (819, 4 * day),
            (1228, 5 * day),
            (1843, 6 * day),
        ]
        .into_iter()
        .map(|(seed, offset)| (seed, t0() + secs(offset)))
        .collect();
        assert_eq!(schedule, expected);
    }

    #[test]
    fn every_builtin_policy_parses_and_schedules_in_order() {
        let expected_keys: [(&str, &[u32]); 4] = [
            ("default", &[0, 20, 102, 307, 819, 1228, 1843]),
            ("accelerated", &[0, 61, 245, 819, 1638]),
            ("slow-roll", &[0, 20, 102, 307, 819, 1228, 1843]),
            ("ohno", &[0, 102, 512, 1024, 1843]),
        ];
        for (name, keys) in expected_keys {
            let schedule = builtin_policy(name)
                .unwrap()
                .policy()
                .unwrap()
                .schedule(t0())
                .unwrap();
            assert_eq!(schedule.keys().copied().collect::<Vec<_>>(), keys, "{name}");
            assert_eq!(first_unordered_pair(&schedule), None, "{name}");
        }
    }

    #[test]
    fn builtins_are_found_by_name_file_name_and_stem() {
        assert_eq!(builtin_policy("default").unwrap().name, "default");
        assert_eq!(builtin_policy("default-waves").unwrap().name, "default");
        assert_eq!(
            builtin_policy("default-waves.toml").unwrap().name,
            "default"
        );
        assert_eq!(builtin_policy("slow-roll.toml").unwrap().name, "slow-roll");
        assert_eq!(
            builtin_policy("accelerated-waves").unwrap().name,
            "accelerated"
        );
        assert!(builtin_policy("fast").is_none());
    }

    #[test]
    fn unknown_policy_name_lists_the_builtins() {
        let err = WavePolicy::load("no-such-policy-or-file").unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, Error::UnknownPolicy { .. }), "{msg}");
        assert!(
            msg.contains("'no-such-policy-or-file'")
                && msg.contains("default, accelerated, slow-roll, ohno"),
            "{msg}"
        );
    }

    #[test]
    fn a_missing_path_is_reported_as_a_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        for path in [
            dir.path().join("waves.toml"),
            dir.path().join("sub").join("w"),
        ] {
            let err = WavePolicy::load(path.to_str().unwrap()).unwrap_err();
            let msg = err.to_string();
            assert!(matches!(err, Error::ReadPolicy { .. }), "{msg}");
            assert!(msg.contains(&path.display().to_string()), "{msg}");
        }
    }

    #[test]
    fn a_policy_file_on_disk_wins_over_a_builtin_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("default");
        std::fs::write(
            &path,
            "[[waves]]\nstart_after = '2 hours'\nfleet_percentage = 100\n",
        )
        .unwrap();
        let policy = WavePolicy::load(path.to_str().unwrap()).unwrap();
        assert_eq!(policy.waves.len(), 1);
        assert_eq!(policy.waves[0].start_after, "2 hours");
    }

    #[test]
    fn invalid_policy_file_error_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "[[waves]]\nstart_after = '2 hours'\n").unwrap();
        let msg = WavePolicy::load(path.to_str().unwrap())
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains(&path.display().to_string()) && msg.contains("fleet_percentage"),
            "{msg}"
        );
    }

    #[test]
    fn single_wave_policy_has_only_seed_zero() {
        let policy = WavePolicy {
            waves: vec![PolicyWave {
                start_after: "1 hour".into(),
                fleet_percentage: 100,
            }],
        };
        let schedule = policy.schedule(t0()).unwrap();
        assert_eq!(
            schedule,
            BTreeMap::from([(0, t0() + secs(3600))]),
            "the last (only) percentage never becomes a key"
        );
    }

    #[test]
    fn absolute_start_after_is_used_as_is() {
        let policy = WavePolicy {
            waves: vec![
                PolicyWave {
                    start_after: "1 hour".into(),
                    fleet_percentage: 50,
                },
                PolicyWave {
                    start_after: "2030-01-01T00:00:00Z".into(),
                    fleet_percentage: 100,
                },
            ],
        };
        let schedule = policy.schedule(t0()).unwrap();
        assert_eq!(
            schedule[&1024],
            "2030-01-01T00:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
    }

    fn policy(waves: &[(&str, u32)]) -> WavePolicy {
        WavePolicy {
            waves: waves
                .iter()
                .map(|(start_after, fleet_percentage)| PolicyWave {
                    start_after: (*start_after).to_string(),
                    fleet_percentage: *fleet_percentage,
                })
                .collect(),
        }
    }

    #[test]
    fn out_of_range_percentage_names_the_wave() {
        for bad in [0, 101] {
            let err = policy(&[("1 hour", 10), ("2 hours", bad)])
                .schedule(t0())
                .unwrap_err();
            assert!(
                matches!(err, Error::FleetPercentage { wave: 2, provided } if provided == bad),
                "{err}"
            );
        }
    }

    #[test]
    fn repeated_percentage_is_rejected_instead_of_dropping_a_wave() {
        let err = policy(&[("1 hour", 10), ("2 hours", 10), ("3 hours", 100)])
            .schedule(t0())
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::PercentageNotIncreasing {
                    wave: 2,
                    percentage: 10,
                    previous_wave: 1,
                    previous_percentage: 10
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn decreasing_percentage_is_rejected() {
        let err = policy(&[("1 hour", 50), ("2 hours", 10), ("3 hours", 100)])
            .schedule(t0())
            .unwrap_err();
        assert!(
            matches!(err, Error::PercentageNotIncreasing { .. }),
            "{err}"
        );
    }

    #[test]
    fn the_last_percentage_may_be_anything_valid() {
        // It never becomes a key, so upstream ignores it; so do we.
        let schedule = policy(&[("1 hour", 10), ("2 hours", 5)])
            .schedule(t0())
            .unwrap();
        assert_eq!(schedule.keys().copied().collect::<Vec<_>>(), [0, 204]);
    }

    #[test]
    fn non_increasing_times_name_both_waves() {
        for second in ["1 hour", "30 minutes"] {
            let err = policy(&[("1 hour", 10), (second, 100)])
                .schedule(t0())
                .unwrap_err();
            let msg = err.to_string();
            assert!(
                matches!(
                    err,
                    Error::TimeNotIncreasing {
                        wave: 2,
                        seed: 204,
                        previous_wave: 1,
                        previous_seed: 0,
                        ..
                    }
                ),
                "{msg}"
            );
        }
    }

    #[test]
    fn bad_start_after_names_the_wave_and_value() {
        let err = policy(&[("1 hour", 10), ("soon", 100)])
            .schedule(t0())
            .unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("Wave 2: start_after 'soon'"), "{msg}");
        let err = policy(&[("1 hour", 10), ("1 hour", 100)])
            .schedule(t0())
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "Wave 2 (seed 204) starts at 2024-10-24T21:00:00Z, not after wave 1 (seed 0) at \
             2024-10-24T21:00:00Z; wave start times must strictly increase"
        );
    }

    #[test]
    fn empty_policy_is_rejected() {
        let err = policy(&[]).schedule(t0()).unwrap_err();
        assert!(matches!(err, Error::EmptyPolicy), "{err}");
    }

    // ---- update_wave --------------------------------------------------------------------

    #[test]
    fn no_waves_means_no_wave_and_ready() {
        let waves = BTreeMap::new();
        assert_eq!(update_wave(&waves, 0), None);
        assert_eq!(update_wave(&waves, 2047), None);
        assert!(update_ready(&waves, 0, t0()));
        assert!(update_ready(&waves, 2047, t0() - secs(86400)));
    }

    #[test]
    fn update_wave_classifies_seeds_against_default_keys() {
        let s = default_schedule();
        assert_eq!(
            update_wave(&s, 0),
            Some(Wave::Initial {
                end_seed: 0,
                end_time: s[&0]
            })
        );
        // A seed equal to a key belongs to the wave *ending* at that key.
        assert_eq!(
            update_wave(&s, 20),
            Some(Wave::General {
                start_seed: 0,
                start_time: s[&0],
                end_seed: 20,
                end_time: s[&20]
            })
        );
        assert_eq!(
            update_wave(&s, 21),
            Some(Wave::General {
                start_seed: 20,
                start_time: s[&20],
                end_seed: 102,
                end_time: s[&102]
            })
        );
        assert_eq!(
            update_wave(&s, 1843),
            Some(Wave::General {
                start_seed: 1228,
                start_time: s[&1228],
                end_seed: 1843,
                end_time: s[&1843]
            })
        );
        for seed in [1844, 2047, MAX_SEED, MAX_SEED + 1, u32::MAX] {
            assert_eq!(
                update_wave(&s, seed),
                Some(Wave::Last {
                    start_seed: 1843,
                    start_time: s[&1843]
                }),
                "seed {seed}"
            );
        }
    }

    #[test]
    fn seed_below_a_first_key_above_zero_is_initial() {
        let waves = BTreeMap::from([(100, t0()), (200, t0() + secs(60))]);
        assert_eq!(
            update_wave(&waves, 50),
            Some(Wave::Initial {
                end_seed: 100,
                end_time: t0()
            })
        );
    }

    // ---- update_ready -------------------------------------------------------------------

    #[test]
    fn seed_zero_is_ready_at_once_even_before_the_first_wave() {
        let s = default_schedule();
        assert!(update_ready(&s, 0, t0() - secs(86400 * 365)));
        assert!(update_ready(&s, 0, t0()));
    }

    #[test]
    fn initial_wave_with_a_later_first_key_is_ready_before_it_starts() {
        let waves = BTreeMap::from([(100, t0())]);
        assert!(update_ready(&waves, 50, t0() - secs(3600)));
    }

    #[test]
    fn before_a_wave_starts_hosts_are_not_ready() {
        let s = default_schedule();
        // seed 50 is in wave (20, 102]; it starts at +4h.
        assert!(!update_ready(&s, 50, s[&20] - secs(1)));
        assert!(!update_ready(&s, 50, t0()));
        // The last wave before it starts.
        assert!(!update_ready(&s, 2000, s[&1843] - secs(1)));
    }

    #[test]
    fn seed_equal_to_a_key_is_ready_exactly_at_that_wave_end() {
        let s = default_schedule();
        // seed 102 belongs to (20, 102]: its target (absolute seed) is past the end, so it
        // becomes ready exactly when the wave ends at s[102].
        assert!(!update_ready(&s, 102, s[&102] - TimeDelta::nanoseconds(1)));
        assert!(update_ready(&s, 102, s[&102]));
    }

    #[test]
    fn at_the_exact_wave_start_a_host_is_not_yet_ready() {
        // One wave (0, 2048] from t0 to t0 + 2048 ms: each seed gets 1 ms, and seed 1 is
        // ready 1 ms after the start, not at the start.
        let waves = BTreeMap::from([(0, t0()), (MAX_SEED, t0() + ms(2048))]);
        assert!(!update_ready(&waves, 1, t0()));
        assert!(update_ready(&waves, 1, t0() + ms(1)));
    }

    #[test]
    fn inside_a_wave_starting_at_seed_zero_hosts_are_spread_by_seed() {
        let waves = BTreeMap::from([(0, t0()), (MAX_SEED, t0() + ms(2048))]);
        for seed in [1, 100, 500, 1024, 2047] {
            let at = t0() + ms(i64::from(seed));
            assert!(!update_ready(&waves, seed, at - ms(1)), "seed {seed}");
            assert!(update_ready(&waves, seed, at), "seed {seed}");
        }
        // At the end edge everyone is ready.
        assert!(update_ready(&waves, MAX_SEED, t0() + ms(2048)));
        assert!(!update_ready(&waves, MAX_SEED, t0() + ms(2047)));
    }

    #[test]
    fn absolute_seed_quirk_delays_hosts_in_later_waves() {
        // Upstream's test layout: waves 0 → 0 ms, 50 → 200 ms, 100 → 1024 ms, 1024 → 4096 ms.
        let waves = BTreeMap::from([
            (0, t0()),
            (50, t0() + ms(200)),
            (100, t0() + ms(1024)),
            (1024, t0() + ms(4096)),
        ]);
        // seed 60 is in (50, 100]: time per seed = 824 ms / 50 = 16.48 ms. With the absolute
        // seed the target is 200 + 16.48 * 60 = 1188.8 ms, after the wave's end (1024 ms), so
        // the host is ready only at the end. With a relative seed it would be 364.8 ms.
        assert!(!update_ready(&waves, 60, t0() + ms(365)));
        assert!(!update_ready(&waves, 60, t0() + ms(1023)));
        assert!(update_ready(&waves, 60, t0() + ms(1024)));

        // seed 51 in the same wave: target 200 + 16.48 * 51 = 1040.48 ms > 1024: same.
        assert!(!update_ready(&waves, 51, t0() + ms(1023)));

        // In the first general wave (0, 50] the quirk is invisible (start_seed = 0):
        // 200 ms / 50 = 4 ms per seed; seed 10 is ready at 40 ms.
        assert!(!update_ready(&waves, 10, t0() + ms(39)));
        assert!(update_ready(&waves, 10, t0() + ms(40)));
    }

    #[test]
    fn absolute_seed_target_can_fall_inside_a_long_wave() {
        // (100, 2048] from 1 s to 1949 s: 1948 s / 1948 = 1 s per seed, so seed 101's target
        // is 1 s + 101 s = 102 s, inside the wave but 100 s later than a relative seed gives.
        let waves = BTreeMap::from([
            (0, t0()),
            (100, t0() + secs(1)),
            (MAX_SEED, t0() + secs(1949)),
        ]);
        assert!(!update_ready(&waves, 101, t0() + secs(101)));
        assert!(update_ready(&waves, 101, t0() + secs(102)));
        // The relative rule would have made it ready at 1 s + 1 s = 2 s.
        assert!(!update_ready(&waves, 101, t0() + secs(2)));
    }

    #[test]
    fn default_policy_worked_example_from_the_docs() {
        // docs/formats.md: seed 60 with the default policy from t0. Wave (20, 102] runs from
        // +4h to +1d: 72000 s / 82 = 878.048780487 s per seed; target = +4h + 60 * that
        // = +4h + 52682.926829220 s = t0 + 18:38:02.926829220.
        let s = default_schedule();
        let target = t0()
            + TimeDelta::hours(18)
            + TimeDelta::minutes(38)
            + TimeDelta::seconds(2)
            + TimeDelta::nanoseconds(926_829_220);
        assert!(!update_ready(&s, 60, target - TimeDelta::nanoseconds(1)));
        assert!(update_ready(&s, 60, target));

        // seed 300 in (102, 307], +1d to +2d: 86400 s / 205 per seed, target +1d + 300 * that
        // = +1d + 126439 s, past the wave's end: ready only at +2d.
        assert!(!update_ready(&s, 300, s[&307] - secs(1)));
        assert!(update_ready(&s, 300, s[&307]));

        // seed 10 in (0, 20], +1h to +4h: 540 s per seed, target 21:00 + 5400 s = 22:30.
        let target: DateTime<Utc> = "2024-10-24T22:30:00Z".parse().unwrap();
        assert!(!update_ready(&s, 10, target - secs(1)));
        assert!(update_ready(&s, 10, target));

        // seed 1500 in (1228, 1843]: target long after the end, so ready at the end.
        assert!(!update_ready(&s, 1500, s[&1843] - secs(1)));
        assert!(update_ready(&s, 1500, s[&1843]));

        // seed 500 in (307, 819], +2d to +4d: 172800 s / 512 = 337.5 s per seed, target
        // +2d + 168750 s = 2024-10-28T18:52:30Z, inside the (long) wave.
        let target: DateTime<Utc> = "2024-10-28T18:52:30Z".parse().unwrap();
        assert!(target < s[&819]);
        assert!(!update_ready(&s, 500, target - secs(1)));
        assert!(update_ready(&s, 500, target));
    }

    #[test]
    fn the_last_wave_opens_at_its_start_for_every_remaining_seed() {
        let s = default_schedule();
        for seed in [1844, 2000, 2047] {
            assert!(!update_ready(&s, seed, s[&1843] - secs(1)), "seed {seed}");
            assert!(update_ready(&s, seed, s[&1843]), "seed {seed}");
        }
    }

    #[test]
    fn after_all_waves_everyone_is_ready() {
        let s = default_schedule();
        let after = s[&1843] + secs(1);
        for seed in [0, 1, 20, 21, 102, 500, 1228, 1843, 2047] {
            assert!(update_ready(&s, seed, after), "seed {seed}");
        }
    }

    #[test]
    fn past_waves_are_ready_for_their_hosts() {
        let s = default_schedule();
        // At +2d, waves up to seed 307 have passed.
        let now = s[&307];
        assert!(update_ready(&s, 21, now));
        assert!(update_ready(&s, 307, now));
        // seed 308 is in (307, 819] which just started; its absolute target is far later.
        assert!(!update_ready(&s, 308, now));
    }

    #[test]
    fn unrepresentable_target_waits_for_the_wave_end() {
        // A one-seed wave (2046, 2047] spanning ~500k years: start + time per seed * 2047 is
        // far beyond the last representable time (upstream would panic). The host waits for
        // the wave's end.
        let start = DateTime::<Utc>::MIN_UTC + secs(86400);
        let end = DateTime::<Utc>::MAX_UTC - secs(86400);
        let waves = BTreeMap::from([(0, start), (2046, start + secs(1)), (2047, end)]);
        let per_seed = end - (start + secs(1));
        assert!(
            per_seed
                .checked_mul(2047)
                .and_then(|offset| start.checked_add_signed(offset))
                .is_none(),
            "test premise"
        );
        assert!(!update_ready(&waves, 2047, start + secs(2)));
        assert!(!update_ready(&waves, 2047, end - secs(1)));
        assert!(update_ready(&waves, 2047, end));
    }

    /// Upstream's `update_ready`, transcribed step by step from its code (only its panics on
    /// unrepresentable times are replaced by "wait for the wave's end"): the oracle the
    /// one-formula implementation is checked against.
    fn upstream_update_ready(
        waves: &BTreeMap<u32, DateTime<Utc>>,
        seed: u32,
        now: DateTime<Utc>,
    ) -> bool {
        let Some(wave) = update_wave(waves, seed) else {
            return true;
        };
        if wave.has_passed(now) {
            return true;
        }
        if !wave.has_started(now) {
            return false;
        }
        match wave {
            Wave::Initial { .. } | Wave::Last { .. } => true,
            Wave::General {
                start_seed,
                start_time,
                end_seed,
                end_time,
            } => {
                if end_seed == start_seed {
                    return true;
                }
                // A general wave ends at or below MAX_SEED, so its seeds fit an i32 (upstream's
                // `as i32`).
                let seeds = i32::try_from(end_seed - start_seed).unwrap();
                let time_per_seed = (end_time - start_time) / seeds;
                match time_per_seed
                    .checked_mul(i32::try_from(seed).unwrap())
                    .and_then(|offset| start_time.checked_add_signed(offset))
                {
                    Some(target) => now >= target,
                    None => now >= end_time,
                }
            }
        }
    }

    /// Wave maps upstream's manifest reading accepts: ordered, with equal times, with times
    /// that go backwards, and one that is both.
    fn accepted_wave_maps() -> Vec<BTreeMap<u32, DateTime<Utc>>> {
        let mut maps: Vec<BTreeMap<u32, DateTime<Utc>>> = BUILTIN_POLICIES
            .iter()
            .map(|builtin| builtin.policy().unwrap().schedule(t0()).unwrap())
            .collect();
        maps.extend([
            BTreeMap::new(),
            // Upstream's own updog test data: two waves at the same time.
            BTreeMap::from([(0, t0()), (2047, t0())]),
            BTreeMap::from([(0, t0()), (20, t0() + secs(3600)), (102, t0() + secs(3600))]),
            // Backwards: the wave (100, 120] ends five hours before it starts.
            BTreeMap::from([
                (0, t0()),
                (100, t0() + secs(10 * 3600)),
                (120, t0() + secs(5 * 3600)),
            ]),
            BTreeMap::from([
                (0, t0() + secs(86400)),
                (20, t0()),
                (102, t0()),
                (1843, t0() - secs(3600)),
            ]),
        ]);
        maps
    }

    #[test]
    fn update_ready_matches_upstreams_steps_for_every_seed_including_unordered_waves() {
        for waves in accepted_wave_maps() {
            let mut times: Vec<DateTime<Utc>> = waves
                .values()
                .flat_map(|t| [*t - secs(1), *t, *t + secs(1)])
                .collect();
            times.extend((-30..=30).map(|h| t0() + secs(h * 3600)));
            for seed in 0..=MAX_SEED + 1 {
                for now in &times {
                    assert_eq!(
                        update_ready(&waves, seed, *now),
                        upstream_update_ready(&waves, seed, *now),
                        "seed {seed} at {now} with {waves:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn ready_at_is_the_first_instant_update_ready_holds() {
        for waves in accepted_wave_maps() {
            for seed in 0..=MAX_SEED + 1 {
                match ready_at(&waves, seed) {
                    None => assert!(
                        update_ready(&waves, seed, DateTime::<Utc>::MIN_UTC),
                        "seed {seed} with {waves:?}"
                    ),
                    Some(at) => {
                        let before = at - TimeDelta::nanoseconds(1);
                        assert!(
                            !update_ready(&waves, seed, before) && update_ready(&waves, seed, at),
                            "seed {seed}: ready_at {at} with {waves:?}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn two_waves_at_the_same_time_open_together() {
        // Upstream's updog test data: {0, 2047} both at t0. Seeds 1..=2047 are in the general
        // wave (0, 2047] whose start and end coincide; 2048 is in the last wave.
        let waves = BTreeMap::from([(0, t0()), (2047, t0())]);
        for seed in [1, 1000, 2047, 2048] {
            assert_eq!(ready_at(&waves, seed), Some(t0()), "seed {seed}");
        }
        assert_eq!(ready_at(&waves, 0), None);
    }

    #[test]
    fn a_wave_that_ends_before_it_starts_opens_at_its_end() {
        // (100, 120] starts at +10h and ends at +5h: the time per seed is negative, and seed
        // 110's slot (+10h - 110 * 15 min) would be long before either. Upstream opens the wave
        // when it "has passed", at its end (+5h), and never at the slot.
        let waves = BTreeMap::from([
            (0, t0()),
            (100, t0() + secs(10 * 3600)),
            (120, t0() + secs(5 * 3600)),
        ]);
        assert_eq!(ready_at(&waves, 110), Some(t0() + secs(5 * 3600)));
        assert!(!update_ready(&waves, 110, t0() + secs(5 * 3600 - 1)));
        assert!(update_ready(&waves, 110, t0() + secs(5 * 3600)));
    }

    #[test]
    fn first_unordered_pair_finds_equal_and_decreasing_times() {
        let ordered = BTreeMap::from([(0, t0()), (20, t0() + secs(1))]);
        assert_eq!(first_unordered_pair(&ordered), None);
        let equal = BTreeMap::from([(0, t0()), (20, t0()), (30, t0() + secs(9))]);
        assert_eq!(first_unordered_pair(&equal), Some(((0, t0()), (20, t0()))));
        let decreasing = BTreeMap::from([(0, t0()), (20, t0() + secs(5)), (30, t0() + secs(1))]);
        assert_eq!(
            first_unordered_pair(&decreasing),
            Some(((20, t0() + secs(5)), (30, t0() + secs(1))))
        );
    }
}
