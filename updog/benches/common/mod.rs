//! What the benchmarks share: a runtime and the repository server.

use std::path::Path;
use url::Url;

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// nginx when installed (what serves real repositories), else the in-process fault server.
/// Kept alive for the benchmark's duration (dropping stops the server).
pub enum Server {
    Nginx {
        _nginx: repo_fixtures::nginx::Nginx,
    },
    InProcess {
        _server: repo_fixtures::http::FaultServer,
    },
}

impl Server {
    pub fn start(dir: &Path) -> (Self, Url) {
        match repo_fixtures::nginx::Nginx::serve(dir) {
            Ok(nginx) => {
                let base = nginx.base_url();
                (Server::Nginx { _nginx: nginx }, base)
            }
            Err(e) => {
                println!("(nginx: {e}; using the in-process server)");
                let server = repo_fixtures::http::FaultServer::serve(dir).unwrap();
                let base = server.base_url();
                (Server::InProcess { _server: server }, base)
            }
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Server::Nginx { .. } => "nginx",
            Server::InProcess { .. } => "in-process fault server",
        }
    }
}
