//! Shared by the signpost disk tests: reading `signpost status --json`, comparing its bits with `cgpt` and
//! `sgdisk`, and serialising the tests that take a loop device.

#![allow(dead_code)] // each test binary uses a different part of it

use repo_fixtures::disk::{DiskBuilder, FixtureDisk};
use repo_fixtures::gpt_tools::{cgpt_flags, flags_of_bits, sgdisk_attribute_bits};
use repo_fixtures::loop_device::LoopDevice;
use repo_fixtures::node::{Node, SignpostRun};
use repo_fixtures::require::{require_root, require_tool};
use serde_json::Value;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

/// The machine has 8 loop devices and other test binaries may hold some: one loop test at a time per binary.
static LOOP_DEVICES: Mutex<()> = Mutex::new(());

pub fn loop_lock() -> MutexGuard<'static, ()> {
    LOOP_DEVICES
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The GPT tools the oracles run.
pub fn require_gpt_tools() -> bool {
    require_tool("cgpt") && require_tool("sgdisk")
}

/// Root and the loop-device tools, for the tests on a loop device.
pub fn require_loop_tools() -> bool {
    require_root() && require_tool("losetup") && require_tool("partx") && require_gpt_tools()
}

/// `signpost ARGS` on the node, which must succeed; its stdout.
pub fn signpost_ok(node: &Node, args: &[&str]) -> String {
    let run = node.signpost(args);
    assert_eq!(
        run.code, 0,
        "signpost {args:?} failed: {}{}",
        run.stdout, run.stderr
    );
    assert!(
        run.stderr.is_empty(),
        "signpost {args:?} wrote to stderr: {}",
        run.stderr
    );
    run.stdout
}

/// `signpost ARGS` on the node, which must be refused with exactly `message` on stderr (and nothing on stdout).
pub fn signpost_refused(node: &Node, args: &[&str], message: &str) {
    let run: SignpostRun = node.signpost(args);
    assert_eq!(run.code, 1, "signpost {args:?} should fail: {run:?}");
    assert_eq!(run.stdout, "", "signpost {args:?}");
    assert_eq!(run.stderr, format!("{message}\n"), "signpost {args:?}");
}

pub fn status(node: &Node) -> Value {
    serde_json::from_str(&signpost_ok(node, &["status", "--json"])).expect("status --json is JSON")
}

/// A set's `(priority, tries_left, successful)` in a status.
pub fn bits(status: &Value, set: &str) -> (u64, u64, bool) {
    let set = &status["sets"][set];
    (
        set["priority"].as_u64().expect("priority"),
        set["tries_left"].as_u64().expect("tries_left"),
        set["successful"].as_bool().expect("successful"),
    )
}

/// A partition's path as status shows it (`boot`, `root` or `hash` of a set).
pub fn shown_path(status: &Value, set: &str, partition: &str) -> String {
    let p = &status["sets"][set][partition];
    match p["node"].as_str() {
        Some(node) => node.to_string(),
        None => format!("{}#{}", p["disk"].as_str().expect("disk"), p["number"]),
    }
}

/// Checks that `cgpt show` and `sgdisk -A`, reading `disk`, see exactly the bits `status` reports on every set's
/// BOOT entry and PRIVATE's bit 57.
pub fn assert_tools_agree(status: &Value, disk: &Path) {
    for (name, set) in status["sets"].as_object().expect("sets") {
        let number = u32::try_from(set["boot"]["number"].as_u64().expect("boot number")).unwrap();
        let text = set["attribute_bits"].as_str().expect("attribute_bits");
        let reported = u64::from_str_radix(text.trim_start_matches("0x"), 16).expect("hex bits");
        let expected = flags_of_bits(reported);
        assert_eq!(
            (expected.priority, expected.tries_left, expected.successful),
            (
                u8::try_from(set["priority"].as_u64().unwrap()).unwrap(),
                u8::try_from(set["tries_left"].as_u64().unwrap()).unwrap(),
                set["successful"].as_bool().unwrap()
            ),
            "set {name}: attribute_bits and the named fields disagree"
        );
        let cgpt = cgpt_flags(disk, number).expect("cgpt show");
        assert_eq!(
            cgpt, expected,
            "set {name} (partition {number}): cgpt reads other bits than signpost"
        );
        let sgdisk = sgdisk_attribute_bits(disk, number).expect("sgdisk -A");
        assert_eq!(
            sgdisk, reported,
            "set {name} (partition {number}): sgdisk reads other bits than signpost"
        );
    }
    let private = u32::try_from(
        status["private"]["number"]
            .as_u64()
            .expect("private number"),
    )
    .unwrap();
    let succeeded = status["boot_ever_succeeded"]
        .as_bool()
        .expect("boot_ever_succeeded");
    let sgdisk = sgdisk_attribute_bits(disk, private).expect("sgdisk -A private");
    assert_eq!(
        sgdisk & (1 << 57) != 0,
        succeeded,
        "PRIVATE bit 57 per sgdisk"
    );
    let cgpt = cgpt_flags(disk, private).expect("cgpt show private");
    assert_eq!(
        cgpt.high_bits & (1 << 9) != 0,
        succeeded,
        "PRIVATE bit 57 per cgpt -A"
    );
}

/// What a test expects `status` to say about the table: the copy read, each set's bits, the next set.
#[derive(Clone, Copy)]
pub struct Expect {
    pub copy: &'static str,
    pub a: (u64, u64, bool),
    pub b: (u64, u64, bool),
    pub next: &'static str,
}

/// Checks `status` against `expect`, and the tools (reading `disk`) against `status`; returns the status.
pub fn expect_status(node: &Node, disk: &Path, expect: Expect) -> Value {
    let s = status(node);
    assert_eq!(s["table_copy"], expect.copy, "{s:#}");
    assert_eq!(
        (bits(&s, "A"), bits(&s, "B")),
        (expect.a, expect.b),
        "{s:#}"
    );
    assert_eq!(s["next"], expect.next, "{s:#}");
    assert_tools_agree(&s, disk);
    s
}

/// A fresh node in `dir` whose disk is reached through a loop device over its image, with partition nodes
/// (`partx -a`) when `nodes`.
pub fn loop_node(dir: &Path, nodes: bool) -> (Node, FixtureDisk, LoopDevice) {
    let (image_node, disk) = Node::create_with(dir, &DiskBuilder::new()).unwrap();
    let mut device = LoopDevice::attach(&disk.path).unwrap();
    if nodes {
        device
            .add_partition_nodes(u32::try_from(disk.partitions.len()).unwrap())
            .unwrap();
    }
    (image_node.with_disk(device.path()), disk, device)
}
