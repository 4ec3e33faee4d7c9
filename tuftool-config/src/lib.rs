//! Publisher side of the updater: a repository config (root.json, signing keys, URLs, expiry
//! policy), and the operations that build, refresh, rotate and validate a signed TUF repository
//! that Bottlerocket's `updog` (and ours) can load.
//!
//! Every entry point takes the current time explicitly, and role versions are explicit or
//! derived from it, so the same inputs (ed25519 keys, fixed clock) produce byte-identical
//! repositories. Signing is tough's (`SignedRole::new`); publication is atomic (see
//! [`RepoBuild::write`]). See README.md for the API and docs/publishing.md for the workflow.
//!
//! A deterministic repository, as a test fixture builds one:
//!
//! ```no_run
//! use std::num::NonZeroU64;
//! use tuftool_config::{RepoBuild, Role, RoleKeys, RootBuilder, SigningKey};
//!
//! # async fn fixture(dir: &std::path::Path, now: jiff::Timestamp) -> Result<(), Box<dyn std::error::Error>> {
//! let key = SigningKey::from_pem_file(dir.join("ed25519.pem")).await?;
//! let mut root = RootBuilder::new(now.checked_add(jiff::SignedDuration::from_hours(24 * 365))?);
//! for role in Role::ALL {
//!     root = root.role(role, vec![key.clone()], NonZeroU64::MIN);
//! }
//! root.sign(now).await?.write(dir.join("root.json"))?;
//! RepoBuild::new(dir.join("root.json"), RoleKeys::all_roles(&[key]), now)
//!     .targets_dir(dir.join("images"))
//!     .manifest(dir.join("manifest.json"))
//!     .write(dir.join("repo"))
//!     .await?;
//! # Ok(()) }
//! ```

pub mod canonical;
pub mod cli;
pub mod commands;
pub mod config;
mod durable;
pub mod error;
pub mod expiry;
pub mod keys;
mod publish;
mod published;
pub mod refresh;
pub mod repo;
pub mod role;
pub mod root;
mod targets;
pub mod validate;

pub use config::{ConfigKeys, RepoConfig, RoleConfig, RolesConfig};
pub use error::{Error, Result};
pub use expiry::{ExpirationPolicy, Expirations, Lifetime, RoleExpirations};
pub use keys::{KeyInfo, KeyType, PemKeySource, RoleKeys, SigningKey, generate_key};
pub use refresh::Refresh;
pub use repo::{BuildSummary, RepoBuild, RoleVersions};
pub use role::Role;
pub use root::{RootBuilder, SignedRoot, rotate_root};
pub use targets::MANIFEST_TARGET;
pub use validate::{Problem, RepoValidator, RoleState, ValidationReport};
