//! The node's durable store of trusted TUF metadata (`/var/lib/updog/tuf`): the last verified timestamp, snapshot,
//! targets and delegated roles (`<role>.json`), the root chain reached by rotation (`N.root.json`), and the latest
//! time a verified load used (`latest_known_time.json`). It verifies nothing: the caller verifies every byte it reads
//! back. Trust is only as monotonic as this store (I5), so:
//! - every write is atomic and durable (temporary file, fsync, rename, fsync of the directory): a crash leaves the
//!   old file or the new one, never a torn one;
//! - nothing is read or written through a symlink: a planted link can neither feed old metadata to a read nor
//!   redirect a write;
//! - a damaged entry (a link, a directory, an oversized or unreadable file, a time that does not parse) is an error,
//!   never "absent": treating it as absent would forget the versions that rollback protection compares against.

use chrono::{DateTime, SecondsFormat, Utc};
use nodeio::{AtomicWrite, AtomicWriteError, SmallReadError};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_encode};
use snafu::{ResultExt, Snafu};
use std::fs::{self, DirBuilder};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

#[cfg(test)]
mod tests;

/// Everything but `[A-Za-z0-9._-]` is quoted in a role's file name.
const ROLE_QUOTED: &AsciiSet = &NON_ALPHANUMERIC.remove(b'.').remove(b'_').remove(b'-');

/// The latest reference time a verified load used (the name tough uses, so an existing store keeps it).
const LATEST_KNOWN_TIME: &str = "latest_known_time.json";
/// The role whose file name would be [`LATEST_KNOWN_TIME`]; its file name is quoted so that it cannot be.
const LATEST_KNOWN_TIME_ROLE: &str = "latest_known_time";
/// `N.root.json`: one root of the chain.
const ROOT_SUFFIX: &str = ".root.json";
/// An RFC 3339 time in JSON is about 30 bytes; anything near this is not one.
const TIME_FILE_LIMIT: u64 = 4096;
/// Trust state is the node's own business.
const DIR_MODE: u32 = 0o700;
const FILE_MODE: u32 = 0o600;

/// A store operation failed; every variant names the path and what was being done.
#[derive(Debug, Snafu)]
#[snafu(visibility(pub(crate)))]
pub enum StoreError {
    #[snafu(display("Failed to create the TUF metadata store directory {}: {source}", path.display()))]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },

    #[snafu(display(
        "The TUF metadata store {} is {found}, not a directory; refusing to use it",
        path.display()
    ))]
    NotADirectory { path: PathBuf, found: &'static str },

    #[snafu(display("Failed to fsync directory {} after {step}: {source}", path.display()))]
    SyncDir {
        path: PathBuf,
        step: String,
        source: std::io::Error,
    },

    #[snafu(display("Refusing an empty TUF role name (metadata store {})", dir.display()))]
    EmptyRole { dir: PathBuf },

    #[snafu(display(
        "Failed to read {} from the TUF metadata store: {source}; a damaged store is not treated as empty",
        path.display()
    ))]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },

    #[snafu(display(
        "{} in the TUF metadata store is {found}, not a regular file; refusing to read it (a damaged store is not \
         treated as empty)",
        path.display()
    ))]
    NotRegular { path: PathBuf, found: &'static str },

    #[snafu(display(
        "{} in the TUF metadata store is larger than {max_len} bytes; refusing to read it (a damaged store is not \
         treated as empty)",
        path.display()
    ))]
    TooLarge { path: PathBuf, max_len: u64 },

    #[snafu(display("Failed to write {} in the TUF metadata store: {source}", path.display()))]
    Write {
        path: PathBuf,
        source: AtomicWriteError,
    },

    #[snafu(display("Failed to remove {} from the TUF metadata store: {source}", path.display()))]
    Remove {
        path: PathBuf,
        source: std::io::Error,
    },

    #[snafu(display("Failed to list the TUF metadata store {}: {source}", path.display()))]
    ListDir {
        path: PathBuf,
        source: std::io::Error,
    },

    #[snafu(display(
        "{} does not hold a time (a JSON string in RFC 3339, such as \"2026-12-03T15:00:00Z\"): {source}. It only \
         records the latest time a verified load used; delete it to recover (the next load records the time again)",
        path.display()
    ))]
    BadTime {
        path: PathBuf,
        source: serde_json::Error,
    },
}

/// The trusted-metadata directory; see the module doc.
#[derive(Debug, Clone)]
pub struct MetadataStore {
    dir: PathBuf,
}

impl MetadataStore {
    /// Opens (creating with mode 0700 if missing, parents with default mode) the store directory. Refuses a
    /// `dir` that exists but is not a directory, or is a symlink. An existing directory's mode is left as it is.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let dir = dir.into();
        match fs::symlink_metadata(&dir) {
            Ok(metadata) => ensure_directory(&dir, &metadata)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => create_private_dir(&dir)?,
            Err(source) => return Err(source).context(CreateSnafu { path: &dir }),
        }
        Ok(Self { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Reads `<quoted role>.json` (role = "timestamp", "snapshot", "targets", or a delegated role name).
    /// Ok(None) if absent. Never follows a symlink (O_NOFOLLOW); a non-regular file, a file over `max_len`
    /// bytes, or any read error other than NotFound is an Err naming the path (a damaged store is an error,
    /// never silently treated as empty: rollback protection depends on it).
    pub fn read_role(&self, role: &str, max_len: u64) -> Result<Option<Vec<u8>>, StoreError> {
        read_nofollow(&self.role_path(role)?, max_len)
    }

    /// Atomically and durably replaces `<quoted role>.json` with `bytes`: temp file in the same dir (mode 0600),
    /// write, fsync, rename over, fsync the dir. A symlink planted at the destination is replaced, never followed.
    pub fn write_role(&self, role: &str, bytes: &[u8]) -> Result<(), StoreError> {
        write_private(&self.role_path(role)?, bytes)
    }

    /// Removes `<quoted role>.json` if present (durably: dir fsync).
    pub fn remove_role(&self, role: &str) -> Result<(), StoreError> {
        let path = self.role_path(role)?;
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(source) => return Err(source).context(RemoveSnafu { path }),
        }
        nodeio::sync_dir(&self.dir).context(SyncDirSnafu {
            path: &self.dir,
            step: format!("removing {}", path.display()),
        })
    }

    /// The persisted root chain: `N.root.json` files (N >= 2; the shipped root is version 1.. and is never stored
    /// here as an anchor). Reads `<version>.root.json`, Ok(None) if absent, same safety as read_role.
    pub fn read_root(&self, version: u64, max_len: u64) -> Result<Option<Vec<u8>>, StoreError> {
        read_nofollow(&self.root_path(version), max_len)
    }

    /// Atomically and durably replaces `<version>.root.json`, as [`Self::write_role`].
    pub fn write_root(&self, version: u64, bytes: &[u8]) -> Result<(), StoreError> {
        write_private(&self.root_path(version), bytes)
    }

    /// Versions of the stored `N.root.json` files, ascending (ignores other files). Only the names
    /// [`Self::write_root`] writes count: `N` in canonical decimal (no sign, no leading zero, fits a u64), so
    /// `01.root.json` or `root.json` is not a version. Whether a listed file is sound is for `read_root` to say.
    pub fn root_versions(&self) -> Result<Vec<u64>, StoreError> {
        let list = || ListDirSnafu { path: &self.dir };
        let mut versions = Vec::new();
        for entry in fs::read_dir(&self.dir).with_context(|_| list())? {
            let entry = entry.with_context(|_| list())?;
            if let Some(version) = entry
                .file_name()
                .to_str()
                .and_then(|name| name.strip_suffix(ROOT_SUFFIX))
                .and_then(canonical_version)
            {
                versions.push(version);
            }
        }
        versions.sort_unstable();
        Ok(versions)
    }

    /// `latest_known_time.json`: the latest reference time a verified load used (RFC 3339 string in JSON, as
    /// tough writes it: a JSON string like "2026-12-03T15:00:00Z"). Ok(None) if absent; unparsable is an Err
    /// naming the file and saying how to recover (delete the file).
    pub fn read_latest_known_time(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let path = self.dir.join(LATEST_KNOWN_TIME);
        let Some(bytes) = read_nofollow(&path, TIME_FILE_LIMIT)? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .context(BadTimeSnafu { path })
    }

    /// Atomically and durably replaces `latest_known_time.json` with `time` as a JSON string (whole seconds
    /// unless `time` has a fraction, `Z` for UTC: what tough writes).
    pub fn write_latest_known_time(&self, time: DateTime<Utc>) -> Result<(), StoreError> {
        // An RFC 3339 time holds no character JSON would escape, so quoting it makes the JSON string.
        let json = format!("\"{}\"", time.to_rfc3339_opts(SecondsFormat::AutoSi, true));
        write_private(&self.dir.join(LATEST_KNOWN_TIME), json.as_bytes())
    }

    fn role_path(&self, role: &str) -> Result<PathBuf, StoreError> {
        // "" would be ".json", a hidden file that names no role.
        snafu::ensure!(!role.is_empty(), EmptyRoleSnafu { dir: &self.dir });
        Ok(self.dir.join(role_file_name(role)))
    }

    fn root_path(&self, version: u64) -> PathBuf {
        self.dir.join(format!("{version}{ROOT_SUFFIX}"))
    }
}

/// File name for a role: percent-encode every byte that is not [A-Za-z0-9._-] (so `/`, `?`, `#`, `%`, space, and
/// non-ASCII are quoted), and also quote a leading `.` so that "." and ".." and dotfiles cannot occur; then append
/// ".json". E.g. "a/../b" -> "a%2F..%2Fb.json", ".." -> "%2E..json". Injective (percent-decoding the name without
/// ".json" gives the role back), and never a name the store uses for anything else: the first byte is also quoted
/// for the role "latest_known_time" ("%6Catest_known_time.json") and for roles `<digits>.root` ("2.root" ->
/// "%32.root.json"), so a delegated role cannot overwrite the time or the root chain. The empty role gives ".json",
/// which the store refuses. pub because the conformance client and URLs use it.
pub fn role_file_name(role: &str) -> String {
    let bytes = role.as_bytes();
    let mut name = String::with_capacity(bytes.len() + ".json".len());
    let rest = match bytes.split_first() {
        Some((&first, rest)) if first == b'.' || is_reserved_role(role) => {
            // Both cases start with an ASCII byte, so quoting it alone leaves the rest intact.
            name.push_str(&format!("%{first:02X}"));
            rest
        }
        _ => bytes,
    };
    name.extend(percent_encode(rest, ROLE_QUOTED));
    name.push_str(".json");
    name
}

/// A role whose plain file name would be one of the store's own files.
fn is_reserved_role(role: &str) -> bool {
    role == LATEST_KNOWN_TIME_ROLE
        || role
            .strip_suffix(".root")
            .is_some_and(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
}

/// `N` as [`MetadataStore::write_root`] spells it, else None.
fn canonical_version(text: &str) -> Option<u64> {
    let canonical = !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    if !canonical {
        return None;
    }
    // Too many digits for a u64: not a name write_root can have written.
    text.parse().ok()
}

/// The bytes at `path`, None only when nothing is there.
fn read_nofollow(path: &Path, max_len: u64) -> Result<Option<Vec<u8>>, StoreError> {
    match nodeio::read_small_file_nofollow(path, max_len) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(SmallReadError::Io { source }) if source.kind() == std::io::ErrorKind::NotFound => {
            Ok(None)
        }
        Err(SmallReadError::Io { source }) => Err(source).context(ReadSnafu { path }),
        Err(SmallReadError::Symlink) => NotRegularSnafu {
            path,
            found: "a symlink",
        }
        .fail(),
        Err(SmallReadError::NotRegular) => NotRegularSnafu {
            path,
            found: found_at(path),
        }
        .fail(),
        Err(SmallReadError::TooLarge { limit }) => TooLargeSnafu {
            path,
            max_len: limit,
        }
        .fail(),
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    AtomicWrite::new(path)
        .mode(FILE_MODE)
        .write(bytes)
        .context(WriteSnafu { path })
}

/// What is at `path` (not followed), for a message.
fn found_at(path: &Path) -> &'static str {
    match fs::symlink_metadata(path) {
        Ok(metadata) => describe(metadata.file_type()),
        Err(_) => "not a regular file",
    }
}

fn describe(kind: fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if kind.is_symlink() {
        "a symlink"
    } else if kind.is_dir() {
        "a directory"
    } else if kind.is_file() {
        "a regular file"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_block_device() || kind.is_char_device() {
        "a device"
    } else {
        "not a regular file"
    }
}

fn ensure_directory(dir: &Path, metadata: &fs::Metadata) -> Result<(), StoreError> {
    let kind = metadata.file_type();
    snafu::ensure!(
        kind.is_dir(),
        NotADirectorySnafu {
            path: dir,
            found: describe(kind),
        }
    );
    Ok(())
}

/// Creates `dir` with exactly mode 0700 (and its missing parents with the default mode), then fsyncs the directory
/// above each one created, so that the store survives a power cut before its first file does.
fn create_private_dir(dir: &Path) -> Result<(), StoreError> {
    let parent = nodeio::atomic::parent_dir(dir);
    // The highest missing ancestor, whose own parent must be fsynced too.
    let mut highest_new = dir.to_path_buf();
    let mut above = parent.clone();
    while !above.as_os_str().is_empty() && fs::symlink_metadata(&above).is_err() {
        highest_new.clone_from(&above);
        match above.parent() {
            Some(next) => above = next.to_path_buf(),
            None => break,
        }
    }
    fs::create_dir_all(&parent).context(CreateSnafu { path: &parent })?;
    match DirBuilder::new().mode(DIR_MODE).create(dir) {
        Ok(()) => {}
        // Another updog created it meanwhile: use it if it is a directory.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let metadata = fs::symlink_metadata(dir).context(CreateSnafu { path: dir })?;
            return ensure_directory(dir, &metadata);
        }
        Err(source) => return Err(source).context(CreateSnafu { path: dir }),
    }
    // The mode given at creation is narrowed by the umask; set it exactly.
    fs::set_permissions(dir, fs::Permissions::from_mode(DIR_MODE))
        .context(CreateSnafu { path: dir })?;
    for created in dir.ancestors() {
        let above = nodeio::atomic::parent_dir(created);
        nodeio::sync_dir(&above).context(SyncDirSnafu {
            path: &above,
            step: format!("creating {}", created.display()),
        })?;
        if created == highest_new {
            break;
        }
    }
    Ok(())
}
