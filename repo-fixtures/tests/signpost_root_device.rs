//! Without a PARTUUID on the kernel command line, the active set is the one holding the partition under the
//! sysroot's filesystem, and without `--disk` the OS disk is that partition's disk (found through sysfs). Needs root:
//! a loop device, `partx -a`, `mkfs.ext4` and `mount`.

mod gpt_support;

use gpt_support::{loop_lock, require_loop_tools};
use repo_fixtures::disk::{Bank, DiskBuilder, FixtureDisk, Role};
use repo_fixtures::loop_device::LoopDevice;
use repo_fixtures::require::require_tool;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A filesystem mounted for the test, unmounted on drop.
struct Mount {
    target: PathBuf,
}

impl Mount {
    fn ext4(device: &Path, target: &Path) -> Mount {
        run("mkfs.ext4", &["-q", "-F", &device.to_string_lossy()]);
        std::fs::create_dir_all(target).unwrap();
        run(
            "mount",
            &[&device.to_string_lossy(), &target.to_string_lossy()],
        );
        Mount {
            target: target.to_path_buf(),
        }
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let status = Command::new("umount").arg(&self.target).status();
        if !status.is_ok_and(|s| s.success()) {
            eprintln!("umount {} failed", self.target.display());
        }
    }
}

fn run(program: &str, args: &[&str]) {
    let output = Command::new(program).args(args).output().unwrap();
    assert!(
        output.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `signpost ARGS` in-process; exit code, stdout, stderr.
fn signpost(args: &[&str]) -> (i32, String, String) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = signpost::cli::main_with(
        std::iter::once("signpost").chain(args.iter().copied()),
        &mut out,
        &mut err,
    );
    (
        code,
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}

fn status_json(args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["status", "--json"]);
    let (code, out, err) = signpost(&all);
    assert_eq!(code, 0, "{err}");
    serde_json::from_str(&out).unwrap()
}

fn attached(dir: &Path) -> (FixtureDisk, LoopDevice) {
    let disk = DiskBuilder::new().build(dir.join("disk.img")).unwrap();
    let mut device = LoopDevice::attach(&disk.path).unwrap();
    device
        .add_partition_nodes(u32::try_from(disk.partitions.len()).unwrap())
        .unwrap();
    (disk, device)
}

#[test]
fn the_disk_and_the_active_set_come_from_the_root_device() {
    if !require_loop_tools() || !require_tool("mkfs.ext4") || !require_tool("mount") {
        return;
    }
    let _lock = loop_lock();
    let dir = tempfile::tempdir().unwrap();
    let (disk, device) = attached(dir.path());
    let loop_path = device.path().display().to_string();

    for (bank, set) in [(Bank::A, "A"), (Bank::B, "B")] {
        let root = disk.number(Role::Root(bank));
        let mount = Mount::ext4(
            &device.partition_node(root),
            &dir.path().join(format!("root-{set}")),
        );
        let sysroot = mount.target.to_string_lossy().into_owned();

        // No --disk: sysfs says which disk.
        let s = status_json(&["--sysroot", &sysroot]);
        assert_eq!(s["os_disk"], loop_path.as_str());
        assert_eq!(s["active"], set);
        assert_eq!(s["active_from"]["from"], "root-device");
        assert_eq!(s["active_from"]["partition"], root);
        assert_eq!(
            s["sets"][set]["root"]["node"],
            device.partition_node(root).display().to_string()
        );

        // The explicit disk, the same one.
        let s = status_json(&["--sysroot", &sysroot, "--disk", &loop_path]);
        assert_eq!(s["active"], set);

        // The image file behind the loop device is another disk as far as the root device goes.
        let (code, out, err) = signpost(&[
            "--sysroot",
            &sysroot,
            "--disk",
            &disk.path.to_string_lossy(),
            "status",
        ]);
        assert_eq!((code, out.as_str()), (1, ""));
        assert!(
            err.ends_with(&format!(
                "The filesystem at {sysroot} is on {loop_path}, not on the OS disk {}\n",
                disk.path.display()
            )),
            "{err}"
        );

        // A write (mark-successful-boot) goes to the set the root device is in.
        let (code, _, err) = signpost(&["--sysroot", &sysroot, "mark-successful-boot"]);
        assert_eq!(code, 0, "{err}");
        let s = status_json(&["--sysroot", &sysroot]);
        assert_eq!(s["sets"][set]["successful"], true);
        assert_eq!(s["boot_ever_succeeded"], true);
        drop(mount);
    }
}

#[test]
fn the_kernel_command_line_wins_over_the_root_device() {
    if !require_loop_tools() || !require_tool("mkfs.ext4") || !require_tool("mount") {
        return;
    }
    let _lock = loop_lock();
    let dir = tempfile::tempdir().unwrap();
    let (disk, device) = attached(dir.path());
    let mount = Mount::ext4(
        &device.partition_node(disk.number(Role::Root(Bank::A))),
        &dir.path().join("root-a"),
    );
    // The filesystem under the sysroot is ROOT-A, but the command line in it names set B.
    let boot_b = disk.partition(Role::Boot(Bank::B)).unwrap();
    std::fs::create_dir_all(mount.target.join("proc")).unwrap();
    std::fs::write(
        mount.target.join("proc/cmdline"),
        format!(
            "root=/dev/dm-0 {}\n",
            signpost::cmdline::boot_partition_args(boot_b.partuuid)
        ),
    )
    .unwrap();
    let s = status_json(&["--sysroot", &mount.target.to_string_lossy()]);
    assert_eq!(s["active"], "B");
    assert_eq!(s["active_from"]["from"], "cmdline");
}
