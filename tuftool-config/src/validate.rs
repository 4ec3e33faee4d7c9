//! Validating a repository the way a client sees it, and reporting every problem found.
//!
//! The metadata is loaded through tough's `RepositoryLoader` from a trusted root (walking the
//! `N.root.json` chain, checking signatures, thresholds, versions, lengths and hashes). Expiry
//! is then checked against the given `now` for each role separately, instead of by tough
//! against the system clock, so that every expired role is reported, not only the first, and so
//! a repository can be validated for a future date ("will it still load next Tuesday?").
//! Then every target is fetched and its presence, length and sha256 are checked.

use crate::error::{self, Result};
use crate::published::{dir_url, load, metadata_dir, targets_dir};
use crate::role::Role;
use crate::targets::consistent_name;
use futures::StreamExt;
use jiff::Timestamp;
use serde::Serialize;
use sha2::{Digest, Sha256};
use snafu::ResultExt;
use std::fmt;
use std::path::Path;
use tough::schema::Target;
use tough::{DefaultTransport, Repository, TargetName, Transport, TransportErrorKind};
use url::Url;

/// One problem found in a repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Problem {
    /// tough refused the metadata (signature, threshold, chain, version, hash, missing file...).
    /// Nothing further can be trusted, so targets are not checked.
    Load {
        /// tough's error.
        message: String,
    },
    /// A role's metadata has expired at `now`.
    Expired {
        /// The role.
        role: Role,
        /// Its version.
        version: u64,
        /// When it expired (RFC 3339).
        expires: String,
    },
    /// A target listed in targets.json is not in the repository.
    TargetMissing {
        /// The target name.
        name: String,
        /// Where it was looked for.
        url: String,
    },
    /// A target's length differs from targets.json.
    TargetLength {
        /// The target name.
        name: String,
        /// The length in targets.json.
        expected: u64,
        /// The length found (at least this many bytes, when longer).
        actual: u64,
    },
    /// A target's sha256 differs from targets.json.
    TargetHash {
        /// The target name.
        name: String,
        /// The sha256 in targets.json.
        expected: String,
        /// The sha256 of the file.
        actual: String,
    },
    /// A target could not be read.
    TargetUnreadable {
        /// The target name.
        name: String,
        /// Where it was read from.
        url: String,
        /// The error.
        message: String,
    },
    /// The newest root in the repository is not the one the publisher's config names.
    RootMismatch {
        /// The version the config's root.json has.
        expected: u64,
        /// The version the client ended on.
        found: u64,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Load { message } => write!(f, "Repository metadata failed to load: {message}"),
            Problem::Expired {
                role,
                version,
                expires,
            } => {
                write!(f, "Role '{role}' (version {version}) expired at {expires}")
            }
            Problem::TargetMissing { name, url } => write!(f, "Target '{name}' is missing: {url}"),
            Problem::TargetLength {
                name,
                expected,
                actual,
            } => {
                write!(
                    f,
                    "Target '{name}' has length {actual}, targets.json says {expected}"
                )
            }
            Problem::TargetHash {
                name,
                expected,
                actual,
            } => {
                write!(
                    f,
                    "Target '{name}' has sha256 {actual}, targets.json says {expected}"
                )
            }
            Problem::TargetUnreadable { name, url, message } => {
                write!(f, "Target '{name}' could not be read from {url}: {message}")
            }
            Problem::RootMismatch { expected, found } => write!(
                f,
                "The repository's newest root.json is version {found}, the config's root.json is version {expected}"
            ),
        }
    }
}

/// The state of one role as loaded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoleState {
    /// The role.
    pub role: Role,
    /// Its version.
    pub version: u64,
    /// Its expiry (RFC 3339).
    pub expires: String,
}

/// Everything `validate` found. `problems` empty means the repository is good at `now`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ValidationReport {
    /// The time the repository was validated for (RFC 3339).
    pub now: String,
    /// Each role's version and expiry (empty if the metadata did not load).
    pub roles: Vec<RoleState>,
    /// How many targets were checked.
    pub targets_checked: usize,
    /// Every problem found.
    pub problems: Vec<Problem>,
}

impl ValidationReport {
    /// True when no problem was found.
    #[must_use]
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

impl fmt::Display for ValidationReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Validated at {}", self.now)?;
        for r in &self.roles {
            writeln!(
                f,
                "  {:<9} version {:<12} expires {}",
                r.role, r.version, r.expires
            )?;
        }
        writeln!(f, "  {} targets checked", self.targets_checked)?;
        if self.problems.is_empty() {
            writeln!(f, "No problems found")
        } else {
            writeln!(f, "{} problem(s):", self.problems.len())?;
            for p in &self.problems {
                writeln!(f, "  - {p}")?;
            }
            Ok(())
        }
    }
}

/// Validates a repository as a client with `trusted_root` would load it. Required things in
/// `new`, optional ones as methods.
#[derive(Debug, Clone)]
pub struct RepoValidator {
    trusted_root: Vec<u8>,
    metadata_url: Url,
    targets_url: Url,
    now: Timestamp,
    expected_root_version: Option<u64>,
}

impl RepoValidator {
    /// A validator for the repository at `metadata_url` / `targets_url` (file:// or http(s)://)
    /// as seen by a client that ships `trusted_root` (the bytes of a root.json), at time `now`.
    #[must_use]
    pub fn new(trusted_root: Vec<u8>, metadata_url: Url, targets_url: Url, now: Timestamp) -> Self {
        Self {
            trusted_root,
            metadata_url,
            targets_url,
            now,
            expected_root_version: None,
        }
    }

    /// A validator for a repository directory (`DIR/metadata`, `DIR/targets`).
    pub fn for_directory(
        trusted_root_path: &Path,
        repo_dir: &Path,
        now: Timestamp,
    ) -> Result<Self> {
        let trusted_root = std::fs::read(trusted_root_path).context(error::ReadRootSnafu {
            path: trusted_root_path,
        })?;
        Ok(Self::new(
            trusted_root,
            dir_url(&metadata_dir(repo_dir))?,
            dir_url(&targets_dir(repo_dir))?,
            now,
        ))
    }

    /// Also report a problem unless the client ends on root version `version`.
    #[must_use]
    pub fn expect_root_version(mut self, version: u64) -> Self {
        self.expected_root_version = Some(version);
        self
    }

    /// Loads and checks everything, collecting every problem.
    pub async fn run(self) -> ValidationReport {
        let mut report = ValidationReport {
            now: self.now.to_string(),
            roles: Vec::new(),
            targets_checked: 0,
            problems: Vec::new(),
        };
        let datastore = match tempfile::tempdir() {
            Ok(d) => d,
            Err(e) => {
                report.problems.push(Problem::Load {
                    message: format!("no temporary directory: {e}"),
                });
                return report;
            }
        };
        let repo = match load(
            &self.trusted_root,
            self.metadata_url.clone(),
            self.targets_url.clone(),
            datastore.path(),
        )
        .await
        {
            Ok(repo) => repo,
            Err(e) => {
                report.problems.push(Problem::Load {
                    message: error_chain(&e),
                });
                return report;
            }
        };
        let (roles, expired) = role_states(&repo, self.now);
        report.roles = roles;
        report.problems.extend(expired);
        if let Some(expected) = self.expected_root_version {
            let found = repo.root().signed.version.get();
            if found != expected {
                report
                    .problems
                    .push(Problem::RootMismatch { expected, found });
            }
        }
        let transport = DefaultTransport::new();
        let mut targets: Vec<_> = repo.all_targets().collect();
        targets.sort_by(|a, b| a.0.raw().cmp(b.0.raw()));
        for (name, target) in targets {
            report.targets_checked += 1;
            if let Some(problem) =
                check_target(&transport, &self.targets_url, name, target, Depth::Full).await
            {
                report.problems.push(problem);
            }
        }
        report
    }
}

/// Each role's version and expiry, and a problem for each role expired at `now`. A role that
/// expires exactly at `now` counts as expired.
pub(crate) fn role_states(repo: &Repository, now: Timestamp) -> (Vec<RoleState>, Vec<Problem>) {
    let roles = [
        (
            Role::Root,
            repo.root().signed.version.get(),
            repo.root().signed.expires,
        ),
        (
            Role::Targets,
            repo.targets().signed.version.get(),
            repo.targets().signed.expires,
        ),
        (
            Role::Snapshot,
            repo.snapshot().signed.version.get(),
            repo.snapshot().signed.expires,
        ),
        (
            Role::Timestamp,
            repo.timestamp().signed.version.get(),
            repo.timestamp().signed.expires,
        ),
    ];
    let states = roles
        .iter()
        .map(|&(role, version, expires)| RoleState {
            role,
            version,
            expires: expires.to_string(),
        })
        .collect();
    let expired = roles
        .iter()
        .filter(|(_, _, expires)| *expires <= now)
        .map(|&(role, version, expires)| Problem::Expired {
            role,
            version,
            expires: expires.to_string(),
        })
        .collect();
    (states, expired)
}

/// How thoroughly to check a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Depth {
    /// Read it all: length and sha256.
    Full,
    /// Presence and length only (file:// only; for targets published and hashed before).
    Length,
}

/// Checks one target at `targets_url/<sha256>.<name>`; `None` if it is good.
pub(crate) async fn check_target(
    transport: &dyn Transport,
    targets_url: &Url,
    name: &TargetName,
    target: &Target,
    depth: Depth,
) -> Option<Problem> {
    let raw = name.raw().to_string();
    let file = consistent_name(name, target);
    let url = match targets_url.join(&file) {
        Ok(url) => url,
        Err(e) => {
            return Some(Problem::TargetUnreadable {
                name: raw,
                url: file,
                message: e.to_string(),
            });
        }
    };
    if depth == Depth::Length
        && let Ok(path) = url.to_file_path()
    {
        return match std::fs::metadata(&path) {
            Ok(meta) if meta.len() == target.length => None,
            Ok(meta) => Some(Problem::TargetLength {
                name: raw,
                expected: target.length,
                actual: meta.len(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(Problem::TargetMissing {
                name: raw,
                url: url.to_string(),
            }),
            Err(e) => Some(Problem::TargetUnreadable {
                name: raw,
                url: url.to_string(),
                message: e.to_string(),
            }),
        };
    }
    let missing_or = |e: tough::TransportError, raw: String| {
        if e.kind() == TransportErrorKind::FileNotFound {
            Problem::TargetMissing {
                name: raw,
                url: url.to_string(),
            }
        } else {
            Problem::TargetUnreadable {
                name: raw,
                url: url.to_string(),
                message: error_chain(&e),
            }
        }
    };
    let mut stream = match transport.fetch(url.clone()).await {
        Ok(stream) => stream,
        Err(e) => return Some(missing_or(e, raw)),
    };
    let mut hasher = Sha256::new();
    let mut length: u64 = 0;
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(bytes) => {
                length += bytes.len() as u64;
                if length > target.length {
                    // Endless data: stop reading, it is wrong already.
                    return Some(Problem::TargetLength {
                        name: raw,
                        expected: target.length,
                        actual: length,
                    });
                }
                hasher.update(&bytes);
            }
            Err(e) => return Some(missing_or(e, raw)),
        }
    }
    if length != target.length {
        return Some(Problem::TargetLength {
            name: raw,
            expected: target.length,
            actual: length,
        });
    }
    let actual = hex::encode(hasher.finalize());
    let expected = hex::encode(&*target.hashes.sha256);
    (actual != expected).then_some(Problem::TargetHash {
        name: raw,
        expected,
        actual,
    })
}

/// An error and its sources, joined with ": " (tough's messages are terse at the top level).
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}
