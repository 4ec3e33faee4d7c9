//! Reading the node's small text files (updog.toml, os-release, the kernel command line) so that a hostile file
//! cannot hang or exhaust a command: only a regular file is read (a FIFO, a device such as `/dev/zero` or a directory
//! planted there is refused at once, not waited on), and only up to a size limit.

use rustix::fs::{Mode, OFlags};
use snafu::{ResultExt, Snafu};
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

/// The most any of these files may hold: far above a real one, far below what would hurt.
pub const SMALL_FILE_LIMIT: u64 = 1 << 20;

/// Why a bounded read returned no contents, by kind, so that a caller can tell "absent" from "damaged" without
/// matching messages. The path is the caller's to name.
#[derive(Debug, Snafu)]
pub enum SmallReadError {
    /// Opening or reading failed (`NotFound` when nothing is at the path).
    #[snafu(display("{source}"))]
    Io { source: io::Error },

    /// A symlink at the path, from a no-follow read.
    #[snafu(display("a symlink, not a regular file"))]
    Symlink,

    /// A directory, FIFO, device or socket.
    #[snafu(display("not a regular file"))]
    NotRegular,

    #[snafu(display("larger than {limit} bytes"))]
    TooLarge { limit: u64 },
}

impl From<SmallReadError> for io::Error {
    /// The text reads' error: `InvalidInput` for what is not a regular file, `InvalidData` for a file too large.
    fn from(error: SmallReadError) -> Self {
        match error {
            SmallReadError::Io { source } => source,
            SmallReadError::Symlink | SmallReadError::NotRegular => {
                io::Error::new(io::ErrorKind::InvalidInput, error.to_string())
            }
            SmallReadError::TooLarge { .. } => {
                io::Error::new(io::ErrorKind::InvalidData, error.to_string())
            }
        }
    }
}

/// The contents of the regular file at `path` (a symlink to one is followed), as text; refused with
/// `InvalidData`/`InvalidInput` when it is not a regular file, is larger than `limit` bytes, or is not UTF-8.
pub fn read_small_text_file(path: &Path, limit: u64) -> io::Result<String> {
    text(read_regular(path, limit, OFlags::empty())?)
}

/// As [`read_small_text_file`], but a symlink at `path` (its last component) is not followed: it is refused with
/// `InvalidInput` ("a symlink, not a regular file"). For files whose owner replaces a planted link rather than
/// reading through it (thar-be-updates' status), so that a reader never serves what the link points to.
pub fn read_small_text_file_nofollow(path: &Path, limit: u64) -> io::Result<String> {
    text(read_small_file_nofollow(path, limit)?)
}

/// The bytes of the regular file at `path`, up to `limit`, never through a symlink at `path` (its last component):
/// for stores whose damage must be told apart from absence (updog's TUF metadata), each refusal is its own
/// [`SmallReadError`] variant.
pub fn read_small_file_nofollow(path: &Path, limit: u64) -> Result<Vec<u8>, SmallReadError> {
    read_regular(path, limit, OFlags::NOFOLLOW)
}

fn text(bytes: Vec<u8>) -> io::Result<String> {
    String::from_utf8(bytes)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "not UTF-8 text"))
}

fn read_regular(path: &Path, limit: u64, extra: OFlags) -> Result<Vec<u8>, SmallReadError> {
    // Non-blocking, so that opening a FIFO with no writer returns at once instead of waiting for one.
    let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC | extra;
    let file = match rustix::fs::open(path, flags, Mode::empty()) {
        Ok(fd) => File::from(fd),
        // O_NOFOLLOW's refusal of a symlink in the last component.
        Err(rustix::io::Errno::LOOP) if extra.contains(OFlags::NOFOLLOW) => {
            return SymlinkSnafu.fail();
        }
        Err(errno) => return Err(io::Error::from(errno)).context(IoSnafu),
    };
    let metadata = file.metadata().context(IoSnafu)?;
    snafu::ensure!(metadata.is_file(), NotRegularSnafu);
    let mut bytes = Vec::new();
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .context(IoSnafu)?;
    snafu::ensure!(bytes.len() as u64 <= limit, TooLargeSnafu { limit });
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_regular_file_is_read_and_anything_else_is_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("updog.toml");
        std::fs::write(&file, "seed = 1\n").unwrap();
        assert_eq!(read_small_text_file(&file, 100).unwrap(), "seed = 1\n");

        let fifo = dir.path().join("fifo");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        let err = read_small_text_file(&fifo, 100).unwrap_err();
        assert_eq!(err.to_string(), "not a regular file");

        let link = dir.path().join("zero");
        std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
        assert_eq!(
            read_small_text_file(&link, 100).unwrap_err().to_string(),
            "not a regular file"
        );
        assert_eq!(
            read_small_text_file(dir.path(), 100)
                .unwrap_err()
                .to_string(),
            "not a regular file"
        );

        std::fs::write(&file, vec![b'x'; 101]).unwrap();
        assert_eq!(
            read_small_text_file(&file, 100).unwrap_err().to_string(),
            "larger than 100 bytes"
        );
        std::fs::write(&file, [0xff, 0xfe]).unwrap();
        assert_eq!(
            read_small_text_file(&file, 100).unwrap_err().to_string(),
            "not UTF-8 text"
        );
    }

    #[test]
    fn the_nofollow_read_refuses_a_symlink_even_to_a_regular_file() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target.json");
        std::fs::write(&target, "{}").unwrap();
        assert_eq!(read_small_text_file_nofollow(&target, 100).unwrap(), "{}");
        let link = dir.path().join("status.json");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert_eq!(read_small_text_file(&link, 100).unwrap(), "{}");
        let error = read_small_text_file_nofollow(&link, 100).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
        assert_eq!(error.to_string(), "a symlink, not a regular file");
        assert_eq!(
            read_small_text_file_nofollow(dir.path(), 100)
                .unwrap_err()
                .to_string(),
            "not a regular file"
        );
        assert_eq!(
            read_small_text_file_nofollow(&dir.path().join("missing"), 100)
                .unwrap_err()
                .kind(),
            io::ErrorKind::NotFound
        );
    }

    #[test]
    fn the_bytes_read_names_each_refusal_by_kind() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("timestamp.json");
        std::fs::write(&file, [0xff, b'{', 0x00]).unwrap();
        // Bytes, not text: no UTF-8 requirement.
        assert_eq!(
            read_small_file_nofollow(&file, 3).unwrap(),
            [0xff, b'{', 0x00]
        );
        assert!(matches!(
            read_small_file_nofollow(&file, 2).unwrap_err(),
            SmallReadError::TooLarge { limit: 2 }
        ));
        let link = dir.path().join("link.json");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        assert!(matches!(
            read_small_file_nofollow(&link, 100).unwrap_err(),
            SmallReadError::Symlink
        ));
        assert!(matches!(
            read_small_file_nofollow(dir.path(), 100).unwrap_err(),
            SmallReadError::NotRegular
        ));
        match read_small_file_nofollow(&dir.path().join("missing"), 100).unwrap_err() {
            SmallReadError::Io { source } => assert_eq!(source.kind(), io::ErrorKind::NotFound),
            other => panic!("expected NotFound, got {other:?}"),
        }
    }
}
