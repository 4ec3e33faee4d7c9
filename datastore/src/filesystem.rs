//! The filesystem datastore, upstream's layout under a version directory:
//!
//! ```text
//! <base>/live/settings/motd                      data key settings.motd, a JSON value
//! <base>/live/settings/motd.affected-services    metadata affected-services of settings.motd
//! <base>/pending/<tx>/settings/...               an uncommitted transaction (name percent-encoded)
//! ```
//!
//! Every value is one JSON document with no trailing newline; every write replaces its file
//! atomically (nodeio's atomic write, with the datastore's errors).

use crate::atomic;
use crate::commit;
use crate::encoding::{decode_path_component, encode_path_component};
use crate::error::{self, Result};
use crate::key::{Key, KeyType, MAX_FILE_NAME_LENGTH};
use crate::killpoint;
use crate::value;
use log::{debug, warn};
use nodeio::Durability;
use snafu::{OptionExt, ResultExt, ensure};
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

/// The separator between a data key's file name and a metadata key in the file name.
const METADATA_SEPARATOR: char = '.';

/// The transaction name the apiserver uses when a client names none.
pub const DEFAULT_TRANSACTION: &str = "default";

/// Where a read or write goes: the committed data, or a pending transaction.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Committed {
    Live,
    Pending { tx: String },
}

impl Committed {
    pub fn pending(tx: impl Into<String>) -> Self {
        Committed::Pending { tx: tx.into() }
    }
}

impl std::fmt::Display for Committed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Committed::Live => f.write_str("live"),
            Committed::Pending { tx } => write!(f, "pending transaction '{tx}'"),
        }
    }
}

/// A datastore in a directory (a version directory `vX.Y.Z_<rand>` on a node).
#[derive(Debug, Clone)]
pub struct FilesystemDataStore {
    base: PathBuf,
    durability: Durability,
}

/// A file found under `live/` or `pending/<tx>/`: a data key, or a metadata key of a data key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct KeyPath {
    data_key: Key,
    metadata_key: Option<Key>,
}

impl FilesystemDataStore {
    /// A datastore rooted at `base`; nothing is read or created until it is used.
    #[must_use]
    pub fn new(base: impl Into<PathBuf>) -> Self {
        Self {
            base: base.into(),
            durability: Durability::default(),
        }
    }

    /// Sets how durable each write is (default [`Durability::EachWrite`]).
    #[must_use]
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Creates `base/live` (and `base`) for a new, empty datastore.
    pub fn create(base: impl Into<PathBuf>) -> Result<Self> {
        let store = Self::new(base);
        let parent = store.base.parent().unwrap_or(&store.base).to_path_buf();
        atomic::create_dirs(&parent, &store.live_path(), store.durability)?;
        Ok(store)
    }

    pub fn base_path(&self) -> &Path {
        &self.base
    }

    pub fn live_path(&self) -> PathBuf {
        self.base.join("live")
    }

    pub fn pending_path(&self) -> PathBuf {
        self.base.join("pending")
    }

    /// The directory holding `committed`'s keys.
    pub fn committed_path(&self, committed: &Committed) -> Result<PathBuf> {
        match committed {
            Committed::Live => Ok(self.live_path()),
            Committed::Pending { tx } => {
                ensure!(
                    !tx.is_empty(),
                    error::InvalidTransactionSnafu {
                        name: tx,
                        reason: "a transaction name cannot be empty",
                    }
                );
                let encoded = encode_path_component(tx);
                ensure!(
                    encoded.len() <= MAX_FILE_NAME_LENGTH,
                    error::InvalidTransactionSnafu {
                        name: tx,
                        reason: format!(
                            "{} bytes once encoded; at most {MAX_FILE_NAME_LENGTH}",
                            encoded.len()
                        ),
                    }
                );
                Ok(self.pending_path().join(encoded))
            }
        }
    }

    /// The file of a data key: its encoded segments joined as directories.
    pub fn data_path(&self, key: &Key, committed: &Committed) -> Result<PathBuf> {
        Ok(self
            .committed_path(committed)?
            .join(relative_data_path(key)?))
    }

    /// The file of metadata `metadata_key` on `data_key`: `<data file>.<encoded metadata key>`.
    pub fn metadata_path(
        &self,
        metadata_key: &Key,
        data_key: &Key,
        committed: &Committed,
    ) -> Result<PathBuf> {
        Ok(self
            .committed_path(committed)?
            .join(relative_metadata_path(metadata_key, data_key)?))
    }

    /// Whether the data key has a value.
    pub fn key_populated(&self, key: &Key, committed: &Committed) -> Result<bool> {
        Ok(self.data_path(key, committed)?.is_file())
    }

    /// The raw JSON text of a data key, `None` if unset.
    pub fn get_key(&self, key: &Key, committed: &Committed) -> Result<Option<String>> {
        let path = self.data_path(key, committed)?;
        read_value_file(key, &path)
    }

    /// The value of a data key, parsed.
    pub fn get_value(&self, key: &Key, committed: &Committed) -> Result<Option<serde_json::Value>> {
        let path = self.data_path(key, committed)?;
        read_value_file(key, &path)?
            .map(|raw| value::parse_stored(key.name(), &path, &raw))
            .transpose()
    }

    /// Sets a data key to `value`, which must be one JSON document (`"text"`, `42`, `true`,
    /// `["a"]`); it is stored byte for byte, so give it without a trailing newline.
    pub fn set_key(&self, key: &Key, value: &str, committed: &Committed) -> Result<()> {
        value::check(key.name(), value)?;
        let path = self.data_path(key, committed)?;
        self.write_value_file(key, &path, value, committed)
    }

    /// Sets a data key to `value`, serialized as compact JSON.
    pub fn set_value(
        &self,
        key: &Key,
        value: &serde_json::Value,
        committed: &Committed,
    ) -> Result<()> {
        self.set_key(key, &value::serialize(value), committed)
    }

    /// Sets several data keys; each write is atomic on its own.
    pub fn set_keys<'a>(
        &self,
        pairs: impl IntoIterator<Item = (&'a Key, &'a str)>,
        committed: &Committed,
    ) -> Result<()> {
        for (key, value) in pairs {
            self.set_key(key, value, committed)?;
        }
        Ok(())
    }

    /// Removes a data key (absent is fine) and then any directories it leaves empty.
    pub fn unset_key(&self, key: &Key, committed: &Committed) -> Result<()> {
        let path = self.data_path(key, committed)?;
        self.remove_key_file(key, &path, committed)
    }

    /// Removes several data keys.
    pub fn unset_keys<'a>(
        &self,
        keys: impl IntoIterator<Item = &'a Key>,
        committed: &Committed,
    ) -> Result<()> {
        for key in keys {
            self.unset_key(key, committed)?;
        }
        Ok(())
    }

    /// The populated data keys whose names start with `prefix` (a string prefix of the name, as
    /// upstream: `settings.` for everything under settings, `""` for all).
    pub fn list_populated_keys(
        &self,
        prefix: &str,
        committed: &Committed,
    ) -> Result<BTreeSet<Key>> {
        Ok(self
            .find_key_paths(KeyType::Data, prefix, committed)?
            .into_iter()
            .map(|kp| kp.data_key)
            .collect())
    }

    /// Every data key starting with `prefix`, with its raw value.
    pub fn get_prefix(&self, prefix: &str, committed: &Committed) -> Result<BTreeMap<Key, String>> {
        let mut result = BTreeMap::new();
        for key in self.list_populated_keys(prefix, committed)? {
            let path = self.data_path(&key, committed)?;
            let value = read_value_file(&key, &path)?.context(error::CorruptionSnafu {
                path: &path,
                reason: format!("key '{key}' disappeared while it was read"),
            })?;
            result.insert(key, value);
        }
        Ok(result)
    }

    /// The raw metadata value set on exactly this data key.
    pub fn get_metadata_raw(
        &self,
        metadata_key: &Key,
        data_key: &Key,
        committed: &Committed,
    ) -> Result<Option<String>> {
        let path = self.metadata_path(metadata_key, data_key, committed)?;
        read_value_file(metadata_key, &path)
    }

    /// The metadata value of a data key, inherited from the nearest ancestor that sets it
    /// (`settings` → `settings.a` → `settings.a.b`, the deepest wins), as upstream.
    pub fn get_metadata(
        &self,
        metadata_key: &Key,
        data_key: &Key,
        committed: &Committed,
    ) -> Result<Option<String>> {
        let mut found = None;
        let segments = data_key.segments();
        for depth in 1..=segments.len() {
            let ancestor = Key::from_segments(KeyType::Data, &segments[..depth])?;
            if let Some(value) = self.get_metadata_raw(metadata_key, &ancestor, committed)? {
                found = Some(value);
            }
        }
        Ok(found)
    }

    /// Sets metadata `metadata_key` on `data_key` (the data key need not have a value).
    pub fn set_metadata(
        &self,
        metadata_key: &Key,
        data_key: &Key,
        value: &str,
        committed: &Committed,
    ) -> Result<()> {
        let label = format!("{data_key}.{metadata_key}");
        value::check(&label, value)?;
        let path = self.metadata_path(metadata_key, data_key, committed)?;
        self.write_value_file(metadata_key, &path, value, committed)
    }

    /// Removes metadata `metadata_key` from `data_key` (absent is fine).
    pub fn unset_metadata(
        &self,
        metadata_key: &Key,
        data_key: &Key,
        committed: &Committed,
    ) -> Result<()> {
        let path = self.metadata_path(metadata_key, data_key, committed)?;
        self.remove_key_file(metadata_key, &path, committed)
    }

    /// For each data key starting with `prefix` that has metadata: its metadata keys (only those
    /// named `metadata_name` if given).
    pub fn list_populated_metadata(
        &self,
        prefix: &str,
        committed: &Committed,
        metadata_name: Option<&str>,
    ) -> Result<BTreeMap<Key, BTreeSet<Key>>> {
        let mut result: BTreeMap<Key, BTreeSet<Key>> = BTreeMap::new();
        for kp in self.find_key_paths(KeyType::Meta, prefix, committed)? {
            let meta = kp.metadata_key.context(error::CorruptionSnafu {
                path: self.committed_path(committed)?,
                reason: format!("metadata file of '{}' without a metadata key", kp.data_key),
            })?;
            if metadata_name.is_some_and(|name| name != meta.segments()[0]) {
                continue;
            }
            result.entry(kp.data_key).or_default().insert(meta);
        }
        Ok(result)
    }

    /// Every metadata value of data keys starting with `prefix`, raw.
    pub fn get_metadata_prefix(
        &self,
        prefix: &str,
        committed: &Committed,
        metadata_name: Option<&str>,
    ) -> Result<BTreeMap<Key, BTreeMap<Key, String>>> {
        let mut result: BTreeMap<Key, BTreeMap<Key, String>> = BTreeMap::new();
        for (data_key, meta_keys) in
            self.list_populated_metadata(prefix, committed, metadata_name)?
        {
            for meta_key in meta_keys {
                let path = self.metadata_path(&meta_key, &data_key, committed)?;
                let value = read_value_file(&meta_key, &path)?.context(error::CorruptionSnafu {
                    path: &path,
                    reason: format!(
                        "metadata '{meta_key}' of '{data_key}' disappeared while it was read"
                    ),
                })?;
                result
                    .entry(data_key.clone())
                    .or_default()
                    .insert(meta_key, value);
            }
        }
        Ok(result)
    }

    /// The names of the pending transactions (decoded directory names under `pending/`).
    pub fn list_transactions(&self) -> Result<BTreeSet<String>> {
        let pending = self.pending_path();
        let entries = match fs::read_dir(&pending) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(BTreeSet::new()),
            Err(source) => return Err(source).context(error::ListSnafu { path: &pending }),
        };
        let mut transactions = BTreeSet::new();
        for entry in entries {
            let entry = entry.context(error::ListSnafu { path: &pending })?;
            let Some((name, path, kind)) = listed_entry(&entry)? else {
                continue;
            };
            if !kind.is_dir() {
                return error::UnrepresentableSnafu {
                    path,
                    reason: format!("{}; a transaction is a directory", describe_kind(&kind)),
                }
                .fail();
            }
            transactions.insert(decode_path_component(&name, &path)?);
        }
        Ok(transactions)
    }

    /// Applies a pending transaction, all or nothing: its `settings.*` keys (and any metadata it
    /// holds) become live at once, and then the transaction is removed in one rename. Returns the
    /// committed keys; a transaction that does not exist commits nothing.
    ///
    /// The next live tree is built beside `live/` (unchanged files hard-linked, the transaction's
    /// written as new files, all fsynced) and exchanged with it by one `renameat2`; see
    /// `commit.rs`. Interrupted at any point, `live/` holds every value of the old tree or every
    /// value of the new one, and the transaction is still pending until the exchange is durable
    /// (after it, until it is removed: committing it again then changes nothing). A commit that
    /// fails (a longer key in the way of a value) leaves `live/` as it was.
    ///
    /// The caller must hold the datastore's lock (one writer, invariant I6): two commits at once
    /// would each swap in a tree without the other's values.
    pub fn commit_transaction(&self, tx: &str) -> Result<BTreeSet<Key>> {
        self.sweep_trash();
        let pending = Committed::pending(tx);
        let tx_path = self.committed_path(&pending)?;
        if !tx_path.is_dir() {
            return Ok(BTreeSet::new());
        }
        let settings = self.get_prefix("settings.", &pending)?;
        let metadata = self.get_metadata_prefix("", &pending, None)?;
        let mut files = BTreeMap::new();
        for (key, value) in &settings {
            value::check(key.name(), value)?;
            let file = commit::NewFile {
                label: key.name().to_string(),
                value: value.clone(),
            };
            files.insert(relative_data_path(key)?, file);
        }
        for (data_key, metas) in &metadata {
            for (meta_key, value) in metas {
                let label = format!("{data_key}.{meta_key}");
                value::check(&label, value)?;
                let file = commit::NewFile {
                    label,
                    value: value.clone(),
                };
                files.insert(relative_metadata_path(meta_key, data_key)?, file);
            }
        }
        let old_live = commit::swap_in(&self.base, &self.live_path(), &files, self.durability)?;
        self.remove_transaction_dir(tx, &tx_path)?;
        killpoint::checkpoint("transaction-removed");
        old_live.remove();
        killpoint::checkpoint("done");
        debug!("Committed {} keys of transaction '{tx}'", settings.len());
        Ok(settings.into_keys().collect())
    }

    /// Drops a pending transaction; returns the `settings.*` keys it held.
    pub fn delete_transaction(&self, tx: &str) -> Result<BTreeSet<Key>> {
        self.sweep_trash();
        let pending = Committed::pending(tx);
        let tx_path = self.committed_path(&pending)?;
        if !tx_path.is_dir() {
            return Ok(BTreeSet::new());
        }
        let keys = self.list_populated_keys("settings.", &pending)?;
        self.remove_transaction_dir(tx, &tx_path)?;
        Ok(keys)
    }

    /// Makes everything written with [`Durability::Deferred`] durable: fsyncs the whole tree.
    pub fn sync(&self) -> Result<()> {
        atomic::sync_tree(&self.base)
    }

    // The transaction disappears in one rename (out of pending/ into a trash name beside it),
    // so a crash never leaves a half-deleted transaction that a later commit or a migration
    // would take for a real one.
    fn remove_transaction_dir(&self, tx: &str, tx_path: &Path) -> Result<()> {
        let trash = self
            .base
            .join(format!(".trash-{}", nodeio::random_suffix()));
        fs::rename(tx_path, &trash).context(error::IoSnafu {
            action: format!("remove transaction '{tx}' at"),
            path: tx_path,
        })?;
        if self.durability == Durability::EachWrite {
            atomic::sync_dir(&self.pending_path())?;
        }
        fs::remove_dir_all(&trash).context(error::IoSnafu {
            action: "remove",
            path: &trash,
        })
    }

    /// Removes what an interrupted commit or delete left behind (transaction trash, live trees
    /// built or replaced by a commit); failures only warn (none of it is visible to readers).
    fn sweep_trash(&self) {
        commit::sweep(&self.base);
        let Ok(entries) = fs::read_dir(&self.base) else {
            return;
        };
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with(".trash-")
                && let Err(e) = fs::remove_dir_all(entry.path())
            {
                warn!("Failed to remove {}: {e}", entry.path().display());
            }
        }
    }

    fn write_value_file(
        &self,
        key: &Key,
        path: &Path,
        value: &str,
        committed: &Committed,
    ) -> Result<()> {
        let base = self.committed_path(committed)?;
        if let Some(dir) = path.parent() {
            // A prefix of this key may already be a value (`a.b` set, now `a.b.c`): say so.
            for ancestor in dir
                .ancestors()
                .take_while(|a| a.starts_with(&base) && *a != base)
            {
                if ancestor.is_file() {
                    return error::CorruptionSnafu {
                        path: ancestor,
                        reason: format!(
                            "cannot set '{key}': a shorter key holding a value is in the way"
                        ),
                    }
                    .fail();
                }
            }
            atomic::create_dirs(&self.base, dir, self.durability)?;
        }
        atomic::write_atomically(path, value.as_bytes(), key.name(), self.durability)
    }

    fn remove_key_file(&self, key: &Key, path: &Path, committed: &Committed) -> Result<()> {
        match fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(source).context(error::RemoveKeySnafu {
                    key: key.name(),
                    path,
                });
            }
        }
        // Prune directories the removal left empty, up to (not including) the committed base.
        let base = self.committed_path(committed)?;
        let mut last_dir = path.parent().map(Path::to_path_buf);
        if let Some(parent) = path.parent() {
            for dir in parent.ancestors() {
                if dir == base || !dir.starts_with(&base) {
                    break;
                }
                match fs::remove_dir(dir) {
                    Ok(()) => last_dir = dir.parent().map(Path::to_path_buf),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(_) => break, // not empty (or not ours to remove): stop pruning
                }
            }
        }
        if self.durability == Durability::EachWrite
            && let Some(dir) = last_dir
            && dir.is_dir()
        {
            atomic::sync_dir(&dir)?;
        }
        Ok(())
    }

    fn find_key_paths(
        &self,
        key_type: KeyType,
        prefix: &str,
        committed: &Committed,
    ) -> Result<Vec<KeyPath>> {
        let base = self.committed_path(committed)?;
        if !base.is_dir() {
            return match committed {
                Committed::Live => error::CorruptionSnafu {
                    path: base,
                    reason: "the live datastore is missing",
                }
                .fail(),
                Committed::Pending { .. } => Ok(Vec::new()),
            };
        }
        let mut found = Vec::new();
        walk(&base, &mut Vec::new(), &mut |segments, file_name, path| {
            let kp = KeyPath::parse(segments, file_name, path)?;
            let wanted_type = if kp.metadata_key.is_some() {
                KeyType::Meta
            } else {
                KeyType::Data
            };
            if wanted_type == key_type && kp.data_key.name().starts_with(prefix) {
                found.push(kp);
            }
            Ok(())
        })?;
        Ok(found)
    }
}

/// A data key's file relative to `live/` or a transaction: its encoded segments as directories.
fn relative_data_path(key: &Key) -> Result<PathBuf> {
    ensure!(
        key.key_type() == KeyType::Data,
        error::InvalidKeySnafu {
            name: key.name(),
            reason: "a metadata key cannot name a data file",
        }
    );
    Ok(key
        .segments()
        .iter()
        .map(|segment| encode_path_component(segment))
        .collect())
}

/// The file of metadata `metadata_key` on `data_key` relative to `live/` or a transaction.
fn relative_metadata_path(metadata_key: &Key, data_key: &Key) -> Result<PathBuf> {
    ensure!(
        metadata_key.key_type() == KeyType::Meta,
        error::InvalidKeySnafu {
            name: metadata_key.name(),
            reason: "a data key cannot name metadata",
        }
    );
    let data_path = relative_data_path(data_key)?;
    let data_file = data_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let file_name = format!(
        "{data_file}{METADATA_SEPARATOR}{}",
        encode_path_component(&metadata_key.segments()[0])
    );
    ensure!(
        file_name.len() <= MAX_FILE_NAME_LENGTH,
        error::MetadataNameTooLongSnafu {
            data: data_key.name(),
            meta: metadata_key.name(),
            file_name: &file_name,
            max: MAX_FILE_NAME_LENGTH,
        }
    );
    Ok(data_path.with_file_name(file_name))
}

/// What [`walk`] calls for each key file: the decoded directory segments, the file name, its path.
type VisitKeyFile<'a> = dyn FnMut(&[String], &str, &Path) -> Result<()> + 'a;

/// Visits every regular file under `dir` with the decoded directory segments leading to it.
/// Names starting with a dot are skipped: no key encodes to one (a `.` is `%2E`), they are this
/// crate's temporary files. Every other entry must be something a key can be written as (a
/// directory whose name is an encoded segment, or a regular file): a symlink, a FIFO, a device,
/// a socket, a non-UTF-8 name or a name that is not percent-encoded as a key is, is an error
/// naming the entry. Skipping it would drop a setting silently when a migration copies the
/// datastore (and would make reading a FIFO block).
fn walk(dir: &Path, segments: &mut Vec<String>, visit: &mut VisitKeyFile<'_>) -> Result<()> {
    let entries = fs::read_dir(dir).context(error::ListSnafu { path: dir })?;
    for entry in entries {
        let entry = entry.context(error::ListSnafu { path: dir })?;
        let Some((name, path, kind)) = listed_entry(&entry)? else {
            continue;
        };
        if kind.is_dir() {
            ensure!(
                !name.contains(METADATA_SEPARATOR),
                error::UnrepresentableSnafu {
                    path: &path,
                    reason: "a directory name holding a '.' (only a metadata file's name has one)",
                }
            );
            segments.push(decode_path_component(&name, &path)?);
            walk(&path, segments, visit)?;
            segments.pop();
        } else if kind.is_file() {
            visit(segments, &name, &path)?;
        } else {
            return error::UnrepresentableSnafu {
                path,
                reason: format!("{}; a key is a regular file", describe_kind(&kind)),
            }
            .fail();
        }
    }
    Ok(())
}

/// A directory entry's UTF-8 name, path and type (not following symlinks); `None` for the names
/// starting with a dot that listings skip.
fn listed_entry(entry: &fs::DirEntry) -> Result<Option<(String, PathBuf, fs::FileType)>> {
    let path = entry.path();
    let Some(name) = entry.file_name().to_str().map(str::to_string) else {
        return error::UnrepresentableSnafu {
            path,
            reason: "its name is not UTF-8, and a key's file name always is",
        }
        .fail();
    };
    if name.starts_with('.') {
        return Ok(None);
    }
    let kind = entry
        .file_type()
        .context(error::ListSnafu { path: &path })?;
    Ok(Some((name, path, kind)))
}

/// "a symbolic link", "a FIFO", ... for an entry that is neither a directory nor a regular file.
fn describe_kind(kind: &fs::FileType) -> &'static str {
    if kind.is_symlink() {
        "a symbolic link"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_file() {
        "a regular file"
    } else if kind.is_dir() {
        "a directory"
    } else {
        "of an unknown file type"
    }
}

impl KeyPath {
    /// The keys a file stands for; a file no key encodes to is an error naming it.
    fn parse(dir_segments: &[String], file_name: &str, path: &Path) -> Result<Self> {
        let unrepresentable = |e: error::Error| match e {
            e @ error::Error::Unrepresentable { .. } => e,
            other => error::Error::Unrepresentable {
                path: path.to_path_buf(),
                reason: other.to_string(),
            },
        };
        let (data_part, meta_part) = match file_name.split_once(METADATA_SEPARATOR) {
            Some((data, meta)) => (data, Some(meta)),
            None => (file_name, None),
        };
        let mut segments = dir_segments.to_vec();
        segments.push(decode_path_component(data_part, path)?);
        let data_key = Key::from_segments(KeyType::Data, &segments).map_err(unrepresentable)?;
        let metadata_key = meta_part
            .map(|meta| -> Result<Key> {
                let meta = decode_path_component(meta, path)?;
                Key::from_segments(KeyType::Meta, &[meta]).map_err(unrepresentable)
            })
            .transpose()?;
        Ok(Self {
            data_key,
            metadata_key,
        })
    }
}

fn read_value_file(key: &Key, path: &Path) -> Result<Option<String>> {
    match fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(source).context(error::ReadKeySnafu {
            key: key.name(),
            path,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    fn data(name: &str) -> Key {
        Key::new(KeyType::Data, name).unwrap()
    }

    fn meta(name: &str) -> Key {
        Key::new(KeyType::Meta, name).unwrap()
    }

    fn store() -> (tempfile::TempDir, FilesystemDataStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = FilesystemDataStore::create(dir.path().join("v1.0.0_abc")).unwrap();
        (dir, store)
    }

    #[test]
    fn paths_follow_upstream_layout() {
        let f = FilesystemDataStore::new("/base");
        let key = data("a.b.c");
        assert_eq!(
            f.data_path(&key, &Committed::pending("test transaction"))
                .unwrap(),
            Path::new("/base/pending/test%20transaction/a/b/c")
        );
        assert_eq!(
            f.data_path(&key, &Committed::Live).unwrap(),
            Path::new("/base/live/a/b/c")
        );
        assert_eq!(
            f.metadata_path(&meta("my-metadata"), &key, &Committed::Live)
                .unwrap(),
            Path::new("/base/live/a/b/c.my-metadata")
        );
        assert_eq!(
            f.data_path(
                &data(r#"settings.kernel.sysctl."net.ipv4.ip_forward""#),
                &Committed::Live
            )
            .unwrap(),
            Path::new("/base/live/settings/kernel/sysctl/net%2Eipv4%2Eip_forward")
        );
    }

    #[test]
    fn values_are_stored_as_given_without_newline() {
        let (_dir, store) = store();
        let key = data("settings.motd");
        store.set_key(&key, "\"hello\"", &Committed::Live).unwrap();
        let file = store.data_path(&key, &Committed::Live).unwrap();
        assert_eq!(fs::read(&file).unwrap(), b"\"hello\"");
        assert_eq!(
            store.get_key(&key, &Committed::Live).unwrap().as_deref(),
            Some("\"hello\"")
        );
        store
            .set_value(
                &data("settings.list"),
                &serde_json::json!(["a", "b"]),
                &Committed::Live,
            )
            .unwrap();
        assert_eq!(
            fs::read(store.live_path().join("settings/list")).unwrap(),
            br#"["a","b"]"#
        );
    }

    #[test]
    fn a_symlink_at_a_keys_file_is_replaced_and_its_target_untouched() {
        let (dir, store) = store();
        let victim = dir.path().join("victim");
        fs::write(&victim, "precious").unwrap();
        let key = data("settings.motd");
        let file = store.data_path(&key, &Committed::Live).unwrap();
        fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(&victim, &file).unwrap();
        store.set_key(&key, "\"hello\"", &Committed::Live).unwrap();
        assert_eq!(fs::read(&victim).unwrap(), b"precious");
        assert!(fs::symlink_metadata(&file).unwrap().is_file());
        assert_eq!(
            store.get_key(&key, &Committed::Live).unwrap().as_deref(),
            Some("\"hello\"")
        );
    }

    #[test]
    fn invalid_json_is_rejected_naming_the_key() {
        let (_dir, store) = store();
        for bad in ["hello", "", "\"unterminated", "1 2", "{"] {
            let err = store
                .set_key(&data("settings.motd"), bad, &Committed::Live)
                .unwrap_err();
            assert!(matches!(err, Error::InvalidValue { .. }), "{bad:?}: {err}");
            assert!(err.to_string().contains("'settings.motd'"), "{err}");
        }
        assert!(!store.live_path().join("settings").exists());
    }

    #[test]
    fn corrupt_stored_value_is_reported_with_its_path() {
        let (_dir, store) = store();
        fs::create_dir_all(store.live_path().join("settings")).unwrap();
        fs::write(store.live_path().join("settings/motd"), "not json").unwrap();
        let err = store
            .get_value(&data("settings.motd"), &Committed::Live)
            .unwrap_err();
        assert!(err.to_string().contains("settings/motd"), "{err}");
        assert!(err.to_string().contains("'settings.motd'"), "{err}");
    }

    #[test]
    fn list_and_prefix_see_data_keys_only() {
        let (_dir, store) = store();
        let live = Committed::Live;
        store.set_key(&data("settings.a"), "1", &live).unwrap();
        store.set_key(&data("settings.b.c"), "2", &live).unwrap();
        store
            .set_key(&data(r#"settings."x.y""#), "3", &live)
            .unwrap();
        store
            .set_key(&data("services.s.restart"), "4", &live)
            .unwrap();
        store
            .set_metadata(
                &meta("affected-services"),
                &data("settings.a"),
                "[\"s\"]",
                &live,
            )
            .unwrap();
        // A temp file a crash left behind is invisible.
        fs::write(
            store.live_path().join("settings/.tmp-0123456789abcdef"),
            "x",
        )
        .unwrap();

        let keys: Vec<String> = store
            .list_populated_keys("settings.", &live)
            .unwrap()
            .into_iter()
            .map(|k| k.name().to_string())
            .collect();
        assert_eq!(keys, ["settings.a", "settings.b.c", r#"settings."x.y""#]);
        assert_eq!(store.get_prefix("", &live).unwrap().len(), 4);
        assert_eq!(
            store.get_prefix("services", &live).unwrap(),
            BTreeMap::from([(data("services.s.restart"), "4".to_string())])
        );
    }

    #[test]
    fn metadata_is_stored_beside_the_key_and_inherited() {
        let (_dir, store) = store();
        let live = Committed::Live;
        store
            .set_metadata(
                &meta("affected-services"),
                &data("settings.motd"),
                r#"["motd"]"#,
                &live,
            )
            .unwrap();
        assert!(
            store
                .live_path()
                .join("settings/motd.affected-services")
                .is_file()
        );
        store
            .set_metadata(&meta("strength"), &data("settings"), r#""strong""#, &live)
            .unwrap();
        assert_eq!(
            store
                .get_metadata(&meta("strength"), &data("settings.a.b"), &live)
                .unwrap()
                .as_deref(),
            Some(r#""strong""#)
        );
        assert_eq!(
            store
                .get_metadata_raw(&meta("strength"), &data("settings.a.b"), &live)
                .unwrap(),
            None
        );
        let all = store.get_metadata_prefix("", &live, None).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(
            all[&data("settings.motd")][&meta("affected-services")],
            r#"["motd"]"#
        );
        let only = store
            .list_populated_metadata("", &live, Some("strength"))
            .unwrap();
        assert_eq!(only.keys().collect::<Vec<_>>(), [&data("settings")]);

        store
            .unset_metadata(&meta("affected-services"), &data("settings.motd"), &live)
            .unwrap();
        assert_eq!(
            store
                .get_metadata_prefix("settings.", &live, None)
                .unwrap()
                .len(),
            0
        );
    }

    #[test]
    fn unset_prunes_empty_directories() {
        let (_dir, store) = store();
        let live = Committed::Live;
        store.set_key(&data("settings.a.b.c"), "1", &live).unwrap();
        store.set_key(&data("settings.x"), "1", &live).unwrap();
        store.unset_key(&data("settings.a.b.c"), &live).unwrap();
        assert!(!store.live_path().join("settings/a").exists());
        assert!(store.live_path().join("settings/x").is_file());
        // Unsetting what is not there is fine.
        store.unset_key(&data("settings.nope"), &live).unwrap();
        assert!(store.live_path().is_dir());
    }

    #[test]
    fn a_value_in_the_way_of_a_longer_key_is_an_error() {
        let (_dir, store) = store();
        let live = Committed::Live;
        store.set_key(&data("settings.a"), "1", &live).unwrap();
        let err = store
            .set_key(&data("settings.a.b"), "2", &live)
            .unwrap_err();
        assert!(err.to_string().contains("'settings.a.b'"), "{err}");
    }

    #[test]
    fn transactions_commit_settings_into_live() {
        let (_dir, store) = store();
        let tx = Committed::pending("my tx");
        store
            .set_key(&data("settings.motd"), "\"old\"", &Committed::Live)
            .unwrap();
        store
            .set_key(&data("settings.motd"), "\"new\"", &tx)
            .unwrap();
        store
            .set_key(&data("settings.host.name"), "\"h\"", &tx)
            .unwrap();
        store.set_key(&data("services.x"), "1", &tx).unwrap();
        assert!(store.pending_path().join("my%20tx").is_dir());
        assert_eq!(
            store.list_transactions().unwrap(),
            BTreeSet::from(["my tx".to_string()])
        );

        let committed = store.commit_transaction("my tx").unwrap();
        assert_eq!(
            committed,
            BTreeSet::from([data("settings.motd"), data("settings.host.name")])
        );
        assert_eq!(
            store
                .get_key(&data("settings.motd"), &Committed::Live)
                .unwrap()
                .as_deref(),
            Some("\"new\"")
        );
        // Only settings.* are committed, as upstream.
        assert_eq!(
            store
                .get_key(&data("services.x"), &Committed::Live)
                .unwrap(),
            None
        );
        assert!(store.list_transactions().unwrap().is_empty());
        assert!(store.commit_transaction("my tx").unwrap().is_empty());
        // No trash left behind.
        let names: Vec<_> = fs::read_dir(store.base_path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| !n.starts_with(".trash")), "{names:?}");
    }

    /// The names in the version directory besides `live` and `pending`.
    fn leftovers(store: &FilesystemDataStore) -> BTreeSet<String> {
        fs::read_dir(store.base_path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n != "live" && n != "pending")
            .collect()
    }

    #[test]
    fn a_commit_of_many_keys_leaves_exactly_the_old_and_the_new_ones() {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let (dir, store) = store();
        let live = Committed::Live;
        let tx = Committed::pending("big");
        let services = meta("affected-services");
        let mut expected = BTreeMap::new();
        for i in 0..300 {
            let kept = data(&format!("settings.kept.k{i}"));
            store
                .set_key(&kept, &format!("\"kept{i}\""), &live)
                .unwrap();
            expected.insert(kept, format!("\"kept{i}\""));
            let changed = data(&format!("settings.changed.k{i}"));
            store.set_key(&changed, "\"old\"", &live).unwrap();
            store.set_key(&changed, &format!("{i}"), &tx).unwrap();
            expected.insert(changed, format!("{i}"));
            let added = data(&format!("settings.added.deeper.k{i}"));
            store.set_key(&added, "true", &tx).unwrap();
            expected.insert(added, "true".to_string());
        }
        store
            .set_metadata(&services, &data("settings.kept"), r#"["kept"]"#, &live)
            .unwrap();
        store
            .set_metadata(&services, &data("settings.added"), r#"["added"]"#, &tx)
            .unwrap();
        let kept_file = store.live_path().join("settings/kept/k0");
        fs::set_permissions(&kept_file, fs::Permissions::from_mode(0o600)).unwrap();
        fs::set_permissions(
            store.live_path().join("settings/kept"),
            fs::Permissions::from_mode(0o700),
        )
        .unwrap();
        let changed_file = store.live_path().join("settings/changed/k0");
        fs::set_permissions(&changed_file, fs::Permissions::from_mode(0o640)).unwrap();
        let kept_inode = fs::metadata(&kept_file).unwrap().ino();
        // A second name for the changed key's old file: the commit must not write that inode.
        let held = dir.path().join("held");
        fs::hard_link(&changed_file, &held).unwrap();

        let committed = store.commit_transaction("big").unwrap();
        assert_eq!(committed.len(), 600);
        assert_eq!(store.get_prefix("", &live).unwrap(), expected);
        assert_eq!(
            store.get_metadata_prefix("", &live, None).unwrap(),
            BTreeMap::from([
                (
                    data("settings.added"),
                    BTreeMap::from([(services.clone(), r#"["added"]"#.to_string())])
                ),
                (
                    data("settings.kept"),
                    BTreeMap::from([(services.clone(), r#"["kept"]"#.to_string())])
                ),
            ])
        );
        // Unchanged values are the same files (linked, not copied), with their permissions, and
        // so are directories' permissions; a changed value is a new file with the old one's mode.
        let kept_meta = fs::metadata(&kept_file).unwrap();
        assert_eq!(kept_meta.ino(), kept_inode);
        assert_eq!(kept_meta.mode() & 0o7777, 0o600);
        let kept_dir = fs::metadata(store.live_path().join("settings/kept")).unwrap();
        assert_eq!(kept_dir.mode() & 0o7777, 0o700);
        assert_eq!(fs::read(&held).unwrap(), b"\"old\"");
        let changed_meta = fs::metadata(&changed_file).unwrap();
        assert_ne!(changed_meta.ino(), fs::metadata(&held).unwrap().ino());
        assert_eq!(changed_meta.mode() & 0o7777, 0o640);
        assert!(store.list_transactions().unwrap().is_empty());
        assert!(leftovers(&store).is_empty(), "{:?}", leftovers(&store));
    }

    #[test]
    fn a_commit_that_fails_leaves_live_as_it_was() {
        let (_dir, store) = store();
        let live = Committed::Live;
        let tx = Committed::pending("default");
        store.set_key(&data("settings.x"), "1", &live).unwrap();
        store.set_key(&data("settings.y.z"), "2", &live).unwrap();
        // Keys that sort before the ones in the way: a per-key commit wrote them before failing.
        for i in 0..50 {
            store
                .set_key(&data(&format!("settings.a{i:02}")), "3", &tx)
                .unwrap();
        }
        for (in_the_way, bad, why) in [
            (
                "settings/x",
                "settings.x.y",
                "a shorter key holding a value is in the way",
            ),
            ("settings/y", "settings.y", "longer keys are in the way"),
        ] {
            // Written behind the datastore's back: its own writes refuse such a shape.
            let mut by_hand = store.committed_path(&tx).unwrap();
            for segment in data(bad).segments() {
                by_hand.push(segment);
            }
            fs::create_dir_all(by_hand.parent().unwrap()).unwrap();
            fs::write(&by_hand, "4").unwrap();
            let err = store.commit_transaction("default").unwrap_err();
            let message = err.to_string();
            assert!(matches!(err, Error::Corruption { .. }), "{message}");
            assert!(
                message.contains(&format!("'{bad}'")) && message.contains(why),
                "{message}"
            );
            assert!(
                message.contains(&store.live_path().join(in_the_way).display().to_string()),
                "{message}"
            );
            assert_eq!(
                store.get_prefix("", &live).unwrap(),
                BTreeMap::from([
                    (data("settings.x"), "1".to_string()),
                    (data("settings.y.z"), "2".to_string())
                ])
            );
            assert_eq!(store.list_transactions().unwrap().len(), 1);
            assert!(leftovers(&store).is_empty(), "{:?}", leftovers(&store));
            fs::remove_file(&by_hand).unwrap();
        }
        // Without them it commits.
        assert_eq!(store.commit_transaction("default").unwrap().len(), 50);
    }

    #[test]
    fn trees_an_interrupted_commit_left_are_invisible_and_swept() {
        let (_dir, store) = store();
        let live = Committed::Live;
        store
            .set_key(&data("settings.motd"), "\"live\"", &live)
            .unwrap();
        // Killed before the exchange: a half-built next tree. Killed after it: the replaced tree,
        // under either name.
        for name in ["live.new-0123456789abcdef", "live.old-0123456789abcdef"] {
            let other = store.base_path().join(name).join("settings");
            fs::create_dir_all(&other).unwrap();
            fs::write(other.join("motd"), "\"other\"").unwrap();
        }
        fs::write(store.base_path().join("live.new-file"), "x").unwrap();
        std::os::unix::fs::symlink("live", store.base_path().join("live.old-link")).unwrap();
        let fresh = FilesystemDataStore::new(store.base_path());
        assert_eq!(
            fresh.get_prefix("", &live).unwrap(),
            BTreeMap::from([(data("settings.motd"), "\"live\"".to_string())])
        );
        assert_eq!(leftovers(&fresh).len(), 4);

        // A commit (even of nothing) sweeps them; a link is removed, not followed.
        assert!(fresh.commit_transaction("nothing").unwrap().is_empty());
        assert!(leftovers(&fresh).is_empty(), "{:?}", leftovers(&fresh));
        assert_eq!(
            fresh
                .get_key(&data("settings.motd"), &live)
                .unwrap()
                .as_deref(),
            Some("\"live\"")
        );
        // And so does a delete.
        fs::create_dir(store.base_path().join("live.new-again")).unwrap();
        assert!(fresh.delete_transaction("nothing").unwrap().is_empty());
        assert!(leftovers(&fresh).is_empty(), "{:?}", leftovers(&fresh));
    }

    #[test]
    fn a_commit_into_a_store_without_live_creates_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = FilesystemDataStore::new(dir.path().join("v1.0.0_abc"));
        let tx = Committed::pending("default");
        store
            .set_key(&data("settings.motd"), "\"hi\"", &tx)
            .unwrap();
        store.commit_transaction("default").unwrap();
        assert_eq!(
            store
                .get_key(&data("settings.motd"), &Committed::Live)
                .unwrap()
                .as_deref(),
            Some("\"hi\"")
        );
        assert!(leftovers(&store).is_empty(), "{:?}", leftovers(&store));
    }

    #[test]
    fn delete_transaction_drops_it() {
        let (_dir, store) = store();
        let tx = Committed::pending(DEFAULT_TRANSACTION);
        store.set_key(&data("settings.motd"), "\"x\"", &tx).unwrap();
        assert_eq!(
            store.delete_transaction(DEFAULT_TRANSACTION).unwrap(),
            BTreeSet::from([data("settings.motd")])
        );
        assert_eq!(
            store
                .get_key(&data("settings.motd"), &Committed::Live)
                .unwrap(),
            None
        );
        assert!(store.list_transactions().unwrap().is_empty());
    }

    #[test]
    fn missing_live_is_corruption_but_missing_pending_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let store = FilesystemDataStore::new(dir.path());
        assert!(store.list_populated_keys("", &Committed::Live).is_err());
        assert!(
            store
                .list_populated_keys("", &Committed::pending("nope"))
                .unwrap()
                .is_empty()
        );
        assert!(store.list_transactions().unwrap().is_empty());
    }

    /// Every read that lists the datastore (what a migration reads it with) fails naming `bad`.
    fn assert_listing_fails_naming(store: &FilesystemDataStore, bad: &Path, why: &str) {
        let live = Committed::Live;
        let tx = Committed::pending("tx");
        let results = [
            store.get_prefix("", &live).map(|_| ()),
            store.list_populated_keys("settings.", &live).map(|_| ()),
            store.get_metadata_prefix("", &live, None).map(|_| ()),
            store.get_prefix("", &tx).map(|_| ()),
            store.list_transactions().map(|_| ()),
        ];
        // Live entries fail the live reads, a transaction's entries that transaction's reads,
        // entries of pending/ itself the listing of transactions.
        let relevant = if bad.parent() == Some(store.pending_path().as_path()) {
            &results[4..]
        } else if bad.starts_with(store.pending_path()) {
            &results[3..4]
        } else {
            &results[..3]
        };
        for result in relevant {
            let err = result.as_ref().unwrap_err();
            let message = err.to_string();
            assert!(
                matches!(err, Error::Unrepresentable { .. }),
                "{}: {message}",
                bad.display()
            );
            assert!(
                message.contains(&bad.display().to_string()) && message.contains(why),
                "{why:?} for {} not in: {message}",
                bad.display()
            );
        }
    }

    #[test]
    fn entries_no_key_encodes_to_are_errors_naming_them() {
        use std::os::unix::ffi::OsStrExt;
        let (_dir, store) = store();
        let live = Committed::Live;
        let tx = Committed::pending("tx");
        store
            .set_key(&data("settings.motd"), "\"hi\"", &live)
            .unwrap();
        store
            .set_metadata(&meta("m"), &data("settings.motd"), "1", &live)
            .unwrap();
        store
            .set_key(&data("settings.motd"), "\"tx\"", &tx)
            .unwrap();
        let settings = store.live_path().join("settings");
        let tx_dir = store.pending_path().join("tx");

        type Make = Box<dyn Fn(&Path)>;
        let file =
            |content: &'static str| -> Make { Box::new(move |p| fs::write(p, content).unwrap()) };
        let cases: Vec<(PathBuf, &str, Make)> = vec![
            (
                settings.join("link"),
                "a symbolic link",
                Box::new(|p| std::os::unix::fs::symlink("motd", p).unwrap()),
            ),
            (
                settings.join("dirlink"),
                "a symbolic link",
                Box::new(|p| std::os::unix::fs::symlink("..", p).unwrap()),
            ),
            (
                settings.join("fifo"),
                "a FIFO",
                Box::new(|p| {
                    rustix::fs::mknodat(
                        rustix::fs::CWD,
                        p,
                        rustix::fs::FileType::Fifo,
                        rustix::fs::Mode::from_raw_mode(0o600),
                        0,
                    )
                    .unwrap();
                }),
            ),
            (
                settings.join("socket"),
                "a socket",
                Box::new(|p| {
                    std::mem::forget(std::os::unix::net::UnixListener::bind(p).unwrap());
                }),
            ),
            (
                settings.join(std::ffi::OsStr::from_bytes(b"bad\xffname")),
                "not UTF-8",
                file("1"),
            ),
            (
                settings.join("a%ZZ"),
                "'a%ZZ' is not percent-encoded",
                file("1"),
            ),
            (
                settings.join("a%2"),
                "'a%2' is not percent-encoded",
                file("1"),
            ),
            (
                settings.join("a%2eb"),
                "'a%2eb' is not percent-encoded",
                file("1"),
            ),
            (
                settings.join("%41"),
                "'%41' is not percent-encoded",
                file("1"),
            ),
            (
                settings.join("motd.m%ZZ"),
                "'m%ZZ' is not percent-encoded",
                file("1"),
            ),
            (
                settings.join("a%2"),
                "'a%2' is not percent-encoded",
                Box::new(|p| fs::create_dir(p).unwrap()),
            ),
            (
                settings.join("dir.with-dot"),
                "a directory name holding a '.'",
                Box::new(|p| fs::create_dir(p).unwrap()),
            ),
            (settings.join("bad%21"), "invalid character", file("1")),
            (
                tx_dir.join("settings/a%ZZ"),
                "'a%ZZ' is not percent-encoded",
                file("1"),
            ),
            (
                tx_dir.join("settings/link"),
                "a symbolic link",
                Box::new(|p| std::os::unix::fs::symlink("motd", p).unwrap()),
            ),
            (
                store.pending_path().join("not-a-dir"),
                "a regular file; a transaction is a directory",
                file("1"),
            ),
            (
                store.pending_path().join("t%ZZ"),
                "'t%ZZ' is not percent-encoded",
                Box::new(|p| fs::create_dir(p).unwrap()),
            ),
        ];
        for (bad, why, make) in cases {
            make(&bad);
            assert_listing_fails_naming(&store, &bad, why);
            if bad.is_dir() && !bad.is_symlink() {
                fs::remove_dir(&bad).unwrap();
            } else {
                fs::remove_file(&bad).unwrap();
            }
            // Without it, everything reads again.
            assert_eq!(store.get_prefix("", &live).unwrap().len(), 1);
            assert_eq!(store.get_metadata_prefix("", &live, None).unwrap().len(), 1);
            assert_eq!(store.get_prefix("", &tx).unwrap().len(), 1);
            assert_eq!(store.list_transactions().unwrap().len(), 1);
        }
        // Names starting with a dot (temporary files) are skipped, as before.
        fs::write(settings.join(".tmp-0123456789abcdef"), "x").unwrap();
        fs::create_dir(store.pending_path().join(".trash-0123")).unwrap();
        assert_eq!(store.get_prefix("", &live).unwrap().len(), 1);
        assert_eq!(store.list_transactions().unwrap().len(), 1);
    }

    #[test]
    fn too_long_metadata_file_names_are_rejected() {
        let (_dir, store) = store();
        let long = "a".repeat(200);
        let err = store
            .set_metadata(
                &meta(&long),
                &data(&format!("settings.{long}")),
                "1",
                &Committed::Live,
            )
            .unwrap_err();
        assert!(matches!(err, Error::MetadataNameTooLong { .. }), "{err}");
    }
}
