//! The `signpost` binary: exit codes, stdout and stderr, on a small GPT image (the full Bottlerocket layout and
//! the cgpt/sgdisk comparisons are in repo-fixtures' tests, which may use this crate but not the other way round).

use gptman::{GPT, GPTPartitionEntry};
use signpost::guid::{
    BOTTLEROCKET_BOOT, BOTTLEROCKET_HASH, BOTTLEROCKET_PRIVATE, BOTTLEROCKET_ROOT, Guid,
};
use std::path::Path;
use std::process::{Command, Output};

const SECTOR: u64 = 512;

/// A 4 MiB image: BOOT/ROOT/HASH of A (1–3) and B (4–6), PRIVATE (7); BOOT-A priority 1 and successful; and a
/// sysroot whose kernel command line names BOOT-A.
fn node(dir: &Path) -> (String, String) {
    let image = dir.join("disk.img");
    let file = std::fs::File::create(&image).unwrap();
    file.set_len(8192 * SECTOR).unwrap();
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&image)
        .unwrap();
    let mut table = GPT::new_from(&mut f, SECTOR, [9; 16]).unwrap();
    let types = [
        BOTTLEROCKET_BOOT,
        BOTTLEROCKET_ROOT,
        BOTTLEROCKET_HASH,
        BOTTLEROCKET_BOOT,
        BOTTLEROCKET_ROOT,
        BOTTLEROCKET_HASH,
        BOTTLEROCKET_PRIVATE,
    ];
    for (i, type_guid) in types.into_iter().enumerate() {
        let number = u32::try_from(i + 1).unwrap();
        let start = 2048 + u64::from(number - 1) * 512;
        table[number] = GPTPartitionEntry {
            partition_type_guid: type_guid.disk_bytes(),
            unique_partition_guid: [u8::try_from(number).unwrap(); 16],
            starting_lba: start,
            ending_lba: start + 511,
            attribute_bits: if number == 1 {
                (1 << 48) | (1 << 56)
            } else {
                0
            },
            partition_name: "x".into(),
        };
    }
    table.write_into(&mut f).unwrap();
    let sysroot = dir.join("sysroot");
    std::fs::create_dir_all(sysroot.join("proc")).unwrap();
    let boot_a = Guid::from_disk_bytes([1; 16]);
    std::fs::write(
        sysroot.join("proc/cmdline"),
        format!(
            "root=/dev/dm-0 {}\n",
            signpost::cmdline::boot_partition_args(boot_a)
        ),
    )
    .unwrap();
    (image.display().to_string(), sysroot.display().to_string())
}

fn signpost(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_signpost"))
        .args(args)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap()
}

#[test]
fn status_prints_upstreams_format() {
    let dir = tempfile::tempdir().unwrap();
    let (disk, sysroot) = node(dir.path());
    let out = signpost(&["--sysroot", &sysroot, "--disk", &disk, "status"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        format!(
            "OS disk: {disk}\n\
             Set A:   boot={disk}#1 root={disk}#2 hash={disk}#3 priority=1 tries_left=0 successful=true\n\
             Set B:   boot={disk}#4 root={disk}#5 hash={disk}#6 priority=0 tries_left=0 successful=false\n\
             Active:  Set A\n\
             Next:    Set A\n"
        )
    );
    assert_eq!(text(&out.stderr), "");
}

#[test]
fn a_refusal_exits_1_with_the_partition_and_its_bits_on_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let (disk, sysroot) = node(dir.path());
    let out = signpost(&[
        "upgrade-to-inactive",
        "--sysroot",
        &sysroot,
        "--disk",
        &disk,
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stdout), "");
    assert_eq!(
        text(&out.stderr),
        format!(
            "Inactive partition {disk}#4 has not been marked valid for upgrade (priority=0 tries_left=0 successful=false)\n"
        )
    );
}

#[test]
fn commands_change_the_bits_and_print_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (disk, sysroot) = node(dir.path());
    for command in [
        "clear-inactive",
        "mark-inactive-valid",
        "upgrade-to-inactive",
        "mark-successful-boot",
    ] {
        let out = signpost(&["--sysroot", &sysroot, "--disk", &disk, command]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{command}: {}",
            text(&out.stderr)
        );
        assert_eq!(
            (text(&out.stdout), text(&out.stderr)),
            ("", ""),
            "{command}"
        );
    }
    let out = signpost(&["--sysroot", &sysroot, "--disk", &disk, "status", "--json"]);
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["sets"]["B"]["priority"], 2);
    assert_eq!(status["sets"]["B"]["tries_left"], 1);
    assert_eq!(status["next"], "B");
    let out = signpost(&[
        "--sysroot",
        &sysroot,
        "--disk",
        &disk,
        "has-boot-ever-succeeded",
    ]);
    assert_eq!((out.status.code(), text(&out.stdout)), (Some(0), "true\n"));
}

#[test]
fn has_boot_ever_succeeded_prints_nothing_on_a_fresh_disk() {
    let dir = tempfile::tempdir().unwrap();
    let (disk, sysroot) = node(dir.path());
    let out = signpost(&[
        "--sysroot",
        &sysroot,
        "--disk",
        &disk,
        "has-boot-ever-succeeded",
    ]);
    assert_eq!(
        (out.status.code(), text(&out.stdout), text(&out.stderr)),
        (Some(0), "", "")
    );
}

#[test]
fn usage_errors_exit_1_and_help_exits_0() {
    let out = signpost(&[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("Usage: signpost"));
    let out = signpost(&["no-such-command"]);
    assert_eq!(out.status.code(), Some(1));
    let out = signpost(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).contains("rollback-to-inactive"));
}

#[test]
fn a_fifo_at_the_kernel_command_line_is_refused_at_once_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let (disk, sysroot) = node(dir.path());
    let cmdline = Path::new(&sysroot).join("proc/cmdline");
    std::fs::remove_file(&cmdline).unwrap();
    assert!(
        Command::new("mkfifo")
            .arg(&cmdline)
            .status()
            .unwrap()
            .success()
    );
    let before = std::fs::read(&disk).unwrap();
    for command in ["status", "mark-successful-boot"] {
        let started = std::time::Instant::now();
        let out = signpost(&["--sysroot", &sysroot, "--disk", &disk, command]);
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "{command} hung"
        );
        assert_eq!(out.status.code(), Some(1), "{command}");
        let err = text(&out.stderr);
        assert!(
            err.contains(&cmdline.display().to_string()) && err.contains("not a regular file"),
            "{err}"
        );
    }
    assert!(std::fs::read(&disk).unwrap() == before);
}
