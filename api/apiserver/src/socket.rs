//! The API socket: born mode 0600 (the umask is set around `bind`, so there is no moment at which another user could
//! connect), in a directory created 0755 when missing. A stale socket (one nobody listens on, left by a crashed
//! server) is replaced; anything else at the path (a regular file, a link, a directory, a live server) is refused,
//! so the server never deletes what it did not create and never steals a running server's socket.

use crate::error::{self, StartError};
use rustix::fs::Mode;
use snafu::{ResultExt, ensure};
use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

/// A bound listening socket; [`BoundSocket::remove`] deletes its file when it is still ours.
#[derive(Debug)]
pub struct BoundSocket {
    listener: UnixListener,
    path: PathBuf,
    /// `(device, inode)` of the socket file we created.
    identity: (u64, u64),
}

impl BoundSocket {
    /// Binds the socket at `path`, mode 0600.
    pub fn bind(path: &Path) -> Result<Self, StartError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            create_dir(dir)?;
        }
        clear_stale(path)?;
        // Owner read/write only, from the first instant; restored at once (the umask is process-wide, and nothing
        // else runs yet).
        let old = rustix::process::umask(Mode::from_raw_mode(0o177));
        let bound = UnixListener::bind(path);
        rustix::process::umask(old);
        let listener = bound.context(error::BindSnafu { path })?;
        let metadata = fs::symlink_metadata(path).context(error::InspectSocketSnafu { path })?;
        Ok(Self {
            listener,
            path: path.to_path_buf(),
            identity: (metadata.dev(), metadata.ino()),
        })
    }

    /// The socket's path.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Takes the listener out (non-blocking, for tokio), keeping what [`BoundSocket::remove`] needs.
    pub fn take_listener(&self) -> Result<UnixListener, StartError> {
        let path = &self.path;
        let listener = self
            .listener
            .try_clone()
            .context(error::ListenSnafu { path })?;
        listener
            .set_nonblocking(true)
            .context(error::ListenSnafu { path })?;
        Ok(listener)
    }

    /// Removes the socket file if it is still the one this server created.
    pub fn remove(&self) {
        let ours =
            fs::symlink_metadata(&self.path).is_ok_and(|m| (m.dev(), m.ino()) == self.identity);
        if ours && let Err(e) = fs::remove_file(&self.path) {
            log::warn!("Failed to remove socket {}: {e}", self.path.display());
        }
    }
}

/// Creates the socket's directory when missing, 0755 whatever the umask (an existing one is left as it is).
fn create_dir(dir: &Path) -> Result<(), StartError> {
    if fs::symlink_metadata(dir).is_ok() {
        return Ok(());
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
        .and_then(|()| fs::set_permissions(dir, fs::Permissions::from_mode(0o755)))
        .context(error::CreateSocketDirSnafu { dir })
}

/// Removes a stale socket at `path`; refuses anything else that is there.
fn clear_stale(path: &Path) -> Result<(), StartError> {
    let metadata = match fs::symlink_metadata(path) {
        Ok(metadata) => metadata,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => return Err(source).context(error::InspectSocketSnafu { path }),
    };
    let file_type = metadata.file_type();
    ensure!(
        file_type.is_socket(),
        error::NotASocketSnafu {
            path,
            kind: describe(&file_type),
        }
    );
    match UnixStream::connect(path) {
        Ok(_) => error::LiveServerSnafu { path }.fail(),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            log::info!("Replacing stale socket {}", path.display());
            fs::remove_file(path).context(error::RemoveStaleSocketSnafu { path })
        }
        Err(source) => Err(source).context(error::ProbeSocketSnafu { path }),
    }
}

fn describe(file_type: &fs::FileType) -> String {
    if file_type.is_symlink() {
        "a symbolic link"
    } else if file_type.is_file() {
        "a regular file"
    } else if file_type.is_dir() {
        "a directory"
    } else if file_type.is_fifo() {
        "a FIFO"
    } else {
        "a device"
    }
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Mutex, MutexGuard, PoisonError};

    /// The umask is process-wide: tests that bind run one at a time, or one's umask would shape another's socket
    /// and directory (the server binds once, before any other thread starts).
    fn one_at_a_time() -> MutexGuard<'static, ()> {
        static UMASK: Mutex<()> = Mutex::new(());
        UMASK.lock().unwrap_or_else(PoisonError::into_inner)
    }

    #[test]
    fn the_socket_is_born_0600_in_a_new_0755_directory() {
        let _umask = one_at_a_time();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run/api.sock");
        let socket = BoundSocket::bind(&path).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&dir.path().join("run")), 0o755);
        socket.remove();
        assert!(!path.exists());
    }

    #[test]
    fn a_stale_socket_is_replaced_and_a_live_one_refused() {
        let _umask = one_at_a_time();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("api.sock");
        drop(UnixListener::bind(&path).unwrap()); // the file stays, nobody listens
        let live = BoundSocket::bind(&path).unwrap();
        let err = BoundSocket::bind(&path).unwrap_err();
        assert!(matches!(err, StartError::LiveServer { .. }), "{err}");
        live.remove();
    }

    #[test]
    fn a_file_or_a_link_at_the_path_is_refused_and_kept() {
        let _umask = one_at_a_time();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file.sock");
        fs::write(&file, "keep me").unwrap();
        let err = BoundSocket::bind(&file).unwrap_err();
        assert!(err.to_string().contains("a regular file"), "{err}");
        assert_eq!(fs::read_to_string(&file).unwrap(), "keep me");

        let link = dir.path().join("link.sock");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        let err = BoundSocket::bind(&link).unwrap_err();
        assert!(err.to_string().contains("a symbolic link"), "{err}");
        assert!(
            fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
    }

    #[test]
    fn remove_leaves_a_socket_someone_else_put_there() {
        let _umask = one_at_a_time();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("api.sock");
        let socket = BoundSocket::bind(&path).unwrap();
        fs::remove_file(&path).unwrap();
        let _other = UnixListener::bind(&path).unwrap();
        socket.remove();
        assert!(path.exists());
    }
}
