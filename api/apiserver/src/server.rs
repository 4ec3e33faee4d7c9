//! The accept loop: HTTP/1.1 (hyper) on each connection of the unix socket, on a multi-thread tokio runtime.
//!
//! ```text
//! main ─► bind socket (0600) ─► runtime ─► accept ──┬─► connection task: peer uid, hyper http1 ─► router::handle
//!                                            ▲      │
//!          SIGTERM / SIGINT ─► stop accepting, ─────┘ open connections finish their request (bounded),
//!                              remove the socket        then the process exits 0
//! ```

use crate::config::ServerConfig;
use crate::error::{self, StartError};
use crate::router::{self, Api};
use crate::socket::BoundSocket;
use crate::store::SettingsStore;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use snafu::ResultExt;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{UnixListener, UnixStream};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// How long open connections get to finish after a stop signal.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Binds the socket and serves until SIGTERM or SIGINT; the socket is removed on the way out.
pub fn run(config: &ServerConfig) -> Result<(), StartError> {
    let socket = BoundSocket::bind(&config.socket_path)?;
    let result = serve_socket(config, &socket);
    socket.remove();
    result
}

fn serve_socket(config: &ServerConfig, socket: &BoundSocket) -> Result<(), StartError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context(error::RuntimeSnafu)?;
    let api = Arc::new(Api {
        sysroot: config.sysroot.clone(),
        thar_be_updates: config.thar_be_updates.clone(),
        reboot_command: config.reboot_command.clone(),
        update_answer_timeout: config.update_answer_timeout,
        store: SettingsStore::new(&config.sysroot),
        server_uid: rustix::process::geteuid().as_raw(),
    });
    runtime.block_on(async {
        let path = socket.path();
        let listener = UnixListener::from_std(socket.take_listener()?)
            .context(error::ListenSnafu { path })?;
        let mut terminate = signal(SignalKind::terminate())
            .context(error::SignalSnafu { signal: "SIGTERM" })?;
        let mut interrupt = signal(SignalKind::interrupt())
            .context(error::SignalSnafu { signal: "SIGINT" })?;
        log::info!("Listening on {}", path.display());
        let (stop, stopped) = watch::channel(false);
        let mut connections = JoinSet::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        connections.spawn(serve_connection(Arc::clone(&api), stream, stopped.clone()));
                    }
                    // A client that went away before its connection was accepted, or a full file table: keep
                    // serving the others.
                    Err(e) => log::warn!("{}", error::StartError::Accept { path: path.to_path_buf(), source: e }),
                },
                _ = terminate.recv() => { log::info!("SIGTERM: stopping"); break; }
                _ = interrupt.recv() => { log::info!("SIGINT: stopping"); break; }
            }
            while connections.try_join_next().is_some() {}
        }
        drop(listener);
        // No receiver left only means no connection is open.
        let _ = stop.send(true);
        if tokio::time::timeout(DRAIN_TIMEOUT, async {
            while connections.join_next().await.is_some() {}
        })
        .await
        .is_err()
        {
            log::warn!(
                "{} connections still open after {DRAIN_TIMEOUT:?}; closing them",
                connections.len()
            );
        }
        Ok(())
    })
}

async fn serve_connection(api: Arc<Api>, stream: UnixStream, mut stopped: watch::Receiver<bool>) {
    let peer_uid = match stream.peer_cred() {
        Ok(cred) => Some(cred.uid()),
        Err(e) => {
            log::warn!("Failed to read a peer's credentials (it will be refused): {e}");
            None
        }
    };
    let service = service_fn(move |request| router::handle(Arc::clone(&api), peer_uid, request));
    let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        _ = stopped.changed() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(e) = result {
        log::debug!("Connection ended with an error: {e}");
    }
}
