//! The target files a build adds: gathered from a directory, single files and the manifest,
//! and the names the manifest refers to.

use crate::error::{self, Result};
use snafu::ResultExt;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tough::TargetName;
use tough::schema::Target;

/// The target name under which the update manifest is published (what updog reads).
pub const MANIFEST_TARGET: &str = "manifest.json";

/// A file to publish as a target.
#[derive(Debug, Clone)]
pub(crate) struct NewTarget {
    pub(crate) name: TargetName,
    pub(crate) path: PathBuf,
    pub(crate) target: Target,
}

impl NewTarget {
    /// The consistent-snapshot file name, `<sha256>.<name>`.
    pub(crate) fn file_name(&self) -> String {
        consistent_name(&self.name, &self.target)
    }
}

/// `<sha256 hex>.<name>`, the file name a target is stored and fetched under.
pub(crate) fn consistent_name(name: &TargetName, target: &Target) -> String {
    format!(
        "{}.{}",
        hex::encode(&*target.hashes.sha256),
        name.resolved()
    )
}

/// Gathers targets: every regular file at the top of `dir` (sorted by name; sub-directories
/// are skipped with a warning: target names are flat), each of `files`, and `manifest` under
/// the name `manifest.json`. The same name twice with different content is an error.
pub(crate) async fn gather(
    dir: Option<&Path>,
    files: &[PathBuf],
    manifest: Option<&Path>,
) -> Result<Vec<NewTarget>> {
    let mut sources: Vec<(String, PathBuf)> = Vec::new();
    if let Some(dir) = dir {
        let mut entries = Vec::new();
        for entry in std::fs::read_dir(dir).context(error::ReadDirSnafu { path: dir })? {
            let entry = entry.context(error::ReadDirSnafu { path: dir })?;
            let path = entry.path();
            // Follow symlinks: a build directory of links to images is common.
            if path.is_dir() {
                log::warn!(
                    "Skipping directory {} in the targets directory: target names are flat",
                    path.display()
                );
                continue;
            }
            entries.push(path);
        }
        entries.sort();
        for path in entries {
            sources.push((file_name(&path)?, path));
        }
    }
    for path in files {
        sources.push((file_name(path)?, path.clone()));
    }
    if let Some(manifest) = manifest {
        sources.push((MANIFEST_TARGET.to_string(), manifest.to_path_buf()));
    }

    let mut by_name: BTreeMap<String, NewTarget> = BTreeMap::new();
    for (name, path) in sources {
        let target_name =
            TargetName::new(name.as_str()).map_err(|e| error::Error::BadTargetName {
                name: name.clone(),
                path: path.clone(),
                message: e.to_string(),
            })?;
        let target = Target::from_path(&path)
            .await
            .map_err(|e| error::Error::ReadTarget {
                path: path.clone(),
                message: e.to_string(),
            })?;
        if let Some(seen) = by_name.get(&name) {
            if seen.target.hashes.sha256 != target.hashes.sha256 {
                return error::DuplicateTargetSnafu {
                    name,
                    first: seen.path.clone(),
                    second: path,
                }
                .fail();
            }
            continue;
        }
        by_name.insert(
            name,
            NewTarget {
                name: target_name,
                path,
                target,
            },
        );
    }
    Ok(by_name.into_values().collect())
}

fn file_name(path: &Path) -> Result<String> {
    path.file_name()
        .and_then(|n| n.to_str())
        .map(str::to_string)
        .ok_or_else(|| error::Error::BadTargetName {
            name: path.display().to_string(),
            path: path.to_path_buf(),
            message: "no UTF-8 file name".to_string(),
        })
}

/// The target names a manifest.json refers to: every image of every update
/// (`updates[].images.{boot,root,hash}`) and every migration (`migrations{"(X, Y)": [..]}`).
/// Only the parts that name targets are read; the manifest's own crate validates the rest.
pub(crate) fn manifest_references(path: &Path) -> Result<Vec<String>> {
    let bytes = std::fs::read(path).context(error::ReadManifestSnafu { path })?;
    let value: serde_json::Value =
        serde_json::from_slice(&bytes).context(error::ParseManifestSnafu { path })?;
    let mut names = Vec::new();
    let strings = |v: &serde_json::Value, out: &mut Vec<String>| match v {
        serde_json::Value::Object(map) => {
            out.extend(map.values().filter_map(|v| v.as_str().map(str::to_string)));
        }
        serde_json::Value::Array(items) => {
            out.extend(items.iter().filter_map(|v| v.as_str().map(str::to_string)));
        }
        _ => {}
    };
    if let Some(updates) = value.get("updates").and_then(|u| u.as_array()) {
        for update in updates {
            if let Some(images) = update.get("images") {
                strings(images, &mut names);
            }
        }
    }
    if let Some(migrations) = value.get("migrations").and_then(|m| m.as_object()) {
        for list in migrations.values() {
            strings(list, &mut names);
        }
    }
    names.sort();
    names.dedup();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_references_are_images_and_migrations() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("manifest.json");
        std::fs::write(
            &path,
            r#"{"updates":[{"variant":"v","arch":"x86_64","version":"1.1.0","max_version":"1.1.0","waves":{},
                "images":{"boot":"b.lz4","root":"r.lz4","hash":"h.lz4"}}],
               "migrations":{"(1.0.0, 1.1.0)":["migrate_1.1.0_a.lz4","migrate_1.1.0_b.lz4"]}}"#,
        )
        .unwrap();
        assert_eq!(
            manifest_references(&path).unwrap(),
            [
                "b.lz4",
                "h.lz4",
                "migrate_1.1.0_a.lz4",
                "migrate_1.1.0_b.lz4",
                "r.lz4"
            ]
        );
        std::fs::write(&path, "{not json").unwrap();
        let err = manifest_references(&path).unwrap_err();
        assert!(err.to_string().contains("manifest.json"), "{err}");
    }
}
