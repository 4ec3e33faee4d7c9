//! Fixture releases with a ROOT of a chosen size (`--root-mib`): realistic compressible content that a node installs
//! and boots like the small default images.

use repo_fixtures::chain::{self, ARCHES, ChainOptions, VARIANTS};
use repo_fixtures::disk::DiskBuilder;
use repo_fixtures::images::{self, CONTENT_DIR};
use repo_fixtures::node::Node;
use repo_fixtures::require::require_tool;
use signpost::SetSelect;

fn tools() -> bool {
    ["mke2fs", "veritysetup", "debugfs"]
        .iter()
        .all(|t| require_tool(t))
}

fn root_json() -> Vec<u8> {
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(chain::fixture_root_json())
        .expect("fixture root")
}

#[test]
fn a_64_mib_root_compresses_like_a_real_one_and_boots() {
    if !tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let images = chain::release_images_sized(
        VARIANTS[0],
        ARCHES[0],
        "1.1.0",
        &root_json(),
        &dir.path().join("scratch"),
        64,
    )
    .expect("a 64 MiB release builds");
    assert_eq!(images.root.len(), 64 << 20);

    let compressed = chain::lz4_compress(&images.root);
    #[allow(clippy::cast_precision_loss)] // sizes of a few MiB: exact in f64
    let ratio = images.root.len() as f64 / compressed.len() as f64;
    eprintln!(
        "lz4: {} → {} bytes, {ratio:.2}x",
        images.root.len(),
        compressed.len()
    );
    assert!(
        (1.5..=10.0).contains(&ratio),
        "lz4 ratio {ratio:.2} ({} → {} bytes): not like a real root",
        images.root.len(),
        compressed.len()
    );

    // The content is really in the filesystem, not just padding.
    let root = dir.path().join("scratch/root.ext4");
    let doc = images::read_ext4_file(&root, &format!("{CONTENT_DIR}/doc-000.txt"))
        .expect("generated text in ROOT");
    assert!(doc.len() >= 1 << 20, "{} bytes", doc.len());
    assert!(doc.is_ascii() && doc.contains(&b'\n'));

    // A node with partitions for it installs and boots it: dm-verity passes over the whole 64 MiB.
    let (node, disk) = Node::create_with(
        &dir.path().join("node"),
        &DiskBuilder::new().sizes(chain::layout_for_root_mib(64)),
    )
    .unwrap();
    assert!(disk.size_bytes > 2 * (64 << 20));
    node.install(SetSelect::A, &images).expect("install");
    let booted = node.boot().expect("the large root boots");
    let release = booted.release.expect("a node with images");
    assert_eq!(release.version_id, "1.1.0");
    assert_eq!(release.root_hash, images.root_hash);
}

#[test]
fn large_roots_are_reproducible_and_differ_per_release() {
    if !tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let build = |version: &str, scratch: &str| {
        chain::release_images_sized(
            VARIANTS[0],
            ARCHES[0],
            version,
            &root_json(),
            &dir.path().join(scratch),
            16,
        )
        .unwrap()
    };
    let first = build("1.0.0", "a");
    assert_eq!(first, build("1.0.0", "b"), "same release, same bytes");
    assert_ne!(first.root_hash, build("1.2.0", "c").root_hash);
}

#[test]
fn a_root_below_the_default_size_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let error = chain::release_images_sized(VARIANTS[0], ARCHES[0], "1.0.0", b"{}", dir.path(), 4)
        .unwrap_err();
    assert!(error.to_string().contains("4 MiB"), "{error}");
}

#[test]
fn the_chain_publishes_the_chosen_root_size() {
    if !tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let options = ChainOptions {
        root_mib: 12,
        ..ChainOptions::default()
    };
    let steps = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(chain::build_chain(dir.path(), &options))
        .expect("the chain builds");
    let newest = steps.last().unwrap();
    let name = chain::image_names(VARIANTS[0], ARCHES[0], "1.2.0").root;
    let published = std::fs::read(newest.target_file(&name).unwrap()).unwrap();
    let root = lz4_flex::frame::FrameDecoder::new(published.as_slice());
    let len = std::io::copy(&mut { root }, &mut std::io::sink()).unwrap();
    assert_eq!(len, 12 << 20);
}
