//! The test node (a sysroot with a datastore, os-release, a stand-in thar-be-updates and reboot command), the real
//! apiserver binary on it, and a small hyper client speaking HTTP/1.1 over its socket.

use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub const APISERVER: &str = env!("CARGO_BIN_EXE_apiserver");

/// The live settings every test node starts with.
pub const INITIAL_SETTINGS: [(&str, &str); 3] = [
    ("settings.motd", "\"hello\""),
    ("settings.updates.seed", "1234"),
    (r#"settings.kernel.sysctl."net.ipv4.ip_forward""#, "\"1\""),
];

/// The longest a server gets to come up or go down before a test fails (bounds a hang; never a timing assertion).
pub const BOUND: Duration = Duration::from_secs(60);

/// A response: status and body.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

/// A node's sysroot in a temporary directory.
pub struct TestNode {
    dir: tempfile::TempDir,
}

impl TestNode {
    /// A sysroot (mode 0755, so other users may reach its socket) with a 1.0.0 datastore, os-release, a
    /// thar-be-updates stand-in (`tbu.sh`, exit code from `tbu-exit`) and a reboot command that records the call.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let node = Self { dir };
        repo_fixtures::lifecycle::create_datastore(
            &node.datastore_dir(),
            "1.0.0",
            &INITIAL_SETTINGS,
        )
        .unwrap();
        let root = node.sysroot();
        std::fs::create_dir_all(root.join("usr/lib")).unwrap();
        std::fs::write(
            root.join("usr/lib/os-release"),
            "NAME=Bottlerocket\nVERSION_ID=1.0.0\nVARIANT_ID=aws-k8s-1.29\nBUILD_ID=0123abcd\n\
             PRETTY_NAME=\"Bottlerocket OS 1.0.0 (aws-k8s-1.29)\"\n",
        )
        .unwrap();
        // Records its arguments, says something on stderr, exits with the code in tbu-exit (or as tbu-mode says).
        node.write_script(
            "tbu.sh",
            &format!(
                "#!/bin/sh\nroot={root}\necho \"$@\" >> \"$root/tbu-calls\"\n\
                 case \"$(cat \"$root/tbu-mode\" 2>/dev/null)\" in\n\
                 signal) kill -9 $$ ;;\n\
                 detach) sleep 120 >&2 & echo $! > \"$root/tbu-child\"; exit 0 ;;\n\
                 esac\n\
                 echo \"tbu says: $3 refused\" >&2\nexit \"$(cat \"$root/tbu-exit\" 2>/dev/null || echo 0)\"\n",
                root = root.display()
            ),
        );
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(
            root.join("etc/apiserver.toml"),
            format!(
                "thar_be_updates = \"{}\"\nreboot_command = [\"sh\", \"-c\", \"echo rebooted >> {}\"]\n",
                root.join("tbu.sh").display(),
                root.join("reboot-calls").display()
            ),
        )
        .unwrap();
        node
    }

    pub fn sysroot(&self) -> &Path {
        self.dir.path()
    }

    pub fn socket(&self) -> PathBuf {
        self.sysroot().join("run/api.sock")
    }

    pub fn datastore_dir(&self) -> PathBuf {
        self.sysroot().join("var/lib/bottlerocket/datastore")
    }

    pub fn write_script(&self, name: &str, text: &str) -> PathBuf {
        let path = self.sysroot().join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    /// Starts apiserver on this node and waits until it answers.
    pub fn start(&self) -> Server {
        let server = self.spawn(&[]);
        server.wait_ready();
        server
    }

    /// Starts apiserver with extra arguments, without waiting.
    pub fn spawn(&self, args: &[&str]) -> Server {
        let child = Command::new(APISERVER)
            .arg("--sysroot")
            .arg(self.sysroot())
            // Only warnings and errors: nothing reads stderr until the server exits, so it must stay small.
            .args(["--log-level", "warn"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        Server {
            child: Some(child),
            socket: self.socket(),
        }
    }

    /// Every path under the datastore directory with its contents (files), target (links) or nothing (dirs).
    pub fn datastore_snapshot(&self) -> BTreeMap<PathBuf, String> {
        let mut tree = BTreeMap::new();
        snapshot(&self.datastore_dir(), &self.datastore_dir(), &mut tree);
        tree
    }
}

fn snapshot(root: &Path, dir: &Path, tree: &mut BTreeMap<PathBuf, String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let path = entry.path();
        let relative = path.strip_prefix(root).unwrap().to_path_buf();
        let kind = entry.file_type().unwrap();
        if kind.is_symlink() {
            let target = std::fs::read_link(&path).unwrap();
            tree.insert(relative, format!("link -> {}", target.display()));
        } else if kind.is_dir() {
            tree.insert(relative, "dir".into());
            snapshot(root, &path, tree);
        } else {
            let bytes = std::fs::read(&path).unwrap();
            tree.insert(
                relative,
                format!("file {}", String::from_utf8_lossy(&bytes)),
            );
        }
    }
}

/// A running apiserver; stopped with SIGTERM on drop.
pub struct Server {
    child: Option<Child>,
    pub socket: PathBuf,
}

impl Server {
    fn wait_ready(&self) {
        let start = Instant::now();
        while start.elapsed() < BOUND {
            if let Ok(reply) = try_request(&self.socket, "GET", "/os", b"") {
                assert_eq!(reply.status, 200, "{}", reply.text());
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "apiserver did not answer on {} within {BOUND:?}",
            self.socket.display()
        );
    }

    pub fn request(&self, method: &str, uri: &str, body: &[u8]) -> Reply {
        try_request(&self.socket, method, uri, body)
            .unwrap_or_else(|e| panic!("{method} {uri}: {e}"))
    }

    pub fn get(&self, uri: &str) -> Reply {
        self.request("GET", uri, b"")
    }

    /// Sends `signal` and waits (bounded) for the exit; returns the status and stderr.
    pub fn stop_with(&mut self, signal: rustix::process::Signal) -> (ExitStatus, String) {
        let mut child = self.child.take().unwrap();
        let pid = rustix::process::Pid::from_child(&child);
        rustix::process::kill_process(pid, signal).unwrap();
        wait_bounded(&mut child)
    }

    /// Waits (bounded) for a server that is expected to exit on its own.
    pub fn wait_exit(&mut self) -> (ExitStatus, String) {
        wait_bounded(&mut self.child.take().unwrap())
    }
}

fn wait_bounded(child: &mut Child) -> (ExitStatus, String) {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
            return (status, stderr);
        }
        if start.elapsed() > BOUND {
            let _ = child.kill();
            panic!("apiserver did not exit within {BOUND:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = rustix::process::Pid::from_child(&child);
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            let _ = child.wait();
        }
    }
}

/// One HTTP/1.1 request over the unix socket at `socket`.
pub fn try_request(socket: &Path, method: &str, uri: &str, body: &[u8]) -> std::io::Result<Reply> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let other = |e: &dyn std::fmt::Display| std::io::Error::other(e.to_string());
    runtime.block_on(async {
        let stream = tokio::net::UnixStream::connect(socket).await?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| other(&e))?;
        tokio::spawn(connection);
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .header("host", "localhost")
            .body(Full::new(Bytes::copy_from_slice(body)))
            .map_err(|e| other(&e))?;
        let response = sender.send_request(request).await.map_err(|e| other(&e))?;
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| other(&e))?
            .to_bytes()
            .to_vec();
        Ok(Reply { status, body })
    })
}
