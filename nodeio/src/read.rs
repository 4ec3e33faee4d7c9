//! Reading the node's small text files (updog.toml, os-release, the kernel command line) so that a hostile file
//! cannot hang or exhaust a command: only a regular file is read (a FIFO, a device such as `/dev/zero` or a directory
//! planted there is refused at once, not waited on), and only up to a size limit.

use rustix::fs::{Mode, OFlags};
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

/// The most any of these files may hold: far above a real one, far below what would hurt.
pub const SMALL_FILE_LIMIT: u64 = 1 << 20;

/// The contents of the regular file at `path` (a symlink to one is followed), as text; refused with
/// `InvalidData`/`InvalidInput` when it is not a regular file, is larger than `limit` bytes, or is not UTF-8.
pub fn read_small_text_file(path: &Path, limit: u64) -> io::Result<String> {
    read_regular(path, limit, OFlags::empty())
}

/// As [`read_small_text_file`], but a symlink at `path` (its last component) is not followed: it is refused with
/// `InvalidInput` ("a symlink, not a regular file"). For files whose owner replaces a planted link rather than
/// reading through it (thar-be-updates' status), so that a reader never serves what the link points to.
pub fn read_small_text_file_nofollow(path: &Path, limit: u64) -> io::Result<String> {
    read_regular(path, limit, OFlags::NOFOLLOW).map_err(|e| {
        if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) {
            io::Error::new(io::ErrorKind::InvalidInput, "a symlink, not a regular file")
        } else {
            e
        }
    })
}

fn read_regular(path: &Path, limit: u64, extra: OFlags) -> io::Result<String> {
    // Non-blocking, so that opening a FIFO with no writer returns at once instead of waiting for one.
    let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC | extra;
    let file = File::from(rustix::fs::open(path, flags, Mode::empty())?);
    let metadata = file.metadata()?;
    if !metadata.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    let mut bytes = Vec::new();
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than {limit} bytes"),
        ));
    }
    String::from_utf8(bytes)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "not UTF-8 text"))
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
}
