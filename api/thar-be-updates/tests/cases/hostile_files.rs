//! Files planted where thar-be-updates writes (a FIFO at the log, a symlinked status directory) and a worker that
//! died mid-command, through the real binary.

use super::support::run_tbu;

#[test]
fn a_fifo_at_the_log_is_refused_at_once_and_the_lock_is_released() {
    let sysroot = tempfile::tempdir().unwrap();
    let dir = sysroot.path().join("run/cache/thar-be-updates");
    std::fs::create_dir_all(&dir).unwrap();
    let fifo = dir.join("refresh.log");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &fifo,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
    // run_tbu bounds a hang: a child blocked opening the FIFO never sends its verdict.
    let run = run_tbu(sysroot.path(), &["refresh"]);
    assert_eq!(run.code, Some(1), "{run:#?}");
    assert!(
        run.stderr.contains(&format!(
            "Refusing log file {}: a FIFO, not a regular file",
            fifo.display()
        )),
        "{run:#?}"
    );
    // The lock is free again: the next command is not refused as busy (64).
    let again = run_tbu(sysroot.path(), &["refresh"]);
    assert_ne!(again.code, Some(64), "{again:#?}");
}

#[test]
fn a_symlinked_status_directory_is_refused_and_nothing_is_written_through_it() {
    let dir = tempfile::tempdir().unwrap();
    let sysroot = dir.path().join("node");
    let outside = dir.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let status_dir = sysroot.join("run/cache/thar-be-updates");
    std::fs::create_dir_all(status_dir.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(&outside, &status_dir).unwrap();
    for command in ["refresh", "recover"] {
        let run = run_tbu(&sysroot, &[command]);
        assert_eq!(run.code, Some(1), "{command}: {run:#?}");
        assert!(
            run.stderr.contains(&format!(
                "{} is a symlink, not a directory",
                status_dir.display()
            )),
            "{command}: {run:#?}"
        );
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0, "{command}");
    }
}

#[test]
fn recover_records_a_dead_prepare_as_failed_and_clears_its_progress() {
    let sysroot = tempfile::tempdir().unwrap();
    let dir = sysroot.path().join("run/cache/thar-be-updates");
    std::fs::create_dir_all(&dir).unwrap();
    let image = serde_json::json!({"arch": "x86_64", "version": "1.1.0", "variant": "aws-dev"});
    let status = serde_json::json!({
        "update_state": "Staged",
        "available_updates": ["1.1.0"],
        "chosen_update": image,
        "active_partition": {"image": image, "next_to_boot": true},
        "staging_partition": {"image": image, "next_to_boot": false},
        "most_recent_command": {"cmd_type": "refresh", "cmd_status": "Success",
            "timestamp": "2026-12-03T12:00:00Z", "exit_status": 0, "stderr": ""},
        "update_progress": {"cmd_type": "prepare", "phase": "write", "started": "2026-12-03T12:00:01Z",
            "pid": 999_999}
    });
    std::fs::write(dir.join("status.json"), status.to_string()).unwrap();
    let run = run_tbu(sysroot.path(), &["recover"]);
    assert_eq!(run.code, Some(0), "{run:#?}");
    assert_eq!(run.stdout, "");
    let recovered: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("status.json")).unwrap()).unwrap();
    assert_eq!(recovered["update_progress"], serde_json::Value::Null);
    assert_eq!(recovered["update_state"], "Available");
    assert_eq!(recovered["staging_partition"], serde_json::Value::Null);
    let recent = &recovered["most_recent_command"];
    assert_eq!(recent["cmd_type"], "prepare");
    assert_eq!(recent["cmd_status"], "Failed");
    assert!(
        recent["stderr"]
            .as_str()
            .unwrap()
            .starts_with("interrupted: thar-be-updates prepare (pid 999999"),
        "{recovered}"
    );

    // Nothing to recover: the file is left as it is.
    let before = std::fs::read(dir.join("status.json")).unwrap();
    assert_eq!(run_tbu(sysroot.path(), &["recover"]).code, Some(0));
    assert_eq!(std::fs::read(dir.join("status.json")).unwrap(), before);
}
