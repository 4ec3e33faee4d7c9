//! The bootloader's rule: GRUB's `gptprio.next` (Bottlerocket's GRUB patch), the one place it is written down.
//!
//! Scan the BOOT-type entries in table order; pick the entry with the highest priority among those with tries left
//! or the successful bit (strictly higher: the first of equal priorities wins, so A wins ties); a priority of 0
//! is never picked. If the pick has tries left, decrement them and rewrite the table. No pick means the boot fails.
//!
//! signpost's `status` reports this rule's choice as `Next:`; the simulated node's boot applies it to the disk.

use crate::gptprio::GptPrio;
use crate::guid::{BOTTLEROCKET_BOOT, Guid};
use gptman::GPT;

/// The BOOT partition the rule picked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BootPick {
    /// The partition number.
    pub number: u32,
    /// Its PARTUUID (GRUB's `$boot_uuid`).
    pub partuuid: Guid,
    /// Its bits before the boot.
    pub before: GptPrio,
    /// Its bits after the boot: tries decremented when there were any.
    pub after: GptPrio,
}

impl BootPick {
    /// Whether the boot changed the table (it spent a try).
    pub fn spent_a_try(&self) -> bool {
        self.before != self.after
    }
}

/// The BOOT partition the bootloader would boot, without changing anything.
#[must_use]
pub fn choose(table: &GPT) -> Option<BootPick> {
    let mut best: Option<(u32, Guid, GptPrio)> = None;
    for (number, entry) in table.iter() {
        if entry.partition_type_guid != BOTTLEROCKET_BOOT.disk_bytes() {
            continue;
        }
        let flags = GptPrio::from(entry.attribute_bits);
        let best_priority = best.map_or(0, |(_, _, flags)| flags.priority());
        if (flags.tries_left() > 0 || flags.successful()) && flags.priority() > best_priority {
            best = Some((
                number,
                Guid::from_disk_bytes(entry.unique_partition_guid),
                flags,
            ));
        }
    }
    best.map(|(number, partuuid, before)| {
        let mut after = before;
        if before.tries_left() > 0 {
            after.set_tries_left(before.tries_left() - 1);
        }
        BootPick {
            number,
            partuuid,
            before,
            after,
        }
    })
}

/// Whether the bootloader would boot set A or B: its pick is one of the first two BOOT entries in table order (the
/// sets, as [`crate::state`] finds them). A third BOOT-type entry may win the rule, but it is no set this project
/// writes or can fall back to.
pub fn boots_a_set(table: &GPT) -> bool {
    let Some(pick) = choose(table) else {
        return false;
    };
    table
        .iter()
        .filter(|(_, entry)| entry.partition_type_guid == BOTTLEROCKET_BOOT.disk_bytes())
        .take(2)
        .any(|(number, _)| number == pick.number)
}

/// The BOOT entries and their bits, in table order, for messages: `partition 2 (BOOT-A): priority=1 ...; ...`.
#[must_use]
pub fn describe(table: &GPT) -> String {
    let entries: Vec<String> = table
        .iter()
        .filter(|(_, entry)| entry.partition_type_guid == BOTTLEROCKET_BOOT.disk_bytes())
        .map(|(number, entry)| {
            format!(
                "partition {number} ({}): {}",
                entry.partition_name.as_str(),
                GptPrio::from(entry.attribute_bits)
            )
        })
        .collect();
    if entries.is_empty() {
        "no BOOT partitions".into()
    } else {
        entries.join("; ")
    }
}

/// Applies the rule to `table` in memory: picks, and spends a try of the pick. The caller writes the table when
/// [`BootPick::spent_a_try`].
pub fn apply(table: &mut GPT) -> Option<BootPick> {
    let pick = choose(table)?;
    table[pick.number].attribute_bits = pick.after.bits();
    Some(pick)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guid::BOTTLEROCKET_ROOT;
    use gptman::GPTPartitionEntry;
    use std::io::Cursor;

    fn flags(priority: u8, tries: u8, successful: bool) -> u64 {
        let mut flags = GptPrio::default();
        flags.set_priority(priority);
        flags.set_tries_left(tries);
        flags.set_successful(successful);
        flags.bits()
    }

    /// BOOT entries 2 and 5 (A and B) with the given bits, a ROOT entry carrying bits the rule must ignore.
    fn table(a: u64, b: u64) -> GPT {
        let mut disk = Cursor::new(vec![0u8; 4 << 20]);
        let mut table = GPT::new_from(&mut disk, 512, [1; 16]).unwrap();
        for (number, type_guid, bits) in [
            (2, BOTTLEROCKET_BOOT, a),
            (3, BOTTLEROCKET_ROOT, flags(15, 15, true)),
            (5, BOTTLEROCKET_BOOT, b),
        ] {
            let start = 2048 + u64::from(number) * 16;
            table[number] = GPTPartitionEntry {
                partition_type_guid: type_guid.disk_bytes(),
                unique_partition_guid: [u8::try_from(number).unwrap(); 16],
                starting_lba: start,
                ending_lba: start + 15,
                attribute_bits: bits,
                partition_name: "x".into(),
            };
        }
        table
    }

    fn pick(a: u64, b: u64) -> Option<u32> {
        choose(&table(a, b)).map(|pick| pick.number)
    }

    #[test]
    fn a_fresh_disk_boots_a() {
        assert_eq!(pick(flags(1, 0, true), 0), Some(2));
    }

    #[test]
    fn an_upgraded_set_wins_on_priority_while_it_has_tries() {
        assert_eq!(pick(flags(1, 0, true), flags(2, 1, false)), Some(5));
        assert_eq!(pick(flags(1, 0, true), flags(2, 0, false)), Some(2));
    }

    #[test]
    fn a_wins_ties() {
        assert_eq!(pick(flags(2, 1, false), flags(2, 1, false)), Some(2));
        assert_eq!(pick(flags(1, 0, true), flags(1, 0, true)), Some(2));
    }

    #[test]
    fn priority_zero_never_boots_even_when_successful() {
        assert_eq!(pick(flags(0, 0, true), flags(1, 0, true)), Some(5));
        assert_eq!(pick(flags(0, 3, true), 0), None);
    }

    #[test]
    fn nothing_bootable_is_no_pick() {
        assert_eq!(pick(0, 0), None);
        assert_eq!(pick(flags(2, 0, false), flags(1, 0, false)), None);
    }

    #[test]
    fn applying_spends_one_try_of_the_pick_only() {
        let mut table = table(flags(1, 0, true), flags(2, 1, false));
        let pick = apply(&mut table).unwrap();
        assert_eq!(pick.number, 5);
        assert!(pick.spent_a_try());
        assert_eq!(pick.partuuid, Guid::from_disk_bytes([5; 16]));
        assert_eq!(table[5].attribute_bits, flags(2, 0, false));
        assert_eq!(table[2].attribute_bits, flags(1, 0, true));
        // The next boot: B has no tries and no success, so A boots, and a successful pick with no tries is left as
        // it was.
        let pick = apply(&mut table).unwrap();
        assert_eq!(pick.number, 2);
        assert!(!pick.spent_a_try());
        assert_eq!(table[2].attribute_bits, flags(1, 0, true));
    }

    #[test]
    fn a_successful_pick_with_tries_still_spends_one() {
        let mut table = table(flags(1, 2, true), 0);
        let pick = apply(&mut table).unwrap();
        assert_eq!((pick.number, pick.after.tries_left()), (2, 1));
    }
}
