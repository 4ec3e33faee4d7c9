//! The update metadata of a Bottlerocket-compatible A/B updater, format-compatible with
//! upstream Bottlerocket's `update_metadata` crate and `updata` tool:
//!
//! - [`manifest`]: `manifest.json` — the available updates (variant, arch, version,
//!   max_version, waves, images) and the migration chain (`"(X, Y)"` keys), with every key
//!   checked and every error naming the key, update and file;
//! - [`waves`]: wave policy files, the seed-keyed schedules they produce, and
//!   [`waves::update_ready`] and [`waves::ready_at`], the one place wave timing is computed (with
//!   upstream's absolute-seed timing, kept on purpose);
//! - [`migrations`]: [`find_migrations`], the migrations to run between two versions;
//! - [`release`]: `Release.toml`, the source of the migration chain;
//! - [`updata`]: the `updata` authoring commands;
//! - [`atomic`]: the crash-safe file replacement every write uses (nodeio's, through a symlink).
//!
//! The formats are documented in `docs/formats.md` at the workspace root.
//!
//! ```
//! use update_metadata::{Manifest, find_migrations};
//! use chrono::{DateTime, Utc};
//! use semver::Version;
//!
//! let manifest = Manifest::from_slice(br#"{
//!   "updates": [{"variant": "aws-dev", "arch": "x86_64", "version": "1.1.0",
//!                "max_version": "1.1.0",
//!                "waves": {"0": "2024-10-24T21:00:00Z", "1024": "2024-10-25T20:00:00Z"},
//!                "images": {"boot": "b.lz4", "root": "r.lz4", "hash": "h.lz4"}}],
//!   "migrations": {"(1.0.0, 1.1.0)": ["migrate_v1.1.0_a.lz4"]}
//! }"#)?;
//!
//! let update = &manifest.updates[0];
//! let now: DateTime<Utc> = "2024-10-25T20:00:00Z".parse()?;
//! assert!(update.update_ready(2000, now)); // the last wave has started
//! assert!(!update.update_ready(2000, now - chrono::TimeDelta::seconds(1)));
//!
//! let (from, to) = (Version::new(1, 0, 0), Version::new(1, 1, 0));
//! assert_eq!(find_migrations(&from, &to, &manifest)?, ["migrate_v1.1.0_a.lz4"]);
//! assert_eq!(manifest.to_json_pretty()?.lines().next(), Some("{"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod de;

pub mod atomic;
pub mod manifest;
pub mod migration_key;
pub mod migrations;
pub mod release;
pub mod updata;
pub mod waves;

pub use manifest::{
    Images, Manifest, NewUpdate, UnorderedWaves, Update, UpdateSelector, load_file, write_file,
};
pub use migration_key::{format_migration_key, parse_migration_key};
pub use migrations::find_migrations;
pub use release::Release;
pub use waves::{
    BUILTIN_POLICIES, BuiltinPolicy, MAX_SEED, PolicyWave, StartAfter, Wave, WavePolicy,
    builtin_policy, parse_offset, ready_at, seed_for_percentage, update_ready, update_wave,
};
