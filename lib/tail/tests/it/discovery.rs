//! Discovery and opening: files that cannot be opened yet, and files the writer renames and
//! deletes while the tailer holds them open (Windows share modes).

use crate::harness::{Running, append, config};

#[test]
#[cfg(unix)] // dangling symlinks and file modes
fn unreadable_file_is_retried_until_it_can_be_read() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::time::Duration;

    use crate::harness::Event;
    let dir = tempfile::tempdir().expect("temp dir");
    let target = dir.path().join("target.txt");
    // A matched path that cannot be opened yet: a dangling symlink.
    std::os::unix::fs::symlink(&target, dir.path().join("link.log")).expect("symlink");
    let locked = dir.path().join("locked.log");
    append(&locked, b"secret\n");
    let is_root = std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(true);
    if !is_root {
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).expect("chmod");
    }
    let run = Running::start(config(dir.path(), "*.log"), Vec::new(), true);
    // Let several scans fail first (not a synchronisation: the test holds without it).
    std::thread::sleep(Duration::from_millis(100));
    assert!(run.record().lines().is_empty() || is_root);
    append(&target, b"late\n");
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    run.wait_until("both files read", |r| r.lines().len() == 2);
    let (_, record) = run.stop();
    let mut texts = record.texts();
    texts.sort();
    assert_eq!(texts, vec!["late", "secret"]);
    assert!(
        record
            .events
            .iter()
            .all(|e| !matches!(e, Event::Gap { .. }))
    );
}

#[test]
fn writer_renames_and_deletes_an_open_file_and_every_line_arrives_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("app.log");
    append(&path, b"one\ntwo\n");
    let run = Running::start(config(dir.path(), "app.log*"), Vec::new(), true);
    run.wait_until("first lines", |r| r.lines().len() == 2);
    // Rotate while the tailer holds the file open, then write to both names.
    let rotated = dir.path().join("app.log.1");
    std::fs::rename(&path, &rotated).expect("rename an open file");
    append(&rotated, b"three\n");
    append(&path, b"four\n");
    run.wait_until("lines after rotation", |r| r.lines().len() == 4);
    // Delete the rotated file while it is still open.
    std::fs::remove_file(&rotated).expect("delete an open file");
    append(&path, b"five\n");
    run.wait_until("line after delete", |r| r.lines().len() == 5);
    let (_, record) = run.stop();
    let mut texts = record.texts();
    texts.sort();
    assert_eq!(texts, vec!["five", "four", "one", "three", "two"]);
}
