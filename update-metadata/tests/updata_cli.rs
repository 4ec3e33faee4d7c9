//! The `updata` binary as a user runs it: arguments, files, stdout/stderr and exit codes.

use serde_json::{Value, json};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use tempfile::TempDir;

const UPDATA: &str = env!("CARGO_BIN_EXE_updata");

fn updata(dir: &Path, args: &[&str]) -> Output {
    Command::new(UPDATA)
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run updata")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[track_caller]
fn ok(output: Output) -> Output {
    assert!(
        output.status.success(),
        "updata failed: {:?}\nstdout: {}\nstderr: {}",
        output.status,
        stdout(&output),
        stderr(&output)
    );
    output
}

#[track_caller]
fn fails(output: &Output) -> String {
    assert_eq!(
        output.status.code(),
        Some(1),
        "expected exit 1\nstdout: {}\nstderr: {}",
        stdout(output),
        stderr(output)
    );
    stderr(output)
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap()
}

/// A temporary directory holding an initialised `manifest.json`.
fn with_manifest() -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("manifest.json");
    ok(updata(dir.path(), &["init", path.to_str().unwrap()]));
    (dir, path)
}

fn add(dir: &Path, manifest: &Path, variant: &str, arch: &str, version: &str, extra: &[&str]) {
    let mut args = vec![
        "add-update",
        manifest.to_str().unwrap(),
        "-f",
        variant,
        "-v",
        version,
        "-a",
        arch,
        "-r",
        "root.ext4.lz4",
        "-b",
        "boot.ext4.lz4",
        "-h",
        "root.verity.lz4",
    ];
    args.extend_from_slice(extra);
    ok(updata(dir, &args));
}

#[test]
fn init_writes_the_empty_manifest_upstream_writes() {
    let (_dir, path) = with_manifest();
    assert_eq!(
        fs::read_to_string(&path).unwrap(),
        "{\n  \"updates\": [],\n  \"migrations\": {}\n}"
    );
}

#[test]
fn init_with_a_bare_relative_name_writes_in_the_current_directory() {
    let dir = tempfile::tempdir().unwrap();
    ok(updata(dir.path(), &["init", "manifest.json"]));
    assert_eq!(
        read_json(&dir.path().join("manifest.json")),
        json!({"updates": [], "migrations": {}})
    );
    let leftovers: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|name| name != "manifest.json")
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn add_update_writes_every_field_with_upstream_names() {
    let (dir, path) = with_manifest();
    let out = ok(updata(
        dir.path(),
        &[
            "add-update",
            path.to_str().unwrap(),
            "--variant",
            "aws-k8s-1.30",
            "--version",
            "1.26.1",
            "--arch",
            "x86_64",
            "--max-version",
            "1.27.0",
            "--root",
            "r.lz4",
            "--boot",
            "b.lz4",
            "--hash",
            "h.lz4",
        ],
    ));
    assert!(stdout(&out).contains("Added update"), "{}", stdout(&out));
    assert_eq!(
        read_json(&path),
        json!({
            "updates": [{
                "variant": "aws-k8s-1.30",
                "arch": "x86_64",
                "version": "1.26.1",
                "max_version": "1.27.0",
                "waves": {},
                "images": {"boot": "b.lz4", "root": "r.lz4", "hash": "h.lz4"}
            }],
            "migrations": {}
        })
    );
}

#[test]
fn add_update_default_max_version_spreads_to_the_same_arch_and_variant() {
    let (dir, path) = with_manifest();
    add(dir.path(), &path, "aws-dev", "x86_64", "1.0.0", &[]);
    add(dir.path(), &path, "aws-dev", "aarch64", "1.0.0", &[]);
    add(dir.path(), &path, "aws-dev", "x86_64", "1.1.0", &[]);
    let manifest = read_json(&path);
    let max: Vec<(&str, &str)> = manifest["updates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                u["arch"].as_str().unwrap(),
                u["max_version"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        max,
        [
            ("x86_64", "1.1.0"),
            ("aarch64", "1.0.0"),
            ("x86_64", "1.1.0")
        ]
    );
}

#[test]
fn add_update_twice_fails_and_leaves_the_file() {
    let (dir, path) = with_manifest();
    add(dir.path(), &path, "aws-dev", "x86_64", "1.0.0", &[]);
    let before = fs::read(&path).unwrap();
    let err = fails(&updata(
        dir.path(),
        &[
            "add-update",
            path.to_str().unwrap(),
            "-f",
            "aws-dev",
            "-v",
            "1.0.0",
            "-a",
            "x86_64",
            "-r",
            "r",
            "-b",
            "b",
            "-h",
            "h",
        ],
    ));
    assert!(
        err.contains(&path.display().to_string()) && err.contains("already has an update"),
        "{err}"
    );
    assert_eq!(fs::read(&path).unwrap(), before);
}

#[test]
fn remove_update_removes_the_exact_update() {
    let (dir, path) = with_manifest();
    add(dir.path(), &path, "aws-dev", "x86_64", "1.0.0", &[]);
    add(dir.path(), &path, "aws-dev", "x86_64", "1.1.0", &[]);
    ok(updata(
        dir.path(),
        &[
            "remove-update",
            path.to_str().unwrap(),
            "-l",
            "aws-dev",
            "-v",
            "1.0.0",
            "-a",
            "x86_64",
        ],
    ));
    let manifest = read_json(&path);
    let updates = manifest["updates"].as_array().unwrap();
    assert_eq!(updates.len(), 1);
    assert_eq!(updates[0]["version"], "1.1.0");

    // Nothing matches: a warning, exit 0, file unchanged.
    let before = fs::read(&path).unwrap();
    let out = ok(updata(
        dir.path(),
        &[
            "remove-update",
            path.to_str().unwrap(),
            "--variant",
            "aws-dev",
            "--version",
            "9.9.9",
            "--arch",
            "x86_64",
        ],
    ));
    assert!(stderr(&out).contains("nothing removed"), "{}", stderr(&out));
    assert_eq!(fs::read(&path).unwrap(), before);
}

#[test]
fn set_waves_with_the_builtin_default_policy_writes_upstream_keys() {
    let (dir, path) = with_manifest();
    add(dir.path(), &path, "aws-dev", "x86_64", "1.0.0", &[]);
    ok(updata(
        dir.path(),
        &[
            "set-waves",
            path.to_str().unwrap(),
            "-l",
            "aws-dev",
            "-v",
            "1.0.0",
            "-a",
            "x86_64",
            "-w",
            "default",
            "--start-at",
            "2024-10-24T20:00:00Z",
        ],
    ));
    assert_eq!(
        read_json(&path)["updates"][0]["waves"],
        json!({
            "0": "2024-10-24T21:00:00Z",
            "20": "2024-10-25T00:00:00Z",
            "102": "2024-10-25T20:00:00Z",
            "307": "2024-10-26T20:00:00Z",
            "819": "2024-10-28T20:00:00Z",
            "1228": "2024-10-29T20:00:00Z",
            "1843": "2024-10-30T20:00:00Z"
        })
    );
}

#[test]
fn set_waves_reads_a_policy_file() {
    let (dir, path) = with_manifest();
    add(dir.path(), &path, "aws-dev", "x86_64", "1.0.0", &[]);
    let policy = dir.path().join("waves.toml");
    fs::write(
        &policy,
        "[[waves]]\nstart_after = '1 day 12 hours'\nfleet_percentage = 50\n\n\
         [[waves]]\nstart_after = '2030-01-01T00:00:00Z'\nfleet_percentage = 100\n",
    )
    .unwrap();
    ok(updata(
        dir.path(),
        &[
            "set-waves",
            path.to_str().unwrap(),
            "--variant",
            "aws-dev",
            "--version",
            "1.0.0",
            "--arch",
            "x86_64",
            "--wave-file",
            policy.to_str().unwrap(),
            "--start-at",
            "2024-10-24T00:00:00Z",
        ],
    ));
    assert_eq!(
        read_json(&path)["updates"][0]["waves"],
        json!({"0": "2024-10-25T12:00:00Z", "1024": "2030-01-01T00:00:00Z"})
    );
}

#[test]
fn set_waves_with_an_unknown_policy_fails_naming_it() {
    let (dir, path) = with_manifest();
    add(dir.path(), &path, "aws-dev", "x86_64", "1.0.0", &[]);
    let err = fails(&updata(
        dir.path(),
        &[
            "set-waves",
            path.to_str().unwrap(),
            "-l",
            "aws-dev",
            "-v",
            "1.0.0",
            "-a",
            "x86_64",
            "-w",
            "fastest",
        ],
    ));
    assert!(
        err.starts_with("Error: Wave policy 'fastest' is neither"),
        "{err}"
    );
}

#[test]
fn set_waves_without_a_matching_update_fails() {
    let (dir, path) = with_manifest();
    add(dir.path(), &path, "aws-dev", "x86_64", "1.0.0", &[]);
    let err = fails(&updata(
        dir.path(),
        &[
            "set-waves",
            path.to_str().unwrap(),
            "-l",
            "aws-dev",
            "-v",
            "1.0.0",
            "-a",
            "aarch64",
            "-w",
            "ohno",
        ],
    ));
    assert!(err.contains("No update in the manifest matches"), "{err}");
}

#[test]
fn set_migrations_replaces_the_map_from_release_toml() {
    let (dir, path) = with_manifest();
    let release = dir.path().join("Release.toml");
    fs::write(
        &release,
        "version = \"1.26.1\"\n\n[migrations]\n\
         \"(1.25.0, 1.26.0)\" = []\n\
         \"(1.26.0,1.26.1)\" = [\"migrate_v1.26.1_foo.lz4\", \"migrate_v1.26.1_bar.lz4\"]\n",
    )
    .unwrap();
    ok(updata(
        dir.path(),
        &[
            "set-migrations",
            "-f",
            release.to_str().unwrap(),
            "-t",
            path.to_str().unwrap(),
        ],
    ));
    let expected = json!({
        "(1.25.0, 1.26.0)": [],
        "(1.26.0, 1.26.1)": ["migrate_v1.26.1_foo.lz4", "migrate_v1.26.1_bar.lz4"]
    });
    assert_eq!(read_json(&path)["migrations"], expected);

    // A second release replaces the map instead of merging into it.
    fs::write(
        &release,
        "version = \"2.0.0\"\n[migrations]\n\"(1.26.1, 2.0.0)\" = [\"migrate_v2.0.0_x.lz4\"]\n",
    )
    .unwrap();
    ok(updata(
        dir.path(),
        &[
            "set-migrations",
            "--from",
            release.to_str().unwrap(),
            "--to",
            path.to_str().unwrap(),
        ],
    ));
    assert_eq!(
        read_json(&path)["migrations"],
        json!({"(1.26.1, 2.0.0)": ["migrate_v2.0.0_x.lz4"]})
    );
}

#[test]
fn set_migrations_with_a_bad_key_fails_naming_file_and_key() {
    let (dir, path) = with_manifest();
    let release = dir.path().join("Release.toml");
    fs::write(
        &release,
        "version = \"1.0.0\"\n[migrations]\n\"1.0.0 to 1.1.0\" = []\n",
    )
    .unwrap();
    let err = fails(&updata(
        dir.path(),
        &[
            "set-migrations",
            "-f",
            release.to_str().unwrap(),
            "-t",
            path.to_str().unwrap(),
        ],
    ));
    assert!(
        err.contains(&release.display().to_string()) && err.contains("'1.0.0 to 1.1.0'"),
        "{err}"
    );
}

#[test]
fn set_max_version_sets_every_update() {
    let (dir, path) = with_manifest();
    add(dir.path(), &path, "a", "x86_64", "1.0.0", &[]);
    add(dir.path(), &path, "b", "aarch64", "1.1.0", &["-m", "1.1.0"]);
    ok(updata(
        dir.path(),
        &["set-max-version", path.to_str().unwrap(), "-v", "1.0.5"],
    ));
    let manifest = read_json(&path);
    for update in manifest["updates"].as_array().unwrap() {
        assert_eq!(update["max_version"], "1.0.5");
    }
}

#[test]
fn validate_accepts_a_good_manifest_and_changes_nothing() {
    let (dir, path) = with_manifest();
    add(dir.path(), &path, "a", "x86_64", "1.0.0", &[]);
    let before = fs::read(&path).unwrap();
    let out = ok(updata(dir.path(), &["validate", path.to_str().unwrap()]));
    assert!(
        stdout(&out).contains("is valid: 1 update(s)"),
        "{}",
        stdout(&out)
    );
    assert_eq!(fs::read(&path).unwrap(), before);
}

#[test]
fn validate_rejects_a_duplicate_wave_key_naming_file_key_and_update() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("manifest.json");
    fs::write(
        &path,
        r#"{"updates":[{"variant":"aws-dev","arch":"x86_64","version":"1.0.0","max_version":"1.0.0",
            "waves":{"0":"2024-01-01T00:00:00Z","20":"2024-01-02T00:00:00Z","20":"2024-01-03T00:00:00Z"},
            "images":{"boot":"b","root":"r","hash":"h"}}],"migrations":{}}"#,
    )
    .unwrap();
    let err = fails(&updata(dir.path(), &["validate", path.to_str().unwrap()]));
    assert!(err.contains(&path.display().to_string()), "{err}");
    assert!(err.contains("duplicate wave key '20'"), "{err}");
    assert!(
        err.contains("variant 'aws-dev'") && err.contains("version '1.0.0'"),
        "{err}"
    );
}

/// A manifest whose update has two waves at the same time (as in upstream's updog test data).
const EQUAL_WAVES: &str = r#"{"updates":[{"variant":"aws-dev","arch":"x86_64","version":"1.0.0","max_version":"1.0.0",
    "waves":{"0":"2024-01-01T00:00:00Z","20":"2024-01-01T00:00:00Z"},
    "images":{"boot":"b","root":"r","hash":"h"}}],"migrations":{}}"#;

#[test]
fn validate_accepts_two_waves_at_one_time_with_a_warning_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("manifest.json");
    fs::write(&path, EQUAL_WAVES).unwrap();
    let out = ok(updata(dir.path(), &["validate", path.to_str().unwrap()]));
    assert!(
        stdout(&out).contains("is valid: 1 update(s)"),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        stderr(&out),
        format!(
            "Warning: '{}': updates[0] (variant 'aws-dev', arch 'x86_64', version '1.0.0'): wave 20 \
             starts at 2024-01-01T00:00:00Z, at the same time as wave 0 at 2024-01-01T00:00:00Z; wave \
             times should strictly increase with the seed (the waves are used as upstream uses them)\n",
            path.display()
        )
    );
}

#[test]
fn other_commands_work_on_a_manifest_with_two_waves_at_one_time_and_keep_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("manifest.json");
    fs::write(&path, EQUAL_WAVES).unwrap();
    add(dir.path(), &path, "aws-dev", "x86_64", "1.1.0", &[]);
    ok(updata(
        dir.path(),
        &["set-max-version", path.to_str().unwrap(), "-v", "1.1.0"],
    ));
    let json = read_json(&path);
    assert_eq!(
        json["updates"][0]["waves"],
        json!({"0": "2024-01-01T00:00:00Z", "20": "2024-01-01T00:00:00Z"})
    );
    assert_eq!(json["updates"][1]["version"], "1.1.0");
}

#[test]
fn set_waves_still_refuses_a_policy_whose_times_do_not_increase() {
    let (dir, path) = with_manifest();
    add(dir.path(), &path, "aws-dev", "x86_64", "1.0.0", &[]);
    let before = fs::read(&path).unwrap();
    let policy = dir.path().join("waves.toml");
    for second in ["1 hour", "30 minutes"] {
        fs::write(
            &policy,
            format!(
                "[[waves]]\nstart_after = '1 hour'\nfleet_percentage = 10\n\n\
                 [[waves]]\nstart_after = '{second}'\nfleet_percentage = 100\n"
            ),
        )
        .unwrap();
        let err = fails(&updata(
            dir.path(),
            &[
                "set-waves",
                path.to_str().unwrap(),
                "-l",
                "aws-dev",
                "-v",
                "1.0.0",
                "-a",
                "x86_64",
                "-w",
                policy.to_str().unwrap(),
                "--start-at",
                "2024-10-24T20:00:00Z",
            ],
        ));
        assert!(
            err.contains("Wave 2 (seed 204) starts at")
                && err.contains("not after wave 1 (seed 0) at 2024-10-24T21:00:00Z")
                && err.contains("wave start times must strictly increase"),
            "{second}: {err}"
        );
        assert_eq!(fs::read(&path).unwrap(), before, "{second}");
    }
}

#[test]
fn a_missing_manifest_fails_with_the_path_and_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nope.json");
    let err = fails(&updata(
        dir.path(),
        &["set-max-version", path.to_str().unwrap(), "-v", "1.0.0"],
    ));
    assert!(
        err.contains(&path.display().to_string()) && err.contains("updata init"),
        "{err}"
    );
    assert!(!path.exists());
}

#[test]
fn usage_errors_exit_1_and_help_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let err = fails(&updata(dir.path(), &["add-update", "m.json", "-f", "x"]));
    assert!(err.contains("required"), "{err}");
    let err = fails(&updata(dir.path(), &["frobnicate"]));
    assert!(err.contains("frobnicate"), "{err}");

    let out = ok(updata(dir.path(), &["add-update", "--help"]));
    assert!(stdout(&out).contains("--hash"), "{}", stdout(&out));
    let out = ok(updata(dir.path(), &["--help"]));
    assert!(stdout(&out).contains("set-migrations"), "{}", stdout(&out));
}
