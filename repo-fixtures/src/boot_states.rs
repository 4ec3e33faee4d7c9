//! The A/B states a node's disk can be in, for tests that run every command in every state (invariant I7): each
//! set's gptprio bits plus which set is running.
//!
//! [`set_state`] writes a state behind signpost's back (as another tool, or a power cut between two upstream
//! commands, could leave it): straight through gptman, with no bootability guard, and a kernel command line naming
//! the running set. [`grid`] is every combination of representative values; [`reachable`] is every state the
//! node's own commands and boots lead to from a freshly installed disk.

use crate::disk::{Bank, FixtureDisk, Role};
use crate::node::Node;
use gptman::GPT;
use signpost::{GptPrio, Guid, OsDisk, SetSelect, State, boot_rule, cmdline};
use std::collections::{BTreeSet, VecDeque};
use std::fmt;
use std::fs;

/// The priorities and tries a test tries: none, one, two (the upgrade's priority) and the field's maximum.
pub const PRIORITIES: [u8; 4] = [0, 1, 2, 15];
pub const TRIES: [u8; 3] = [0, 1, 15];

/// The signpost commands that write the table.
pub const MUTATING_COMMANDS: [&str; 7] = [
    "mark-successful-boot",
    "clear-inactive",
    "mark-inactive-valid",
    "upgrade-to-inactive",
    "cancel-upgrade",
    "rollback-to-inactive",
    "rewrite-table",
];

/// Each set's bits and the running set.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BootState {
    pub a: u64,
    pub b: u64,
    pub active: SetSelect,
}

impl BootState {
    pub fn new(a: GptPrio, b: GptPrio, active: SetSelect) -> Self {
        Self {
            a: a.bits(),
            b: b.bits(),
            active,
        }
    }

    pub fn flags(&self, set: SetSelect) -> GptPrio {
        GptPrio::from(match set {
            SetSelect::A => self.a,
            SetSelect::B => self.b,
        })
    }

    /// The set that is not running.
    pub fn inactive(&self) -> SetSelect {
        match self.active {
            SetSelect::A => SetSelect::B,
            SetSelect::B => SetSelect::A,
        }
    }

    /// Whether the bootloader rule would boot a set: some set with a priority and tries or success.
    pub fn bootable(&self) -> bool {
        [self.flags(SetSelect::A), self.flags(SetSelect::B)]
            .iter()
            .any(|flags| flags.priority() > 0 && flags.will_boot())
    }
}

impl fmt::Debug for BootState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[A: {}; B: {}; running {}]",
            self.flags(SetSelect::A),
            self.flags(SetSelect::B),
            self.active
        )
    }
}

/// Every set's bits from the representative values.
pub fn all_flags() -> Vec<GptPrio> {
    let mut all = Vec::new();
    for priority in PRIORITIES {
        for tries in TRIES {
            for successful in [false, true] {
                let mut flags = GptPrio::default();
                flags.set_priority(priority);
                flags.set_tries_left(tries);
                flags.set_successful(successful);
                all.push(flags);
            }
        }
    }
    all
}

/// Every combination of [`all_flags`] on both sets, with either set running.
pub fn grid() -> Vec<BootState> {
    let flags = all_flags();
    let mut states = Vec::new();
    for &a in &flags {
        for &b in &flags {
            for active in [SetSelect::A, SetSelect::B] {
                states.push(BootState::new(a, b, active));
            }
        }
    }
    states
}

fn boot_number(disk: &FixtureDisk, set: SetSelect) -> u32 {
    disk.number(Role::Boot(match set {
        SetSelect::A => Bank::A,
        SetSelect::B => Bank::B,
    }))
}

/// Writes `state` onto the node's disk behind signpost's back, and the kernel command line naming the running set.
pub fn set_state(node: &Node, disk: &FixtureDisk, state: BootState) {
    let mut file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&disk.path)
        .expect("open the disk");
    let mut table = GPT::find_from(&mut file).expect("read the table");
    table[boot_number(disk, SetSelect::A)].attribute_bits = state.a;
    table[boot_number(disk, SetSelect::B)].attribute_bits = state.b;
    table.write_into(&mut file).expect("write the table");
    let partuuid =
        Guid::from_disk_bytes(table[boot_number(disk, state.active)].unique_partition_guid);
    let cmdline = node.cmdline_path();
    fs::create_dir_all(cmdline.parent().expect("proc dir")).expect("create proc/");
    fs::write(
        &cmdline,
        format!(
            "root=/dev/dm-0 {}\n",
            cmdline::boot_partition_args(partuuid)
        ),
    )
    .expect("write the command line");
}

/// The state on the node's disk, as signpost reads it.
pub fn read_state(node: &Node, disk: &FixtureDisk) -> BootState {
    let state = State::load(&node.location()).expect("load the state");
    let table = OsDisk::open(&disk.path)
        .and_then(|d| d.read_table())
        .expect("read the table");
    BootState {
        a: table[boot_number(disk, SetSelect::A)].attribute_bits,
        b: table[boot_number(disk, SetSelect::B)].attribute_bits,
        active: state.active(),
    }
}

/// Both copies of the GPT (the first 34 and the last 33 sectors): what a refused command must leave as it was.
pub fn table_bytes(disk: &FixtureDisk) -> Vec<u8> {
    use std::os::unix::fs::FileExt;
    let file = fs::File::open(&disk.path).expect("open the disk");
    let len = file.metadata().expect("stat the disk").len();
    let (head, tail) = (34 * 512, 33 * 512);
    let mut bytes = vec![0; head + tail];
    file.read_exact_at(&mut bytes[..head], 0)
        .expect("read the primary copy");
    file.read_exact_at(&mut bytes[head..], len - tail as u64)
        .expect("read the backup copy");
    bytes
}

/// Whether the disk's table would boot, by the bootloader rule.
pub fn disk_boots(disk: &FixtureDisk) -> bool {
    let table = OsDisk::open(&disk.path)
        .and_then(|d| d.read_table())
        .expect("read the table");
    boot_rule::boots_a_set(&table)
}

/// Every state reachable from `start` by the signpost commands (run in-process: the binary's own code) and by
/// boots (the bootloader rule, which also picks the running set). Leaves the disk in an unspecified one of them.
pub fn reachable(node: &Node, disk: &FixtureDisk, start: BootState) -> Vec<BootState> {
    let mut seen = BTreeSet::from([start]);
    let mut queue = VecDeque::from([start]);
    while let Some(state) = queue.pop_front() {
        let mut next = Vec::new();
        for command in MUTATING_COMMANDS {
            set_state(node, disk, state);
            if node.signpost(&[command]).code == 0 {
                next.push(read_state(node, disk));
            }
        }
        set_state(node, disk, state);
        if node.boot().is_ok() {
            next.push(read_state(node, disk));
        }
        for state in next {
            if seen.insert(state) {
                queue.push_back(state);
            }
        }
    }
    seen.into_iter().collect()
}
