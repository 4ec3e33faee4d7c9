//! The systemd units of a real node (`packaging/systemd/`): `systemd-analyze verify` accepts them with the
//! workspace's own binaries in place of `/usr/bin/…`, and they keep upstream's boot order.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

const UNITS: [&str; 5] = [
    "migrator.service",
    "apiserver.service",
    "updog-mark-successful-boot.service",
    "updog-update.service",
    "updog-update.timer",
];

/// The programs the units run, installed as `/usr/bin/NAME` on a node.
const PROGRAMS: [&str; 3] = ["updog", "migrator", "apiserver"];

fn units_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/systemd")
}

/// The target directory holding the workspace's binaries (beside this package's), or `None` (after saying why)
/// when they are not built and this is not CI.
fn bin_dir(test: &str) -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_BIN_EXE_repo-fixtures"))
        .parent()
        .expect("target dir")
        .to_owned();
    let missing: Vec<&str> = PROGRAMS
        .into_iter()
        .filter(|p| !dir.join(p).is_file())
        .collect();
    if missing.is_empty() {
        return Some(dir);
    }
    assert!(
        std::env::var_os("CI").is_none_or(|v| v.is_empty()),
        "CI must build the workspace's binaries (cargo test --workspace): missing {missing:?}"
    );
    eprintln!("SKIPPED {test}: {missing:?} not built in {}", dir.display());
    None
}

/// Copies the units into a temp dir with `/usr/bin/PROGRAM` replaced by `bin_dir/PROGRAM`.
fn installed_units(bin_dir: &Path) -> tempfile::TempDir {
    let out = tempfile::tempdir().unwrap();
    for unit in UNITS {
        let mut text = std::fs::read_to_string(units_dir().join(unit)).unwrap();
        for program in PROGRAMS {
            text = text.replace(
                &format!("/usr/bin/{program} "),
                &format!("{}/{program} ", bin_dir.display()),
            );
            text = text.replace(
                &format!("/usr/bin/{program}\n"),
                &format!("{}/{program}\n", bin_dir.display()),
            );
        }
        assert!(
            !text.contains("/usr/bin/"),
            "{unit} runs a program this test does not provide:\n{text}"
        );
        std::fs::write(out.path().join(unit), text).unwrap();
    }
    out
}

fn verify(dir: &Path) -> std::process::Output {
    Command::new("systemd-analyze")
        .arg("verify")
        .args(UNITS.map(|u| dir.join(u)))
        // Plain messages: the assertions below print them.
        .env("SYSTEMD_LOG_COLOR", "0")
        .output()
        .expect("run systemd-analyze")
}

#[test]
fn systemd_analyze_verify_accepts_every_unit() {
    if !repo_fixtures::require::require_tool("systemd-analyze") {
        return;
    }
    let Some(bin_dir) = bin_dir("systemd_analyze_verify_accepts_every_unit") else {
        return;
    };
    let units = installed_units(&bin_dir);
    let output = verify(units.path());
    let stderr = String::from_utf8_lossy(&output.stderr);
    // Any warning (an unknown key, a bad value, a missing unit) is a defect too, though verify exits 0 for it.
    assert!(
        output.status.success() && stderr.trim().is_empty(),
        "{}\n{stderr}",
        output.status
    );
}

#[test]
fn systemd_analyze_verify_catches_a_missing_program() {
    if !repo_fixtures::require::require_tool("systemd-analyze") {
        return;
    }
    let Some(bin_dir) = bin_dir("systemd_analyze_verify_catches_a_missing_program") else {
        return;
    };
    let units = installed_units(&bin_dir);
    let migrator = units.path().join("migrator.service");
    let text = std::fs::read_to_string(&migrator).unwrap().replace(
        &format!("{}/migrator", bin_dir.display()),
        "/nonexistent/migrator",
    );
    std::fs::write(&migrator, text).unwrap();
    let output = verify(units.path());
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("/nonexistent/migrator"), "{stderr}");
}

/// `KEY=value` lines of a unit, every value of a repeated key, values split on whitespace.
fn directives(unit: &str) -> BTreeMap<String, Vec<String>> {
    let text = std::fs::read_to_string(units_dir().join(unit)).unwrap();
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let joined = text.replace("\\\n", " ");
    for line in joined.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.starts_with('[') {
            continue;
        }
        if let Some((key, value)) = line.split_once('=') {
            out.entry(key.trim().to_string())
                .or_default()
                .extend(value.split_whitespace().map(str::to_string));
        }
    }
    out
}

fn has(unit: &str, key: &str, value: &str) -> bool {
    directives(unit)
        .get(key)
        .is_some_and(|values| values.iter().any(|v| v == value))
}

#[test]
fn the_units_keep_upstreams_boot_order() {
    // Settings are migrated before the API serves them and before the workload starts.
    assert!(has("migrator.service", "Before", "apiserver.service"));
    assert!(has("migrator.service", "Before", "multi-user.target"));
    assert!(has(
        "migrator.service",
        "ExecStart",
        "--migrate-to-version-from-os-release"
    ));
    assert!(has("apiserver.service", "After", "migrator.service"));
    assert!(has("apiserver.service", "Requires", "migrator.service"));
    // The boot is marked (after the health checks) only once the workload target is up and the migration passed.
    let mark = "updog-mark-successful-boot.service";
    assert!(has(mark, "After", "multi-user.target"));
    assert!(has(mark, "Requires", "migrator.service"));
    assert_eq!(
        directives(mark)["ExecStart"],
        ["/usr/bin/updog", "mark-successful-boot"]
    );
    // Updates start only from a confirmed boot, periodically, spread out.
    assert!(has("updog-update.service", "After", mark));
    assert!(has("updog-update.service", "Requires", mark));
    assert_eq!(
        directives("updog-update.service")["ExecStart"],
        ["/usr/bin/updog", "update"]
    );
    let timer = directives("updog-update.timer");
    assert!(timer.contains_key("RandomizedDelaySec"), "{timer:?}");
    assert!(has("updog-update.timer", "WantedBy", "timers.target"));
}
