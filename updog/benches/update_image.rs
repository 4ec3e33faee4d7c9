//! The update-image benchmark (the apply pipeline; results in docs/performance.md). Run by hand, never by `cargo test`:
//!
//! ```text
//! cargo bench -p updog --bench update_image [-- --size-mib 1024 --runs 3 --workdir DIR]
//! ```
//!
//! In one run it builds a realistic OS image (regular files from /usr concatenated to `--size-mib`, compressed
//! with `lz4 -1` as Bottlerocket's images are), publishes it as the ROOT image of a signed repository (the fixture
//! keys), serves the repository with nginx (the in-process fault server when nginx is missing), and writes the
//! same image into the same inactive ROOT partition of a Bottlerocket-layout disk, on a disk-image file and (as
//! root) on a loop device with partition nodes, with
//!
//! - (a) `updog update-image --now` (the release binary): TUF load, migrations cache, ROOT + BOOT + HASH streamed,
//!   decoded, written with `O_DIRECT`, fsynced, read back and verified, the set marked valid;
//! - (b) the shell pipeline `curl | lz4 -dc | dd bs=4M conv=fsync` into the same partition.
//!
//! Runs alternate (a) and (b) after one unmeasured run of each; it prints each run, then per target the median
//! MB/s of both (decompressed image bytes per wall-clock second, 10^6 bytes), the ratio (a)/(b), and updog's peak
//! RSS (ru_maxrss through GNU time, else /proc VmHWM polling).

use repo_fixtures::chain;
use repo_fixtures::disk::{Bank, DiskBuilder, LayoutSizes, Role};
use repo_fixtures::loop_device::LoopDevice;
use repo_fixtures::node::Node;
use repo_fixtures::require::{find_tool, is_root};
use std::io::{Read, Write};
use std::num::NonZeroU64;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use update_metadata::{Images, Manifest, NewUpdate};
use url::Url;

const ARCH: &str = std::env::consts::ARCH;
const ROOT_TARGET: &str = "bench-root.ext4.lz4";

struct Options {
    size_mib: u64,
    runs: usize,
    workdir: PathBuf,
}

fn options() -> Options {
    let mut options = Options {
        size_mib: 1024,
        runs: 3,
        workdir: Path::new(env!("CARGO_TARGET_TMPDIR")).join("updog-bench"),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--size-mib" => {
                options.size_mib = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--size-mib N");
            }
            "--runs" => options.runs = args.next().and_then(|v| v.parse().ok()).expect("--runs N"),
            "--workdir" => options.workdir = args.next().map(PathBuf::from).expect("--workdir DIR"),
            // cargo bench passes --bench; anything else is cargo's business too.
            _ => {}
        }
    }
    options
}

mod common;
use common::{Server, runtime};

fn main() {
    let options = options();
    for tool in ["curl", "lz4", "dd", "bash"] {
        assert!(find_tool(tool).is_some(), "the benchmark needs {tool}");
    }
    std::fs::create_dir_all(&options.workdir).unwrap();
    let image = options.workdir.join("root.img");
    let image_len = options.size_mib << 20;
    build_image(&image, image_len);
    let compressed = options.workdir.join("root.img.lz4");
    compress(&image, &compressed);
    let compressed_len = std::fs::metadata(&compressed).unwrap().len();
    println!(
        "image: {} MiB from /usr, lz4 -1: {:.1} MiB (ratio {:.2})",
        options.size_mib,
        compressed_len as f64 / f64::from(1 << 20),
        image_len as f64 / compressed_len as f64
    );

    decoder_speeds(&compressed, image_len);

    let serve_dir = options.workdir.join("serve");
    if serve_dir.exists() {
        std::fs::remove_dir_all(&serve_dir).unwrap();
    }
    std::fs::create_dir_all(&serve_dir).unwrap();
    let repo = serve_dir.join("repo");
    build_repo(&repo, &compressed);
    let root_file = std::fs::read_dir(repo.join("targets"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .find(|n| n.ends_with(&format!(".{ROOT_TARGET}")))
        .unwrap();

    let (server, base) = Server::start(&serve_dir);
    println!("server: {}", server.name());
    let image_url = base.join(&format!("repo/targets/{root_file}")).unwrap();
    // Warm the server's cache of the compressed image, so both contenders read it from memory.
    run_ok(Command::new("curl").args(["-sSf", "-o", "/dev/null", image_url.as_str()]));

    let mut summaries = Vec::new();
    let sizes = LayoutSizes {
        root: options.size_mib + 64,
        ..LayoutSizes::for_tests()
    };
    summaries.push(bench_target(
        "disk-image file",
        &options,
        &sizes,
        &base,
        &image_url,
        image_len,
        false,
    ));
    if is_root() && find_tool("losetup").is_some() && find_tool("partx").is_some() {
        summaries.push(bench_target(
            "loop device",
            &options,
            &sizes,
            &base,
            &image_url,
            image_len,
            true,
        ));
    } else {
        println!("(not root, or no losetup/partx: skipping the loop device)");
    }

    println!();
    println!(
        "{:<16} {:>14} {:>18} {:>7} {:>15}",
        "target", "updog MB/s", "curl|lz4|dd MB/s", "ratio", "updog peak RSS"
    );
    for s in &summaries {
        println!(
            "{:<16} {:>14.0} {:>18.0} {:>7.2} {:>11.1} MiB",
            s.target,
            s.updog_mbps,
            s.pipeline_mbps,
            s.updog_mbps / s.pipeline_mbps,
            s.peak_rss_kib as f64 / 1024.0
        );
    }
    drop(server);
}

struct Summary {
    target: &'static str,
    updog_mbps: f64,
    pipeline_mbps: f64,
    peak_rss_kib: u64,
}

/// One target: a fresh node, a warm-up of each contender, then `runs` alternating measured runs.
fn bench_target(
    target: &'static str,
    options: &Options,
    sizes: &LayoutSizes,
    base: &Url,
    image_url: &Url,
    image_len: u64,
    loop_device: bool,
) -> Summary {
    let node_dir = options.workdir.join(if loop_device {
        "node-loop"
    } else {
        "node-file"
    });
    if node_dir.exists() {
        std::fs::remove_dir_all(&node_dir).unwrap();
    }
    std::fs::create_dir_all(&node_dir).unwrap();
    let (node, disk) = Node::create_with(&node_dir, &DiskBuilder::new().sizes(*sizes)).unwrap();
    let mut device = None;
    let (node, dd_target, dd_offset) = if loop_device {
        let mut attached = LoopDevice::attach(&disk.path).unwrap();
        attached
            .add_partition_nodes(u32::try_from(disk.partitions.len()).unwrap())
            .unwrap();
        let node = node.with_disk(attached.path());
        let partition = attached.partition_node(disk.number(Role::Root(Bank::B)));
        device = Some(attached);
        (node, partition, 0)
    } else {
        let offset = disk.partition(Role::Root(Bank::B)).unwrap().offset_bytes();
        (node, disk.path.clone(), offset)
    };
    node.boot().expect("the bare node boots set A");
    prepare_sysroot(&node, base);

    let updog_run = |label: &str| -> (Duration, u64) {
        let (elapsed, rss) = run_updog(node.sysroot());
        println!(
            "  {target:<16} {label:<12} updog        {:>6.2} s {:>7.0} MB/s  peak RSS {:.1} MiB",
            elapsed.as_secs_f64(),
            image_len as f64 / elapsed.as_secs_f64() / 1e6,
            rss as f64 / 1024.0
        );
        (elapsed, rss)
    };
    let pipeline_run = |label: &str| -> Duration {
        let elapsed = run_pipeline(image_url, &dd_target, dd_offset);
        println!(
            "  {target:<16} {label:<12} curl|lz4|dd  {:>6.2} s {:>7.0} MB/s",
            elapsed.as_secs_f64(),
            image_len as f64 / elapsed.as_secs_f64() / 1e6
        );
        elapsed
    };

    updog_run("warm-up");
    pipeline_run("warm-up");
    let mut updog_times = Vec::new();
    let mut pipeline_times = Vec::new();
    let mut peak_rss_kib = 0;
    for run in 1..=options.runs {
        let label = format!("run {run}");
        let (elapsed, rss) = updog_run(&label);
        updog_times.push(elapsed);
        peak_rss_kib = peak_rss_kib.max(rss);
        pipeline_times.push(pipeline_run(&label));
    }
    drop(device);
    let mbps = |times: &mut Vec<Duration>| image_len as f64 / median(times).as_secs_f64() / 1e6;
    Summary {
        target,
        updog_mbps: mbps(&mut updog_times),
        pipeline_mbps: mbps(&mut pipeline_times),
        peak_rss_kib,
    }
}

fn median(times: &mut [Duration]) -> Duration {
    times.sort();
    times[times.len() / 2]
}

/// The node's files: os-release (aws-dev 1.1.0), the fixture root, updog.toml for the served repository.
fn prepare_sysroot(node: &Node, base: &Url) {
    let sysroot = node.sysroot();
    for dir in ["etc", "usr/lib", "usr/share/updog"] {
        std::fs::create_dir_all(sysroot.join(dir)).unwrap();
    }
    std::fs::write(
        sysroot.join("usr/lib/os-release"),
        "NAME=Bottlerocket\nVARIANT_ID=aws-dev\nVERSION_ID=1.1.0\nBUILD_ID=bench\n",
    )
    .unwrap();
    let root_json = runtime().block_on(chain::fixture_root_json()).unwrap();
    std::fs::write(sysroot.join("usr/share/updog/root.json"), root_json).unwrap();
    std::fs::write(
        sysroot.join("etc/updog.toml"),
        format!(
            "metadata_base_url = \"{}\"\ntargets_base_url = \"{}\"\nseed = 1\nversion_lock = \"latest\"\nignore_waves = true\ndisk = \"{}\"\n",
            base.join("repo/metadata/").unwrap(),
            base.join("repo/targets/").unwrap(),
            node.disk().display()
        ),
    )
    .unwrap();
}

/// `updog update-image`: wall time and peak RSS in KiB.
fn run_updog(sysroot: &Path) -> (Duration, u64) {
    let updog = env!("CARGO_BIN_EXE_updog");
    let args = [
        "--sysroot",
        &sysroot.to_string_lossy(),
        "--log-level",
        "warn",
        "update-image",
        "--now",
    ]
    .map(String::from);
    let rss_file = sysroot.join("rss.txt");
    let time = find_tool("time").filter(|t| t.starts_with("/usr/bin"));
    let mut command = match &time {
        Some(time) => {
            let mut c = Command::new(time);
            c.arg("-f")
                .arg("%M")
                .arg("-o")
                .arg(&rss_file)
                .arg(updog)
                .args(&args);
            c
        }
        None => {
            let mut c = Command::new(updog);
            c.args(&args);
            c
        }
    };
    command.stdout(Stdio::null()).stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = command.spawn().unwrap();
    let mut polled_kib = 0;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        polled_kib = polled_kib.max(vm_hwm_kib(child.id()).unwrap_or(0));
        std::thread::sleep(Duration::from_millis(5));
    };
    let elapsed = start.elapsed();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(status.success(), "updog failed: {stderr}");
    let rss = match time {
        Some(_) => std::fs::read_to_string(&rss_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap(),
        None => polled_kib,
    };
    (elapsed, rss)
}

/// `VmHWM` of a running process, in KiB.
fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// `curl | lz4 -dc | dd` into `target` at `offset`: wall time.
fn run_pipeline(url: &Url, target: &Path, offset: u64) -> Duration {
    let script = format!(
        "set -o pipefail; curl -sSf '{url}' | lz4 -dc | dd of='{}' bs=4M seek={offset} oflag=seek_bytes conv=notrunc,fsync status=none",
        target.display()
    );
    let start = Instant::now();
    run_ok(Command::new("bash").arg("-c").arg(script));
    start.elapsed()
}

fn run_ok(command: &mut Command) {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Regular files under /usr/{bin,lib,share,libexec}, concatenated (repeated if needed) up to exactly `len` bytes:
/// the binaries, libraries and data an OS root holds, with their compressibility. Kept between runs.
fn build_image(path: &Path, len: u64) {
    if std::fs::metadata(path).is_ok_and(|m| m.len() == len) {
        return;
    }
    let mut files = Vec::new();
    for dir in ["/usr/bin", "/usr/lib", "/usr/share", "/usr/libexec"] {
        collect_files(Path::new(dir), &mut files);
    }
    files.sort();
    assert!(!files.is_empty(), "no files under /usr");
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path).unwrap());
    let mut written = 0u64;
    let mut buf = vec![0u8; 1 << 20];
    'fill: loop {
        for file in &files {
            let Ok(mut f) = std::fs::File::open(file) else {
                continue;
            };
            loop {
                let n = match f.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                let take = n.min(usize::try_from(len - written).unwrap_or(usize::MAX));
                out.write_all(&buf[..take]).unwrap();
                written += take as u64;
                if written == len {
                    break 'fill;
                }
            }
        }
    }
    out.into_inner().unwrap().sync_all().unwrap();
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            collect_files(&entry.path(), out);
        } else if kind.is_file() {
            out.push(entry.path());
        }
    }
}

/// The lz4 decoders on this image, to /dev/null: lz4_flex (what updog uses) in-process, and the C lz4 CLI.
fn decoder_speeds(compressed: &Path, image_len: u64) {
    let best = |f: &dyn Fn() -> Duration| (0..3).map(|_| f()).min().unwrap();
    let flex = best(&|| {
        let start = Instant::now();
        let mut decoder =
            lz4_flex::frame::FrameDecoder::new(std::fs::File::open(compressed).unwrap());
        let mut buf = vec![0u8; 4 << 20];
        let mut total = 0u64;
        loop {
            let n = decoder.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            total += n as u64;
        }
        assert_eq!(total, image_len);
        start.elapsed()
    });
    let c = best(&|| {
        let start = Instant::now();
        run_ok(
            Command::new("lz4")
                .arg("-dc")
                .arg(compressed)
                .stdout(Stdio::null()),
        );
        start.elapsed()
    });
    let rate = |d: Duration| image_len as f64 / d.as_secs_f64() / 1e6;
    println!(
        "lz4 decode to memory/null (best of 3): lz4_flex {:.0} MB/s, lz4 CLI (C) {:.0} MB/s",
        rate(flex),
        rate(c)
    );
}

/// `lz4 -1` (the CLI's defaults: 4 MiB independent blocks, content checksum), as Bottlerocket builds images.
fn compress(image: &Path, out: &Path) {
    if out.exists()
        && std::fs::metadata(out).unwrap().modified().unwrap()
            >= std::fs::metadata(image).unwrap().modified().unwrap()
    {
        return;
    }
    run_ok(
        Command::new("lz4")
            .arg("-1")
            .arg("-f")
            .arg("-q")
            .arg(image)
            .arg(out),
    );
}

/// A repository (fixture keys and root) offering aws-dev 1.2.0 whose ROOT image is `root_lz4`.
fn build_repo(out: &Path, root_lz4: &Path) {
    runtime().block_on(async {
        let inputs = out.parent().unwrap().join(".inputs");
        if inputs.exists() {
            std::fs::remove_dir_all(&inputs).unwrap();
        }
        let targets = inputs.join("targets");
        std::fs::create_dir_all(&targets).unwrap();
        let root_path = inputs.join("root.json");
        std::fs::write(&root_path, chain::fixture_root_json().await.unwrap()).unwrap();
        let images = Images {
            root: ROOT_TARGET.into(),
            boot: "bench-boot.ext4.lz4".into(),
            hash: "bench-root.verity.lz4".into(),
        };
        std::fs::hard_link(root_lz4, targets.join(&images.root))
            .or_else(|_| std::fs::copy(root_lz4, targets.join(&images.root)).map(drop))
            .unwrap();
        let small = |len: usize| {
            chain::lz4_compress(
                &(0..len)
                    .map(|i| (i % 251).to_le_bytes()[0])
                    .collect::<Vec<_>>(),
            )
        };
        std::fs::write(targets.join(&images.boot), small(1 << 20)).unwrap();
        std::fs::write(targets.join(&images.hash), small(64 << 10)).unwrap();

        let mut manifest = Manifest::default();
        manifest
            .add_update(NewUpdate {
                variant: "aws-dev".into(),
                arch: ARCH.into(),
                version: "1.2.0".parse().unwrap(),
                max_version: None,
                images,
            })
            .unwrap();
        manifest
            .migrations
            .insert(("1.1.0".parse().unwrap(), "1.2.0".parse().unwrap()), vec![]);
        let manifest_path = inputs.join("manifest.json");
        std::fs::write(&manifest_path, manifest.to_json_pretty().unwrap()).unwrap();
        chain::publish_with_fixture_keys(
            &root_path,
            &targets,
            &manifest_path,
            NonZeroU64::MIN,
            out,
        )
        .await
        .unwrap();
        std::fs::remove_dir_all(&inputs).unwrap();
    });
}
