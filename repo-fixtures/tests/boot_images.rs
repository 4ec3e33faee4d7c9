//! The simulated boot of a node that carries real OS images: dm-verity decides whether a set boots, and the node's
//! version is the booted ROOT's.

use repo_fixtures::chain::{self, ARCHES, VARIANTS};
use repo_fixtures::images::OsImages;
use repo_fixtures::node::{BootError, Node};
use repo_fixtures::require::require_tool;
use signpost::SetSelect;
use std::path::Path;

fn tools() -> bool {
    ["mke2fs", "veritysetup", "debugfs"]
        .iter()
        .all(|t| require_tool(t))
}

fn release(version: &str, scratch: &Path) -> OsImages {
    let root_json = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(chain::fixture_root_json())
        .expect("fixture root");
    chain::release_images(VARIANTS[0], ARCHES[0], version, &root_json, scratch)
        .expect("images build")
}

fn upgrade_to(node: &Node, set: SetSelect, images: &OsImages) {
    node.install(set, images)
        .expect("install into the inactive set");
    for command in ["mark-inactive-valid", "upgrade-to-inactive"] {
        let run = node.signpost(&[command]);
        assert_eq!(run.code, 0, "{command}: {}", run.stderr);
    }
}

#[test]
fn the_node_reports_the_version_of_the_root_it_booted() {
    if !tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let node = Node::create(dir.path()).unwrap();
    node.install(SetSelect::A, &release("1.0.0", &dir.path().join("s1")))
        .unwrap();

    let first = node.boot().expect("set A boots");
    assert_eq!(first.set, SetSelect::A);
    let booted = first
        .release
        .expect("a node with images reports its release");
    assert_eq!(
        (booted.version_id.as_str(), booted.variant_id.as_str()),
        ("1.0.0", VARIANTS[0])
    );
    let os_release = std::fs::read_to_string(node.sysroot().join("usr/lib/os-release")).unwrap();
    assert!(os_release.contains("VERSION_ID=1.0.0"), "{os_release}");
    let root_json = std::fs::read(node.sysroot().join("usr/share/updog/root.json")).unwrap();
    let fixture_root = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(chain::fixture_root_json())
        .unwrap();
    assert_eq!(root_json, fixture_root);

    upgrade_to(
        &node,
        SetSelect::B,
        &release("1.1.0", &dir.path().join("s2")),
    );
    let second = node.boot().expect("set B boots");
    assert_eq!(second.set, SetSelect::B);
    assert_eq!(second.release.unwrap().version_id, "1.1.0");
    let os_release = std::fs::read_to_string(node.sysroot().join("usr/lib/os-release")).unwrap();
    assert!(os_release.contains("VERSION_ID=1.1.0"), "{os_release}");
}

#[test]
fn a_corrupt_root_fails_its_boot_and_the_next_boot_falls_back() {
    if !tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let node = Node::create(dir.path()).unwrap();
    node.install(SetSelect::A, &release("1.0.0", &dir.path().join("s1")))
        .unwrap();
    assert_eq!(node.boot().unwrap().set, SetSelect::A);
    let run = node.signpost(&["mark-successful-boot"]);
    assert_eq!(run.code, 0, "{}", run.stderr);

    let mut new = release("1.1.0", &dir.path().join("s2"));
    new.root[3 << 20] ^= 0x40; // one bit in a data block of ROOT; HASH and the root hash are the real ones
    upgrade_to(&node, SetSelect::B, &new);

    let failed = node
        .boot()
        .expect_err("dm-verity must refuse the corrupt root");
    assert!(
        matches!(failed, BootError::VerityMismatch { .. }),
        "{failed}"
    );
    assert!(
        failed
            .to_string()
            .contains("does not match its dm-verity hash tree"),
        "{failed}"
    );

    // The try was spent on the failed boot: the bootloader now goes back to the old set and its release.
    let fallback = node.boot().expect("the old set still boots");
    assert_eq!(fallback.set, SetSelect::A);
    assert_eq!(fallback.release.unwrap().version_id, "1.0.0");
    let os_release = std::fs::read_to_string(node.sysroot().join("usr/lib/os-release")).unwrap();
    assert!(os_release.contains("VERSION_ID=1.0.0"), "{os_release}");
}

#[test]
fn a_set_never_written_does_not_boot_on_a_node_with_images() {
    if !tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let node = Node::create(dir.path()).unwrap();
    node.install(SetSelect::A, &release("1.0.0", &dir.path().join("s1")))
        .unwrap();
    assert_eq!(node.boot().unwrap().set, SetSelect::A);
    // Mark B bootable without writing anything to it: its BOOT partition holds no filesystem.
    for command in ["mark-inactive-valid", "upgrade-to-inactive"] {
        let run = node.signpost(&[command]);
        assert_eq!(run.code, 0, "{command}: {}", run.stderr);
    }
    let failed = node.boot().expect_err("an empty set must not boot");
    assert!(matches!(failed, BootError::NoRootHash { .. }), "{failed}");
    assert_eq!(node.boot().unwrap().set, SetSelect::A);
}
