//! Exclusive locks for the node's writers (invariant I6): one per OS disk, one per datastore, one per state
//! directory. A second writer fails at once with an error naming the holder.
//!
//! - The lock is the kernel's (`flock` on an open lock file), so a SIGKILLed holder never leaves a stale lock.
//! - Lock files live in a directory owned by this user (root on a node) that no one else may write, and are opened
//!   with `O_NOFOLLOW | O_CLOEXEC`; a lock file that is a link, not a regular file, owned by someone else or
//!   hard-linked elsewhere is refused. So no other user can make root truncate or write any other file through a
//!   lock. The machine-wide directory is under `/run` (root's alone), not `/run/lock`, which is world-writable on many
//!   hosts: there any user could pre-create the directory and so refuse every writer.
//! - Disk and datastore locks are keyed by what they protect, not by the path that names it: a file or directory by
//!   its device and inode, a loop device by its backing file's, another block device by its device number, in the
//!   machine-wide directory ([`machine_lock_dir`]). Two sysroots, a symlink, an image file and the loop devices over
//!   it, all naming one disk, share one lock.
//! - The holder writes its pid into the file after locking; a refused writer names that pid and its command line.
//! - Released on drop: the file is unlinked while still locked, so lock files do not pile up. A waiter that had
//!   opened the unlinked file notices (the path no longer names its inode) and starts over.

use rustix::fs::{FlockOperation, Mode, OFlags};
use snafu::{ResultExt, Snafu, ensure};
use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// The machine-wide lock directory of a root process (see [`machine_lock_dir`]).
pub const ROOT_LOCK_DIR: &str = "/run/abupdate";

/// How often acquisition starts over after losing a race with a releasing holder, before it gives up.
const MAX_ATTEMPTS: usize = 64;

#[derive(Debug, Snafu)]
#[snafu(visibility(pub(crate)))]
pub enum LockError {
    #[snafu(display(
        "{resource} is in use: {holder} holds lock {}. Wait for it to finish.",
        path.display()
    ))]
    Held {
        resource: String,
        path: PathBuf,
        holder: String,
    },

    #[snafu(display("Failed to find what to lock for {resource}: cannot stat {}: {source}", path.display()))]
    Identify {
        resource: String,
        path: PathBuf,
        source: std::io::Error,
    },

    #[snafu(display("Failed to create lock directory {}: {source}", dir.display()))]
    CreateDir {
        dir: PathBuf,
        source: std::io::Error,
    },

    #[snafu(display("Refusing lock directory {}: {problem}", dir.display()))]
    UnsafeDir { dir: PathBuf, problem: String },

    #[snafu(display("Failed to open lock file {}: {source}", path.display()))]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },

    #[snafu(display("Refusing lock file {}: {problem}", path.display()))]
    UnsafeFile { path: PathBuf, problem: String },

    #[snafu(display("Failed to lock {}: {source}", path.display()))]
    Flock {
        path: PathBuf,
        source: std::io::Error,
    },

    #[snafu(display("Lock file {} kept being replaced while it was being taken; giving up", path.display()))]
    Unstable { path: PathBuf },

    #[snafu(display("Failed to write the holder's pid into lock file {}: {source}", path.display()))]
    WritePid {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A held lock; released when dropped (or when the process dies).
#[derive(Debug)]
#[must_use = "the lock is released as soon as it is dropped"]
pub struct Lock {
    file: File,
    path: PathBuf,
    resource: String,
    /// `(device, inode)` of the locked file, to unlink only our own file on release.
    identity: (u64, u64),
}

impl Lock {
    /// The lock of the OS disk at `disk` (a block device, a loop device or a disk-image file; a symlink to one is
    /// followed), in [`machine_lock_dir`]. Every writer of the disk takes it: updog's update commands, signpost's
    /// mutating commands, the API.
    pub fn disk(disk: &Path) -> Result<Self, LockError> {
        let resource = format!("OS disk {}", disk.display());
        let key = lock_key(disk, &resource)?;
        Self::at(
            &machine_lock_dir().join(format!("disk-{key}.lock")),
            resource,
        )
    }

    /// The lock of the datastore whose data directory is `dir` (followed through links), in
    /// [`machine_lock_dir`]. Every writer of the datastore takes it: migrator, the API's commits.
    pub fn datastore(dir: &Path) -> Result<Self, LockError> {
        let resource = format!("datastore {}", dir.display());
        let key = lock_key(dir, &resource)?;
        Self::at(
            &machine_lock_dir().join(format!("datastore-{key}.lock")),
            resource,
        )
    }

    /// The lock file at `path`, for `resource` (named in errors): its directory is created (0755) when missing and
    /// must be owned by this user (or root) and writable by no one else.
    pub fn at(path: &Path, resource: impl Into<String>) -> Result<Self, LockError> {
        let resource = resource.into();
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            ensure_private_dir(dir)?;
        }
        for _ in 0..MAX_ATTEMPTS {
            let Some(file) = open_lock_file(path)? else {
                // A releasing holder unlinked it between our open and our check: start over.
                continue;
            };
            let metadata = file.metadata().context(OpenSnafu { path })?;
            match rustix::fs::flock(&file, FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => {}
                Err(rustix::io::Errno::WOULDBLOCK) => {
                    return HeldSnafu {
                        resource,
                        path,
                        holder: describe_holder(file),
                    }
                    .fail();
                }
                Err(e) => return Err(std::io::Error::from(e)).context(FlockSnafu { path }),
            }
            // A holder that was releasing may have unlinked this file after we opened it: then it locks nothing.
            let identity = (metadata.dev(), metadata.ino());
            let current = fs::symlink_metadata(path).map(|m| (m.dev(), m.ino()));
            if current.is_ok_and(|current| current == identity) {
                let mut lock = Self {
                    file,
                    path: path.to_path_buf(),
                    resource,
                    identity,
                };
                lock.write_pid()?;
                return Ok(lock);
            }
        }
        UnstableSnafu { path }.fail()
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What the lock protects, as errors name it ("OS disk /dev/vda").
    pub fn resource(&self) -> &str {
        &self.resource
    }

    /// Whether this is the lock of the OS disk at `disk`: a proof-token check for functions that write the disk.
    #[must_use]
    pub fn is_disk_lock_for(&self, disk: &Path) -> bool {
        lock_key(disk, "")
            .is_ok_and(|key| self.path == machine_lock_dir().join(format!("disk-{key}.lock")))
    }

    /// Only the holder writes, after locking: a reader sees the old pid or the new one.
    fn write_pid(&mut self) -> Result<(), LockError> {
        let path = &self.path;
        self.file
            .set_len(0)
            .and_then(|()| self.file.seek(SeekFrom::Start(0)))
            .and_then(|_| {
                self.file
                    .write_all(format!("{}\n", std::process::id()).as_bytes())
            })
            .context(WritePidSnafu { path })
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        // Unlinked while still locked (the file is closed, and the lock released, after this): a waiter either
        // opens a new file or notices that its file is gone.
        let ours =
            fs::symlink_metadata(&self.path).is_ok_and(|m| (m.dev(), m.ino()) == self.identity);
        if ours && let Err(e) = fs::remove_file(&self.path) {
            log::debug!("Failed to remove lock file {}: {e}", self.path.display());
        }
    }
}

/// Where disk and datastore locks live: [`ROOT_LOCK_DIR`] for root (a node's writers all run as root); for
/// another user, who can write only image files it owns, `$XDG_RUNTIME_DIR/abupdate`, else
/// `<temp dir>/abupdate-<uid>`. Not under any sysroot: two sysroots naming one disk must meet in one place.
pub fn machine_lock_dir() -> PathBuf {
    let uid = rustix::process::geteuid();
    if uid.is_root() {
        return PathBuf::from(ROOT_LOCK_DIR);
    }
    match std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from) {
        Some(runtime) if runtime.is_absolute() && runtime.is_dir() => runtime.join("abupdate"),
        _ => std::env::temp_dir().join(format!("abupdate-{}", uid.as_raw())),
    }
}

/// What identifies the thing at `path`: an image file's (or directory's) device and inode; a loop device's backing
/// file's, so that the image file and every loop device over it share one lock; any other block device's number.
fn lock_key(path: &Path, resource: &str) -> Result<String, LockError> {
    let metadata = fs::metadata(path).context(IdentifySnafu { resource, path })?;
    let (major, minor) = (rustix::fs::major, rustix::fs::minor);
    let inode_key = |metadata: &fs::Metadata| {
        format!(
            "ino-{}:{}-{}",
            major(metadata.dev()),
            minor(metadata.dev()),
            metadata.ino()
        )
    };
    if !metadata.file_type().is_block_device() {
        return Ok(inode_key(&metadata));
    }
    let (dev_major, dev_minor) = (major(metadata.rdev()), minor(metadata.rdev()));
    let backing = loop_backing_file(dev_major, dev_minor)
        .and_then(|file| fs::metadata(file).ok())
        .filter(fs::Metadata::is_file);
    Ok(match backing {
        Some(file) => inode_key(&file),
        None => format!("blk-{dev_major}:{dev_minor}"),
    })
}

/// The file a loop device reads and writes, from sysfs; none for other devices, an unbound loop device, or a
/// backing file that was deleted (then the device is its only name).
fn loop_backing_file(major: u32, minor: u32) -> Option<PathBuf> {
    let text =
        fs::read_to_string(format!("/sys/dev/block/{major}:{minor}/loop/backing_file")).ok()?;
    let path = text.strip_suffix('\n').unwrap_or(&text);
    (!path.is_empty() && !path.ends_with(" (deleted)")).then(|| PathBuf::from(path))
}

/// Creates `dir` when missing and checks that it is a real directory that only this user (or root) can write.
fn ensure_private_dir(dir: &Path) -> Result<(), LockError> {
    if fs::symlink_metadata(dir).is_err() {
        if let Some(parent) = dir.parent() {
            fs::create_dir_all(parent).context(CreateDirSnafu { dir: parent })?;
        }
        match fs::DirBuilder::new().mode(0o755).create(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(source) => return Err(source).context(CreateDirSnafu { dir }),
        }
    }
    let metadata = fs::symlink_metadata(dir).context(CreateDirSnafu { dir })?;
    let problem = |problem: String| UnsafeDirSnafu { dir, problem };
    ensure!(
        !metadata.file_type().is_symlink(),
        problem("it is a symbolic link".into())
    );
    ensure!(metadata.is_dir(), problem("it is not a directory".into()));
    let me = rustix::process::geteuid().as_raw();
    let owners = if me == 0 {
        "root".to_string()
    } else {
        format!("uid {me} or root")
    };
    ensure!(
        metadata.uid() == me || metadata.uid() == 0,
        problem(format!(
            "it is owned by uid {}, not by {owners}",
            metadata.uid()
        ))
    );
    ensure!(
        metadata.mode() & 0o022 == 0,
        problem(format!(
            "others can write it (mode {:o}); it must be writable by its owner only",
            metadata.mode() & 0o7777
        ))
    );
    Ok(())
}

/// Opens (creating) the lock file without following a link, and checks that it is a private regular file; none when
/// the file was unlinked (by a holder releasing it) before the check.
fn open_lock_file(path: &Path) -> Result<Option<File>, LockError> {
    let flags =
        OFlags::RDWR | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK;
    let file = match rustix::fs::open(path, flags, Mode::from_raw_mode(0o644)) {
        Ok(fd) => File::from(fd),
        Err(rustix::io::Errno::LOOP) => {
            return UnsafeFileSnafu {
                path,
                problem: "it is a symbolic link",
            }
            .fail();
        }
        Err(e) => return Err(std::io::Error::from(e)).context(OpenSnafu { path }),
    };
    let metadata = file.metadata().context(OpenSnafu { path })?;
    if metadata.nlink() == 0 {
        return Ok(None);
    }
    let problem = |problem: String| UnsafeFileSnafu { path, problem };
    ensure!(
        metadata.is_file(),
        problem("it is not a regular file".into())
    );
    let me = rustix::process::geteuid().as_raw();
    ensure!(
        metadata.uid() == me,
        problem(format!(
            "it is owned by uid {}, not by uid {me}",
            metadata.uid()
        ))
    );
    ensure!(
        metadata.nlink() == 1,
        problem(format!("it has {} hard links", metadata.nlink()))
    );
    Ok(Some(file))
}

/// "pid N (command line)" of the holder, from the pid it wrote into the lock file.
fn describe_holder(mut file: File) -> String {
    let mut text = String::new();
    let pid: Option<u32> = file
        .seek(SeekFrom::Start(0))
        .and_then(|_| file.read_to_string(&mut text))
        .ok()
        .and_then(|_| text.trim().parse().ok());
    // The holder writes its pid just after locking; in that window the kernel's lock table names it.
    let Some(pid) = pid.or_else(|| flock_holder(&file)) else {
        return "a process that has not written its pid yet".into();
    };
    let command = fs::read(format!("/proc/{pid}/cmdline"))
        .map(|raw| {
            String::from_utf8_lossy(&raw)
                .split('\0')
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default();
    if command.is_empty() {
        format!("pid {pid}")
    } else {
        format!("pid {pid} ({command})")
    }
}

/// The pid holding a `flock` on `file`, from `/proc/locks` (`1: FLOCK ADVISORY WRITE 1234 00:2d:5678 0 EOF`;
/// waiters' lines carry `->` and hold nothing).
fn flock_holder(file: &File) -> Option<u32> {
    let metadata = file.metadata().ok()?;
    let device = metadata.dev();
    let wanted = format!(
        "{:02x}:{:02x}:{}",
        rustix::fs::major(device),
        rustix::fs::minor(device),
        metadata.ino()
    );
    let locks = fs::read_to_string("/proc/locks").ok()?;
    locks.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        (fields.get(1) == Some(&"FLOCK") && fields.get(5) == Some(&wanted.as_str()))
            .then(|| fields.get(4)?.parse().ok())
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{PermissionsExt, symlink};

    #[test]
    fn a_second_lock_fails_fast_naming_the_holder_and_the_file_goes_on_release() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run/abupdate/updog.lock");
        let held = Lock::at(&path, "updog's state").unwrap();
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            format!("{}\n", std::process::id())
        );
        let err = Lock::at(&path, "updog's state").unwrap_err();
        let message = err.to_string();
        assert!(matches!(err, LockError::Held { .. }), "{message}");
        assert!(
            message.starts_with(&format!(
                "updog's state is in use: pid {} (",
                std::process::id()
            )),
            "{message}"
        );
        assert!(message.contains(&path.display().to_string()), "{message}");
        drop(held);
        assert!(!path.exists(), "released lock files are removed");
        let again = Lock::at(&path, "updog's state").unwrap();
        assert_eq!(again.path(), path);
    }

    #[test]
    fn a_holder_that_has_not_written_its_pid_yet_is_named_from_the_kernels_lock_table() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.lock");
        let held = Lock::at(&path, "x").unwrap();
        // As in the instant between flock and the pid write.
        fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(0)
            .unwrap();
        let err = Lock::at(&path, "x").unwrap_err();
        assert!(
            err.to_string()
                .starts_with(&format!("x is in use: pid {} (", std::process::id())),
            "{err}"
        );
        drop(held);
    }

    #[test]
    fn a_stale_pid_from_a_dead_holder_does_not_block() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.lock");
        fs::write(&path, "999999\n").unwrap();
        let _lock = Lock::at(&path, "x").unwrap();
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            format!("{}\n", std::process::id())
        );
    }

    #[test]
    fn a_symlink_at_the_lock_path_is_refused_and_its_target_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        fs::write(&victim, "root-owned contents").unwrap();
        let path = dir.path().join("x.lock");
        symlink(&victim, &path).unwrap();
        let err = Lock::at(&path, "x").unwrap_err();
        assert!(err.to_string().contains("it is a symbolic link"), "{err}");
        assert_eq!(fs::read_to_string(&victim).unwrap(), "root-owned contents");
    }

    #[test]
    fn a_hard_link_or_a_fifo_at_the_lock_path_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        fs::write(&victim, "contents").unwrap();
        let path = dir.path().join("x.lock");
        fs::hard_link(&victim, &path).unwrap();
        let err = Lock::at(&path, "x").unwrap_err();
        assert!(err.to_string().contains("it has 2 hard links"), "{err}");
        assert_eq!(fs::read_to_string(&victim).unwrap(), "contents");

        let fifo = dir.path().join("fifo.lock");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        let err = Lock::at(&fifo, "x").unwrap_err();
        assert!(
            err.to_string().contains("it is not a regular file"),
            "{err}"
        );
    }

    #[test]
    fn a_world_writable_or_linked_lock_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let open = dir.path().join("open");
        fs::create_dir(&open).unwrap();
        fs::set_permissions(&open, fs::Permissions::from_mode(0o1777)).unwrap();
        let err = Lock::at(&open.join("x.lock"), "x").unwrap_err();
        assert!(
            err.to_string().contains("others can write it (mode 1777)"),
            "{err}"
        );
        assert!(!open.join("x.lock").exists());

        let linked = dir.path().join("linked");
        symlink(dir.path(), &linked).unwrap();
        let err = Lock::at(&linked.join("x.lock"), "x").unwrap_err();
        assert!(err.to_string().contains("it is a symbolic link"), "{err}");
    }

    #[test]
    fn disk_locks_are_keyed_by_the_disk_not_the_path_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let disk = dir.path().join("disk.img");
        fs::write(&disk, [0u8; 512]).unwrap();
        let other_name = dir.path().join("same-disk");
        symlink(&disk, &other_name).unwrap();
        let held = Lock::disk(&disk).unwrap();
        assert!(held.is_disk_lock_for(&other_name));
        let err = Lock::disk(&other_name).unwrap_err();
        assert!(
            err.to_string()
                .starts_with(&format!("OS disk {} is in use: pid ", other_name.display())),
            "{err}"
        );
        let other_disk = dir.path().join("other.img");
        fs::write(&other_disk, [0u8; 512]).unwrap();
        assert!(!held.is_disk_lock_for(&other_disk));
        let _other = Lock::disk(&other_disk).unwrap();
        drop(held);
        let _again = Lock::disk(&other_name).unwrap();
    }

    #[test]
    fn a_missing_disk_is_named() {
        let err = Lock::disk(Path::new("/nonexistent/disk.img")).unwrap_err();
        assert!(
            err.to_string().starts_with(
                "Failed to find what to lock for OS disk /nonexistent/disk.img: cannot stat"
            ),
            "{err}"
        );
    }
}
