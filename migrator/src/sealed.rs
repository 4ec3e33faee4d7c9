//! Running a verified migration from memory: the decompressed binary goes into a sealed memfd
//! and is executed from there, so no executable file is ever written to disk (upstream uses the
//! `pentacle` crate for the same thing).
//!
//! How: `memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING)` (plus `MFD_EXEC` where the kernel
//! knows it, so a `vm.memfd_noexec` sysctl cannot make it non-executable), write the bytes, add
//! `F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE`, then run the program
//! `/proc/self/fd/<fd>` with `std::process::Command`. `/proc/self` is resolved by the child after
//! the fork, where the descriptor is still open (close-on-exec closes it only once the exec has
//! succeeded), so the kernel execs the sealed memfd itself: what `fexecve` does. The descriptor
//! does not leak into the migration. This works for ELF binaries; a `#!` script would fail,
//! because its interpreter would get a `/proc/self/fd/N` path that close-on-exec already closed
//! (migrations are compiled binaries).

use rustix::fs::{MemfdFlags, SealFlags};
use std::io::{self, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::Command;

/// A program held in a sealed memfd, ready to run.
#[derive(Debug)]
pub struct SealedProgram {
    memfd: OwnedFd,
    name: String,
}

impl SealedProgram {
    /// Copies `program` into a new sealed memfd named `name` (shown as `/memfd:<name>` in
    /// `/proc/<pid>/exe`).
    pub fn new(name: &str, program: &[u8]) -> io::Result<Self> {
        let base = MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING;
        let memfd = match rustix::fs::memfd_create(name, base | MemfdFlags::EXEC) {
            Ok(fd) => fd,
            // Kernels before 6.3 do not know MFD_EXEC (and make every memfd executable).
            Err(rustix::io::Errno::INVAL) => rustix::fs::memfd_create(name, base)?,
            Err(e) => return Err(e.into()),
        };
        let mut file = std::fs::File::from(memfd);
        file.write_all(program)?;
        let memfd = OwnedFd::from(file);
        rustix::fs::fcntl_add_seals(
            &memfd,
            SealFlags::SEAL | SealFlags::SHRINK | SealFlags::GROW | SealFlags::WRITE,
        )?;
        Ok(Self {
            memfd,
            name: name.to_string(),
        })
    }

    /// A command that runs the sealed program, with `argv[0]` set to its name. The child gets
    /// SIGKILL if migrator dies (`PR_SET_PDEATHSIG`), so a killed migrator never leaves a
    /// migration writing behind it. Keep `self` alive until the command has been spawned.
    #[must_use]
    pub fn command(&self) -> Command {
        let mut command = Command::new(format!("/proc/self/fd/{}", self.memfd.as_raw_fd()));
        command.arg0(&self.name);
        let parent = rustix::process::getpid();
        // SAFETY: prctl and getppid are single async-signal-safe system calls and touch no memory
        // of the parent (`parent` is a copied integer); they run in the forked child just before
        // exec. The workspace denies unsafe code; this hook is the one place migrator needs it
        // (std offers no safe way to run code between fork and exec).
        #[allow(unsafe_code)]
        unsafe {
            command.pre_exec(move || {
                rustix::process::set_parent_process_death_signal(Some(
                    rustix::process::Signal::KILL,
                ))
                .map_err(io::Error::from)?;
                // migrator may have died between the fork and the prctl: then no signal comes.
                if rustix::process::getppid() != Some(parent) {
                    return Err(io::Error::other(
                        "migrator exited before the migration started",
                    ));
                }
                Ok(())
            });
        }
        command
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The seals on the memfd (for tests and diagnostics).
    pub fn seals(&self) -> io::Result<SealFlags> {
        Ok(rustix::fs::fcntl_get_seals(&self.memfd)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_a_binary_from_a_sealed_memfd() {
        let program = std::fs::read("/bin/sh").unwrap();
        let sealed = SealedProgram::new("sealed-sh", &program).unwrap();
        let seals = sealed.seals().unwrap();
        assert!(
            seals
                .contains(SealFlags::SEAL | SealFlags::SHRINK | SealFlags::GROW | SealFlags::WRITE)
        );
        let output = sealed
            .command()
            .args(["-c", "readlink /proc/$$/exe; echo \"$0\"; exit 3"])
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(3));
        let stdout = String::from_utf8(output.stdout).unwrap();
        let mut lines = stdout.lines();
        let exe = lines.next().unwrap();
        assert!(exe.starts_with("/memfd:sealed-sh"), "{exe}");
        assert_eq!(lines.next(), Some("sealed-sh"));
    }

    #[test]
    fn a_sealed_memfd_cannot_be_changed() {
        let sealed = SealedProgram::new("sealed", b"\x7fELF").unwrap();
        let path = format!("/proc/self/fd/{}", sealed.memfd.as_raw_fd());
        let err = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|mut f| f.write_all(b"x"))
            .unwrap_err();
        assert_eq!(
            err.raw_os_error(),
            Some(rustix::io::Errno::PERM.raw_os_error()),
            "{err}"
        );
    }
}
