//! Every signpost command on a Bottlerocket-layout disk, on an image file and (as root) on a loop device with and
//! without partition nodes; after each one the bits signpost reports are compared with what `cgpt show` and
//! `sgdisk -A` read from the same disk.

mod gpt_support;

use gpt_support::{
    assert_tools_agree, bits, loop_lock, loop_node, require_gpt_tools, require_loop_tools,
    shown_path, signpost_ok, signpost_refused, status,
};
use repo_fixtures::disk::{Bank, DiskBuilder, FixtureDisk, Role};
use repo_fixtures::loop_device::LoopDevice;
use repo_fixtures::node::Node;
use serde_json::Value;
use std::path::Path;

/// After a command: signpost's view, the tools' view, and (on a loop device) the partition nodes still there.
fn check(
    node: &Node,
    disk: &FixtureDisk,
    device: Option<&LoopDevice>,
    a: (u64, u64, bool),
    b: (u64, u64, bool),
) -> Value {
    let status = status(node);
    assert_eq!(bits(&status, "A"), a, "set A: {status:#}");
    assert_eq!(bits(&status, "B"), b, "set B: {status:#}");
    assert_tools_agree(&status, node.disk());
    if let Some(device) = device {
        for p in &disk.partitions {
            assert!(
                device.has_partition_node(p.number),
                "partition node {} vanished",
                device.partition_node(p.number).display()
            );
        }
    }
    status
}

/// The nine commands, refusals included, on a freshly built dual-bank disk the node has booted from set A.
fn every_command(node: &Node, disk: &FixtureDisk, device: Option<&LoopDevice>) {
    let booted = node.boot().expect("a fresh disk boots");
    assert_eq!(booted.boot_partition, disk.number(Role::Boot(Bank::A)));

    // A fresh disk: BOOT-A priority 1 and successful, BOOT-B all zero, boot never succeeded.
    let s = check(node, disk, device, (1, 0, true), (0, 0, false));
    assert_eq!(s["active"], "A");
    assert_eq!(s["next"], "A");
    assert_eq!(s["active_from"]["from"], "cmdline");
    assert_eq!(s["boot_ever_succeeded"], false);
    assert_eq!(s["table_copy"], "primary");
    let (boot_a, boot_b) = (shown_path(&s, "A", "boot"), shown_path(&s, "B", "boot"));
    let text = signpost_ok(node, &["status"]);
    assert_eq!(
        text,
        format!(
            "OS disk: {}\n\
             Set A:   boot={boot_a} root={} hash={} priority=1 tries_left=0 successful=true\n\
             Set B:   boot={boot_b} root={} hash={} priority=0 tries_left=0 successful=false\n\
             Active:  Set A\n\
             Next:    Set A\n",
            node.disk().display(),
            shown_path(&s, "A", "root"),
            shown_path(&s, "A", "hash"),
            shown_path(&s, "B", "root"),
            shown_path(&s, "B", "hash"),
        )
    );

    assert_eq!(signpost_ok(node, &["has-boot-ever-succeeded"]), "");
    signpost_ok(node, &["mark-successful-boot"]);
    let s = check(node, disk, device, (1, 0, true), (0, 0, false));
    assert_eq!(s["boot_ever_succeeded"], true);
    assert_eq!(signpost_ok(node, &["has-boot-ever-succeeded"]), "true\n");

    signpost_refused(
        node,
        &["upgrade-to-inactive"],
        &format!(
            "Inactive partition {boot_b} has not been marked valid for upgrade (priority=0 tries_left=0 successful=false)"
        ),
    );
    signpost_refused(
        node,
        &["rollback-to-inactive"],
        &format!(
            "Inactive partition {boot_b} is not valid to roll back to (priority=0 tries_left=0 successful=false)"
        ),
    );
    check(node, disk, device, (1, 0, true), (0, 0, false));

    signpost_ok(node, &["clear-inactive"]);
    check(node, disk, device, (1, 0, true), (0, 0, false));
    signpost_ok(node, &["mark-inactive-valid"]);
    check(node, disk, device, (1, 0, true), (0, 1, false));
    signpost_ok(node, &["upgrade-to-inactive"]);
    let s = check(node, disk, device, (1, 0, true), (2, 1, false));
    assert_eq!(
        (&s["active"], &s["next"]),
        (&Value::from("A"), &Value::from("B"))
    );

    signpost_refused(
        node,
        &["upgrade-to-inactive"],
        &format!(
            "Inactive partition {boot_b} is already marked for upgrade (priority=2 tries_left=1 successful=false)"
        ),
    );

    // Cancelling keeps the tries (upstream #949): the valid image can be upgraded to again without rewriting it.
    signpost_ok(node, &["cancel-upgrade"]);
    let s = check(node, disk, device, (2, 0, true), (0, 1, false));
    assert_eq!(s["next"], "A");
    signpost_ok(node, &["upgrade-to-inactive"]);
    check(node, disk, device, (1, 0, true), (2, 1, false));

    signpost_ok(node, &["rollback-to-inactive"]);
    check(node, disk, device, (1, 0, true), (2, 1, false));

    // clear-inactive wipes an upgrade that was marked.
    signpost_ok(node, &["clear-inactive"]);
    let s = check(node, disk, device, (1, 0, true), (0, 0, false));
    assert_eq!(s["next"], "A");

    signpost_ok(node, &["rewrite-table"]);
    check(node, disk, device, (1, 0, true), (0, 0, false));
    assert_eq!(signpost_ok(node, &["has-boot-ever-succeeded"]), "true\n");
}

#[test]
fn every_command_on_an_image_file_agrees_with_cgpt_and_sgdisk() {
    if !require_gpt_tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (node, disk) = Node::create_with(dir.path(), &DiskBuilder::new()).unwrap();
    every_command(&node, &disk, None);
    // Without partition nodes, partitions are shown (and written) as DISK#N.
    let s = status(&node);
    assert_eq!(
        shown_path(&s, "B", "root"),
        format!("{}#9", disk.path.display())
    );
    assert_eq!(s["disk"]["kind"], "image-file");
}

#[test]
fn every_command_on_a_loop_device_with_partition_nodes_agrees_with_cgpt_and_sgdisk() {
    if !require_loop_tools() {
        return;
    }
    let _lock = loop_lock();
    let dir = tempfile::tempdir().unwrap();
    let (node, disk, device) = loop_node(dir.path(), true);
    every_command(&node, &disk, Some(&device));
    let s = status(&node);
    assert_eq!(s["disk"]["kind"], "block-device");
    for (set, bank) in [("A", Bank::A), ("B", Bank::B)] {
        for (name, role) in [
            ("boot", Role::Boot(bank)),
            ("root", Role::Root(bank)),
            ("hash", Role::Hash(bank)),
        ] {
            assert_eq!(
                shown_path(&s, set, name),
                device
                    .partition_node(disk.number(role))
                    .display()
                    .to_string()
            );
        }
    }
    // The loop device wrote through to the image: the tools read the same bits from the file.
    assert_tools_agree(&s, &disk.path);
}

#[test]
fn every_command_on_a_loop_device_without_partition_nodes_agrees_with_cgpt_and_sgdisk() {
    if !require_loop_tools() {
        return;
    }
    let _lock = loop_lock();
    let dir = tempfile::tempdir().unwrap();
    let (node, disk, device) = loop_node(dir.path(), false);
    every_command(&node, &disk, None);
    let s = status(&node);
    assert_eq!(
        shown_path(&s, "A", "root"),
        format!("{}#4", device.path().display())
    );
}

#[test]
fn a_single_bank_disk_refuses_every_inactive_command() {
    if !require_gpt_tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (node, disk) = Node::create_with(dir.path(), &DiskBuilder::new().single_bank()).unwrap();
    node.boot().unwrap();
    let s = status(&node);
    assert_eq!(bits(&s, "A"), (1, 0, true));
    assert!(s["sets"].get("B").is_none(), "{s:#}");
    assert_eq!(s["active_from"]["from"], "single-set");
    assert_tools_agree(&s, node.disk());
    let boot_a = shown_path(&s, "A", "boot");
    let text = signpost_ok(&node, &["status"]);
    assert_eq!(
        text,
        format!(
            "OS disk: {}\nSet A:   boot={boot_a} root={} hash={} priority=1 tries_left=0 successful=true\n\
             Active:  Set A\nNext:    Set A\n",
            node.disk().display(),
            shown_path(&s, "A", "root"),
            shown_path(&s, "A", "hash"),
        )
    );
    let refusal = format!(
        "Inactive partition is not available: {} has a single partition set ({boot_a} priority=1 tries_left=0 successful=true)",
        node.disk().display()
    );
    for command in [
        "clear-inactive",
        "mark-inactive-valid",
        "upgrade-to-inactive",
        "cancel-upgrade",
        "rollback-to-inactive",
    ] {
        signpost_refused(&node, &[command], &refusal);
    }
    signpost_ok(&node, &["mark-successful-boot"]);
    let s = status(&node);
    assert_eq!(s["boot_ever_succeeded"], true);
    assert_tools_agree(&s, node.disk());
    assert_eq!(disk.number(Role::Private), 7);
}

#[test]
fn a_node_that_has_not_booted_has_no_active_set() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::create(dir.path()).unwrap();
    let run = node.signpost(&["status"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.starts_with(&format!(
            "Cannot tell the active partition set: {} names no PARTUUID, and the root device of {} does not say: ",
            node.cmdline_path().display(),
            node.sysroot().display()
        )),
        "{}",
        run.stderr
    );
}

#[test]
fn a_command_line_naming_another_disk_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::create(dir.path()).unwrap();
    let other = Node::create_with(&dir.path().join("other"), &DiskBuilder::new().seed(9))
        .map(|(node, _)| node)
        .unwrap_or_else(|e| panic!("{e}"));
    let booted = other.boot().unwrap();
    std::fs::create_dir_all(node.cmdline_path().parent().unwrap()).unwrap();
    std::fs::write(node.cmdline_path(), &booted.cmdline).unwrap();
    let run = node.signpost(&["status"]);
    assert_eq!(run.code, 1);
    assert_eq!(
        run.stderr,
        format!(
            "PARTUUID={}/PARTNROFF=1 in {} is not a partition on {}\n",
            booted.boot_partuuid,
            node.cmdline_path().display(),
            node.disk().display()
        )
    );
}

#[test]
fn the_built_layout_is_upstreams_per_sgdisk() {
    if !require_gpt_tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let disk = DiskBuilder::new()
        .build(dir.path().join("disk.img"))
        .unwrap();
    let report = repo_fixtures::gpt_tools::sgdisk_verify(&disk.path).unwrap();
    assert!(report.contains("No problems found."), "{report}");
    for p in &disk.partitions {
        let info = std::process::Command::new("sgdisk")
            .args(["-i", &p.number.to_string()])
            .arg(&disk.path)
            .output()
            .unwrap();
        let info = String::from_utf8_lossy(&info.stdout);
        assert!(
            info.contains(&format!(
                "Partition GUID code: {}",
                p.type_guid.to_string().to_uppercase()
            )),
            "{} type: {info}",
            p.number
        );
        assert!(
            info.contains(&format!(
                "Partition unique GUID: {}",
                p.partuuid.to_string().to_uppercase()
            )),
            "{info}"
        );
        assert!(
            info.contains(&format!("First sector: {} ", p.first_lba)),
            "{info}"
        );
        assert!(
            info.contains(&format!("Last sector: {} ", p.last_lba)),
            "{info}"
        );
        assert!(
            info.contains(&format!("Partition name: '{}'", p.label)),
            "{info}"
        );
        let expected_bits = if p.role == Role::Boot(Bank::A) {
            (1 << 48) | (1 << 56)
        } else {
            0
        };
        assert_eq!(
            repo_fixtures::gpt_tools::sgdisk_attribute_bits(&disk.path, p.number).unwrap(),
            expected_bits,
            "{}",
            p.label
        );
    }
    let labels: Vec<&str> = disk.partitions.iter().map(|p| p.label.as_str()).collect();
    assert_eq!(
        labels,
        [
            "BIOS-BOOT",
            "EFI-SYSTEM",
            "BOTTLEROCKET-BOOT-A",
            "BOTTLEROCKET-ROOT-A",
            "BOTTLEROCKET-HASH-A",
            "BOTTLEROCKET-RESERVED-A",
            "EFI-BACKUP",
            "BOTTLEROCKET-BOOT-B",
            "BOTTLEROCKET-ROOT-B",
            "BOTTLEROCKET-HASH-B",
            "BOTTLEROCKET-RESERVED-B",
            "BOTTLEROCKET-PRIVATE",
            "",
        ]
    );
    assert_eq!(Path::new(&disk.path).metadata().unwrap().len(), 33 << 20);
}
