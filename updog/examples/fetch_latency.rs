//! How long consecutive small fetches through [`ResumingTransport`] take, and how many connections they use.
//!
//! `cargo run -p updog --example fetch_latency [-- --host localhost] [--files N] [--base URL]`
//!
//! Serves a directory of small files on 127.0.0.1 with repo-fixtures' keep-alive HTTP server and fetches them one
//! after another, as a TUF client fetches metadata files, reading each stream to its end. Prints each fetch's wall
//! time and, at the end, the connections the server accepted. With `--host localhost` the URLs name `localhost`
//! (resolved by the HTTP client) instead of the address. With `--base URL` the files are fetched from another server
//! on this machine that serves the same names (`0.json` …), e.g. `python3 -m http.server` in a directory the example
//! prints; the connection count is then the fixture server's, so not shown.

use futures::StreamExt;
use repo_fixtures::http::FaultServer;
use std::time::{Duration, Instant};
use tough::Transport;
use updog::fetch::{FetchSettings, ResumingTransport};
use updog::transport::QueryParams;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut host = None;
    let mut files = 10usize;
    let mut base: Option<url::Url> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--host" => host = Some(args.next().ok_or("--host needs a value")?),
            "--files" => files = args.next().ok_or("--files needs a value")?.parse()?,
            "--base" => base = Some(args.next().ok_or("--base needs a value")?.parse()?),
            other => return Err(format!("unknown argument {other:?}").into()),
        }
    }

    let dir = tempfile::tempdir()?;
    for i in 0..files {
        // About the size of a timestamp.json or snapshot.json.
        std::fs::write(dir.path().join(format!("{i}.json")), vec![b' '; 1500 + i])?;
    }
    let server = FaultServer::serve(dir.path())?;
    let params = QueryParams::new();
    params.add("seed", "1");
    params.add("version", "1.0.0");
    let transport = ResumingTransport::new(params, FetchSettings::default())?;

    // updog's own runtime: one thread (cli.rs).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut total = Duration::ZERO;
    for i in 0..files {
        let mut url = match &base {
            Some(base) => base.join(&format!("{i}.json"))?,
            None => server.url_for(&format!("{i}.json")),
        };
        if let Some(host) = &host {
            url.set_host(Some(host))?;
        }
        let started = Instant::now();
        let len = runtime.block_on(async {
            let mut stream = transport.fetch(url.clone()).await?;
            let mut len = 0;
            while let Some(chunk) = stream.next().await {
                len += chunk?.len();
            }
            Ok::<_, tough::TransportError>(len)
        })?;
        let took = started.elapsed();
        total += took;
        println!(
            "fetch {i:2}: {len:5} bytes in {:8.3} ms  ({url})",
            took.as_secs_f64() * 1000.0
        );
    }
    let connections = if base.is_some() {
        format!(
            "served by {} (files in {})",
            base.as_ref().map_or("", url::Url::as_str),
            dir.path().display()
        )
    } else {
        format!(
            "{} connection(s) accepted by the server",
            server.connections_accepted()
        )
    };
    println!(
        "{files} fetches: {:.3} ms in all, {:.3} ms each on average; {connections}",
        total.as_secs_f64() * 1000.0,
        total.as_secs_f64() * 1000.0 / files.max(1) as f64,
    );
    Ok(())
}
