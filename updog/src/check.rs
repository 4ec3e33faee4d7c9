//! `updog check-update` (alias `whats`): load the repository with the node's trust, read
//! manifest.json, and report the update this node would take (or, with `--all`, every update
//! it may take), in upstream's output formats.

use crate::config::Config;
use crate::error::{self, Error, Result};
use crate::fetch::ResumingTransport;
use crate::lock::UpdogLock;
use crate::records::{self, RolledBack};
use crate::release::Release;
use crate::select::{self, Decision, NoUpdate, UpdateQuery};
use crate::sysroot::Sysroot;
use crate::transport::QueryParams;
use crate::tuf::{Repository, TufError};
use chrono::{DateTime, SecondsFormat, Utc};
use semver::Version;
use snafu::ResultExt;
use std::sync::Arc;
use update_metadata::{Manifest, Update};

/// What check-update was asked.
#[derive(Debug, Clone, Default)]
pub struct CheckOptions {
    /// `--all`: list every applicable update instead of choosing one.
    pub all: bool,
    /// `--json`.
    pub json: bool,
    /// `--now` / `--ignore-waves`.
    pub ignore_waves: bool,
    /// `--image V`.
    pub image: Option<Version>,
    /// Hidden `--variant` (upstream's): overrides `VARIANT_ID`.
    pub variant: Option<String>,
    /// Hidden `--arch` (ours, for tests and cross-checks): overrides the build's architecture.
    pub arch: Option<String>,
}

/// What to print: stdout and stderr text, exactly (newlines included).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Output {
    pub stdout: String,
    pub stderr: String,
}

/// The node as check-update sees it: config, release, the versions it fell back from, and paths.
#[derive(Debug, Clone)]
pub struct Node {
    pub sysroot: Sysroot,
    pub config: Config,
    pub release: Release,
    /// `/var/lib/updog/rolled-back.json`: skipped by selection unless named with `--image`.
    pub rolled_back: Vec<RolledBack>,
}

impl Node {
    /// Reads updog.toml, os-release and the rolled-back versions under `sysroot`.
    pub fn load(sysroot: Sysroot) -> Result<Self> {
        let config = Config::load(&sysroot.updog_toml()).context(error::ConfigSnafu)?;
        let release = Release::load(&sysroot.os_release()).context(error::ReleaseSnafu)?;
        let rolled_back = records::read_rolled_back(&sysroot.rolled_back())
            .context(error::RecordsSnafu)?
            .versions;
        Ok(Self {
            sysroot,
            config,
            release,
            rolled_back,
        })
    }

    /// The query parameters upstream sends with every request: `version` and `seed`.
    pub fn query_params(&self) -> QueryParams {
        let params = QueryParams::new();
        params.add("version", self.release.version_id.to_string());
        params.add("seed", self.config.seed.to_string());
        params
    }

    /// Loads the repository (persisted trust, expiry enforced) through updog's transport (stall
    /// timeout, retries, proxy from updog.toml) and reads its manifest.json.
    pub async fn load_manifest(&self, params: QueryParams) -> Result<Manifest> {
        let transport = ResumingTransport::new(params, self.config.fetch.clone())
            .context(error::TransportSnafu)?;
        let mut repository = self.load_repository(transport).await?;
        self.read_manifest(&mut repository).await
    }

    /// Loads the repository with this node's trust (anchored in the shipped root, persisted, expiry enforced),
    /// fetching through `transport`.
    pub async fn load_repository(&self, transport: ResumingTransport) -> Result<Repository> {
        let context = || error::RepositorySnafu {
            metadata_url: crate::fetch::redacted(&self.config.metadata_base_url),
        };
        let shipped = self.sysroot.trusted_root();
        let root = std::fs::read(&shipped)
            .map_err(|source| TufError::ReadRoot {
                path: shipped.clone(),
                source,
            })
            .context(context())?;
        Repository::load(
            &root,
            &self.sysroot.tuf_datastore(),
            Arc::new(transport.with_deadline(crate::tuf::METADATA_DEADLINE)),
            Arc::new(transport),
            self.config.metadata_base_url.clone(),
            self.config.targets_base_url.clone(),
            Utc::now(),
        )
        .await
        .context(context())
    }

    /// Reads and parses the repository's manifest.json (length and hashes verified).
    pub async fn read_manifest(&self, repository: &mut Repository) -> Result<Manifest> {
        let bytes = repository
            .read_target("manifest.json")
            .await
            .context(error::ManifestReadSnafu)?;
        let manifest = Manifest::from_slice(&bytes).context(error::ManifestParseSnafu)?;
        // Used as upstream uses it; the publisher should still hear about it.
        for unordered in manifest.unordered_waves() {
            log::warn!("manifest.json: {unordered}");
        }
        Ok(manifest)
    }
}

impl CheckOptions {
    /// The selection query for `node` at `now`: the node's identity with this command line's overrides.
    pub fn query<'a>(&'a self, node: &'a Node, now: DateTime<Utc>) -> UpdateQuery<'a> {
        UpdateQuery {
            variant: self.variant.as_deref().unwrap_or(&node.release.variant_id),
            arch: self.arch.as_deref().unwrap_or(&node.release.arch),
            current: &node.release.version_id,
            seed: node.config.seed,
            ignore_waves: self.ignore_waves || node.config.ignore_waves,
            now,
            version_lock: &node.config.version_lock,
            image: self.image.as_ref(),
            rolled_back: &node.rolled_back,
        }
    }
}

/// Runs check-update on `node`, holding `_lock`, at time `now`.
pub async fn check_update(
    node: &Node,
    options: &CheckOptions,
    now: DateTime<Utc>,
    _lock: &UpdogLock,
) -> Result<Output> {
    let manifest = node.load_manifest(node.query_params()).await?;
    report(&manifest, &options.query(node, now), options)
}

/// The output for a loaded manifest (the pure half of check-update).
pub fn report(
    manifest: &Manifest,
    query: &UpdateQuery<'_>,
    options: &CheckOptions,
) -> Result<Output> {
    let skipped = skipped_notes(manifest, query);
    if options.all {
        let updates = select::applicable_updates(manifest, query);
        return Ok(if options.json {
            Output {
                stdout: pretty_json(&updates)?,
                stderr: skipped,
            }
        } else {
            // Upstream prints the list on stderr.
            Output {
                stdout: String::new(),
                stderr: updates
                    .iter()
                    .map(|u| format!("{}\n", full_version(u)))
                    .chain(std::iter::once(skipped))
                    .collect(),
            }
        });
    }
    match select::decide(manifest, query) {
        Decision::Update(update) => Ok(Output {
            stdout: if options.json {
                pretty_json(update)?
            } else {
                format!("{}\n", full_version(update))
            },
            stderr: skipped,
        }),
        Decision::NoUpdate(why) => error::NoUpdateSnafu {
            reason: explain(&why, query),
        }
        .fail(),
    }
}

/// One line on stderr per update left out only because this node fell back from it, so a list or a choice never
/// hides a version silently.
fn skipped_notes(manifest: &Manifest, query: &UpdateQuery<'_>) -> String {
    let unfiltered = UpdateQuery {
        rolled_back: &[],
        ..query.clone()
    };
    select::applicable_updates(manifest, &unfiltered)
        .into_iter()
        .filter_map(|update| {
            query.skipped_as_rolled_back(&update.version).map(|record| {
                format!(
                    "Skipping {}: rolled back on this node ({})\n",
                    full_version(update),
                    rollback_details(update, record)
                )
            })
        })
        .collect()
}

/// "aws-dev 1.2.0 was rolled back on this node (…)".
fn rolled_back_reason(update: &Update, record: &RolledBack) -> String {
    format!(
        "{} was rolled back on this node ({})",
        full_version(update),
        rollback_details(update, record)
    )
}

/// Why and when a version was recorded as rolled back, and how to take it anyway.
fn rollback_details(update: &Update, record: &RolledBack) -> String {
    format!(
        "its boot from BOOT partition {} was never marked successful and the node fell back; recorded {}; use \
         --image {} to take it anyway",
        record.boot_partuuid,
        record
            .recorded_at
            .to_rfc3339_opts(SecondsFormat::Secs, true),
        update.version
    )
}

/// The reason after "No update available: " (none when simply up to date, as upstream).
pub(crate) fn explain(why: &NoUpdate<'_, '_>, query: &UpdateQuery<'_>) -> Option<String> {
    match why {
        NoUpdate::UpToDate => None,
        NoUpdate::LockedToCurrent => Some(format!(
            "version_lock is {}, the running version",
            query.current
        )),
        NoUpdate::VersionNotOffered(version) => Some(format!(
            "version {version} is not offered for variant '{}', arch '{}'",
            query.variant, query.arch
        )),
        NoUpdate::RolledBack { update, record } => Some(rolled_back_reason(update, record)),
        NoUpdate::WaitingForWave { update, ready_at } => Some(format!(
            "{} is in a later wave for this node (seed {}); it becomes available at {} \
             (use --now to ignore waves)",
            full_version(update),
            query.seed,
            ready_at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
        )),
    }
}

/// Upstream's `"{variant} {version}"`.
pub fn full_version(update: &Update) -> String {
    format!("{} {}", update.variant, update.version)
}

/// Upstream's `serde_json::to_string_pretty` + `println!`.
pub(crate) fn pretty_json<T: serde::Serialize + ?Sized>(value: &T) -> Result<String> {
    let mut text = serde_json::to_string_pretty(value).context(error::SerializeSnafu)?;
    text.push('\n');
    Ok(text)
}

impl From<Error> for Output {
    /// How `main` shows an error: its message on stderr.
    fn from(error: Error) -> Self {
        Output {
            stdout: String::new(),
            stderr: format!("{error}\n"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::select::VersionLock;
    use std::collections::BTreeMap;
    use update_metadata::Images;

    fn update(version: &str, waves: BTreeMap<u32, DateTime<Utc>>) -> Update {
        Update {
            variant: "aws-dev".into(),
            arch: "x86_64".into(),
            version: version.parse().unwrap(),
            max_version: "1.2.0".parse().unwrap(),
            waves,
            images: Images {
                boot: format!("boot-{version}.lz4"),
                root: format!("root-{version}.lz4"),
                hash: format!("hash-{version}.lz4"),
            },
        }
    }

    fn now() -> DateTime<Utc> {
        "2030-01-01T00:00:00Z".parse().unwrap()
    }

    fn manifest() -> Manifest {
        let waves = BTreeMap::from([
            (0, now() + chrono::TimeDelta::hours(1)),
            (1024, now() + chrono::TimeDelta::hours(2)),
        ]);
        Manifest {
            updates: vec![update("1.1.0", BTreeMap::new()), update("1.2.0", waves)],
            migrations: BTreeMap::new(),
        }
    }

    fn run(current: &str, seed: u32, options: &CheckOptions) -> Result<Output> {
        let current: Version = current.parse().unwrap();
        let lock = VersionLock::Latest;
        let query = UpdateQuery {
            variant: "aws-dev",
            arch: "x86_64",
            current: &current,
            seed,
            ignore_waves: options.ignore_waves,
            now: now(),
            version_lock: &lock,
            image: options.image.as_ref(),
            rolled_back: &[],
        };
        report(&manifest(), &query, options)
    }

    #[test]
    fn the_chosen_update_is_printed_as_variant_and_version() {
        let out = run("1.0.0", 0, &CheckOptions::default()).unwrap();
        assert_eq!(out.stdout, "aws-dev 1.2.0\n");
        assert_eq!(out.stderr, "");
    }

    #[test]
    fn json_is_the_pretty_update_object() {
        let out = run(
            "1.0.0",
            0,
            &CheckOptions {
                json: true,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(
            out.stdout,
            r#"{
  "variant": "aws-dev",
  "arch": "x86_64",
  "version": "1.2.0",
  "max_version": "1.2.0",
  "waves": {
    "0": "2030-01-01T01:00:00Z",
    "1024": "2030-01-01T02:00:00Z"
  },
  "images": {
    "boot": "boot-1.2.0.lz4",
    "root": "root-1.2.0.lz4",
    "hash": "hash-1.2.0.lz4"
  }
}
"#
        );
    }

    #[test]
    fn all_without_json_lists_on_stderr() {
        let out = run(
            "1.0.0",
            0,
            &CheckOptions {
                all: true,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(out.stdout, "");
        assert_eq!(out.stderr, "aws-dev 1.2.0\naws-dev 1.1.0\n");
    }

    #[test]
    fn all_with_json_is_an_array_of_the_in_wave_updates() {
        let out = run(
            "1.0.0",
            0,
            &CheckOptions {
                all: true,
                json: true,
                variant: None,
                ..Default::default()
            },
        )
        .unwrap();
        let list: Vec<Update> = serde_json::from_str(&out.stdout).unwrap();
        assert_eq!(list.len(), 2);

        // Seed 500 waits for 1.2.0's wave: only 1.1.0 is listed.
        let out = run(
            "1.0.0",
            500,
            &CheckOptions {
                all: true,
                json: true,
                ..Default::default()
            },
        )
        .unwrap();
        let list: Vec<Update> = serde_json::from_str(&out.stdout).unwrap();
        assert_eq!(
            list.iter()
                .map(|u| u.version.to_string())
                .collect::<Vec<_>>(),
            ["1.1.0"]
        );
    }

    #[test]
    fn up_to_date_is_upstreams_no_update_available() {
        let error = run("1.2.0", 0, &CheckOptions::default()).unwrap_err();
        assert_eq!(error.to_string(), "No update available");
    }

    #[test]
    fn an_update_in_a_later_wave_is_named_with_its_time() {
        // Seed 500 of the wave 0..=1024 (from +1h to +2h): ready at +1h + 500 * (1h / 1024).
        let error = run("1.1.0", 500, &CheckOptions::default()).unwrap_err();
        assert_eq!(
            error.to_string(),
            "No update available: aws-dev 1.2.0 is in a later wave for this node (seed 500); it becomes available at 2030-01-01T01:29:17.812500Z (use --now to ignore waves)"
        );
        let out = run(
            "1.1.0",
            500,
            &CheckOptions {
                ignore_waves: true,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(out.stdout, "aws-dev 1.2.0\n");
    }

    #[test]
    fn a_rolled_back_version_is_explained_and_left_out_of_lists_with_a_note() {
        let current: Version = "1.1.0".parse().unwrap();
        let lock = VersionLock::Latest;
        let rolled_back = [RolledBack {
            version: "1.2.0".parse().unwrap(),
            boot_partuuid: "0f6a1c52-cd0b-4c55-9f2e-4d3c2b1a0f9e".into(),
            recorded_at: now(),
        }];
        let query = |image: Option<&'static Version>| UpdateQuery {
            variant: "aws-dev",
            arch: "x86_64",
            current: &current,
            seed: 0,
            ignore_waves: true,
            now: now(),
            version_lock: &lock,
            image,
            rolled_back: &rolled_back,
        };
        let details = "its boot from BOOT partition 0f6a1c52-cd0b-4c55-9f2e-4d3c2b1a0f9e was never marked \
                       successful and the node fell back; recorded 2030-01-01T00:00:00Z; use --image 1.2.0 to take \
                       it anyway";
        let error = report(&manifest(), &query(None), &CheckOptions::default()).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!("No update available: aws-dev 1.2.0 was rolled back on this node ({details})")
        );

        let options = CheckOptions {
            all: true,
            json: true,
            ..Default::default()
        };
        let out = report(&manifest(), &query(None), &options).unwrap();
        let list: Vec<Update> = serde_json::from_str(&out.stdout).unwrap();
        assert_eq!(
            list.iter()
                .map(|u| u.version.to_string())
                .collect::<Vec<_>>(),
            ["1.1.0"]
        );
        assert_eq!(
            out.stderr,
            format!("Skipping aws-dev 1.2.0: rolled back on this node ({details})\n")
        );

        static IMAGE: std::sync::LazyLock<Version> =
            std::sync::LazyLock::new(|| "1.2.0".parse().unwrap());
        let out = report(&manifest(), &query(Some(&IMAGE)), &CheckOptions::default()).unwrap();
        assert_eq!(out.stdout, "aws-dev 1.2.0\n");
        assert_eq!(out.stderr, "");
    }
}
