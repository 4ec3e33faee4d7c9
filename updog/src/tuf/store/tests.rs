use super::*;
use chrono::TimeZone;
use percent_encoding::percent_decode_str;
use std::collections::BTreeSet;
use std::os::unix::fs::{MetadataExt, symlink};

const LIMIT: u64 = 1 << 20;

fn store() -> (tempfile::TempDir, MetadataStore) {
    let temp = tempfile::tempdir().unwrap();
    let store = MetadataStore::open(temp.path().join("var/lib/updog/tuf")).unwrap();
    (temp, store)
}

/// The names in the store directory, sorted.
fn names(store: &MetadataStore) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(store.dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().mode() & 0o7777
}

#[test]
fn roles_roots_and_the_time_round_trip_and_replace() {
    let (_temp, store) = store();
    store.write_role("timestamp", b"ts v1").unwrap();
    store.write_role("targets", b"targets v1").unwrap();
    store.write_root(2, b"root v2").unwrap();
    let time = Utc.with_ymd_and_hms(2026, 12, 3, 15, 0, 0).unwrap();
    store.write_latest_known_time(time).unwrap();

    assert_eq!(
        store.read_role("timestamp", LIMIT).unwrap().unwrap(),
        b"ts v1"
    );
    assert_eq!(
        store.read_role("targets", LIMIT).unwrap().unwrap(),
        b"targets v1"
    );
    assert_eq!(store.read_root(2, LIMIT).unwrap().unwrap(), b"root v2");
    assert_eq!(store.read_latest_known_time().unwrap(), Some(time));

    store.write_role("timestamp", b"ts v2").unwrap();
    assert_eq!(
        store.read_role("timestamp", LIMIT).unwrap().unwrap(),
        b"ts v2"
    );
    let later = time + chrono::Duration::milliseconds(1500);
    store.write_latest_known_time(later).unwrap();
    assert_eq!(store.read_latest_known_time().unwrap(), Some(later));

    // Exactly these files: no temporary file left behind.
    assert_eq!(
        names(&store),
        [
            "2.root.json",
            "latest_known_time.json",
            "targets.json",
            "timestamp.json"
        ]
    );
}

#[test]
fn absent_is_none_and_removing_is_durable_and_idempotent() {
    let (_temp, store) = store();
    assert_eq!(store.read_role("snapshot", LIMIT).unwrap(), None);
    assert_eq!(store.read_root(2, LIMIT).unwrap(), None);
    assert_eq!(store.read_latest_known_time().unwrap(), None);
    assert_eq!(store.root_versions().unwrap(), Vec::<u64>::new());

    store.write_role("snapshot", b"s").unwrap();
    store.remove_role("snapshot").unwrap();
    assert_eq!(store.read_role("snapshot", LIMIT).unwrap(), None);
    store.remove_role("snapshot").unwrap();
    assert!(names(&store).is_empty());
}

#[test]
fn the_time_file_is_what_tough_writes_and_tough_s_file_is_read() {
    let (_temp, store) = store();
    let time = Utc.with_ymd_and_hms(2026, 12, 3, 15, 0, 0).unwrap();
    store.write_latest_known_time(time).unwrap();
    let path = store.dir().join("latest_known_time.json");
    assert_eq!(
        fs::read_to_string(&path).unwrap(),
        "\"2026-12-03T15:00:00Z\""
    );

    fs::write(&path, "\"2027-01-02T03:04:05.250Z\"\n").unwrap();
    assert_eq!(
        store.read_latest_known_time().unwrap(),
        Some(
            Utc.with_ymd_and_hms(2027, 1, 2, 3, 4, 5).unwrap()
                + chrono::Duration::milliseconds(250)
        )
    );
}

#[test]
fn an_unparsable_time_is_an_error_naming_the_file_and_the_recovery() {
    let (_temp, store) = store();
    let path = store.dir().join("latest_known_time.json");
    for garbage in [
        &b"\"2026-12-03T15:0"[..],
        b"",
        b"\"yesterday\"",
        b"1764774000",
        b"{\"time\": \"2026-12-03T15:00:00Z\"}",
        b"\xff\xfe",
    ] {
        fs::write(&path, garbage).unwrap();
        let err = store.read_latest_known_time().unwrap_err();
        assert!(matches!(err, StoreError::BadTime { .. }), "{err:?}");
        let message = err.to_string();
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(message.contains("delete it to recover"), "{message}");
    }
}

#[test]
fn a_symlink_is_never_read_through_and_a_write_replaces_it() {
    let temp = tempfile::tempdir().unwrap();
    let store = MetadataStore::open(temp.path().join("tuf")).unwrap();
    let outside = temp.path().join("outside.json");
    fs::write(&outside, "old trusted metadata").unwrap();

    let timestamp = store.dir().join("timestamp.json");
    let root = store.dir().join("3.root.json");
    let time = store.dir().join("latest_known_time.json");
    for link in [&timestamp, &root, &time] {
        symlink(&outside, link).unwrap();
    }
    let errors = [
        store.read_role("timestamp", LIMIT).unwrap_err(),
        store.read_root(3, LIMIT).unwrap_err(),
        store.read_latest_known_time().unwrap_err(),
    ];
    for (err, link) in errors.iter().zip([&timestamp, &root, &time]) {
        assert!(
            matches!(err, StoreError::NotRegular { path, found: "a symlink" } if path == link),
            "{err:?}"
        );
        assert!(
            err.to_string().contains(&link.display().to_string()),
            "{err}"
        );
    }

    store.write_role("timestamp", b"new").unwrap();
    store.write_root(3, b"root v3").unwrap();
    let now = Utc.with_ymd_and_hms(2026, 12, 3, 15, 0, 0).unwrap();
    store.write_latest_known_time(now).unwrap();
    assert_eq!(fs::read(&outside).unwrap(), b"old trusted metadata");
    for link in [&timestamp, &root, &time] {
        assert!(fs::symlink_metadata(link).unwrap().is_file());
        assert_eq!(mode(link), 0o600);
    }
    assert_eq!(
        store.read_role("timestamp", LIMIT).unwrap().unwrap(),
        b"new"
    );
    assert_eq!(store.read_root(3, LIMIT).unwrap().unwrap(), b"root v3");
    assert_eq!(store.read_latest_known_time().unwrap(), Some(now));
}

#[test]
fn a_directory_or_a_fifo_at_a_role_path_is_an_error_not_absent() {
    let (_temp, store) = store();
    let dir = store.dir().join("snapshot.json");
    fs::create_dir(&dir).unwrap();
    fs::write(dir.join("inside"), "x").unwrap();
    let err = store.read_role("snapshot", LIMIT).unwrap_err();
    assert!(
        matches!(&err, StoreError::NotRegular { path, found: "a directory" } if *path == dir),
        "{err:?}"
    );
    assert!(
        err.to_string().contains(&dir.display().to_string()),
        "{err}"
    );
    assert!(matches!(
        store.write_role("snapshot", b"s").unwrap_err(),
        StoreError::Write { path, .. } if path == dir
    ));
    assert!(matches!(
        store.remove_role("snapshot").unwrap_err(),
        StoreError::Remove { path, .. } if path == dir
    ));
    assert!(dir.join("inside").is_file());

    let fifo = store.dir().join("targets.json");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &fifo,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    // Refused at once (a FIFO with no writer must not hang the read).
    assert!(matches!(
        store.read_role("targets", LIMIT).unwrap_err(),
        StoreError::NotRegular {
            found: "a FIFO",
            ..
        }
    ));
}

#[test]
fn a_file_over_max_len_is_an_error_and_max_len_itself_is_read() {
    let (_temp, store) = store();
    store.write_role("targets", &[b'x'; 100]).unwrap();
    assert_eq!(store.read_role("targets", 100).unwrap().unwrap().len(), 100);
    let err = store.read_role("targets", 99).unwrap_err();
    let path = store.dir().join("targets.json");
    assert!(
        matches!(&err, StoreError::TooLarge { path: p, max_len: 99 } if *p == path),
        "{err:?}"
    );
    assert!(err.to_string().contains("larger than 99 bytes"), "{err}");

    store.write_root(4, &[b'r'; 10]).unwrap();
    assert!(matches!(
        store.read_root(4, 9).unwrap_err(),
        StoreError::TooLarge { max_len: 9, .. }
    ));
    // The time file has its own small bound.
    fs::write(store.dir().join("latest_known_time.json"), vec![b' '; 5000]).unwrap();
    assert!(matches!(
        store.read_latest_known_time().unwrap_err(),
        StoreError::TooLarge { max_len: 4096, .. }
    ));
}

#[test]
fn role_file_names_quote_separators_dots_and_reserved_names() {
    for (role, name) in [
        ("timestamp", "timestamp.json"),
        ("my-role_1.x", "my-role_1.x.json"),
        ("a/../b", "a%2F..%2Fb.json"),
        ("..", "%2E..json"),
        (".", "%2E.json"),
        ("../x", "%2E.%2Fx.json"),
        (".hidden", "%2Ehidden.json"),
        ("a/b", "a%2Fb.json"),
        ("x?y#z", "x%3Fy%23z.json"),
        ("%41", "%2541.json"),
        ("a b~", "a%20b%7E.json"),
        ("é", "%C3%A9.json"),
        ("latest_known_time", "%6Catest_known_time.json"),
        ("2.root", "%32.root.json"),
        ("10.root", "%310.root.json"),
        // Not reserved: no store file has these names.
        ("root", "root.json"),
        ("x.root", "x.root.json"),
        ("latest_known_time2", "latest_known_time2.json"),
    ] {
        assert_eq!(role_file_name(role), name, "role {role:?}");
    }
}

#[test]
fn hostile_role_names_land_inside_the_store_as_distinct_files() {
    let (temp, store) = store();
    let roles = [
        "..",
        ".",
        "a/b",
        "../x",
        "x?y#z",
        "%41",
        "A",
        "a%2Fb",
        "/etc/passwd",
        "\u{0}",
        "rôle/ünïcode",
        "日本",
        "latest_known_time",
        "2.root",
        "timestamp",
    ];
    for (i, role) in roles.iter().enumerate() {
        store.write_role(role, i.to_string().as_bytes()).unwrap();
    }
    // Nothing escaped the store.
    assert_eq!(fs::read_dir(temp.path()).unwrap().count(), 1);
    let files = names(&store);
    assert_eq!(files.len(), roles.len(), "{files:?}");
    for (i, role) in roles.iter().enumerate() {
        let name = role_file_name(role);
        assert!(files.contains(&name), "{name} in {files:?}");
        assert!(!name.contains('/') && !name.starts_with('.'), "{name}");
        // Injective: the name decodes back to the role.
        let stem = name.strip_suffix(".json").unwrap();
        assert_eq!(percent_decode_str(stem).decode_utf8().unwrap(), *role);
        assert_eq!(
            store.read_role(role, LIMIT).unwrap().unwrap(),
            i.to_string().as_bytes()
        );
    }
    // Roles named like the store's own files left them alone.
    assert_eq!(store.read_latest_known_time().unwrap(), None);
    assert_eq!(store.root_versions().unwrap(), Vec::<u64>::new());

    let distinct: BTreeSet<String> = roles.iter().map(|r| role_file_name(r)).collect();
    assert_eq!(distinct.len(), roles.len());
}

#[test]
fn an_empty_role_name_is_refused() {
    let (_temp, store) = store();
    for err in [
        store.read_role("", LIMIT).unwrap_err(),
        store.write_role("", b"x").unwrap_err(),
        store.remove_role("").unwrap_err(),
    ] {
        assert!(matches!(err, StoreError::EmptyRole { .. }), "{err:?}");
        assert!(err.to_string().contains("empty TUF role name"), "{err}");
    }
    assert!(names(&store).is_empty());
}

#[test]
fn files_are_0600_and_a_new_store_is_0700_under_default_mode_parents() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("var/lib/updog/tuf");
    let store = MetadataStore::open(&dir).unwrap();
    assert_eq!(store.dir(), dir);
    assert_eq!(mode(&dir), 0o700);
    // Parents get the default mode (what any new directory gets under this umask), not the store's.
    let plain = temp.path().join("plain");
    fs::create_dir(&plain).unwrap();
    for parent in ["var", "var/lib", "var/lib/updog"] {
        assert_eq!(mode(&temp.path().join(parent)), mode(&plain), "{parent}");
    }

    store.write_role("snapshot", b"s").unwrap();
    store.write_root(2, b"r").unwrap();
    store.write_latest_known_time(Utc::now()).unwrap();
    for name in names(&store) {
        assert_eq!(mode(&dir.join(&name)), 0o600, "{name}");
    }

    // Reopening an existing store keeps what it holds.
    let again = MetadataStore::open(&dir).unwrap();
    assert_eq!(again.read_role("snapshot", LIMIT).unwrap().unwrap(), b"s");
}

#[test]
fn open_refuses_a_file_or_a_symlink_where_the_store_should_be() {
    let temp = tempfile::tempdir().unwrap();
    let file = temp.path().join("file");
    fs::write(&file, "x").unwrap();
    let err = MetadataStore::open(&file).unwrap_err();
    assert!(
        matches!(&err, StoreError::NotADirectory { path, found: "a regular file" } if *path == file),
        "{err:?}"
    );
    assert!(
        err.to_string().contains(&file.display().to_string()),
        "{err}"
    );

    let real = temp.path().join("real");
    fs::create_dir(&real).unwrap();
    let link = temp.path().join("tuf");
    symlink(&real, &link).unwrap();
    assert!(matches!(
        MetadataStore::open(&link).unwrap_err(),
        StoreError::NotADirectory {
            found: "a symlink",
            ..
        }
    ));
    // A file where a parent should be.
    assert!(matches!(
        MetadataStore::open(file.join("tuf")).unwrap_err(),
        StoreError::Create { .. }
    ));
}

#[test]
fn root_versions_sorts_numerically_and_counts_only_canonical_names() {
    let (_temp, store) = store();
    for version in [10, 2, 3, 100] {
        store.write_root(version, b"r").unwrap();
    }
    for stray in [
        "root.json",
        "x.root.json",
        "01.root.json",
        "00.root.json",
        "-1.root.json",
        "+5.root.json",
        " 6.root.json",
        "7.root.json.tmp",
        "8.root",
        ".root.json",
        "99999999999999999999999.root.json",
        ".tmp-abcdefghijklmnop",
        "timestamp.json",
    ] {
        fs::write(store.dir().join(stray), "x").unwrap();
    }
    store.write_role("2.root", b"a delegated role").unwrap();
    assert_eq!(store.root_versions().unwrap(), [2, 3, 10, 100]);
}

#[test]
fn a_store_that_vanished_cannot_be_listed() {
    let (_temp, store) = store();
    fs::remove_dir(store.dir()).unwrap();
    let err = store.root_versions().unwrap_err();
    assert!(matches!(err, StoreError::ListDir { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&store.dir().display().to_string()),
        "{err}"
    );
}
