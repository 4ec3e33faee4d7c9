//! Invariant I7, for every signpost command in every state: on a Bottlerocket-layout disk set to each combination
//! of gptprio bits on both sets (priority 0/1/2/15, tries 0/1/15, successful or not) with either set running, each
//! command either fails with both GPT copies byte-for-byte unchanged, or leaves a table on which the bootloader rule
//! boots a set. The reachable states (from a fresh install, by the commands and boots themselves) are checked again
//! with `cgpt` reading the bits independently.

use repo_fixtures::boot_states::{self, BootState, MUTATING_COMMANDS};
use repo_fixtures::disk::{Bank, DiskBuilder, FixtureDisk, Role};
use repo_fixtures::gpt_tools::cgpt_flags;
use repo_fixtures::node::Node;
use repo_fixtures::require::require_tool;
use signpost::{GptPrio, SetSelect};

fn node() -> (tempfile::TempDir, Node, FixtureDisk) {
    // tmpfs where there is one: thousands of table writes, each fsynced twice.
    let dir = match std::path::Path::new("/dev/shm").is_dir() {
        true => tempfile::tempdir_in("/dev/shm").unwrap(),
        false => tempfile::tempdir().unwrap(),
    };
    let (node, disk) = Node::create_with(dir.path(), &DiskBuilder::new()).unwrap();
    (dir, node, disk)
}

fn flags(priority: u8, tries: u8, successful: bool) -> GptPrio {
    let mut flags = GptPrio::default();
    flags.set_priority(priority);
    flags.set_tries_left(tries);
    flags.set_successful(successful);
    flags
}

#[test]
fn every_command_in_every_state_refuses_unchanged_or_leaves_a_bootable_set() {
    let (_dir, node, disk) = node();
    let states = boot_states::grid();
    assert_eq!(states.len(), 24 * 24 * 2);
    let (mut written, mut guarded) = (0, 0);
    for &state in &states {
        for command in MUTATING_COMMANDS
            .iter()
            .chain(&["status", "has-boot-ever-succeeded"])
        {
            boot_states::set_state(&node, &disk, state);
            let before = boot_states::table_bytes(&disk);
            let run = node.signpost(&[command]);
            let after = boot_states::table_bytes(&disk);
            if !MUTATING_COMMANDS.contains(command) {
                assert_eq!(
                    (run.code, &before),
                    (0, &after),
                    "`{command}` in {state:?}: {run:?}"
                );
                continue;
            }
            if run.code != 0 {
                assert_eq!(
                    before, after,
                    "`{command}` in {state:?} failed but changed the table: {run:?}"
                );
                assert!(
                    !run.stderr.is_empty(),
                    "`{command}` in {state:?} failed silently"
                );
                if run.stderr.contains("no set would boot") {
                    guarded += 1;
                }
                continue;
            }
            if before != after {
                written += 1;
            }
            assert!(
                boot_states::disk_boots(&disk),
                "`{command}` in {state:?} left {:?}, which boots nothing",
                boot_states::read_state(&node, &disk)
            );
        }
    }
    // Not vacuous: commands did write, and the guard did refuse some.
    assert!(written > 1000, "only {written} writes");
    assert!(guarded > 100, "the guard refused only {guarded}");
}

#[test]
fn on_an_unconfirmed_boot_cancel_returns_to_the_previous_set_and_nothing_clears_it() {
    let (_dir, node, disk) = node();
    for state in boot_states::grid() {
        let active = state.flags(state.active);
        let previous = state.flags(state.inactive());
        if active.successful() {
            continue;
        }
        boot_states::set_state(&node, &disk, state);
        let run = node.signpost(&["cancel-upgrade"]);
        if previous.will_boot() {
            assert_eq!(run.code, 0, "{state:?}: {run:?}");
            let after = boot_states::read_state(&node, &disk);
            assert_eq!(
                after.flags(state.inactive()).priority(),
                2,
                "{state:?} → {after:?}"
            );
            assert_eq!(
                after.flags(state.active).priority(),
                1,
                "{state:?} → {after:?}"
            );
            assert_eq!(
                node.signpost(&["status"]).stdout.lines().last(),
                Some(format!("Next:    Set {}", state.inactive()).as_str())
            );
        }
        boot_states::set_state(&node, &disk, state);
        let run = node.signpost(&["clear-inactive"]);
        assert_eq!(run.code, 1, "{state:?}: {run:?}");
        assert!(
            run.stderr.contains("has not been marked successful"),
            "{}",
            run.stderr
        );
    }
}

#[test]
fn the_reported_defect_a_revert_on_an_unconfirmed_boot_keeps_a_bootable_set() {
    let (_dir, node, disk) = node();
    // Booted B after an upgrade, not yet marked successful; A is the old, confirmed set.
    let state = BootState::new(flags(1, 0, true), flags(2, 0, false), SetSelect::B);
    boot_states::set_state(&node, &disk, state);
    let run = node.signpost(&["cancel-upgrade"]);
    assert_eq!(run.code, 0, "{run:?}");
    let status = node.signpost(&["status"]).stdout;
    assert!(
        status.ends_with("Next:    Set A\n") || status.ends_with("Next:    Set A"),
        "{status}"
    );
    let booted = node.boot().unwrap();
    assert_eq!(booted.set, SetSelect::A);
}

#[test]
fn every_reachable_state_agrees_with_cgpt_after_every_command() {
    if !require_tool("cgpt") {
        return;
    }
    let (_dir, node, disk) = node();
    node.boot().unwrap();
    assert_eq!(node.signpost(&["mark-successful-boot"]).code, 0);
    let start = boot_states::read_state(&node, &disk);
    let reachable = boot_states::reachable(&node, &disk, start);
    eprintln!("{} reachable states: {reachable:#?}", reachable.len());
    // The fresh state, an upgrade staged, booted, confirmed, cancelled, rolled back, on both sets.
    assert!(
        reachable.len() >= 8,
        "only {} reachable: {reachable:?}",
        reachable.len()
    );
    let numbers = [
        disk.number(Role::Boot(Bank::A)),
        disk.number(Role::Boot(Bank::B)),
    ];
    for &state in &reachable {
        assert!(state.bootable(), "reached {state:?}, which boots nothing");
        for command in MUTATING_COMMANDS {
            boot_states::set_state(&node, &disk, state);
            let before = boot_states::table_bytes(&disk);
            let run = node.signpost(&[command]);
            if run.code != 0 {
                assert_eq!(
                    before,
                    boot_states::table_bytes(&disk),
                    "`{command}` in {state:?}"
                );
                continue;
            }
            // cgpt reads the bits on its own; the rule applied to what it read must boot a set.
            let read: Vec<_> = numbers
                .iter()
                .map(|&n| cgpt_flags(&disk.path, n).unwrap())
                .collect();
            assert!(
                read.iter()
                    .any(|f| f.priority > 0 && (f.tries_left > 0 || f.successful)),
                "`{command}` in {state:?}: cgpt reads {read:?}, which boots nothing"
            );
            let after = boot_states::read_state(&node, &disk);
            for (set, tool) in [SetSelect::A, SetSelect::B].into_iter().zip(&read) {
                let ours = after.flags(set);
                assert_eq!(
                    (tool.priority, tool.tries_left, tool.successful),
                    (ours.priority(), ours.tries_left(), ours.successful()),
                    "`{command}` in {state:?}: set {set}"
                );
            }
        }
    }
}

#[test]
fn concurrent_writers_are_refused_or_serialized_and_the_table_stays_whole_and_bootable() {
    let (_dir, node, disk) = node();
    node.boot().unwrap();
    assert_eq!(node.signpost(&["mark-successful-boot"]).code, 0);
    assert_eq!(node.signpost(&["mark-inactive-valid"]).code, 0);
    let busy = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for worker in 0..8 {
            let (node, busy) = (&node, &busy);
            scope.spawn(move || {
                for round in 0..100 {
                    let command = ["upgrade-to-inactive", "cancel-upgrade", "rewrite-table"]
                        [(worker + round) % 3];
                    let run = node.signpost(&[command]);
                    if run.stderr.contains(" is in use: ") {
                        busy.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    } else if run.code != 0 {
                        // upgrade-to-inactive on an already upgraded set is refused as upstream; nothing else may fail.
                        assert!(
                            run.stderr.contains("already marked for upgrade"),
                            "{command}: {run:?}"
                        );
                    }
                }
            });
        }
    });
    assert!(
        busy.load(std::sync::atomic::Ordering::Relaxed) > 0,
        "no writer ever met another"
    );
    assert!(boot_states::disk_boots(&disk));
    // Both copies whole and equal: a table loaded now comes from the primary and rewriting it changes nothing.
    let status = node.signpost(&["status", "--json"]);
    assert!(
        status.stdout.contains("\"table_copy\": \"primary\""),
        "{}",
        status.stdout
    );
    let before = boot_states::table_bytes(&disk);
    assert_eq!(node.signpost(&["rewrite-table"]).code, 0);
    assert_eq!(boot_states::table_bytes(&disk), before);
}

#[test]
fn an_image_file_and_every_loop_device_over_it_share_one_disk_lock() {
    if !repo_fixtures::require::require_root() || !require_tool("losetup") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (node, disk) = Node::create_with(dir.path(), &DiskBuilder::new()).unwrap();
    node.boot().unwrap();
    let first = repo_fixtures::loop_device::LoopDevice::attach(&disk.path).unwrap();
    let second = repo_fixtures::loop_device::LoopDevice::attach(&disk.path).unwrap();
    let before = boot_states::table_bytes(&disk);

    // The file's lock keeps out writers through either device, and a device's lock keeps out the file.
    let held = signpost::OsDisk::open(&disk.path).unwrap().lock().unwrap();
    for device in [first.path(), second.path()] {
        let run = node.with_disk(device).signpost(&["rewrite-table"]);
        assert_eq!(run.code, 1, "{run:?}");
        assert!(
            run.stderr
                .starts_with(&format!("OS disk {} is in use: pid ", device.display())),
            "{run:?}"
        );
    }
    drop(held);
    let held = signpost::OsDisk::open(first.path())
        .unwrap()
        .lock()
        .unwrap();
    for other in [disk.path.as_path(), second.path()] {
        let run = node.with_disk(other).signpost(&["mark-inactive-valid"]);
        assert_eq!(run.code, 1, "{run:?}");
        assert!(run.stderr.contains(" is in use: pid "), "{run:?}");
    }
    drop(held);
    assert_eq!(boot_states::table_bytes(&disk), before);
    assert_eq!(
        node.with_disk(second.path())
            .signpost(&["rewrite-table"])
            .code,
        0
    );
}
