//! Real OS images for the fixtures, built without root: ROOT is an ext4 filesystem made from a directory
//! (`mke2fs -d`) holding `/usr/lib/os-release` and `/usr/share/updog/root.json`; HASH is its dm-verity hash tree
//! (`veritysetup format`, which works on plain files); BOOT is a small ext4 holding the root hash, where the
//! simulated boot finds it. Fixed UUIDs, salt, hash seed and clock make every image byte-for-byte reproducible.
//!
//! Files are read back out of an image with `debugfs -R "cat PATH"`, again without mounting anything.

use snafu::{OptionExt, ResultExt, Snafu, ensure};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The fixed clock the filesystems are stamped with (2026-01-01T00:00:00Z).
const FIXED_EPOCH: &str = "1767225600";
/// The fixed filesystem UUID, hash seed and verity UUID.
const FIXED_UUID: &str = "6b636168-7420-6568-2070-6c616e657421";
/// The fixed verity salt (hex).
const FIXED_SALT: &str = "7570646f67";

/// The file in the BOOT image that holds the hex dm-verity root hash of the matching ROOT image.
pub const ROOT_HASH_FILE: &str = "/root-hash";

/// What goes into one release's images.
#[derive(Debug, Clone)]
pub struct OsImageSpec {
    pub variant: String,
    pub arch: String,
    pub version: String,
    pub build_id: String,
    /// The trusted root.json the image ships for updog.
    pub updog_root_json: Vec<u8>,
    /// Size of the ROOT filesystem in bytes (a multiple of 4096).
    pub root_size: u64,
    /// Size of the BOOT filesystem in bytes (a multiple of 4096).
    pub boot_size: u64,
    /// Bytes of generated content ([`write_content`]) to put in ROOT under [`CONTENT_DIR`] besides the two
    /// files; 0 for none (the small default images).
    pub content_bytes: u64,
}

impl OsImageSpec {
    /// The os-release text the ROOT image carries, in upstream's keys.
    pub fn os_release(&self) -> String {
        format!(
            "NAME=Bottlerocket\nID=bottlerocket\nVERSION=\"{v} (fixture)\"\nPRETTY_NAME=\"Bottlerocket OS {v} ({variant})\"\nVARIANT_ID={variant}\nVERSION_ID={v}\nBUILD_ID={build}\n",
            v = self.version,
            variant = self.variant,
            build = self.build_id
        )
    }
}

/// The three uncompressed images of one release and the root hash that binds ROOT to HASH.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OsImages {
    pub boot: Vec<u8>,
    pub root: Vec<u8>,
    pub hash: Vec<u8>,
    /// The dm-verity root hash (hex) of `root` with the tree `hash`.
    pub root_hash: String,
}

/// Builds BOOT, ROOT and HASH for `spec`, using `scratch` for the intermediate files.
pub fn build_os_images(spec: &OsImageSpec, scratch: &Path) -> Result<OsImages, ImageError> {
    let tree = scratch.join("root-tree");
    let updog_dir = tree.join("usr/share/updog");
    let lib_dir = tree.join("usr/lib");
    for dir in [&updog_dir, &lib_dir] {
        std::fs::create_dir_all(dir).context(IoSnafu { path: dir })?;
    }
    write(&lib_dir.join("os-release"), spec.os_release().as_bytes())?;
    write(&updog_dir.join("root.json"), &spec.updog_root_json)?;
    if spec.content_bytes > 0 {
        let seed = fnv1a(format!("{}/{}/{}", spec.variant, spec.arch, spec.version).as_bytes());
        write_content(
            &tree.join(CONTENT_DIR.trim_start_matches('/')),
            spec.content_bytes,
            seed,
        )?;
    }

    let root_img = scratch.join("root.ext4");
    make_ext4(&tree, &root_img, spec.root_size)?;
    let hash_img = scratch.join("root.verity");
    let root_hash = verity_format(&root_img, &hash_img)?;

    let boot_tree = scratch.join("boot-tree");
    std::fs::create_dir_all(&boot_tree).context(IoSnafu { path: &boot_tree })?;
    write(
        &boot_tree.join(ROOT_HASH_FILE.trim_start_matches('/')),
        root_hash.as_bytes(),
    )?;
    let boot_img = scratch.join("boot.ext4");
    make_ext4(&boot_tree, &boot_img, spec.boot_size)?;

    let read = |p: &Path| std::fs::read(p).context(IoSnafu { path: p });
    Ok(OsImages {
        boot: read(&boot_img)?,
        root: read(&root_img)?,
        hash: read(&hash_img)?,
        root_hash,
    })
}

/// Where a ROOT image's generated content lives.
pub const CONTENT_DIR: &str = "/usr/share/fixture-content";

/// The largest generated file: big enough that a large ROOT needs few inodes (mke2fs gets `-N 128`), small enough
/// that a modest one still has several of each kind.
const CONTENT_FILE_MAX: u64 = 4 << 20;

/// Writes `total` bytes of files into `dir`, deterministic from `seed`, that compress with lz4 about as a real root
/// filesystem does (2-3x): alternately text (`doc-NNN.txt`: lines of words from a fixed made-up vocabulary) and
/// binary-ish data (`lib-NNN.so`: runs of random bytes, the incompressible part of code and compressed assets,
/// between runs of small structured records, like tables and relocations).
pub fn write_content(dir: &Path, total: u64, seed: u64) -> Result<(), ImageError> {
    std::fs::create_dir_all(dir).context(IoSnafu { path: dir })?;
    let mut rng = XorShift(seed | 1);
    let vocabulary: Vec<Vec<u8>> = (0..2048)
        .map(|_| {
            let len = 3 + rng.below(8);
            (0..len).map(|_| b'a' + rng.byte_below(26)).collect()
        })
        .collect();
    let file_size = (total / 16).clamp(4096, CONTENT_FILE_MAX);
    let mut written = 0u64;
    let mut index = 0u32;
    while written < total {
        let size = file_size.min(total - written);
        let capacity = usize::try_from(size).expect("a content file fits in memory");
        let (name, data) = if index.is_multiple_of(2) {
            (
                format!("doc-{index:03}.txt"),
                text(&mut rng, &vocabulary, capacity),
            )
        } else {
            (format!("lib-{index:03}.so"), binary(&mut rng, capacity))
        };
        write(&dir.join(name), &data)?;
        written += size;
        index += 1;
    }
    Ok(())
}

/// Lines of 6-15 words from `vocabulary`, `len` bytes.
fn text(rng: &mut XorShift, vocabulary: &[Vec<u8>], len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 16);
    while out.len() < len {
        let words = 6 + rng.below(10);
        for w in 0..words {
            if w > 0 {
                out.push(b' ');
            }
            out.extend_from_slice(rng.pick(vocabulary).as_slice());
        }
        out.push(b'\n');
    }
    out.truncate(len);
    out
}

/// Alternating runs: random bytes, then records of a small counter, a tag from a short list and zero padding.
fn binary(rng: &mut XorShift, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 4096);
    let mut counter = rng.next();
    while out.len() < len {
        let random_run = 256 + rng.below(1024);
        for _ in 0..random_run / 8 {
            out.extend_from_slice(&rng.next().to_le_bytes());
        }
        let records = 16 + rng.below(64);
        for _ in 0..records {
            counter = counter.wrapping_add(1 + rng.below(4));
            // The low 32 bits: a record field, as in a relocation table.
            out.extend_from_slice(&counter.to_le_bytes()[..4]);
            out.extend_from_slice(&[0x48, 0x89, 0xe5, rng.byte_below(4), 0, 0, 0, 0]);
            out.extend_from_slice(&[0; 4]);
        }
    }
    out.truncate(len);
    out
}

/// A small deterministic generator (xorshift64): the content only has to look varied, and be the same every build.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// A value in `0..n` (`n` > 0; the slight modulo bias does not matter here).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn byte_below(&mut self, n: u8) -> u8 {
        u8::try_from(self.below(u64::from(n))).expect("below a u8")
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        let index = self.below(items.len() as u64);
        &items[usize::try_from(index).expect("below a slice length")]
    }
}

/// FNV-1a: a seed from a release's name, the same on every machine.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// `mke2fs -t ext4 -d TREE` into a new file of `size` bytes, reproducibly.
fn make_ext4(tree: &Path, image: &Path, size: u64) -> Result<(), ImageError> {
    let _ = std::fs::remove_file(image);
    let mut command = Command::new("mke2fs");
    command
        .args([
            "-q", "-t", "ext4", "-b", "4096", "-N", "128", "-m", "0", "-U", FIXED_UUID,
        ])
        .arg("-E")
        .arg(format!("hash_seed={FIXED_UUID},root_owner=0:0"))
        .arg("-d")
        .arg(tree)
        .arg("-F")
        .arg(image)
        .arg(format!("{}k", size / 1024))
        .env("E2FSPROGS_FAKE_TIME", FIXED_EPOCH)
        .env("SOURCE_DATE_EPOCH", FIXED_EPOCH);
    run(command, "mke2fs")?;
    stamp_fixed_times(tree, image)
}

/// mke2fs -d copies each file's atime, mtime and ctime from the source tree, and ctime cannot be set from user
/// space: rewrite all three inside the image (`debugfs -w`) so the bytes do not depend on when the tree was made.
fn stamp_fixed_times(tree: &Path, image: &Path) -> Result<(), ImageError> {
    let mut paths = vec!["/".to_string()];
    let mut stack = vec![tree.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).context(IoSnafu { path: &dir })? {
            let path = entry.context(IoSnafu { path: &dir })?.path();
            let inside = path.strip_prefix(tree).expect("walked from the tree");
            paths.push(format!("/{}", inside.display()));
            if path.is_dir() {
                stack.push(path);
            }
        }
    }
    paths.sort();
    let commands: String = paths
        .iter()
        .flat_map(|p| {
            ["atime", "mtime", "ctime"]
                .map(|field| format!("set_inode_field {p} {field} @{FIXED_EPOCH}\n"))
        })
        .collect();
    let script = image.with_extension("debugfs-times");
    write(&script, commands.as_bytes())?;
    let mut command = Command::new("debugfs");
    command
        .arg("-w")
        .arg("-f")
        .arg(&script)
        .arg(image)
        .env("E2FSPROGS_FAKE_TIME", FIXED_EPOCH);
    run(command, "debugfs -w")?;
    std::fs::remove_file(&script).context(IoSnafu { path: &script })
}

/// `veritysetup format DATA HASH`, returning the root hash.
pub fn verity_format(data: &Path, hash: &Path) -> Result<String, ImageError> {
    let _ = std::fs::remove_file(hash);
    let mut command = Command::new("veritysetup");
    command
        .arg("format")
        .arg(format!("--salt={FIXED_SALT}"))
        .arg(format!("--uuid={FIXED_UUID}"))
        .arg(data)
        .arg(hash);
    let stdout = run(command, "veritysetup format")?;
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("Root hash:"))
        .map(|h| h.trim().to_string())
        .context(NoRootHashSnafu { output: stdout })
}

/// `veritysetup verify DATA HASH ROOT_HASH`: whether `data` matches its hash tree and root hash.
pub fn verity_verify(data: &Path, hash: &Path, root_hash: &str) -> Result<bool, ImageError> {
    let status = Command::new("veritysetup")
        .arg("verify")
        .arg(data)
        .arg(hash)
        .arg(root_hash)
        .output()
        .context(SpawnSnafu {
            tool: "veritysetup",
        })?
        .status;
    Ok(status.success())
}

/// Reads a file out of an ext4 image with `debugfs` (no mount, no root).
pub fn read_ext4_file(image: &Path, path: &str) -> Result<Vec<u8>, ImageError> {
    let output = Command::new("debugfs")
        .arg("-R")
        .arg(format!("cat {path}"))
        .arg(image)
        .output()
        .context(SpawnSnafu { tool: "debugfs" })?;
    // debugfs exits 0 even for a missing file or a device with no filesystem; it then says so on stderr, where a
    // success prints only its version banner ("debugfs 1.47.0 (5-Feb-2023)").
    let stderr = String::from_utf8_lossy(&output.stderr);
    let complaints: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.trim().is_empty() && !is_debugfs_banner(l))
        .collect();
    ensure!(
        output.status.success() && complaints.is_empty(),
        Ext4ReadSnafu {
            image,
            path,
            stderr: complaints.join("; "),
        }
    );
    Ok(output.stdout)
}

fn is_debugfs_banner(line: &str) -> bool {
    line.strip_prefix("debugfs ")
        .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
}

fn run(mut command: Command, tool: &'static str) -> Result<String, ImageError> {
    let output = command.output().context(SpawnSnafu { tool })?;
    ensure!(
        output.status.success(),
        ToolFailedSnafu {
            tool,
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        }
    );
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

fn write(path: &Path, data: &[u8]) -> Result<(), ImageError> {
    std::fs::write(path, data).context(IoSnafu { path })
}

#[derive(Debug, Snafu)]
pub enum ImageError {
    #[snafu(display("Image file {}: {source}", path.display()))]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[snafu(display("Failed to run {tool} (install it: e2fsprogs / cryptsetup-bin): {source}"))]
    Spawn {
        tool: &'static str,
        source: std::io::Error,
    },
    #[snafu(display("{tool} failed: {stderr}"))]
    ToolFailed { tool: &'static str, stderr: String },
    #[snafu(display("veritysetup printed no root hash: {output}"))]
    NoRootHash { output: String },
    #[snafu(display("Failed to read {path} from ext4 image {}: {stderr}", image.display()))]
    Ext4Read {
        image: PathBuf,
        path: String,
        stderr: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::require::require_tool;

    fn spec(version: &str) -> OsImageSpec {
        OsImageSpec {
            variant: "aws-dev".into(),
            arch: "x86_64".into(),
            version: version.into(),
            build_id: "fixture".into(),
            updog_root_json: br#"{"signed":{}}"#.to_vec(),
            root_size: 8 << 20,
            boot_size: 2 << 20,
            content_bytes: 0,
        }
    }

    fn tools_present() -> bool {
        ["mke2fs", "veritysetup", "debugfs"]
            .iter()
            .all(|t| require_tool(t))
    }

    #[test]
    fn images_are_reproducible_and_carry_the_release() {
        if !tools_present() {
            return;
        }
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let first = build_os_images(&spec("1.1.0"), a.path()).unwrap();
        let second = build_os_images(&spec("1.1.0"), b.path()).unwrap();
        assert_eq!(first, second, "same spec, same bytes");
        assert_eq!(first.root.len(), 8 << 20);
        assert_eq!(first.boot.len(), 2 << 20);
        assert_eq!(first.root_hash.len(), 64);

        let os_release =
            read_ext4_file(&a.path().join("root.ext4"), "/usr/lib/os-release").unwrap();
        assert!(
            String::from_utf8(os_release)
                .unwrap()
                .contains("VERSION_ID=1.1.0\n")
        );
        let root_json =
            read_ext4_file(&a.path().join("root.ext4"), "/usr/share/updog/root.json").unwrap();
        assert_eq!(root_json, br#"{"signed":{}}"#);
        let hash_in_boot = read_ext4_file(&a.path().join("boot.ext4"), ROOT_HASH_FILE).unwrap();
        assert_eq!(String::from_utf8(hash_in_boot).unwrap(), first.root_hash);
    }

    #[test]
    fn images_do_not_depend_on_when_they_were_built() {
        if !tools_present() {
            return;
        }
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let first = build_os_images(&spec("1.0.0"), a.path()).unwrap();
        // Later source files: ctime, which mke2fs copies and nothing can set, moves on by over a second.
        std::thread::sleep(std::time::Duration::from_millis(1100));
        let second = build_os_images(&spec("1.0.0"), b.path()).unwrap();
        assert!(first == second, "images built a second apart differ");
    }

    #[test]
    fn verity_catches_one_flipped_byte_in_root() {
        if !tools_present() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let images = build_os_images(&spec("1.2.0"), dir.path()).unwrap();
        let (root, hash) = (dir.path().join("root.ext4"), dir.path().join("root.verity"));
        assert!(verity_verify(&root, &hash, &images.root_hash).unwrap());
        let mut corrupt = images.root.clone();
        corrupt[5 << 20] ^= 0x01;
        std::fs::write(&root, &corrupt).unwrap();
        assert!(!verity_verify(&root, &hash, &images.root_hash).unwrap());
    }

    #[test]
    fn different_releases_have_different_root_hashes() {
        if !tools_present() {
            return;
        }
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let old = build_os_images(&spec("1.0.0"), a.path()).unwrap();
        let new = build_os_images(&spec("1.1.0"), b.path()).unwrap();
        assert_ne!(old.root_hash, new.root_hash);
    }

    #[test]
    fn reading_from_something_that_is_not_ext4_is_an_error() {
        if !tools_present() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let zeros = dir.path().join("zeros.img");
        std::fs::write(&zeros, vec![0u8; 2 << 20]).unwrap();
        let error = read_ext4_file(&zeros, ROOT_HASH_FILE).unwrap_err();
        assert!(error.to_string().contains(ROOT_HASH_FILE), "{error}");
    }

    #[test]
    fn reading_a_missing_file_names_it() {
        if !tools_present() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        build_os_images(&spec("1.0.0"), dir.path()).unwrap();
        let error = read_ext4_file(&dir.path().join("boot.ext4"), "/no/such/file").unwrap_err();
        assert!(error.to_string().contains("/no/such/file"), "{error}");
    }
}
