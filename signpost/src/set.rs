//! A partition set (BOOT, ROOT, HASH) and which of the two a command means.

use crate::partition::PartitionTarget;
use serde::Serialize;
use std::fmt;
use std::ops::Not;

/// The three partitions one image occupies.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PartitionSet {
    /// The kernel and GRUB configuration; its GPT entry carries the set's gptprio bits.
    pub boot: PartitionTarget,
    /// The root filesystem.
    pub root: PartitionTarget,
    /// The root filesystem's dm-verity hash tree.
    pub hash: PartitionTarget,
}

impl PartitionSet {
    /// Whether partition `number` is one of this set's.
    pub fn contains(&self, number: u32) -> bool {
        [&self.boot, &self.root, &self.hash]
            .iter()
            .any(|partition| partition.number == number)
    }
}

/// Upstream's format: `boot=/dev/loop0p3 root=/dev/loop0p4 hash=/dev/loop0p5`.
impl fmt::Display for PartitionSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "boot={} root={} hash={}",
            self.boot, self.root, self.hash
        )
    }
}

/// Set A (the first BOOT/ROOT/HASH entries in table order) or set B (the second ones).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum SetSelect {
    A,
    B,
}

impl SetSelect {
    /// The index of the set among the partitions of each type.
    pub fn index(self) -> usize {
        match self {
            SetSelect::A => 0,
            SetSelect::B => 1,
        }
    }
}

impl Not for SetSelect {
    type Output = Self;

    fn not(self) -> Self {
        match self {
            SetSelect::A => SetSelect::B,
            SetSelect::B => SetSelect::A,
        }
    }
}

impl fmt::Display for SetSelect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SetSelect::A => "A",
            SetSelect::B => "B",
        })
    }
}

/// The disk's sets: one (an image without in-place updates) or two, and which one is running.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionSets {
    a: PartitionSet,
    b: Option<PartitionSet>,
    active: SetSelect,
}

impl PartitionSets {
    /// A single-set disk: set A is the active one.
    pub fn single(a: PartitionSet) -> Self {
        Self {
            a,
            b: None,
            active: SetSelect::A,
        }
    }

    /// A dual-set disk running `active`.
    pub fn dual(a: PartitionSet, b: PartitionSet, active: SetSelect) -> Self {
        Self {
            a,
            b: Some(b),
            active,
        }
    }

    /// The set that is running (A on a single-set disk).
    pub fn active(&self) -> SetSelect {
        self.active
    }

    /// The set that is not running; none on a single-set disk.
    pub fn inactive(&self) -> Option<SetSelect> {
        self.b.as_ref().map(|_| !self.active)
    }

    /// Set `select`, if the disk has it.
    pub fn get(&self, select: SetSelect) -> Option<&PartitionSet> {
        match select {
            SetSelect::A => Some(&self.a),
            SetSelect::B => self.b.as_ref(),
        }
    }

    /// Every set the disk has, A first.
    pub fn iter(&self) -> impl Iterator<Item = (SetSelect, &PartitionSet)> {
        [SetSelect::A, SetSelect::B]
            .into_iter()
            .filter_map(|select| self.get(select).map(|set| (select, set)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_name_and_negate() {
        assert_eq!(!SetSelect::A, SetSelect::B);
        assert_eq!(!SetSelect::B, SetSelect::A);
        assert_eq!(format!("Set {}", SetSelect::B), "Set B");
        assert_eq!(serde_json::to_string(&SetSelect::A).unwrap(), "\"A\"");
    }
}
