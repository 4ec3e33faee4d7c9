//! The A/B lifecycle through the simulated boot: an upgrade boots the new set once; without
//! `mark-successful-boot` the next boot falls back, with it the new set stays; cancel and rollback paths.

mod gpt_support;

use gpt_support::{assert_tools_agree, bits, require_gpt_tools, signpost_ok, status};
use repo_fixtures::disk::{Bank, DiskBuilder, FixtureDisk, Role};
use repo_fixtures::node::{BootError, Node};
use signpost::SetSelect;
use std::path::Path;

fn fresh(dir: &Path) -> (Node, FixtureDisk) {
    Node::create_with(dir, &DiskBuilder::new()).unwrap()
}

/// Boots and checks which set came up, what the bootloader did to its tries, what the kernel command line says
/// and what signpost now calls active.
fn boot_into(node: &Node, disk: &FixtureDisk, set: SetSelect, tries_before: u8, tries_after: u8) {
    let booted = node.boot().unwrap();
    let bank = if set == SetSelect::A {
        Bank::A
    } else {
        Bank::B
    };
    let boot = disk.partition(Role::Boot(bank)).unwrap();
    assert_eq!(booted.set, set);
    assert_eq!(booted.boot_partition, boot.number);
    assert_eq!(booted.boot_partuuid, boot.partuuid);
    assert_eq!(
        (booted.before.tries_left(), booted.after.tries_left()),
        (tries_before, tries_after)
    );
    let cmdline = std::fs::read_to_string(node.cmdline_path()).unwrap();
    assert_eq!(cmdline, booted.cmdline);
    assert!(
        cmdline.contains(&format!(
            "PARTUUID={}/PARTNROFF=1 PARTUUID={}/PARTNROFF=2",
            boot.partuuid, boot.partuuid
        )),
        "{cmdline}"
    );
    let s = status(node);
    assert_eq!(s["active"], set.to_string());
    assert_eq!(
        s["active_from"]["reference"],
        format!("PARTUUID={}/PARTNROFF=1", boot.partuuid)
    );
}

/// clear-inactive → mark-inactive-valid → upgrade-to-inactive, as updog does around writing the images.
fn stage_upgrade(node: &Node) {
    signpost_ok(node, &["clear-inactive"]);
    signpost_ok(node, &["mark-inactive-valid"]);
    signpost_ok(node, &["upgrade-to-inactive"]);
}

/// A node that booted A, confirmed it, upgraded to B, booted B and confirmed it: B (2, 0, successful) runs, A
/// (1, 0, successful) is the rollback target.
fn running_confirmed_b(dir: &Path) -> (Node, FixtureDisk) {
    let (node, disk) = fresh(dir);
    node.boot().unwrap();
    signpost_ok(&node, &["mark-successful-boot"]);
    stage_upgrade(&node);
    boot_into(&node, &disk, SetSelect::B, 1, 0);
    signpost_ok(&node, &["mark-successful-boot"]);
    (node, disk)
}

/// Sets the raw bits of `role`'s entry behind signpost's back, as another tool could.
fn set_bits_directly(disk: &FixtureDisk, role: Role, bits: u64) {
    // Through gptman, not signpost: another tool has no bootability guard.
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&disk.path)
        .unwrap();
    let mut table = gptman::GPT::find_from(&mut file).unwrap();
    table[disk.number(role)].attribute_bits = bits;
    table.write_into(&mut file).unwrap();
}

#[test]
fn an_unconfirmed_upgrade_falls_back_and_a_confirmed_one_stays() {
    if !require_gpt_tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (node, disk) = fresh(dir.path());
    boot_into(&node, &disk, SetSelect::A, 0, 0);
    signpost_ok(&node, &["mark-successful-boot"]);

    stage_upgrade(&node);
    let s = status(&node);
    assert_eq!(
        (bits(&s, "A"), bits(&s, "B")),
        ((1, 0, true), (2, 1, false))
    );
    assert_eq!(s["next"], "B");

    // The new set boots once and is left with no tries.
    boot_into(&node, &disk, SetSelect::B, 1, 0);
    let s = status(&node);
    assert_eq!(
        (bits(&s, "A"), bits(&s, "B")),
        ((1, 0, true), (2, 0, false))
    );
    assert_eq!(
        s["next"], "A",
        "without mark-successful-boot the next boot is the old set"
    );
    assert_tools_agree(&s, node.disk());

    // It never marked the boot: the next boot falls back, and stays back.
    boot_into(&node, &disk, SetSelect::A, 0, 0);
    boot_into(&node, &disk, SetSelect::A, 0, 0);
    let s = status(&node);
    assert_eq!(
        (bits(&s, "A"), bits(&s, "B")),
        ((1, 0, true), (2, 0, false))
    );
    // The failed set cannot be rolled back to.
    let run = node.signpost(&["rollback-to-inactive"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr
            .contains("is not valid to roll back to (priority=2 tries_left=0 successful=false)")
    );

    // The same update again, confirmed this time: the new set stays, the old one is the rollback target.
    stage_upgrade(&node);
    boot_into(&node, &disk, SetSelect::B, 1, 0);
    signpost_ok(&node, &["mark-successful-boot"]);
    let s = status(&node);
    assert_eq!((bits(&s, "A"), bits(&s, "B")), ((1, 0, true), (2, 0, true)));
    assert_eq!(s["next"], "B");
    assert_tools_agree(&s, node.disk());
    boot_into(&node, &disk, SetSelect::B, 0, 0);
    boot_into(&node, &disk, SetSelect::B, 0, 0);
    let s = status(&node);
    assert_eq!((bits(&s, "A"), bits(&s, "B")), ((1, 0, true), (2, 0, true)));
}

#[test]
fn an_update_from_b_goes_back_to_a() {
    let dir = tempfile::tempdir().unwrap();
    let (node, disk) = running_confirmed_b(dir.path());

    // Now B runs and A is the inactive set the next update goes to.
    stage_upgrade(&node);
    let s = status(&node);
    assert_eq!(
        (bits(&s, "A"), bits(&s, "B")),
        ((2, 1, false), (1, 0, true))
    );
    boot_into(&node, &disk, SetSelect::A, 1, 0);
    boot_into(&node, &disk, SetSelect::B, 0, 0);
}

#[test]
fn cancel_upgrade_keeps_the_running_set_and_the_valid_image_can_be_upgraded_to_again() {
    let dir = tempfile::tempdir().unwrap();
    let (node, disk) = fresh(dir.path());
    node.boot().unwrap();
    signpost_ok(&node, &["mark-successful-boot"]);
    stage_upgrade(&node);

    signpost_ok(&node, &["cancel-upgrade"]);
    let s = status(&node);
    assert_eq!(
        (bits(&s, "A"), bits(&s, "B")),
        ((2, 0, true), (0, 1, false))
    );
    boot_into(&node, &disk, SetSelect::A, 0, 0);
    boot_into(&node, &disk, SetSelect::A, 0, 0);

    // The tries survived the cancel (upstream #949): no need to clear and rewrite the inactive set.
    signpost_ok(&node, &["upgrade-to-inactive"]);
    boot_into(&node, &disk, SetSelect::B, 1, 0);
}

#[test]
fn rollback_to_inactive_boots_the_previous_set() {
    let dir = tempfile::tempdir().unwrap();
    let (node, disk) = running_confirmed_b(dir.path());

    // The update booted and was marked good, but the operator wants the old version back.
    signpost_ok(&node, &["rollback-to-inactive"]);
    let s = status(&node);
    assert_eq!((bits(&s, "A"), bits(&s, "B")), ((2, 0, true), (1, 0, true)));
    assert_eq!(s["next"], "A");
    boot_into(&node, &disk, SetSelect::A, 0, 0);
    // And back again: B is still successful, so it can be rolled back to.
    signpost_ok(&node, &["rollback-to-inactive"]);
    boot_into(&node, &disk, SetSelect::B, 0, 0);
}

#[test]
fn a_disk_with_no_bootable_set_fails_to_boot() {
    let dir = tempfile::tempdir().unwrap();
    let (node, disk) = fresh(dir.path());
    node.boot().unwrap();
    assert!(node.cmdline_path().exists());

    // Wipe BOOT-A's bits (no signpost command does this to the running set).
    set_bits_directly(&disk, Role::Boot(Bank::A), 0);

    let err = node.boot().unwrap_err();
    assert!(matches!(err, BootError::NoBootableSet { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "boot failed: no bootable partition set on {}",
            disk.path.display()
        )
    );
    assert!(
        !node.cmdline_path().exists(),
        "no kernel ran, so there is no command line"
    );
}

#[test]
fn a_set_with_priority_but_no_tries_and_no_success_never_boots() {
    let dir = tempfile::tempdir().unwrap();
    let (node, disk) = fresh(dir.path());
    node.boot().unwrap();
    // upgrade-to-inactive needs tries; a set marked without them (by another tool) is skipped by the bootloader.
    let mut flags = signpost::GptPrio::default();
    flags.set_priority(15);
    set_bits_directly(&disk, Role::Boot(Bank::B), flags.bits());
    boot_into(&node, &disk, SetSelect::A, 0, 0);
}
