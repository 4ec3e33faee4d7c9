//! Guards for tests that need a system tool or root.
//!
//! Outside CI a missing requirement skips the test (it returns early, with a `SKIPPED` line on stderr); in CI (env
//! `CI` set and non-empty, as `.ci/run` does) it panics, because a CI that lacks the tool would otherwise pass
//! without running the test.
//!
//! ```no_run
//! #[test]
//! fn nginx_serves_a_range() {
//!     if !repo_fixtures::require::require_tool("nginx") {
//!         return;
//!     }
//!     // ...
//! }
//! ```

use std::env;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// System directories searched after `PATH`: a non-root `PATH` often lacks them, and nginx lives in /usr/sbin.
const SBIN_DIRS: [&str; 3] = ["/usr/local/sbin", "/usr/sbin", "/sbin"];

/// True when the tool `name` is installed. Outside CI a missing tool prints `SKIPPED <test>: <name> not installed`
/// and returns false; in CI it panics.
pub fn require_tool(name: &str) -> bool {
    require(
        find_tool(name).is_some(),
        running_in_ci(),
        &format!("{name} not installed"),
        &format!("CI must provide {name}: install it in .ci/run"),
    )
}

/// True when running as root (effective uid 0). Outside CI, otherwise prints `SKIPPED <test>: needs root` and
/// returns false; in CI it panics.
pub fn require_root() -> bool {
    require(
        is_root(),
        running_in_ci(),
        "needs root",
        "CI must run the tests as root (.ci/run runs as root)",
    )
}

/// True when `python3` is installed and can import the module `module` (e.g. `tuf`, python-tuf). Outside CI a
/// missing one prints `SKIPPED <test>: python3 module <module> not installed` and returns false; in CI it panics.
pub fn require_python_module(module: &str) -> bool {
    require(
        python_module_available(module),
        running_in_ci(),
        &format!("python3 module {module} not installed"),
        &format!("CI must provide python3 with the module {module}: pip install it in .ci/run"),
    )
}

/// Whether `python3 -c "import <module>"` succeeds (false when python3 itself is missing).
pub fn python_module_available(module: &str) -> bool {
    let Some(python) = find_tool("python3") else {
        return false;
    };
    std::process::Command::new(python)
        .arg("-c")
        .arg(format!("import {module}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// The executable `name` in `PATH` or the sbin directories (or `name` itself when it contains a `/`).
pub fn find_tool(name: &str) -> Option<PathBuf> {
    if name.contains('/') {
        return is_executable(Path::new(name)).then(|| PathBuf::from(name));
    }
    let path_dirs = env::var_os("PATH")
        .map(|path| env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default();
    path_dirs
        .into_iter()
        .chain(SBIN_DIRS.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

/// Whether this process's effective uid is 0 (read from /proc/self/status, so no libc binding is needed).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| effective_uid(&status))
        .is_some_and(|uid| uid == 0)
}

/// The second field of the `Uid:` line (real, effective, saved, filesystem).
fn effective_uid(proc_status: &str) -> Option<u32> {
    proc_status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        .and_then(|uid| uid.parse().ok())
}

fn is_executable(path: &Path) -> bool {
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn running_in_ci() -> bool {
    env::var_os("CI").is_some_and(|ci| !ci.is_empty())
}

fn require(met: bool, in_ci: bool, skip_reason: &str, ci_demand: &str) -> bool {
    if met {
        return true;
    }
    assert!(!in_ci, "{ci_demand}");
    let test = std::thread::current().name().unwrap_or("test").to_string();
    // Straight to the stderr handle, not eprintln!: the test harness captures eprintln! output of passing tests,
    // and a skip must be visible. Nothing useful can be done if stderr itself is gone.
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {skip_reason}");
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_met_requirement_passes_in_and_out_of_ci() {
        assert!(require(true, false, "x", "y"));
        assert!(require(true, true, "x", "y"));
    }

    #[test]
    fn a_missing_requirement_skips_outside_ci() {
        assert!(!require(
            false,
            false,
            "frobnicator not installed",
            "CI must provide frobnicator"
        ));
    }

    #[test]
    #[should_panic(expected = "CI must provide frobnicator: install it in .ci/run")]
    fn a_missing_requirement_fails_loudly_in_ci() {
        require(
            false,
            true,
            "frobnicator not installed",
            "CI must provide frobnicator: install it in .ci/run",
        );
    }

    #[test]
    fn finds_tools_on_path_and_in_sbin() {
        assert!(find_tool("sh").is_some());
        assert!(find_tool("/bin/sh").is_some());
        assert!(find_tool("no-such-tool-repo-fixtures").is_none());
        assert!(find_tool("/nonexistent/sh").is_none());
    }

    #[test]
    fn imports_python_modules_that_exist() {
        if find_tool("python3").is_none() {
            return;
        }
        assert!(python_module_available("json"));
        assert!(!python_module_available("no_such_module_repo_fixtures"));
    }

    #[test]
    fn reads_the_effective_uid() {
        let status = "Name:\tcat\nUid:\t1000\t0\t0\t0\nGid:\t0\t0\t0\t0\n";
        assert_eq!(effective_uid(status), Some(0));
        assert_eq!(effective_uid("Name:\tcat\n"), None);
    }
}
