//! The check-update benchmark: how long updog's TUF client takes to answer "is there an update?", against
//! python-tuf's ngclient doing the same TUF work (results in docs/performance.md). Run by hand, never by
//! `cargo test`:
//!
//! ```text
//! cargo bench -p updog --bench check_update [-- --runs 20 --updates 200 --workdir DIR]
//! ```
//!
//! It publishes with tuftool-config (the fixture keys and root) a repository whose manifest.json holds `--updates`
//! updates (10 variants × 2 arches × releases 1.20.0 upward, the newest two with upstream's wave policies, a
//! migration chain) and every image and migration they name as a target (small lz4 frames), serves it on loopback
//! with nginx (the in-process fault server when nginx is missing), builds a node sysroot (aws-dev at the
//! second-newest release), and times, alternating, after one unmeasured round:
//!
//! - (a) `updog check-update` (the release binary) with no trusted metadata yet (`/var/lib/updog/tuf` removed):
//!   the whole root → timestamp → snapshot → targets walk, manifest.json downloaded and verified, the update chosen;
//! - (c) `updog check-update` again with the metadata (a) left: the common case on a node;
//! - (b) python-tuf's ngclient (`tests/python_tuf/ngclient_fetch.py`) with a fresh metadata directory: refresh,
//!   get_targetinfo, download_target of manifest.json; and again with the metadata it left (warm). Skipped, with
//!   a message, when python3 cannot import python-tuf.
//!
//! It prints each run, then the median, min and max wall time of each, the peak RSS (ru_maxrss through GNU time
//! `-f %M`, which wraps every contender alike; else /proc VmHWM polling), python's bare interpreter + import
//! time for reference (python is `sys.executable`, not a PATH wrapper), and the ratios python / updog.

use repo_fixtures::chain;
use repo_fixtures::require::{find_tool, python_module_available};
use semver::Version;
use std::io::Read;
use std::num::NonZeroU64;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use update_metadata::{Images, Manifest, NewUpdate, UpdateSelector};
use url::Url;

const ARCHES: [&str; 2] = ["x86_64", "aarch64"];
const VARIANTS: [&str; 10] = [
    "aws-dev",
    "aws-k8s-1.29",
    "aws-k8s-1.30",
    "aws-k8s-1.31",
    "aws-ecs-2",
    "metal-dev",
    "metal-k8s-1.30",
    "vmware-dev",
    "vmware-k8s-1.30",
    "aws-k8s-1.30-nvidia",
];
/// The node's variant; it runs the second-newest release, so it is offered the newest.
const NODE_VARIANT: &str = "aws-dev";

struct Options {
    runs: usize,
    updates: usize,
    workdir: PathBuf,
}

fn options() -> Options {
    let mut options = Options {
        runs: 20,
        updates: 200,
        workdir: Path::new(env!("CARGO_TARGET_TMPDIR")).join("updog-bench-check-update"),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--runs" => options.runs = args.next().and_then(|v| v.parse().ok()).expect("--runs N"),
            "--updates" => {
                options.updates = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--updates N");
            }
            "--workdir" => options.workdir = args.next().map(PathBuf::from).expect("--workdir DIR"),
            // cargo bench passes --bench; anything else is cargo's business too.
            _ => {}
        }
    }
    assert!(
        options.updates >= VARIANTS.len() * ARCHES.len() * 2,
        "--updates must cover at least two releases of every variant and arch"
    );
    assert!(options.runs >= 1, "--runs must be at least 1");
    options
}

mod common;
use common::{Server, runtime};

fn main() {
    let options = options();
    if options.workdir.exists() {
        std::fs::remove_dir_all(&options.workdir).unwrap();
    }
    let serve_dir = options.workdir.join("serve");
    let repo = serve_dir.join("repo");
    std::fs::create_dir_all(&serve_dir).unwrap();
    let manifest = build_manifest(options.updates);
    let newest = manifest
        .updates
        .iter()
        .map(|u| u.version.clone())
        .max()
        .unwrap();
    let node_version = manifest
        .updates
        .iter()
        .map(|u| &u.version)
        .filter(|v| **v < newest)
        .max()
        .unwrap()
        .clone();
    let published_manifest = build_repo(&repo, &manifest);
    let targets_json = std::fs::read_dir(repo.join("metadata"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".targets.json"))
        .unwrap();
    println!(
        "repository: {} updates, manifest.json {:.1} KiB, targets.json {:.1} KiB ({} targets), tuftool-config, fixture keys",
        manifest.updates.len(),
        published_manifest.len() as f64 / 1024.0,
        std::fs::metadata(&targets_json).unwrap().len() as f64 / 1024.0,
        std::fs::read_dir(repo.join("targets")).unwrap().count()
    );

    let (server, base) = Server::start(&serve_dir);
    println!("server: {}", server.name());
    let metadata_url = base.join("repo/metadata/").unwrap();
    let targets_url = base.join("repo/targets/").unwrap();
    let sysroot = options.workdir.join("node");
    prepare_sysroot(&sysroot, &repo, &metadata_url, &targets_url, &node_version);
    let expected = format!("{NODE_VARIANT} {newest}\n");

    let time = find_tool("time").filter(|t| t.starts_with("/usr/bin"));
    println!(
        "peak RSS: {}",
        if time.is_some() {
            "GNU time -f %M (wraps every contender)"
        } else {
            "VmHWM polling (no /usr/bin/time)"
        }
    );
    let python = python_module_available("tuf") && python_module_available("cryptography");
    if !python {
        println!(
            "(python3 cannot import tuf and cryptography: skipping python-tuf; pip install tuf)"
        );
    }

    let updog = Contender {
        program: PathBuf::from(env!("CARGO_BIN_EXE_updog")),
        args: vec![
            "--sysroot".into(),
            sysroot.to_string_lossy().into_owned(),
            "--log-level".into(),
            "warn".into(),
            "check-update".into(),
        ],
        time: time.clone(),
        rss_file: options.workdir.join("rss.txt"),
    };
    let datastore = sysroot.join("var/lib/updog/tuf");
    let updog_cold = || {
        if datastore.exists() {
            std::fs::remove_dir_all(&datastore).unwrap();
        }
        let run = updog.run();
        assert_eq!(run.stdout, expected, "updog check-update");
        run
    };
    let updog_warm = || {
        assert!(datastore.exists(), "a warm run follows a cold one");
        let run = updog.run();
        assert_eq!(run.stdout, expected, "updog check-update");
        run
    };

    let client_dir = options.workdir.join("python");
    let python_metadata = client_dir.join("metadata");
    let python_out = client_dir.join("manifest.json");
    let ngclient = Contender {
        program: python_executable(),
        args: [
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/python_tuf/ngclient_fetch.py"
            ),
            "--metadata-url",
            metadata_url.as_str(),
            "--targets-url",
            targets_url.as_str(),
            "--trusted-root",
            &repo.join(chain::TRUSTED_ROOT).to_string_lossy(),
            "--metadata-dir",
            &python_metadata.to_string_lossy(),
            "--target",
            "manifest.json",
            "--out",
            &python_out.to_string_lossy(),
        ]
        .map(String::from)
        .to_vec(),
        time: time.clone(),
        rss_file: options.workdir.join("rss.txt"),
    };
    let python_run = |fresh: bool| {
        if fresh && client_dir.exists() {
            std::fs::remove_dir_all(&client_dir).unwrap();
        }
        std::fs::create_dir_all(&client_dir).unwrap();
        let run = ngclient.run();
        assert_eq!(
            std::fs::read(&python_out).unwrap(),
            published_manifest,
            "python-tuf's manifest.json"
        );
        run
    };
    let python_bare = Contender {
        program: ngclient.program.clone(),
        args: vec!["-c".into(), "import tuf.ngclient".into()],
        time,
        rss_file: options.workdir.join("rss.txt"),
    };

    let mut results = [
        Series::new("updog check-update, cold (a)"),
        Series::new("updog check-update, warm (c)"),
        Series::new("python-tuf ngclient, cold (b)"),
        Series::new("python-tuf ngclient, warm"),
        Series::new("python3 -c 'import tuf.ngclient'"),
    ];
    // One unmeasured round: page cache, nginx's open files, python's bytecode cache.
    updog_cold();
    updog_warm();
    if python {
        python_run(true);
        python_run(false);
        python_bare.run();
    }
    for round in 1..=options.runs {
        let mut line = format!("run {round:>2}:");
        let mut record = |series: &mut Series, run: Run| {
            line.push_str(&format!(" {:>7.1} ms", ms(run.elapsed)));
            series.push(run);
        };
        record(&mut results[0], updog_cold());
        record(&mut results[1], updog_warm());
        if python {
            record(&mut results[2], python_run(true));
            record(&mut results[3], python_run(false));
            record(&mut results[4], python_bare.run());
        }
        println!("{line}");
    }

    println!();
    println!(
        "{:<34} {:>10} {:>9} {:>9} {:>14}",
        "", "median ms", "min ms", "max ms", "peak RSS MiB"
    );
    for series in results.iter_mut().filter(|s| !s.runs.is_empty()) {
        println!(
            "{:<34} {:>10.1} {:>9.1} {:>9.1} {:>14.1}",
            series.name,
            ms(series.median()),
            ms(series.min()),
            ms(series.max()),
            series.peak_rss_kib() as f64 / 1024.0
        );
    }
    if python {
        let ratio = |p: usize, u: usize| ms(results[p].median()) / ms(results[u].median());
        println!(
            "python-tuf / updog (median wall time): cold {:.2}, warm {:.2}; peak RSS cold {:.2}",
            ratio(2, 0),
            ratio(3, 1),
            results[2].peak_rss_kib() as f64 / results[0].peak_rss_kib() as f64
        );
        println!(
            "python-tuf beyond interpreter start + import (median difference): cold {:.1} ms, warm {:.1} ms",
            ms(results[2].median()) - ms(results[4].median()),
            ms(results[3].median()) - ms(results[4].median())
        );
    }
}

/// The interpreter itself (`sys.executable`): `python3` on PATH may be a wrapper (pyenv's shim is a shell script
/// that costs ~0.3 s a start), which would be timed as python-tuf's work.
fn python_executable() -> PathBuf {
    let output = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output();
    match output {
        Ok(output) if output.status.success() => {
            PathBuf::from(String::from_utf8_lossy(&output.stdout).trim())
        }
        _ => PathBuf::from("python3"),
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// One program and its arguments, run to completion with wall time and peak RSS.
struct Contender {
    program: PathBuf,
    args: Vec<String>,
    time: Option<PathBuf>,
    rss_file: PathBuf,
}

struct Run {
    elapsed: Duration,
    rss_kib: u64,
    stdout: String,
}

impl Contender {
    fn run(&self) -> Run {
        let mut command = match &self.time {
            Some(time) => {
                let mut c = Command::new(time);
                c.arg("-f")
                    .arg("%M")
                    .arg("-o")
                    .arg(&self.rss_file)
                    .arg(&self.program);
                c
            }
            None => Command::new(&self.program),
        };
        command
            .args(&self.args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // Same environment for every contender: no proxy.
        for var in [
            "HTTPS_PROXY",
            "https_proxy",
            "HTTP_PROXY",
            "http_proxy",
            "ALL_PROXY",
            "all_proxy",
        ] {
            command.env_remove(var);
        }
        let start = Instant::now();
        let mut child = command.spawn().unwrap();
        let mut polled_kib = 0;
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if self.time.is_none() {
                polled_kib = polled_kib.max(vm_hwm_kib(child.id()).unwrap_or(0));
            }
            std::thread::sleep(Duration::from_micros(200));
        };
        let elapsed = start.elapsed();
        let mut stdout = String::new();
        let mut stderr = String::new();
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut stdout)
            .unwrap();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        assert!(
            status.success(),
            "{} {:?} failed: {stderr}",
            self.program.display(),
            self.args
        );
        let rss_kib = match self.time {
            Some(_) => std::fs::read_to_string(&self.rss_file)
                .unwrap()
                .trim()
                .parse()
                .unwrap(),
            None => polled_kib,
        };
        Run {
            elapsed,
            rss_kib,
            stdout,
        }
    }
}

/// `VmHWM` of a running process, in KiB.
fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

struct Series {
    name: &'static str,
    runs: Vec<Run>,
}

impl Series {
    fn new(name: &'static str) -> Self {
        Self {
            name,
            runs: Vec::new(),
        }
    }

    fn push(&mut self, run: Run) {
        self.runs.push(run);
    }

    fn sorted(&self) -> Vec<Duration> {
        let mut times: Vec<Duration> = self.runs.iter().map(|r| r.elapsed).collect();
        times.sort();
        times
    }

    fn median(&self) -> Duration {
        let times = self.sorted();
        times[times.len() / 2]
    }

    fn min(&self) -> Duration {
        self.sorted()[0]
    }

    fn max(&self) -> Duration {
        *self.sorted().last().unwrap()
    }

    fn peak_rss_kib(&self) -> u64 {
        self.runs.iter().map(|r| r.rss_kib).max().unwrap_or(0)
    }
}

/// `count` updates: every variant × arch in each release 1.20.0, 1.21.0, …, newest first as a publisher's
/// manifest grows; `max_version` the newest release; the newest two releases rolled out in waves (upstream's
/// default and accelerated policies, started 2026-01-01, so passed); a migration chain with two migrations a step.
fn build_manifest(count: usize) -> Manifest {
    let combos: Vec<(&str, &str)> = VARIANTS
        .iter()
        .flat_map(|v| ARCHES.iter().map(move |a| (*v, *a)))
        .collect();
    let releases = count.div_ceil(combos.len());
    let version = |release: usize| -> Version { format!("1.{}.0", 20 + release).parse().unwrap() };
    let newest = version(releases - 1);
    let mut manifest = Manifest::default();
    let mut added = 0;
    for release in 0..releases {
        for (variant, arch) in &combos {
            if added == count {
                break;
            }
            let v = version(release);
            let name =
                |part: &str| format!("bottlerocket-{variant}-{arch}-{v}-a1b2c3d4-{part}.lz4");
            manifest
                .add_update(NewUpdate {
                    variant: (*variant).into(),
                    arch: (*arch).into(),
                    version: v.clone(),
                    max_version: Some(newest.clone()),
                    images: Images {
                        boot: name("boot.ext4"),
                        root: name("root.ext4"),
                        hash: name("root.verity"),
                    },
                })
                .unwrap();
            added += 1;
        }
    }
    // add_update appends; a publisher's manifest lists the newest first.
    manifest.updates.reverse();
    let start = "2026-01-01T00:00:00Z".parse().unwrap();
    for (release, policy) in [(releases - 1, "default"), (releases - 2, "accelerated")] {
        let policy = update_metadata::waves::builtin_policy(policy)
            .unwrap()
            .policy()
            .unwrap();
        for (variant, arch) in &combos {
            let selector = UpdateSelector::new(*variant, *arch, version(release));
            if manifest.updates.iter().any(|u| selector.matches(u)) {
                manifest.set_waves(&selector, start, &policy).unwrap();
            }
        }
    }
    for release in 1..releases {
        let to = version(release);
        manifest.migrations.insert(
            (version(release - 1), to.clone()),
            vec![
                format!("migrate_v{to}_settings-defaults.lz4"),
                format!("migrate_v{to}_rename-setting.lz4"),
            ],
        );
    }
    manifest
}

/// Publishes `manifest` and a small lz4 target for every image and migration it names into `out` (fixture keys,
/// root v1, consistent snapshot), with the trusted root at `out/root.json`. Returns manifest.json's bytes.
fn build_repo(out: &Path, manifest: &Manifest) -> Vec<u8> {
    runtime().block_on(async {
        let inputs = out.parent().unwrap().join(".inputs");
        let targets = inputs.join("targets");
        std::fs::create_dir_all(&targets).unwrap();
        let root_path = inputs.join("root.json");
        std::fs::write(&root_path, chain::fixture_root_json().await.unwrap()).unwrap();
        let names = manifest
            .updates
            .iter()
            .flat_map(|u| [&u.images.boot, &u.images.root, &u.images.hash])
            .chain(manifest.migrations.values().flatten());
        for name in names {
            std::fs::write(
                targets.join(name),
                chain::lz4_compress(format!("target {name}").as_bytes()),
            )
            .unwrap();
        }
        let manifest_path = inputs.join("manifest.json");
        let manifest_json = manifest.to_json_pretty().unwrap();
        std::fs::write(&manifest_path, &manifest_json).unwrap();
        chain::publish_with_fixture_keys(
            &root_path,
            &targets,
            &manifest_path,
            NonZeroU64::MIN,
            out,
        )
        .await
        .unwrap();
        std::fs::copy(&root_path, out.join(chain::TRUSTED_ROOT)).unwrap();
        std::fs::remove_dir_all(&inputs).unwrap();
        manifest_json.into_bytes()
    })
}

/// The node's files: os-release (aws-dev at `version`), the repository's root, updog.toml for the served
/// repository (waves honoured: the node's seed is past every wave).
fn prepare_sysroot(sysroot: &Path, repo: &Path, metadata: &Url, targets: &Url, version: &Version) {
    for dir in ["etc", "usr/lib", "usr/share/updog"] {
        std::fs::create_dir_all(sysroot.join(dir)).unwrap();
    }
    std::fs::write(
        sysroot.join("usr/lib/os-release"),
        format!(
            "NAME=Bottlerocket\nVARIANT_ID={NODE_VARIANT}\nVERSION_ID={version}\nBUILD_ID=bench\n"
        ),
    )
    .unwrap();
    std::fs::copy(
        repo.join(chain::TRUSTED_ROOT),
        sysroot.join("usr/share/updog/root.json"),
    )
    .unwrap();
    std::fs::write(
        sysroot.join("etc/updog.toml"),
        format!(
            "metadata_base_url = \"{metadata}\"\ntargets_base_url = \"{targets}\"\nseed = 1487\nversion_lock = \"latest\"\nignore_waves = false\n"
        ),
    )
    .unwrap();
}
