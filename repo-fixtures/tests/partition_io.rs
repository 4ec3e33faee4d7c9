//! Writing a partition of the inactive set, as the update-image step will: through the partition's node when it
//! exists, else through the disk at the partition's offset. The bytes land exactly in the partition, and writing
//! past its end never touches the next one.

mod gpt_support;

use gpt_support::{loop_lock, loop_node, require_loop_tools};
use repo_fixtures::disk::{Bank, DiskBuilder, FixtureDisk, Role};
use repo_fixtures::node::Node;
use signpost::State;
use std::io::{ErrorKind, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

// The low byte of the index, on purpose: the pattern repeats every 256 bytes.
#[allow(clippy::cast_possible_truncation)]
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn read_image(path: &Path, offset: u64, len: usize) -> Vec<u8> {
    let mut buf = vec![0; len];
    std::fs::File::open(path)
        .unwrap()
        .read_exact_at(&mut buf, offset)
        .unwrap();
    buf
}

/// Fills the inactive ROOT (B) through signpost's target, then checks the image file: the whole partition holds
/// the pattern, the partitions around it are untouched.
fn fill_inactive_root(node: &Node, disk: &FixtureDisk, expect_node: Option<&Path>) {
    node.boot().unwrap();
    let state = State::load(&node.location()).unwrap();
    let inactive = state.inactive_set().expect("two sets");
    let root_b = disk.partition(Role::Root(Bank::B)).unwrap();
    assert_eq!(inactive.root.number, root_b.number);
    assert_eq!(inactive.root.node.as_deref(), expect_node);
    assert_eq!(inactive.root.len(), root_b.len_bytes());
    assert_eq!(inactive.root.disk_offset(), root_b.offset_bytes());
    assert!(
        !state.active_set().contains(root_b.number),
        "never the running set"
    );

    let data = pattern(usize::try_from(root_b.len_bytes()).unwrap(), 7);
    let mut part = inactive.root.open_write().unwrap();
    part.write_all(&data).unwrap();
    // One byte more does not fit, and is not written anywhere.
    assert_eq!(
        part.write(&[0xee]).unwrap_err().kind(),
        ErrorKind::StorageFull
    );
    part.sync_all().unwrap();

    let mut back = Vec::new();
    let mut part = inactive.root.open_read().unwrap();
    part.seek(SeekFrom::Start(0)).unwrap();
    part.read_to_end(&mut back).unwrap();
    assert!(back == data, "read back through the same target");

    // What reached the image file, at the partition's offset.
    assert!(read_image(&disk.path, root_b.offset_bytes(), data.len()) == data);
    let before = disk.partition(Role::Boot(Bank::B)).unwrap();
    let after = disk.partition(Role::Hash(Bank::B)).unwrap();
    assert!(
        read_image(
            &disk.path,
            before.offset_bytes() + before.len_bytes() - 4096,
            4096
        )
        .iter()
        .all(|&b| b == 0)
    );
    assert!(
        read_image(&disk.path, after.offset_bytes(), 4096)
            .iter()
            .all(|&b| b == 0)
    );
}

#[test]
fn an_image_file_partition_is_written_at_its_offset() {
    let dir = tempfile::tempdir().unwrap();
    let (node, disk) = Node::create_with(dir.path(), &DiskBuilder::new()).unwrap();
    fill_inactive_root(&node, &disk, None);
}

#[test]
fn a_loop_device_partition_is_written_through_its_node() {
    if !require_loop_tools() {
        return;
    }
    let _lock = loop_lock();
    let dir = tempfile::tempdir().unwrap();
    let (node, disk, device) = loop_node(dir.path(), true);
    let root_b = device.partition_node(disk.number(Role::Root(Bank::B)));
    fill_inactive_root(&node, &disk, Some(&root_b));
}

#[test]
fn a_loop_device_without_partition_nodes_is_written_at_the_offset() {
    if !require_loop_tools() {
        return;
    }
    let _lock = loop_lock();
    let dir = tempfile::tempdir().unwrap();
    let (node, disk, _device) = loop_node(dir.path(), false);
    fill_inactive_root(&node, &disk, None);
}
