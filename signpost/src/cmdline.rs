//! The kernel command line: which partition set the node booted.
//!
//! Upstream GRUB runs `gptprio.next -d boot_dev -u boot_uuid` and boots the chosen BOOT partition's `grub.cfg`,
//! whose kernel line names the set's ROOT and HASH partitions by offset from the BOOT partition's PARTUUID:
//!
//! ```text
//! root=/dev/dm-0 dm-mod.create="root,,,ro,0 SECTORS verity 1 PARTUUID=<boot>/PARTNROFF=1 PARTUUID=<boot>/PARTNROFF=2 ..."
//! ```
//!
//! signpost reads every `PARTUUID=<guid>` on `/proc/cmdline` (with an optional `/PARTNROFF=<n>`, meaning the
//! partition `n` numbers after it, as the kernel does): the set holding those partitions is the active one. The
//! simulated boot writes the same fragment, from [`boot_partition_args`].

use crate::guid::Guid;
use std::fmt;

const PARTUUID: &str = "PARTUUID=";
const PARTNROFF: &str = "/PARTNROFF=";
const GUID_LEN: usize = 36;

/// One `PARTUUID=<guid>[/PARTNROFF=<n>]` on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartitionRef {
    pub partuuid: Guid,
    /// The `PARTNROFF` offset, 0 without one.
    pub offset: u32,
}

impl fmt::Display for PartitionRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PARTUUID}{}", self.partuuid)?;
        if self.offset != 0 {
            write!(f, "{PARTNROFF}{}", self.offset)?;
        }
        Ok(())
    }
}

/// Every well-formed `PARTUUID=` reference on `cmdline`, in order (also inside quoted values such as
/// `dm-mod.create="..."`). Malformed ones are skipped: they name no partition the kernel could have used either.
pub fn partition_refs(cmdline: &str) -> Vec<PartitionRef> {
    let mut refs = Vec::new();
    let mut rest = cmdline;
    while let Some(at) = rest.find(PARTUUID) {
        rest = &rest[at + PARTUUID.len()..];
        let Some(partuuid) = rest.get(..GUID_LEN).and_then(Guid::parse) else {
            continue;
        };
        rest = &rest[GUID_LEN..];
        let mut offset = 0;
        if let Some(after) = rest.strip_prefix(PARTNROFF) {
            let digits = after.bytes().take_while(u8::is_ascii_digit).count();
            match after[..digits].parse() {
                Ok(n) => {
                    offset = n;
                    rest = &after[digits..];
                }
                // `/PARTNROFF=` without a number: the kernel rejects the whole reference.
                Err(_) => continue,
            }
        }
        refs.push(PartitionRef { partuuid, offset });
    }
    refs
}

/// The fragment of upstream GRUB's kernel line that names a set by its BOOT partition's PARTUUID:
/// `PARTUUID=<boot>/PARTNROFF=1 PARTUUID=<boot>/PARTNROFF=2` (the set's ROOT and HASH, the two partitions after
/// BOOT in Bottlerocket's layout).
pub fn boot_partition_args(boot_partuuid: Guid) -> String {
    let root = PartitionRef {
        partuuid: boot_partuuid,
        offset: 1,
    };
    let hash = PartitionRef {
        partuuid: boot_partuuid,
        offset: 2,
    };
    format!("{root} {hash}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOOT: &str = "0f3b2c1a-9d8e-4f7a-b6c5-d4e3f2a1b0c9";

    #[test]
    fn reads_upstream_grubs_dm_verity_line() {
        let cmdline = format!(
            "BOOT_IMAGE=(hd0,gpt8)/vmlinuz console=ttyS0 root=/dev/dm-0 rootwait ro \
             dm-mod.create=\"root,,,ro,0 1884160 verity 1 PARTUUID={BOOT}/PARTNROFF=1 \
             PARTUUID={BOOT}/PARTNROFF=2 4096 4096 235520 1 sha256 abcd 1234\" -- systemd.log_target=journal-or-kmsg\n"
        );
        let boot = Guid::parse(BOOT).unwrap();
        assert_eq!(
            partition_refs(&cmdline),
            [
                PartitionRef {
                    partuuid: boot,
                    offset: 1
                },
                PartitionRef {
                    partuuid: boot,
                    offset: 2
                }
            ]
        );
    }

    #[test]
    fn the_written_fragment_reads_back() {
        let boot = Guid::parse(BOOT).unwrap();
        let args = boot_partition_args(boot);
        assert_eq!(
            args,
            format!("PARTUUID={BOOT}/PARTNROFF=1 PARTUUID={BOOT}/PARTNROFF=2")
        );
        assert_eq!(partition_refs(&args).len(), 2);
    }

    #[test]
    fn a_plain_partuuid_has_offset_zero_and_case_does_not_matter() {
        let refs = partition_refs(&format!("root=PARTUUID={} ro", BOOT.to_uppercase()));
        assert_eq!(
            refs,
            [PartitionRef {
                partuuid: Guid::parse(BOOT).unwrap(),
                offset: 0
            }]
        );
    }

    #[test]
    fn malformed_references_are_skipped() {
        assert!(partition_refs("root=/dev/vda1 ro").is_empty());
        assert!(partition_refs("root=PARTUUID=0f3b2c1a-9d8e ro").is_empty());
        assert!(partition_refs(&format!("root=PARTUUID={BOOT}/PARTNROFF=x")).is_empty());
        assert_eq!(
            partition_refs(&format!("a=PARTUUID= b=PARTUUID={BOOT}")).len(),
            1
        );
    }
}
