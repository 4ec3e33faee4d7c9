//! Shared test world: fixed ed25519 keys, a fixed clock, target files and a manifest.
#![allow(dead_code)]

use aws_lc_rs::signature::Ed25519KeyPair;
use jiff::Timestamp;
use std::collections::BTreeMap;
use std::num::NonZeroU64;
use std::path::{Path, PathBuf};
use tough::{ExpirationEnforcement, Repository, RepositoryLoader, TargetName};
use tuftool_config::{Role, RootBuilder, SignedRoot, SigningKey};
use url::Url;

/// The fixed clock the deterministic tests use.
pub fn t0() -> Timestamp {
    "2025-06-01T00:00:00Z".parse().unwrap()
}

/// `t0` plus `days`.
pub fn days_after(t: Timestamp, days: i64) -> Timestamp {
    t.checked_add(jiff::SignedDuration::from_hours(24 * days))
        .unwrap()
}

pub fn n(v: u64) -> NonZeroU64 {
    NonZeroU64::new(v).unwrap()
}

/// Writes a deterministic ed25519 key (seed = [seed; 32]) as a PKCS#8 PEM file.
pub fn fixed_ed25519_pem(path: &Path, seed: u8) -> PathBuf {
    let pair = Ed25519KeyPair::from_seed_unchecked(&[seed; 32]).unwrap();
    let der = pair.to_pkcs8().unwrap();
    let pem = pem::encode_config(
        &pem::Pem::new("PRIVATE KEY", der.as_ref().to_vec()),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    );
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, pem).unwrap();
    path.to_path_buf()
}

pub async fn key(path: &Path) -> SigningKey {
    SigningKey::from_pem_file(path).await.unwrap()
}

/// A root listing `key` for every role, threshold 1, expiring `days` after `now`.
pub async fn single_key_root(key: &SigningKey, now: Timestamp, days: i64) -> SignedRoot {
    let mut builder = RootBuilder::new(days_after(now, days));
    for role in Role::ALL {
        builder = builder.role(role, vec![key.clone()], n(1));
    }
    builder.sign(now).await.unwrap()
}

/// A targets directory with two images and a manifest naming them.
pub fn release(dir: &Path, version: &str) -> (PathBuf, PathBuf) {
    let targets = dir.join(format!("build-{version}"));
    std::fs::create_dir_all(&targets).unwrap();
    let (boot, root, hash) = (
        format!("boot-{version}.lz4"),
        format!("root-{version}.lz4"),
        format!("hash-{version}.lz4"),
    );
    for name in [&boot, &root, &hash] {
        std::fs::write(
            targets.join(name),
            format!("contents of {name}").repeat(100),
        )
        .unwrap();
    }
    let manifest = dir.join(format!("manifest-{version}.json"));
    std::fs::write(
        &manifest,
        format!(
            r#"{{"updates":[{{"variant":"aws-dev","arch":"x86_64","version":"{version}","max_version":"{version}","waves":{{}},"images":{{"boot":"{boot}","root":"{root}","hash":"{hash}"}}}}],"migrations":{{}}}}"#
        ),
    )
    .unwrap();
    (targets, manifest)
}

/// Loads `repo_dir` through tough as a client that trusts `root_bytes`.
pub async fn client_load(
    root_bytes: &[u8],
    repo_dir: &Path,
    enforcement: ExpirationEnforcement,
) -> tough::error::Result<Repository> {
    client_load_with(root_bytes, repo_dir, enforcement, None).await
}

pub async fn client_load_with(
    root_bytes: &[u8],
    repo_dir: &Path,
    enforcement: ExpirationEnforcement,
    datastore: Option<&Path>,
) -> tough::error::Result<Repository> {
    let metadata = Url::from_directory_path(repo_dir.join("metadata")).unwrap();
    let targets = Url::from_directory_path(repo_dir.join("targets")).unwrap();
    let mut loader =
        RepositoryLoader::new(&root_bytes, metadata, targets).expiration_enforcement(enforcement);
    if let Some(d) = datastore {
        loader = loader.datastore(d);
    }
    loader.load().await
}

pub async fn read_target(repo: &Repository, name: &str) -> Vec<u8> {
    use tough::IntoVec;
    repo.read_target(&TargetName::new(name).unwrap())
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("target {name} not listed"))
        .into_vec()
        .await
        .unwrap()
}

/// Every file under `dir` (relative path → bytes), for before/after comparisons.
pub fn snapshot_tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(base, &path, out);
            } else {
                out.insert(
                    path.strip_prefix(base).unwrap().to_path_buf(),
                    std::fs::read(&path).unwrap(),
                );
            }
        }
    }
    walk(dir, dir, &mut out);
    out
}

/// Names of the files in `dir/metadata`.
pub fn metadata_files(repo: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(repo.join("metadata"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}
