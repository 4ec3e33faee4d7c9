//! The A/B state of the OS disk: load the table and find the sets, change bits in memory, write the table.
//!
//! Sets come from the partition type GUIDs: set A is the first BOOT, ROOT and HASH entries in table order, set B
//! the second ones. A disk with one BOOT entry has a single set (every command about the inactive set refuses);
//! a second BOOT entry requires a second ROOT and HASH. The PRIVATE entry is required (it carries bit 57).
//!
//! The active set is the one the node booted: the set holding the partitions that the kernel command line
//! (`<sysroot>/proc/cmdline`) names by PARTUUID (see [`crate::cmdline`]), else the set holding the partition under
//! the sysroot's filesystem (see [`crate::disk::Location`]).

use crate::boot_rule;
use crate::cmdline::{self, PartitionRef};
use crate::disk::{DiskKind, DiskLock, Location, OsDisk};
use crate::error::{self, Error};
use crate::gptprio::GptPrio;
use crate::guid::{
    BOTTLEROCKET_BOOT, BOTTLEROCKET_HASH, BOTTLEROCKET_PRIVATE, BOTTLEROCKET_ROOT, Guid,
};
use crate::partition::PartitionTarget;
use crate::set::{PartitionSet, PartitionSets, SetSelect};
use crate::table::{self, TableCopy};
use gptman::GPT;
use serde::Serialize;
use snafu::{OptionExt, ResultExt, ensure};
use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// The priority an upgraded (or rolled-back-to) set gets, and the one the other set keeps.
const PRIORITY_NEXT: u8 = 2;
const PRIORITY_FALLBACK: u8 = 1;

/// How the active set was determined.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "from")]
pub enum ActiveSource {
    /// The kernel command line names the set's partitions (the first reference is kept).
    Cmdline { path: PathBuf, reference: String },
    /// The sysroot's filesystem is on this partition of the OS disk.
    RootDevice { partition: u32 },
    /// The disk has one set, so it is the active one.
    SingleSet,
}

/// The loaded disk: its table, sets and active set.
#[derive(Clone, Debug)]
pub struct State {
    disk: OsDisk,
    table: GPT,
    sets: PartitionSets,
    /// The BOOT partition numbers of set A and (if present) B: their entries carry the bits.
    boot_numbers: Vec<u32>,
    private: PartitionTarget,
    active_source: ActiveSource,
}

/// The partition numbers the table's type GUIDs give.
struct Layout {
    /// `[boot, root, hash]` of set A, and of set B when there is a second BOOT entry.
    sets: Vec<[u32; 3]>,
    private: u32,
}

impl Layout {
    fn of(table: &GPT) -> Result<Self, Error> {
        let nth = |guid: Guid, n: usize| {
            table
                .iter()
                .filter(|(_, entry)| {
                    entry.is_used() && entry.partition_type_guid == guid.disk_bytes()
                })
                .nth(n)
                .map(|(number, _)| number)
        };
        let required = |guid: Guid, n: usize, part_type: &'static str| {
            nth(guid, n).context(error::PartitionMissingFromSetSnafu {
                part_type,
                set: if n == 0 { SetSelect::A } else { SetSelect::B },
            })
        };
        let mut sets = Vec::new();
        for n in 0..2 {
            if n == 1 && nth(BOTTLEROCKET_BOOT, 1).is_none() {
                break;
            }
            sets.push([
                required(BOTTLEROCKET_BOOT, n, "BOTTLEROCKET_BOOT")?,
                required(BOTTLEROCKET_ROOT, n, "BOTTLEROCKET_ROOT")?,
                required(BOTTLEROCKET_HASH, n, "BOTTLEROCKET_HASH")?,
            ]);
        }
        let private = nth(BOTTLEROCKET_PRIVATE, 0).context(error::PrivateMissingSnafu)?;
        Ok(Self { sets, private })
    }
}

impl State {
    /// Finds the OS disk and its sets, and the active set (see the module documentation).
    pub fn load(location: &Location) -> Result<Self, Error> {
        let disk = location.os_disk()?;
        let table = disk.read_table()?;
        Self::from_table(location, disk, table)
    }

    /// The state of `disk`, whose table is `table`, for the node at `location`.
    pub fn from_table(location: &Location, disk: OsDisk, table: GPT) -> Result<Self, Error> {
        let layout = Layout::of(&table)?;
        let mut targets = disk.partitions(&table)?;
        let mut take = |number: u32| {
            targets
                .remove(&number)
                .context(error::PartitionNotFoundSnafu {
                    number,
                    disk: disk.path(),
                })
        };
        let mut sets = Vec::new();
        for [boot, root, hash] in &layout.sets {
            sets.push(PartitionSet {
                boot: take(*boot)?,
                root: take(*root)?,
                hash: take(*hash)?,
            });
        }
        let private = take(layout.private)?;
        let boot_numbers = layout.sets.iter().map(|[boot, _, _]| *boot).collect();

        let (sets, active_source) = match <[PartitionSet; 2]>::try_from(sets) {
            Ok(sets) => {
                let (active, source) = find_active(location, &disk, &table, &sets)?;
                let [a, b] = sets;
                (PartitionSets::dual(a, b, active), source)
            }
            Err(mut single) => (
                PartitionSets::single(single.remove(0)),
                ActiveSource::SingleSet,
            ),
        };
        Ok(Self {
            disk,
            table,
            sets,
            boot_numbers,
            private,
            active_source,
        })
    }

    pub fn os_disk(&self) -> &OsDisk {
        &self.disk
    }

    pub fn table(&self) -> &GPT {
        &self.table
    }

    pub fn sets(&self) -> &PartitionSets {
        &self.sets
    }

    pub fn active_source(&self) -> &ActiveSource {
        &self.active_source
    }

    /// The PRIVATE partition.
    pub fn private(&self) -> &PartitionTarget {
        &self.private
    }

    pub fn active(&self) -> SetSelect {
        self.sets.active()
    }

    pub fn inactive(&self) -> Option<SetSelect> {
        self.sets.inactive()
    }

    /// The running set: never to be written.
    pub fn active_set(&self) -> &PartitionSet {
        self.set(self.active())
    }

    /// The set an update is written to; none on a single-set disk.
    pub fn inactive_set(&self) -> Option<&PartitionSet> {
        self.inactive().map(|select| self.set(select))
    }

    /// The bits of set `select`'s BOOT entry; none when the disk has no such set.
    pub fn gptprio(&self, select: SetSelect) -> Option<GptPrio> {
        let number = *self.boot_numbers.get(select.index())?;
        Some(GptPrio::from(self.table[number].attribute_bits))
    }

    /// The set the bootloader will boot next ([`boot_rule::choose`]); none when no set is bootable.
    #[must_use]
    pub fn next(&self) -> Option<SetSelect> {
        let pick = boot_rule::choose(&self.table)?;
        self.sets
            .iter()
            .find(|(_, set)| set.boot.number == pick.number)
            .map(|(select, _)| select)
    }

    /// Bit 57 of the PRIVATE entry.
    #[must_use]
    pub fn has_boot_succeeded(&self) -> bool {
        GptPrio::from(self.table[self.private.number].attribute_bits).boot_ever_succeeded()
    }

    /// Marks the active set successfully booted and sets PRIVATE's "boot has ever succeeded"; in memory only.
    pub fn mark_successful_boot(&mut self) {
        let active = self.active();
        self.update(active, |flags| flags.set_successful(true));
        let private = &mut self.table[self.private.number];
        let mut flags = GptPrio::from(private.attribute_bits);
        flags.set_boot_ever_succeeded(true);
        private.attribute_bits = flags.bits();
    }

    /// Clears the inactive set's priority, tries and successful bits before images are written to it; in memory.
    ///
    /// Refused while the running set has not been marked successful (an upgrade's trial boot): then the inactive
    /// set is the fallback the bootloader returns to, and clearing it would leave nothing to fall back to.
    pub fn clear_inactive(&mut self) -> Result<(), Error> {
        let inactive = self.require_inactive()?;
        self.require_confirmed_boot("cleared for an update")?;
        self.update(inactive, |flags| {
            flags.set_priority(0);
            flags.set_tries_left(0);
            flags.set_successful(false);
        });
        Ok(())
    }

    /// Gives the inactive set one try (a complete, verified image), leaving its priority; in memory.
    pub fn mark_inactive_valid(&mut self) -> Result<(), Error> {
        let inactive = self.require_inactive()?;
        self.update(inactive, |flags| flags.set_tries_left(1));
        Ok(())
    }

    /// Makes the inactive set the next boot: priority 2, not successful; the active set keeps its bits at priority
    /// 1. Refuses a set already marked (priority or successful) or not marked valid (no tries). In memory.
    pub fn upgrade_to_inactive(&mut self) -> Result<(), Error> {
        let inactive = self.require_inactive()?;
        let flags = self.flags(inactive);
        ensure!(
            flags.priority() == 0 && !flags.successful(),
            error::InactiveAlreadyMarkedSnafu {
                partition: self.set(inactive).boot.to_string(),
                flags,
            }
        );
        ensure!(
            flags.tries_left() > 0,
            error::InactiveNotValidSnafu {
                partition: self.set(inactive).boot.to_string(),
                flags,
            }
        );
        self.update(inactive, |flags| {
            flags.set_priority(PRIORITY_NEXT);
            flags.set_successful(false);
        });
        self.update(self.active(), |flags| flags.set_priority(PRIORITY_FALLBACK));
        Ok(())
    }

    /// Undoes `upgrade-to-inactive`: the inactive set's priority 0, the active set's 2. The tries are kept (a
    /// valid image stays valid, so the upgrade can be re-applied: upstream #949). In memory.
    ///
    /// On an unconfirmed boot (the running set is the upgrade on trial, not yet marked successful) the upgrade to
    /// cancel is the running set itself: the previous set, if it can boot, gets priority 2 and the running set 1,
    /// so the next boot returns to the previous set. (Upstream's cancel there leaves no set bootable.)
    pub fn cancel_upgrade(&mut self) -> Result<(), Error> {
        let inactive = self.require_inactive()?;
        let active = self.active();
        if !self.flags(active).successful() && self.flags(inactive).will_boot() {
            self.update(inactive, |flags| flags.set_priority(PRIORITY_NEXT));
            self.update(active, |flags| flags.set_priority(PRIORITY_FALLBACK));
            return Ok(());
        }
        self.update(inactive, |flags| flags.set_priority(0));
        self.update(self.active(), |flags| flags.set_priority(PRIORITY_NEXT));
        Ok(())
    }

    /// Makes the inactive set the next boot (priority 2; the active set 1), if it would boot: priority and tries,
    /// or successful. In memory.
    pub fn rollback_to_inactive(&mut self) -> Result<(), Error> {
        let inactive = self.require_inactive()?;
        let flags = self.flags(inactive);
        ensure!(
            flags.will_boot(),
            error::InactiveInvalidRollbackSnafu {
                partition: self.set(inactive).boot.to_string(),
                flags,
            }
        );
        self.update(inactive, |flags| flags.set_priority(PRIORITY_NEXT));
        self.update(self.active(), |flags| flags.set_priority(PRIORITY_FALLBACK));
        Ok(())
    }

    /// Writes the table to the OS disk: both copies, each flushed, read back and checked; refused when no set would
    /// boot afterwards (see [`crate::table::write_table`]). `lock` must be this disk's lock, taken before the state
    /// was loaded.
    pub fn write(&mut self, lock: &DiskLock) -> Result<(), Error> {
        ensure!(
            lock.covers(&self.disk),
            error::WrongLockSnafu {
                lock: lock.path(),
                disk: self.disk.path(),
            }
        );
        self.disk.write_table(&mut self.table)
    }

    /// Whether the running set has been marked successful (false during an upgrade's trial boot).
    #[must_use]
    pub fn is_boot_confirmed(&self) -> bool {
        self.flags(self.active()).successful()
    }

    /// Refuses `action` on the inactive set while the running set is on trial.
    pub fn require_confirmed_boot(&self, action: &'static str) -> Result<(), Error> {
        let active = self.active();
        ensure!(
            self.is_boot_confirmed(),
            error::ActiveNotConfirmedSnafu {
                set: active,
                partition: self.set(active).boot.to_string(),
                flags: self.flags(active),
                action,
            }
        );
        Ok(())
    }

    /// Everything `status` reports, for `--json`.
    pub fn status(&self) -> Status {
        let sets = self
            .sets
            .iter()
            .map(|(select, set)| {
                let flags = self.flags(select);
                let status = SetStatus {
                    boot: set.boot.clone(),
                    root: set.root.clone(),
                    hash: set.hash.clone(),
                    priority: flags.priority(),
                    tries_left: flags.tries_left(),
                    successful: flags.successful(),
                    will_boot: flags.will_boot(),
                    attribute_bits: format!("{:#018x}", flags.bits()),
                };
                (select, status)
            })
            .collect();
        Status {
            os_disk: self.disk.path().to_path_buf(),
            disk: self.disk.kind(),
            table_copy: table::loaded_from(&self.table),
            sets,
            active: self.active(),
            active_from: self.active_source.clone(),
            next: self.next(),
            boot_ever_succeeded: self.has_boot_succeeded(),
            private: self.private.clone(),
        }
    }

    fn set(&self, select: SetSelect) -> &PartitionSet {
        // Only called with the active set or an existing inactive one.
        self.sets
            .get(select)
            .unwrap_or_else(|| unreachable!("set {select} exists"))
    }

    fn flags(&self, select: SetSelect) -> GptPrio {
        self.gptprio(select)
            .unwrap_or_else(|| unreachable!("set {select} exists"))
    }

    fn update(&mut self, select: SetSelect, change: impl FnOnce(&mut GptPrio)) {
        let mut flags = self.flags(select);
        change(&mut flags);
        let number = self.boot_numbers[select.index()];
        self.table[number].attribute_bits = flags.bits();
    }

    fn require_inactive(&self) -> Result<SetSelect, Error> {
        self.inactive().context(error::InactiveNotAvailableSnafu {
            disk: self.disk.path(),
            partition: self.active_set().boot.to_string(),
            flags: self.flags(self.active()),
        })
    }
}

/// Upstream's `status` output (each set's own partitions on its line; upstream prints the active set's partitions
/// on the `Set A:` line and the inactive set's on `Set B:`).
impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "OS disk: {}", self.disk.path().display())?;
        for (select, set) in self.sets.iter() {
            writeln!(f, "Set {select}:   {set} {}", self.flags(select))?;
        }
        writeln!(f, "Active:  Set {}", self.active())?;
        match self.next() {
            Some(next) => write!(f, "Next:    Set {next}"),
            None => write!(f, "Next:    None"),
        }
    }
}

/// `signpost status --json` (documented in docs/signpost.md).
#[derive(Clone, Debug, Serialize)]
pub struct Status {
    pub os_disk: PathBuf,
    pub disk: DiskKind,
    /// Which copy of the GPT was read: `backup` means the primary is damaged (any write repairs it).
    pub table_copy: TableCopy,
    pub sets: BTreeMap<SetSelect, SetStatus>,
    pub active: SetSelect,
    pub active_from: ActiveSource,
    pub next: Option<SetSelect>,
    pub boot_ever_succeeded: bool,
    pub private: PartitionTarget,
}

/// One set in [`Status`].
#[derive(Clone, Debug, Serialize)]
pub struct SetStatus {
    pub boot: PartitionTarget,
    pub root: PartitionTarget,
    pub hash: PartitionTarget,
    pub priority: u8,
    pub tries_left: u8,
    pub successful: bool,
    pub will_boot: bool,
    /// The BOOT entry's 64 attribute bits, `0x…` (16 hex digits).
    pub attribute_bits: String,
}

/// The active set of a dual-set disk: from the command line, else from the root device.
fn find_active(
    location: &Location,
    disk: &OsDisk,
    table: &GPT,
    sets: &[PartitionSet; 2],
) -> Result<(SetSelect, ActiveSource), Error> {
    let cmdline_path = location.cmdline_path();
    let refs = read_cmdline_refs(&cmdline_path)?;
    if let Some((first, others)) = refs.split_first() {
        let set_named_by = |reference: &PartitionRef| -> Result<SetSelect, Error> {
            let number =
                resolve(reference, table).context(error::CmdlinePartuuidNotOnDiskSnafu {
                    reference: reference.to_string(),
                    cmdline: &cmdline_path,
                    disk: disk.path(),
                })?;
            set_holding(sets, number).context(error::ActiveNotInSetSnafu {
                partition: number,
                disk: disk.path(),
                how: format!("named by {reference} in {}", cmdline_path.display()),
            })
        };
        let active = set_named_by(first)?;
        for reference in others {
            ensure!(
                set_named_by(reference)? == active,
                error::CmdlineNamesBothSetsSnafu {
                    cmdline: &cmdline_path
                }
            );
        }
        let source = ActiveSource::Cmdline {
            reference: first.to_string(),
            path: cmdline_path,
        };
        return Ok((active, source));
    }
    let number =
        location
            .root_partition_on(disk)
            .map_err(Box::new)
            .context(error::NoActiveSetSnafu {
                cmdline: &cmdline_path,
                sysroot: location.sysroot(),
            })?;
    let select = set_holding(sets, number).context(error::ActiveNotInSetSnafu {
        partition: number,
        disk: disk.path(),
        how: format!("under {}", location.sysroot().display()),
    })?;
    Ok((select, ActiveSource::RootDevice { partition: number }))
}

/// The PARTUUID references on the command line; none when the file does not exist (a node that has not booted,
/// or a sysroot without `proc/`).
fn read_cmdline_refs(path: &Path) -> Result<Vec<PartitionRef>, Error> {
    match nodeio::read_small_text_file(path, nodeio::SMALL_FILE_LIMIT) {
        Ok(text) => Ok(cmdline::partition_refs(&text)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(source) => Err(source).context(error::ReadCmdlineSnafu { path }),
    }
}

/// The partition number a reference names: the partition with that PARTUUID, plus the offset.
fn resolve(reference: &PartitionRef, table: &GPT) -> Option<u32> {
    let (number, _) = table.iter().find(|(_, entry)| {
        entry.is_used() && entry.unique_partition_guid == reference.partuuid.disk_bytes()
    })?;
    number.checked_add(reference.offset)
}

fn set_holding(sets: &[PartitionSet; 2], number: u32) -> Option<SetSelect> {
    [SetSelect::A, SetSelect::B]
        .into_iter()
        .find(|select| sets[select.index()].contains(number))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guid::BOTTLEROCKET_RESERVED;
    use gptman::GPTPartitionEntry;
    use std::fs;

    /// An image file whose partitions 1.. have `types`, and a sysroot whose command line is `cmdline`.
    struct Fixture {
        dir: tempfile::TempDir,
    }

    impl Fixture {
        fn new(types: &[Guid], cmdline: Option<&str>) -> Self {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("disk.img");
            let mut file = fs::File::options()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&path)
                .unwrap();
            file.set_len(8192 * 512).unwrap();
            let mut table = GPT::new_from(&mut file, 512, [3; 16]).unwrap();
            for (i, guid) in types.iter().enumerate() {
                let number = u32::try_from(i + 1).unwrap();
                let start = 2048 + u64::from(number - 1) * 256;
                table[number] = GPTPartitionEntry {
                    partition_type_guid: guid.disk_bytes(),
                    unique_partition_guid: [u8::try_from(number).unwrap(); 16],
                    starting_lba: start,
                    ending_lba: start + 255,
                    attribute_bits: 0,
                    partition_name: "x".into(),
                };
            }
            table.write_into(&mut file).unwrap();
            if let Some(cmdline) = cmdline {
                fs::create_dir_all(dir.path().join("sysroot/proc")).unwrap();
                fs::write(dir.path().join("sysroot/proc/cmdline"), cmdline).unwrap();
            }
            Self { dir }
        }

        fn load(&self) -> Result<State, Error> {
            let location = Location::new(self.dir.path().join("sysroot"))
                .disk(self.dir.path().join("disk.img"));
            State::load(&location)
        }
    }

    const DUAL: [Guid; 7] = [
        BOTTLEROCKET_BOOT,
        BOTTLEROCKET_ROOT,
        BOTTLEROCKET_HASH,
        BOTTLEROCKET_BOOT,
        BOTTLEROCKET_ROOT,
        BOTTLEROCKET_HASH,
        BOTTLEROCKET_PRIVATE,
    ];

    fn partuuid(number: u8) -> Guid {
        Guid::from_disk_bytes([number; 16])
    }

    #[test]
    fn sets_are_the_first_and_second_partitions_of_each_type_in_table_order() {
        // Interleaved: ROOT-A, BOOT-A, RESERVED, HASH-A, ROOT-B, PRIVATE, BOOT-B, HASH-B.
        let types = [
            BOTTLEROCKET_ROOT,
            BOTTLEROCKET_BOOT,
            BOTTLEROCKET_RESERVED,
            BOTTLEROCKET_HASH,
            BOTTLEROCKET_ROOT,
            BOTTLEROCKET_PRIVATE,
            BOTTLEROCKET_BOOT,
            BOTTLEROCKET_HASH,
        ];
        let cmdline = format!("root=PARTUUID={}", partuuid(5));
        let state = Fixture::new(&types, Some(&cmdline)).load().unwrap();
        let numbers = |select| {
            let set = state.sets().get(select).unwrap();
            (set.boot.number, set.root.number, set.hash.number)
        };
        assert_eq!(numbers(SetSelect::A), (2, 1, 4));
        assert_eq!(numbers(SetSelect::B), (7, 5, 8));
        assert_eq!(state.private().number, 6);
        assert_eq!(state.active(), SetSelect::B);
    }

    #[test]
    fn partnroff_counts_from_the_named_partition() {
        let cmdline = format!(
            "dm-mod.create=\"root,,,ro,0 8 verity 1 PARTUUID={}/PARTNROFF=1\"",
            partuuid(4)
        );
        let state = Fixture::new(&DUAL, Some(&cmdline)).load().unwrap();
        assert_eq!(state.active(), SetSelect::B);
        assert_eq!(
            state.active_source(),
            &ActiveSource::Cmdline {
                path: state_cmdline(&state),
                reference: format!("PARTUUID={}/PARTNROFF=1", partuuid(4)),
            }
        );
    }

    fn state_cmdline(state: &State) -> PathBuf {
        state
            .os_disk()
            .path()
            .parent()
            .unwrap()
            .join("sysroot/proc/cmdline")
    }

    #[test]
    fn a_command_line_naming_both_sets_is_refused() {
        let cmdline = format!("a=PARTUUID={} b=PARTUUID={}", partuuid(1), partuuid(5));
        let err = Fixture::new(&DUAL, Some(&cmdline)).load().unwrap_err();
        assert!(matches!(err, Error::CmdlineNamesBothSets { .. }), "{err}");
    }

    #[test]
    fn a_command_line_naming_a_partition_outside_the_sets_is_refused() {
        let cmdline = format!("root=PARTUUID={}", partuuid(7));
        let err = Fixture::new(&DUAL, Some(&cmdline)).load().unwrap_err();
        assert!(
            matches!(err, Error::ActiveNotInSet { partition: 7, .. }),
            "{err}"
        );
        let cmdline = format!("root=PARTUUID={}/PARTNROFF=9", partuuid(1));
        let err = Fixture::new(&DUAL, Some(&cmdline)).load().unwrap_err();
        assert!(
            matches!(err, Error::ActiveNotInSet { partition: 10, .. }),
            "{err}"
        );
    }

    #[test]
    fn a_second_boot_partition_needs_a_second_root_and_hash() {
        let types = [
            BOTTLEROCKET_BOOT,
            BOTTLEROCKET_ROOT,
            BOTTLEROCKET_HASH,
            BOTTLEROCKET_BOOT,
            BOTTLEROCKET_PRIVATE,
        ];
        let err = Fixture::new(&types, None).load().unwrap_err();
        assert_eq!(
            err.to_string(),
            "Failed to find BOTTLEROCKET_ROOT partition for set B"
        );
    }

    #[test]
    fn private_is_required() {
        let err = Fixture::new(&DUAL[..6], None).load().unwrap_err();
        assert_eq!(
            err.to_string(),
            "Failed to find BOTTLEROCKET_PRIVATE partition"
        );
    }

    #[test]
    fn a_single_set_needs_no_command_line() {
        let types = [
            BOTTLEROCKET_BOOT,
            BOTTLEROCKET_ROOT,
            BOTTLEROCKET_HASH,
            BOTTLEROCKET_PRIVATE,
        ];
        let mut state = Fixture::new(&types, None).load().unwrap();
        assert_eq!((state.active(), state.inactive()), (SetSelect::A, None));
        assert_eq!(state.active_source(), &ActiveSource::SingleSet);
        assert!(state.inactive_set().is_none());
        assert!(matches!(
            state.clear_inactive(),
            Err(Error::InactiveNotAvailable { .. })
        ));
        assert_eq!(state.next(), None, "BOOT-A has no bits in this fixture");
    }

    #[test]
    fn changes_stay_in_memory_until_written() {
        let fixture = Fixture::new(&DUAL, Some(&format!("root=PARTUUID={}", partuuid(2))));
        let mut state = fixture.load().unwrap();
        state.mark_inactive_valid().unwrap();
        state.upgrade_to_inactive().unwrap();
        assert_eq!(state.gptprio(SetSelect::B).unwrap().tries_left(), 1);
        let lock = state.os_disk().lock().unwrap();
        assert_eq!(
            fixture
                .load()
                .unwrap()
                .gptprio(SetSelect::B)
                .unwrap()
                .tries_left(),
            0
        );
        state.write(&lock).unwrap();
        assert_eq!(
            fixture
                .load()
                .unwrap()
                .gptprio(SetSelect::B)
                .unwrap()
                .tries_left(),
            1
        );
    }

    #[test]
    fn mark_successful_boot_touches_only_the_successful_and_private_bits() {
        let fixture = Fixture::new(&DUAL, Some(&format!("root=PARTUUID={}", partuuid(2))));
        let mut state = fixture.load().unwrap();
        state.mark_successful_boot();
        let a = state.gptprio(SetSelect::A).unwrap();
        assert_eq!(a.bits(), 1 << 56);
        assert_eq!(state.table()[7].attribute_bits, 1 << 57);
        assert!(state.has_boot_succeeded());
        assert_eq!(state.gptprio(SetSelect::B).unwrap().bits(), 0);
    }
}
