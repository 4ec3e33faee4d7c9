//! Attack repositories: each is the good chain's newest step with one thing changed, and each names the rejection a
//! correct TUF client must give. Tests load every one through tough (file:// and HTTP) and check that rejection.

use crate::chain::{self, ChainError, FixtureRepo, RELEASES, TRUSTED_ROOT};
use crate::keys::FixtureKey;
use crate::tuf_edit::{self, EditError, PublishedRoles, RoleSigners};
use snafu::{OptionExt, ResultExt, Snafu};
use std::fmt;
use std::num::NonZeroU64;
use std::path::{Path, PathBuf};
use tough::schema::RoleType;

/// What a client must answer to an attack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// The role's metadata has expired.
    Expired(RoleType),
    /// The role's metadata does not carry a threshold of valid signatures.
    Signature(RoleType),
    /// The role's version is lower than one the client already trusts.
    Rollback(RoleType),
    /// A file's sha256 does not match what the metadata above it says.
    HashMismatch,
    /// More bytes arrived than the metadata allows.
    TooLarge,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejection::Expired(role) => write!(f, "{role} expired"),
            Rejection::Signature(role) => write!(f, "{role} signature threshold not met"),
            Rejection::Rollback(role) => write!(f, "{role} rolled back"),
            Rejection::HashMismatch => write!(f, "hash mismatch"),
            Rejection::TooLarge => write!(f, "size limit exceeded"),
        }
    }
}

/// Where in the client workflow the attack must be caught.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// While loading metadata (`RepositoryLoader::load`).
    Load,
    /// While reading this target after a successful load.
    ReadTarget(&'static str),
}

/// One attack repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attack {
    pub name: &'static str,
    /// What was changed in the good repository.
    pub change: &'static str,
    pub rejection: Rejection,
    pub stage: Stage,
    /// Rollback attacks are only attacks for a client that already trusts the good chain's newest step: load that
    /// first (into the same tough datastore), then the attack.
    pub trusts_good_chain_first: bool,
}

const fn attack(
    name: &'static str,
    change: &'static str,
    rejection: Rejection,
    stage: Stage,
) -> Attack {
    Attack {
        name,
        change,
        rejection,
        stage,
        trusts_good_chain_first: false,
    }
}

const fn after_trust(mut a: Attack) -> Attack {
    a.trusts_good_chain_first = true;
    a
}

pub const ATTACKS: [Attack; 17] = [
    attack(
        "expired-timestamp",
        "timestamp.json re-signed with an expiry in the past",
        Rejection::Expired(RoleType::Timestamp),
        Stage::Load,
    ),
    attack(
        "expired-snapshot",
        "snapshot re-signed with an expiry in the past",
        Rejection::Expired(RoleType::Snapshot),
        Stage::Load,
    ),
    attack(
        "expired-targets",
        "targets re-signed with an expiry in the past",
        Rejection::Expired(RoleType::Targets),
        Stage::Load,
    ),
    attack(
        "expired-root",
        "2.root.json published, correctly signed, with an expiry in the past",
        Rejection::Expired(RoleType::Root),
        Stage::Load,
    ),
    attack(
        "bad-signature",
        "one byte of a targets signature flipped",
        Rejection::Signature(RoleType::Targets),
        Stage::Load,
    ),
    attack(
        "threshold-not-met",
        "targets signed by 1 of the 2 keys its threshold needs",
        Rejection::Signature(RoleType::Targets),
        Stage::Load,
    ),
    after_trust(attack(
        "rollback-timestamp",
        "timestamp re-signed with a lower version",
        Rejection::Rollback(RoleType::Timestamp),
        Stage::Load,
    )),
    after_trust(attack(
        "rollback-snapshot",
        "snapshot re-signed with a lower version (timestamp bumped to point at it)",
        Rejection::Rollback(RoleType::Snapshot),
        Stage::Load,
    )),
    after_trust(attack(
        "rollback-targets",
        "targets re-signed with a lower version (snapshot and timestamp bumped to point at it)",
        Rejection::Rollback(RoleType::Targets),
        Stage::Load,
    )),
    attack(
        "rollback-root",
        "2.root.json holds root version 1 again",
        Rejection::Rollback(RoleType::Root),
        Stage::Load,
    ),
    attack(
        "mix-and-match",
        "the snapshot file of an earlier repository state served under the newest snapshot's name",
        Rejection::HashMismatch,
        Stage::Load,
    ),
    attack(
        "target-hash-mismatch",
        "one byte of the published manifest.json flipped (same length)",
        Rejection::HashMismatch,
        Stage::ReadTarget("manifest.json"),
    ),
    attack(
        "target-length-mismatch",
        "the published manifest.json is one byte longer than targets.json says",
        Rejection::TooLarge,
        Stage::ReadTarget("manifest.json"),
    ),
    attack(
        "target-truncated",
        "the published manifest.json is one byte shorter than targets.json says",
        Rejection::HashMismatch,
        Stage::ReadTarget("manifest.json"),
    ),
    attack(
        "endless-target-data",
        "16 MiB of extra data after the published manifest.json",
        Rejection::TooLarge,
        Stage::ReadTarget("manifest.json"),
    ),
    attack(
        "endless-timestamp",
        "timestamp.json padded past tough's 1 MiB limit for it",
        Rejection::TooLarge,
        Stage::Load,
    ),
    attack(
        "root-rotation-too-few-old-keys",
        "2.root.json rotates to {root-1, root-3} but is signed by only 1 of the 2 old root keys",
        Rejection::Signature(RoleType::Root),
        Stage::Load,
    ),
];

/// The attack with this name.
pub fn find(name: &str) -> Option<&'static Attack> {
    ATTACKS.iter().find(|a| a.name == name)
}

/// The keys that sign each role of the good chain.
pub fn good_signers() -> RoleSigners {
    RoleSigners {
        targets: vec![FixtureKey::Targets1, FixtureKey::Targets2],
        snapshot: vec![FixtureKey::Snapshot1],
        timestamp: vec![FixtureKey::Timestamp1],
    }
}

/// Builds `attack` into `out` from the good chain (its steps as [`chain::build_chain`] returned them).
pub async fn build_attack(
    attack: &Attack,
    chain_steps: &[FixtureRepo],
    out: &Path,
) -> Result<FixtureRepo, AttackError> {
    let newest = chain_steps.last().context(NoChainSnafu)?;
    if out.exists() {
        std::fs::remove_dir_all(out).context(IoSnafu { path: out })?;
    }
    chain::copy_dir(&newest.dir, out).context(ChainSnafu)?;
    let repo = FixtureRepo {
        dir: out.to_owned(),
    };
    let metadata = repo.metadata_dir();
    let mut roles = PublishedRoles::load(&metadata).context(EditSnafu)?;
    let signers = good_signers();
    let past = chain::past_expiry();
    let bump = |v: NonZeroU64| v.checked_add(1).expect("fixture versions are small");
    let lower =
        |v: NonZeroU64| NonZeroU64::new(v.get() - 1).expect("the newest step has versions > 1");

    match attack.name {
        "expired-timestamp" => {
            roles.timestamp.signed.expires = past;
            roles.timestamp = tuf_edit::sign_role(roles.timestamp.signed, &signers.timestamp)
                .await
                .context(EditSnafu)?;
            roles.publish_timestamp().context(EditSnafu)?;
        }
        "expired-snapshot" => {
            roles.snapshot.signed.expires = past;
            roles.snapshot = tuf_edit::sign_role(roles.snapshot.signed, &signers.snapshot)
                .await
                .context(EditSnafu)?;
            roles
                .publish_from_snapshot(&signers)
                .await
                .context(EditSnafu)?;
        }
        "expired-targets" => {
            roles.targets.signed.expires = past;
            resign_targets(&mut roles, &signers.targets).await?;
            roles
                .publish_from_targets(&signers)
                .await
                .context(EditSnafu)?;
        }
        "expired-root" => {
            let mut root = roles.root.signed.clone();
            root.version = bump(root.version);
            root.expires = past;
            let root = tuf_edit::sign_role(root, &[FixtureKey::Root1, FixtureKey::Root2])
                .await
                .context(EditSnafu)?;
            tuf_edit::write_role(&metadata, &root).context(EditSnafu)?;
        }
        "bad-signature" => {
            let signature = &mut roles.targets.signatures[0];
            let mut sig = signature.sig.to_vec();
            sig[0] ^= 0xff;
            signature.sig = sig.into();
            roles
                .publish_from_targets(&signers)
                .await
                .context(EditSnafu)?;
        }
        "threshold-not-met" => {
            resign_targets(&mut roles, &[FixtureKey::Targets1]).await?;
            roles
                .publish_from_targets(&signers)
                .await
                .context(EditSnafu)?;
        }
        "rollback-timestamp" => {
            roles.timestamp.signed.version = lower(roles.timestamp.signed.version);
            roles.timestamp = tuf_edit::sign_role(roles.timestamp.signed, &signers.timestamp)
                .await
                .context(EditSnafu)?;
            roles.publish_timestamp().context(EditSnafu)?;
        }
        "rollback-snapshot" => {
            roles.snapshot.signed.version = lower(roles.snapshot.signed.version);
            roles.snapshot = tuf_edit::sign_role(roles.snapshot.signed, &signers.snapshot)
                .await
                .context(EditSnafu)?;
            roles.timestamp.signed.version = bump(roles.timestamp.signed.version);
            roles
                .publish_from_snapshot(&signers)
                .await
                .context(EditSnafu)?;
        }
        "rollback-targets" => {
            roles.targets.signed.version = lower(roles.targets.signed.version);
            resign_targets(&mut roles, &signers.targets).await?;
            roles.snapshot.signed.version = bump(roles.snapshot.signed.version);
            roles.timestamp.signed.version = bump(roles.timestamp.signed.version);
            roles
                .publish_from_targets(&signers)
                .await
                .context(EditSnafu)?;
        }
        "rollback-root" => {
            let one = metadata.join("1.root.json");
            std::fs::copy(&one, metadata.join("2.root.json")).context(IoSnafu { path: &one })?;
        }
        "mix-and-match" => {
            let earlier = &chain_steps[chain_steps.len() - 2];
            let earlier_roles = PublishedRoles::load(&earlier.metadata_dir()).context(EditSnafu)?;
            let from = earlier.metadata_dir().join(format!(
                "{}.snapshot.json",
                earlier_roles.snapshot.signed.version
            ));
            let to = metadata.join(format!("{}.snapshot.json", roles.snapshot.signed.version));
            std::fs::copy(&from, &to).context(IoSnafu { path: &to })?;
        }
        "target-hash-mismatch"
        | "target-length-mismatch"
        | "target-truncated"
        | "endless-target-data" => {
            let path = repo.target_file("manifest.json").context(ChainSnafu)?;
            let mut data = std::fs::read(&path).context(IoSnafu { path: &path })?;
            match attack.name {
                "target-hash-mismatch" => data[10] ^= 0xff,
                "target-length-mismatch" => data.push(b'\n'),
                "target-truncated" => {
                    data.pop();
                }
                _ => data.extend(std::iter::repeat_n(b' ', 16 << 20)),
            }
            std::fs::write(&path, &data).context(IoSnafu { path: &path })?;
        }
        "endless-timestamp" => {
            let path = metadata.join("timestamp.json");
            let mut data = std::fs::read(&path).context(IoSnafu { path: &path })?;
            // Whitespace keeps it valid JSON: only the size limit can stop it.
            data.extend(std::iter::repeat_n(b' ', 2 << 20));
            std::fs::write(&path, &data).context(IoSnafu { path: &path })?;
        }
        "root-rotation-too-few-old-keys" => {
            let mut root = roles.root.signed.clone();
            root.version = bump(root.version);
            let old_root_2 = FixtureKey::Root2.key_id().context(KeySnafu)?;
            let new_root_3 = FixtureKey::Root3.signer().context(KeySnafu)?.tuf_key();
            let new_id = new_root_3.key_id().context(SchemaSnafu)?;
            root.keys.insert(new_id.clone(), new_root_3);
            let root_role = root
                .roles
                .get_mut(&RoleType::Root)
                .expect("the fixture root lists the root role");
            root_role
                .keyids
                .retain(|id| hex::encode(&**id) != old_root_2);
            root_role.keyids.push(new_id);
            let root = tuf_edit::sign_role(root, &[FixtureKey::Root1, FixtureKey::Root3])
                .await
                .context(EditSnafu)?;
            tuf_edit::write_role(&metadata, &root).context(EditSnafu)?;
        }
        other => return UnknownAttackSnafu { name: other }.fail(),
    }
    Ok(repo)
}

async fn resign_targets(
    roles: &mut PublishedRoles,
    keys: &[FixtureKey],
) -> Result<(), AttackError> {
    roles.targets = tuf_edit::sign_role(roles.targets.signed.clone(), keys)
        .await
        .context(EditSnafu)?;
    Ok(())
}

/// Which kind of rejection a tough error is, if it is one of the kinds attacks provoke.
pub fn classify(error: &tough::error::Error) -> Option<Rejection> {
    use tough::error::Error as E;
    Some(match error {
        E::ExpiredMetadata { role, .. } => Rejection::Expired(*role),
        E::VerifyMetadata { role, .. } => Rejection::Signature(*role),
        E::OlderMetadata { role, .. } => Rejection::Rollback(*role),
        E::OlderSnapshotInTimestamp { .. } => Rejection::Rollback(RoleType::Snapshot),
        // tough names the role by its metadata file here.
        E::SnapshotRoleRollback { role, .. } if role == "targets.json" => {
            Rejection::Rollback(RoleType::Targets)
        }
        E::HashMismatch { .. } => Rejection::HashMismatch,
        E::MaxSizeExceeded { .. } => Rejection::TooLarge,
        // A stream error from the transport wraps the real cause.
        E::Transport { source, .. } => {
            let inner = std::error::Error::source(source)?;
            return inner
                .downcast_ref::<tough::error::Error>()
                .and_then(classify);
        }
        _ => return None,
    })
}

/// The directory name of the chain step at `release`.
pub fn chain_step_name(release: &str) -> String {
    format!("chain-{release}")
}

/// Builds the whole world into `out`: every chain step and every attack, each a [`FixtureRepo`] directory named
/// after it, with `root.json` (the trusted root) at its top.
pub async fn build_all(out: &Path) -> Result<Vec<(String, FixtureRepo)>, AttackError> {
    let steps = chain::build_chain(out, &chain::ChainOptions::default())
        .await
        .context(ChainSnafu)?;
    let mut built: Vec<(String, FixtureRepo)> = RELEASES
        .iter()
        .map(|r| chain_step_name(r))
        .zip(steps.iter().cloned())
        .collect();
    for attack in &ATTACKS {
        let dir = out.join(attack.name);
        let repo = build_attack(attack, &steps, &dir).await?;
        debug_assert!(repo.dir.join(TRUSTED_ROOT).exists());
        built.push((attack.name.to_string(), repo));
    }
    Ok(built)
}

#[derive(Debug, Snafu)]
pub enum AttackError {
    #[snafu(display("Attack fixture file {}: {source}", path.display()))]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[snafu(display("{source}"))]
    Chain { source: ChainError },
    #[snafu(display("{source}"))]
    Edit { source: EditError },
    #[snafu(display("{source}"))]
    Key { source: crate::keys::KeyError },
    #[snafu(display("Fixture key: {source}"))]
    Schema {
        #[snafu(source(from(tough::schema::Error, Box::new)))]
        source: Box<tough::schema::Error>,
    },
    #[snafu(display("The good chain has no steps to derive attacks from"))]
    NoChain,
    #[snafu(display("No attack named '{name}'"))]
    UnknownAttack { name: String },
}
