//! Bottlerocket's OS disk layout (twoliter `partyplanner`), built on a disk-image file.
//!
//! Partitions in upstream's order, with upstream's labels and type GUIDs:
//!
//! | # | label | type |
//! |---|-------|------|
//! | 1 | `BIOS-BOOT` | BIOS boot (`ef02`) |
//! | 2 | `EFI-SYSTEM` | EFI system |
//! | 3–6 | `BOTTLEROCKET-{BOOT,ROOT,HASH,RESERVED}-A` | Bottlerocket BOOT, ROOT, HASH, RESERVED |
//! | 7 | `EFI-BACKUP` | EFI backup |
//! | 8–11 | `BOTTLEROCKET-{BOOT,ROOT,HASH,RESERVED}-B` | as A |
//! | 12 | `BOTTLEROCKET-PRIVATE` | Bottlerocket PRIVATE |
//! | 13 | (empty: labelled at first boot) | Bottlerocket DATA, unique GUID `5b94e8df-…` |
//!
//! A single-bank disk (an image without in-place updates) has no EFI-BACKUP and no B bank, so PRIVATE is 7 and
//! DATA 8. Partitions are aligned to 1 MiB, with 1 MiB before the first (the primary GPT) and after the last (the
//! backup GPT). The bits are those of a freshly built image: BOOT-A priority 1 and successful (`sgdisk -A
//! 3:set:48 -A 3:set:56`), everything else zero.
//!
//! Sizes are [`LayoutSizes::upstream`] (partyplanner's, per GiB of image) or, by default, [`LayoutSizes::for_tests`]
//! (a 33 MiB sparse file). To put the disk on a loop device see [`crate::loop_device`].

use gptman::{GPT, GPTPartitionEntry};
use signpost::gptprio::GptPrio;
use signpost::guid::{
    BIOS_BOOT, BOTTLEROCKET_BOOT, BOTTLEROCKET_DATA, BOTTLEROCKET_HASH, BOTTLEROCKET_PRIVATE,
    BOTTLEROCKET_RESERVED, BOTTLEROCKET_ROOT, DATA_PREFERRED_PARTGUID, EFI_BACKUP, EFI_SYSTEM,
    Guid,
};
use snafu::{ResultExt, Snafu};
use std::fs::OpenOptions;
use std::io;
use std::path::{Path, PathBuf};

pub const SECTOR_SIZE: u64 = 512;
const SECTORS_PER_MIB: u64 = (1 << 20) / SECTOR_SIZE;

/// What a partition is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    BiosBoot,
    EfiSystem,
    EfiBackup,
    Boot(Bank),
    Root(Bank),
    Hash(Bank),
    Reserved(Bank),
    Private,
    Data,
}

/// Bank A (the first set) or B.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Bank {
    A,
    B,
}

impl Role {
    /// Upstream's GPT label.
    pub fn label(self) -> String {
        let bank = |prefix: &str, bank: Bank| format!("BOTTLEROCKET-{prefix}-{bank:?}");
        match self {
            Role::BiosBoot => "BIOS-BOOT".into(),
            Role::EfiSystem => "EFI-SYSTEM".into(),
            Role::EfiBackup => "EFI-BACKUP".into(),
            Role::Boot(b) => bank("BOOT", b),
            Role::Root(b) => bank("ROOT", b),
            Role::Hash(b) => bank("HASH", b),
            Role::Reserved(b) => bank("RESERVED", b),
            Role::Private => "BOTTLEROCKET-PRIVATE".into(),
            Role::Data => String::new(),
        }
    }

    pub fn type_guid(self) -> Guid {
        match self {
            Role::BiosBoot => BIOS_BOOT,
            Role::EfiSystem => EFI_SYSTEM,
            Role::EfiBackup => EFI_BACKUP,
            Role::Boot(_) => BOTTLEROCKET_BOOT,
            Role::Root(_) => BOTTLEROCKET_ROOT,
            Role::Hash(_) => BOTTLEROCKET_HASH,
            Role::Reserved(_) => BOTTLEROCKET_RESERVED,
            Role::Private => BOTTLEROCKET_PRIVATE,
            Role::Data => BOTTLEROCKET_DATA,
        }
    }
}

/// Partition sizes in MiB.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayoutSizes {
    pub bios: u64,
    pub efi: u64,
    pub boot: u64,
    pub root: u64,
    pub hash: u64,
    pub reserved: u64,
    pub private: u64,
    pub data: u64,
}

impl LayoutSizes {
    /// Small enough for a test (33 MiB for two banks, sparse), large enough for a real ext4 root and its hash
    /// tree.
    pub fn for_tests() -> Self {
        Self {
            bios: 1,
            efi: 1,
            boot: 2,
            root: 8,
            hash: 1,
            reserved: 1,
            private: 2,
            data: 2,
        }
    }

    /// partyplanner's sizes for a two-bank OS image of `os_image_gib` GiB with a data partition of
    /// `data_image_gib` GiB on the same disk ("unified"): per GiB BOOT 20, ROOT 460, HASH 5, RESERVED 15 − EFI,
    /// PRIVATE 24 − GPT×2 − BIOS − 1; BIOS 4, EFI 5.
    pub fn upstream(os_image_gib: u64, data_image_gib: u64) -> Self {
        const GPT: u64 = 1;
        const BIOS: u64 = 4;
        const EFI: u64 = 5;
        const DATA_A_IN_OS_IMAGE: u64 = 1;
        Self {
            bios: BIOS,
            efi: EFI,
            boot: os_image_gib * 20,
            root: os_image_gib * 460,
            hash: os_image_gib * 5,
            reserved: os_image_gib * 15 - EFI,
            private: os_image_gib * 24 - (GPT * 2 + BIOS) - DATA_A_IN_OS_IMAGE,
            data: data_image_gib * 1024,
        }
    }
}

/// One partition of the planned layout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedPartition {
    pub number: u32,
    pub role: Role,
    pub label: String,
    pub type_guid: Guid,
    pub partuuid: Guid,
    pub first_lba: u64,
    pub last_lba: u64,
    pub flags: GptPrio,
}

impl PlannedPartition {
    pub fn len_bytes(&self) -> u64 {
        (self.last_lba - self.first_lba + 1) * SECTOR_SIZE
    }

    pub fn offset_bytes(&self) -> u64 {
        self.first_lba * SECTOR_SIZE
    }
}

#[derive(Debug, Snafu)]
pub enum DiskError {
    #[snafu(display("Failed to create disk image {}", path.display()))]
    Create { path: PathBuf, source: io::Error },

    #[snafu(display("Failed to lay out the GPT of {}", path.display()))]
    Layout {
        path: PathBuf,
        source: gptman::Error,
    },

    #[snafu(display("Failed to write the GPT of {}", path.display()))]
    WriteTable {
        path: PathBuf,
        source: signpost::Error,
    },
}

/// Options for a Bottlerocket-layout disk; [`DiskBuilder::build`] writes it.
#[derive(Clone, Debug)]
pub struct DiskBuilder {
    sizes: LayoutSizes,
    dual_bank: bool,
    seed: u64,
}

impl Default for DiskBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl DiskBuilder {
    /// Two banks, test sizes, seed 0.
    #[must_use]
    pub fn new() -> Self {
        Self {
            sizes: LayoutSizes::for_tests(),
            dual_bank: true,
            seed: 0,
        }
    }

    #[must_use]
    pub fn sizes(mut self, sizes: LayoutSizes) -> Self {
        self.sizes = sizes;
        self
    }

    /// One bank (an image without in-place updates): every partition of bank A twice as large.
    #[must_use]
    pub fn single_bank(mut self) -> Self {
        self.dual_bank = false;
        self
    }

    /// The seed of the disk's and partitions' unique GUIDs (the same seed gives the same GUIDs), so two disks in
    /// one test can differ.
    #[must_use]
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// The partitions, in order, and the disk's size in bytes.
    pub fn plan(&self) -> (Vec<PlannedPartition>, u64) {
        let s = &self.sizes;
        let bank_scale = if self.dual_bank { 1 } else { 2 };
        let mut roles: Vec<(Role, u64)> = vec![(Role::BiosBoot, s.bios)];
        let banks: &[Bank] = if self.dual_bank {
            &[Bank::A, Bank::B]
        } else {
            &[Bank::A]
        };
        for &bank in banks {
            let efi = if bank == Bank::A {
                Role::EfiSystem
            } else {
                Role::EfiBackup
            };
            roles.extend([
                (efi, s.efi * bank_scale),
                (Role::Boot(bank), s.boot * bank_scale),
                (Role::Root(bank), s.root * bank_scale),
                (Role::Hash(bank), s.hash * bank_scale),
                (Role::Reserved(bank), s.reserved * bank_scale),
            ]);
        }
        roles.extend([(Role::Private, s.private), (Role::Data, s.data)]);

        let mut next_mib = 1;
        let mut partitions = Vec::new();
        for (index, (role, mib)) in roles.into_iter().enumerate() {
            let number = u32::try_from(index + 1).expect("a handful of partitions");
            let mut flags = GptPrio::default();
            if role == Role::Boot(Bank::A) {
                flags.set_priority(1);
                flags.set_successful(true);
            }
            let partuuid = if role == Role::Data {
                DATA_PREFERRED_PARTGUID
            } else {
                derived_guid(self.seed, number)
            };
            partitions.push(PlannedPartition {
                number,
                role,
                label: role.label(),
                type_guid: role.type_guid(),
                partuuid,
                first_lba: next_mib * SECTORS_PER_MIB,
                last_lba: (next_mib + mib) * SECTORS_PER_MIB - 1,
                flags,
            });
            next_mib += mib;
        }
        // The backup GPT's MiB.
        let disk_bytes = (next_mib + 1) << 20;
        (partitions, disk_bytes)
    }

    /// Creates (or replaces) the image file at `path` with a protective MBR and the layout's GPT.
    pub fn build(&self, path: impl AsRef<Path>) -> Result<FixtureDisk, DiskError> {
        let path = path.as_ref().to_path_buf();
        let (partitions, disk_bytes) = self.plan();
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .context(CreateSnafu { path: &path })?;
        file.set_len(disk_bytes)
            .context(CreateSnafu { path: &path })?;
        let disk_guid = derived_guid(self.seed, 0);
        let mut table = GPT::new_from(&mut file, SECTOR_SIZE, disk_guid.disk_bytes())
            .context(LayoutSnafu { path: &path })?;
        for p in &partitions {
            table[p.number] = GPTPartitionEntry {
                partition_type_guid: p.type_guid.disk_bytes(),
                unique_partition_guid: p.partuuid.disk_bytes(),
                starting_lba: p.first_lba,
                ending_lba: p.last_lba,
                attribute_bits: p.flags.bits(),
                partition_name: p.label.as_str().into(),
            };
        }
        GPT::write_protective_mbr_into(&mut file, SECTOR_SIZE)
            .context(LayoutSnafu { path: &path })?;
        signpost::table::write_table(&mut file, &path, &mut table)
            .context(WriteTableSnafu { path: &path })?;
        Ok(FixtureDisk {
            path,
            partitions,
            disk_guid,
            size_bytes: disk_bytes,
        })
    }
}

/// A built disk image and its plan.
#[derive(Clone, Debug)]
pub struct FixtureDisk {
    pub path: PathBuf,
    pub partitions: Vec<PlannedPartition>,
    pub disk_guid: Guid,
    pub size_bytes: u64,
}

impl FixtureDisk {
    /// The partition playing `role`.
    pub fn partition(&self, role: Role) -> Option<&PlannedPartition> {
        self.partitions.iter().find(|p| p.role == role)
    }

    /// The partition number playing `role`; panics when the layout has none (a test bug).
    pub fn number(&self, role: Role) -> u32 {
        self.partition(role)
            .unwrap_or_else(|| panic!("the layout has no {role:?} partition"))
            .number
    }
}

/// A version-4-shaped GUID from `seed` and `index` (splitmix64), so fixtures are reproducible.
fn derived_guid(seed: u64, index: u32) -> Guid {
    let mut state = seed ^ (u64::from(index) << 32) ^ 0x5349_474e_504f_5354;
    let mut next = || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let mut canonical = [0u8; 16];
    canonical[..8].copy_from_slice(&next().to_be_bytes());
    canonical[8..].copy_from_slice(&next().to_be_bytes());
    canonical[6] = (canonical[6] & 0x0f) | 0x40;
    canonical[8] = (canonical[8] & 0x3f) | 0x80;
    let text = canonical
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>();
    let text = format!(
        "{}-{}-{}-{}-{}",
        &text[..8],
        &text[8..12],
        &text[12..16],
        &text[16..20],
        &text[20..]
    );
    Guid::parse(&text).expect("a well-formed GUID")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mib(lba: u64) -> u64 {
        lba / SECTORS_PER_MIB
    }

    #[test]
    fn upstream_sizes_of_a_2_gib_image_match_partyplanner() {
        let builder = DiskBuilder::new().sizes(LayoutSizes::upstream(2, 1));
        let (partitions, bytes) = builder.plan();
        let offsets: Vec<(String, u64, u64)> = partitions
            .iter()
            .map(|p| {
                (
                    p.label.clone(),
                    mib(p.first_lba),
                    mib(p.last_lba + 1) - mib(p.first_lba),
                )
            })
            .collect();
        let expect = |label: &str, offset, size| (label.to_string(), offset, size);
        assert_eq!(
            offsets,
            [
                expect("BIOS-BOOT", 1, 4),
                expect("EFI-SYSTEM", 5, 5),
                expect("BOTTLEROCKET-BOOT-A", 10, 40),
                expect("BOTTLEROCKET-ROOT-A", 50, 920),
                expect("BOTTLEROCKET-HASH-A", 970, 10),
                expect("BOTTLEROCKET-RESERVED-A", 980, 25),
                expect("EFI-BACKUP", 1005, 5),
                expect("BOTTLEROCKET-BOOT-B", 1010, 40),
                expect("BOTTLEROCKET-ROOT-B", 1050, 920),
                expect("BOTTLEROCKET-HASH-B", 1970, 10),
                expect("BOTTLEROCKET-RESERVED-B", 1980, 25),
                expect("BOTTLEROCKET-PRIVATE", 2005, 41),
                expect("", 2046, 1024),
            ]
        );
        // PRIVATE ends at 2046 MiB as in partyplanner's 2048 MiB OS image (whose last 2 MiB are a 1 MiB DATA-A
        // and the backup GPT); here the 1 GiB DATA partition follows on the same disk, then the backup GPT.
        assert_eq!(bytes, (2046 + 1024 + 1) << 20);
    }

    #[test]
    fn a_single_bank_doubles_bank_a_and_renumbers_private_and_data() {
        let (partitions, _) = DiskBuilder::new().single_bank().plan();
        let roles: Vec<_> = partitions.iter().map(|p| (p.number, p.role)).collect();
        assert_eq!(
            roles,
            [
                (1, Role::BiosBoot),
                (2, Role::EfiSystem),
                (3, Role::Boot(Bank::A)),
                (4, Role::Root(Bank::A)),
                (5, Role::Hash(Bank::A)),
                (6, Role::Reserved(Bank::A)),
                (7, Role::Private),
                (8, Role::Data),
            ]
        );
        assert_eq!(partitions[3].len_bytes(), 16 << 20);
    }

    #[test]
    fn guids_are_reproducible_per_seed_and_unique() {
        let (a, _) = DiskBuilder::new().plan();
        let (b, _) = DiskBuilder::new().plan();
        let (c, _) = DiskBuilder::new().seed(7).plan();
        assert_eq!(a, b);
        assert_ne!(a[2].partuuid, c[2].partuuid);
        let mut guids: Vec<_> = a.iter().map(|p| p.partuuid).collect();
        guids.sort();
        guids.dedup();
        assert_eq!(guids.len(), a.len());
        assert_eq!(a.last().unwrap().partuuid, DATA_PREFERRED_PARTGUID);
        let text = a[0].partuuid.to_string();
        assert_eq!(&text[14..15], "4", "version 4: {text}");
    }
}
