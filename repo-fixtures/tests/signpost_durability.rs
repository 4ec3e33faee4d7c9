//! A GPT write interrupted between its two copies, or one copy damaged later, still leaves a table that signpost,
//! the simulated bootloader, `cgpt` and `sgdisk` load, and that names a bootable set. Any signpost write repairs
//! the damaged copy.

mod gpt_support;

use gpt_support::{
    Expect, expect_status, loop_lock, loop_node, require_gpt_tools, require_loop_tools,
    signpost_ok, status,
};
use repo_fixtures::disk::{Bank, DiskBuilder, FixtureDisk, Role, SECTOR_SIZE};
use repo_fixtures::gpt_tools::sgdisk_verify;
use repo_fixtures::node::Node;
use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// The primary GPT: header (LBA 1) and entry array (LBAs 2–33).
const PRIMARY_HEADER: (u64, u64) = (1, 1);
const PRIMARY_ENTRIES: (u64, u64) = (2, 32);

/// The backup GPT of `disk`: entry array then header, the last 33 LBAs.
fn backup_copy(disk: &FixtureDisk) -> (u64, u64) {
    (disk.size_bytes / SECTOR_SIZE - 33, 33)
}

fn read_sectors(path: &Path, (lba, count): (u64, u64)) -> Vec<u8> {
    let file = OpenOptions::new().read(true).open(path).unwrap();
    let mut buf = vec![0; usize::try_from(count * SECTOR_SIZE).unwrap()];
    file.read_exact_at(&mut buf, lba * SECTOR_SIZE).unwrap();
    buf
}

fn write_sectors(path: &Path, (lba, _): (u64, u64), bytes: &[u8]) {
    let file = OpenOptions::new().write(true).open(path).unwrap();
    file.write_all_at(bytes, lba * SECTOR_SIZE).unwrap();
    file.sync_all().unwrap();
}

fn zero_sectors(path: &Path, range: (u64, u64)) {
    write_sectors(
        path,
        range,
        &vec![0; usize::try_from(range.1 * SECTOR_SIZE).unwrap()],
    );
}

/// A node booted from A with an upgrade to B marked: A (1, 0, successful), B (2, 1).
fn upgraded_node(dir: &Path) -> (Node, FixtureDisk) {
    let (node, disk) = Node::create_with(dir, &DiskBuilder::new()).unwrap();
    node.boot().unwrap();
    upgrade(&node);
    (node, disk)
}

/// From a fresh boot of A: confirm it, then stage an upgrade to B.
fn upgrade(node: &Node) {
    for command in [
        "mark-successful-boot",
        "clear-inactive",
        "mark-inactive-valid",
        "upgrade-to-inactive",
    ] {
        signpost_ok(node, &[command]);
    }
}

fn assert_sound(disk: &Path) {
    let report = sgdisk_verify(disk).unwrap();
    assert!(report.contains("No problems found."), "{report}");
    assert!(!report.contains("Caution"), "{report}");
}

/// The bits `upgraded_node` leaves: A (1, 0, successful), B (2, 1), next B.
const UPGRADED: Expect = Expect {
    copy: "primary",
    a: (1, 0, true),
    b: (2, 1, false),
    next: "B",
};

/// After `cancel-upgrade` on an upgraded node.
const CANCELLED: Expect = Expect {
    copy: "primary",
    a: (2, 0, true),
    b: (0, 1, false),
    next: "A",
};

/// The same bits, read from the backup copy.
fn from_backup(expect: Expect) -> Expect {
    Expect {
        copy: "backup",
        ..expect
    }
}

#[test]
fn a_zeroed_primary_header_loads_from_the_backup_and_a_write_repairs_it() {
    if !require_gpt_tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (node, disk) = upgraded_node(dir.path());
    zero_sectors(&disk.path, PRIMARY_HEADER);
    expect_status(&node, &disk.path, from_backup(UPGRADED));

    signpost_ok(&node, &["rewrite-table"]);
    expect_status(&node, &disk.path, UPGRADED);
    assert_sound(&disk.path);
}

#[test]
fn a_corrupt_primary_entry_array_loads_from_the_backup_and_the_bootloader_repairs_it() {
    if !require_gpt_tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (node, disk) = upgraded_node(dir.path());
    let mut entries = read_sectors(&disk.path, PRIMARY_ENTRIES);
    // A byte of BOOT-B's attribute bits in the primary array: its CRC no longer matches.
    let boot_b = disk.number(Role::Boot(Bank::B)) as usize;
    entries[(boot_b - 1) * 128 + 48 + 6] ^= 0xff;
    write_sectors(&disk.path, PRIMARY_ENTRIES, &entries);
    // The backup's bits, not the corrupted ones.
    expect_status(&node, &disk.path, from_backup(UPGRADED));

    // GRUB spends B's try and rewrites the table: both copies again.
    let booted = node.boot().unwrap();
    assert_eq!(booted.boot_partition, disk.number(Role::Boot(Bank::B)));
    let booted_b = Expect {
        b: (2, 0, false),
        next: "A",
        ..UPGRADED
    };
    expect_status(&node, &disk.path, booted_b);
    assert_sound(&disk.path);
}

#[test]
fn a_zeroed_backup_still_loads_from_the_primary_and_a_write_repairs_it() {
    if !require_gpt_tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (node, disk) = upgraded_node(dir.path());
    zero_sectors(&disk.path, backup_copy(&disk));
    expect_status(&node, &disk.path, UPGRADED);

    signpost_ok(&node, &["cancel-upgrade"]);
    expect_status(&node, &disk.path, CANCELLED);
    assert_sound(&disk.path);
    // The repaired backup holds the new table: lose the primary now and the cancel is still there.
    zero_sectors(&disk.path, PRIMARY_HEADER);
    expect_status(&node, &disk.path, from_backup(CANCELLED));
}

#[test]
fn a_write_interrupted_between_the_copies_loads_the_new_table_or_else_the_old_one() {
    if !require_gpt_tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (node, disk) = upgraded_node(dir.path());
    let old_backup = read_sectors(&disk.path, backup_copy(&disk));

    // upgrade → cancel, interrupted after the primary copy: the backup still holds the upgrade.
    signpost_ok(&node, &["cancel-upgrade"]);
    write_sectors(&disk.path, backup_copy(&disk), &old_backup);
    expect_status(&node, &disk.path, CANCELLED);

    // Lose the new primary as well: the old table, whole, from the backup; still a bootable set.
    zero_sectors(&disk.path, PRIMARY_HEADER);
    expect_status(&node, &disk.path, from_backup(UPGRADED));
    assert_eq!(
        node.boot().unwrap().boot_partition,
        disk.number(Role::Boot(Bank::B))
    );
}

#[test]
fn a_write_torn_inside_the_primary_copy_loads_the_old_table_from_the_backup() {
    if !require_gpt_tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (node, disk) = upgraded_node(dir.path());
    let old_entries = read_sectors(&disk.path, PRIMARY_ENTRIES);
    let old_backup = read_sectors(&disk.path, backup_copy(&disk));

    // cancel-upgrade reached the disk with the new primary header only.
    signpost_ok(&node, &["cancel-upgrade"]);
    write_sectors(&disk.path, PRIMARY_ENTRIES, &old_entries);
    write_sectors(&disk.path, backup_copy(&disk), &old_backup);
    expect_status(&node, &disk.path, from_backup(UPGRADED));
}

#[test]
fn a_damaged_primary_on_a_loop_device_loads_from_the_backup_and_keeps_the_partition_nodes() {
    if !require_loop_tools() {
        return;
    }
    let _lock = loop_lock();
    let dir = tempfile::tempdir().unwrap();
    let (node, disk, device) = loop_node(dir.path(), true);
    node.boot().unwrap();
    upgrade(&node);
    zero_sectors(device.path(), PRIMARY_HEADER);
    expect_status(&node, device.path(), from_backup(UPGRADED));

    signpost_ok(&node, &["rewrite-table"]);
    assert_eq!(status(&node)["table_copy"], "primary");
    assert_sound(device.path());
    for p in &disk.partitions {
        assert!(
            device.has_partition_node(p.number),
            "node {} survived the table write",
            p.number
        );
    }
}
