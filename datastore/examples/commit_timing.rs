//! Times the commit of one transaction of 2000 keys into a live tree of 500 others (what an
//! apiserver `POST /tx/commit` of a large PATCH does), by hand:
//!
//! ```text
//! cargo run --release -p datastore --example commit_timing -- /var/tmp [rounds]
//! ```
//!
//! The directory should be on the filesystem the datastore lives on (fsync costs differ: tmpfs
//! has none). Prints the median commit time; not a test, nothing is asserted.

use datastore::{Committed, Durability, FilesystemDataStore, Key, KeyType};
use std::time::{Duration, Instant};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let parent = std::path::PathBuf::from(args.next().unwrap_or_else(|| "/var/tmp".into()));
    let rounds: usize = args.next().map_or(Ok(5), |r| r.parse())?;
    let mut times = Vec::new();
    for _ in 0..rounds {
        let dir = tempfile::tempdir_in(&parent)?;
        let setup = FilesystemDataStore::create(dir.path().join("v1.0.0_0123456789abcdef"))?
            .durability(Durability::Deferred);
        for i in 0..500 {
            let key = Key::new(KeyType::Data, format!("settings.other.k{i}"))?;
            setup.set_key(&key, "\"unchanged\"", &Committed::Live)?;
        }
        let tx = Committed::pending("big");
        for i in 0..2000 {
            let key = Key::new(
                KeyType::Data,
                format!("settings.kubernetes.node-labels.label-{i:05}"),
            )?;
            setup.set_key(&key, &format!("\"v{i}\""), &tx)?;
        }
        setup.sync()?;
        let store = FilesystemDataStore::new(setup.base_path());
        let start = Instant::now();
        let committed = store.commit_transaction("big")?;
        times.push(start.elapsed());
        assert_eq!(committed.len(), 2000);
    }
    times.sort();
    let median = times[times.len() / 2];
    println!(
        "commit of 2000 keys: median {:.1} ms over {rounds} rounds (min {:.1} ms, max {:.1} ms)",
        ms(median),
        ms(times[0]),
        ms(times[times.len() - 1])
    );
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
