//! Rename rotation, delete while open, copytruncate, truncation in place.

use std::sync::atomic::Ordering;

use logship_tail::TailConfig;

use crate::harness::{Controls, Running, append, assert_exactly_once, config, numbered};

/// Starts a tailer whose sink blocks on the first line of `path` until resumed, so that the tests
/// can rotate files while the tailer lags behind.
fn start_paused(cfg: TailConfig) -> Running {
    let controls = Controls::default();
    controls.pause.store(true, Ordering::SeqCst);
    let run = Running::start_with(cfg, Vec::new(), true, controls);
    run.wait_blocked();
    run
}

#[test]
fn rename_rotation_drains_the_old_file_then_releases_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("app.log");
    let rotated = dir.path().join("app.log.1");
    append(&path, &numbered(0..1000));
    let run = start_paused(config(dir.path(), "*.log"));
    append(&path, &numbered(1000..2000));
    std::fs::rename(&path, &rotated).expect("rename");
    append(&path, &numbered(2000..2100));
    // The writer still holds the old file for a moment and writes to it after the rename.
    append(&rotated, &numbered(2100..2200));
    run.resume();
    run.wait_until("all lines", |r| r.lines().len() == 2200);
    run.wait_until("old file released", |r| r.closed_keys().len() == 1);
    let (tailer, record) = run.stop();
    assert_exactly_once(&record, 2200);
    let old_key = &record.closed_keys()[0];
    let old_lines = record.lines().iter().filter(|l| &l.key == old_key).count();
    assert_eq!(
        old_lines, 2100,
        "the old key owns the lines of the rotated file"
    );
    let positions = tailer.positions();
    assert_eq!(
        positions.len(),
        1,
        "only the new app.log stays open: {positions:?}"
    );
    assert_eq!(positions[0].path, path.to_string_lossy());
}

#[test]
fn rename_to_another_matched_name_keeps_the_key_and_reports_the_new_path() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("a.log");
    let renamed = dir.path().join("b.log");
    append(&path, &numbered(0..10));
    let run = Running::start(config(dir.path(), "*.log"), Vec::new(), true);
    run.wait_until("first lines", |r| r.lines().len() == 10);
    std::fs::rename(&path, &renamed).expect("rename");
    run.wait_until("reopened under new path", |r| r.sources.len() == 2);
    append(&renamed, &numbered(10..20));
    run.wait_until("all lines", |r| r.lines().len() == 20);
    let (_, record) = run.stop();
    assert_exactly_once(&record, 20);
    assert_eq!(record.sources[0].0, record.sources[1].0, "same key");
    assert_eq!(record.sources[1].1, renamed);
    assert!(record.closed_keys().is_empty());
}

#[test]
fn delete_while_open_drains_then_closes_the_source() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("app.log");
    append(&path, &numbered(0..5000));
    // Small reads: most of the file is read after it was deleted.
    let cfg = TailConfig {
        max_line_bytes: 1024,
        read_buf_bytes: 4096,
        ..config(dir.path(), "*.log")
    };
    let run = start_paused(cfg);
    std::fs::remove_file(&path).expect("delete");
    run.resume();
    run.wait_until("source closed", |r| r.closed_keys().len() == 1);
    let (tailer, record) = run.stop();
    assert_exactly_once(&record, 5000);
    assert!(tailer.positions().is_empty());
}

#[test]
fn copytruncate_reads_lines_after_the_offset_from_the_copy() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("app.log");
    append(&path, &numbered(0..100));
    let run = start_paused(config(dir.path(), "*.log"));
    // Written after the tailer's last read: only the copy will still hold them.
    append(&path, &numbered(100..300));
    std::fs::copy(&path, dir.path().join("app.log.1")).expect("copy");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .expect("open")
        .set_len(0)
        .expect("truncate");
    append(&path, &numbered(300..310));
    run.resume();
    run.wait_until("all lines", |r| r.lines().len() == 310);
    run.wait_until("copy released", |r| r.closed_keys().len() == 1);
    let (_, record) = run.stop();
    assert_exactly_once(&record, 310);
    let key_of = |n: u64| {
        let text = format!("line {n:07}");
        record
            .lines()
            .into_iter()
            .find(|l| l.raw == text.as_bytes())
            .expect("line seen")
            .key
    };
    assert_ne!(
        key_of(0),
        key_of(300),
        "the truncated file is a new identity"
    );
    assert_eq!(
        key_of(0),
        key_of(299),
        "the copy continues the old identity"
    );
    assert_eq!(record.closed_keys(), vec![key_of(0)]);
}

#[test]
fn copytruncate_with_globs_that_match_the_copy_neither_duplicates_nor_loses() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("app.log");
    append(&path, &numbered(0..100));
    let run = Running::start(config(dir.path(), "app.log*"), Vec::new(), true);
    run.wait_until("first lines", |r| r.lines().len() == 100);
    append(&path, &numbered(100..300));
    let copy = dir.path().join("app.log.1");
    std::fs::copy(&path, &copy).expect("copy");
    // Let re-scans find the copy before the truncation (nothing observable to poll for: the copy
    // must stay unread). Without copy detection it would be read from 0 here.
    std::thread::sleep(std::time::Duration::from_millis(150));
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .expect("open")
        .set_len(0)
        .expect("truncate");
    append(&path, &numbered(300..310));
    run.wait_until("all lines", |r| r.lines().len() == 310);
    // The copy is matched: it stays open under the old key; later lines in it are read too.
    append(&copy, &numbered(310..320));
    append(&path, &numbered(320..330));
    run.wait_until("later lines", |r| r.lines().len() == 330);
    let (tailer, record) = run.stop();
    assert_exactly_once(&record, 330);
    assert!(record.closed_keys().is_empty());
    assert_eq!(tailer.positions().len(), 2);
}

#[test]
fn a_matched_copy_that_no_truncation_claims_is_read_as_a_file_of_its_own() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("a.log");
    append(&path, &numbered(0..10));
    let run = Running::start(config(dir.path(), "*.log"), Vec::new(), true);
    run.wait_until("first file", |r| r.lines().len() == 10);
    std::fs::copy(&path, dir.path().join("b.log")).expect("copy");
    run.wait_until("copy read in full", |r| r.lines().len() == 20);
    let (_, record) = run.stop();
    let from_copy = record
        .lines()
        .iter()
        .filter(|l| l.path.ends_with("b.log"))
        .count();
    assert_eq!(from_copy, 10);
}

#[test]
fn truncation_without_copy_reports_the_unread_bytes_as_a_gap() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("app.log");
    append(&path, b"one\ntwo\npartial");
    let cfg = TailConfig {
        idle_flush_ms: 3_600_000,
        ..config(dir.path(), "*.log")
    };
    let run = Running::start(cfg, Vec::new(), true);
    run.wait_until("complete lines", |r| r.lines().len() == 2);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .expect("open")
        .set_len(0)
        .expect("truncate");
    append(&path, b"fresh\n");
    run.wait_until("new line", |r| r.lines().len() == 3);
    let (_, record) = run.stop();
    let gaps = record.gaps();
    let lines = record.lines();
    assert_eq!(gaps.len(), 1);
    assert_eq!(gaps[0].0, lines[0].key);
    assert_eq!(gaps[0].1, "file truncated; 7 bytes after offset 8 not read");
    assert_eq!(gaps[0].2, 15);
    assert_eq!(record.closed_keys(), vec![lines[0].key.clone()]);
    assert_eq!(
        (lines[2].raw.as_slice(), lines[2].offset_after),
        (&b"fresh"[..], 6)
    );
}

#[test]
fn truncation_in_place_restarts_at_zero_with_a_new_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("app.log");
    append(&path, &numbered(0..50));
    let run = Running::start(config(dir.path(), "*.log"), Vec::new(), true);
    run.wait_until("first lines", |r| r.lines().len() == 50);
    std::fs::write(&path, b"").expect("truncate in place");
    // Longer than before: only the fingerprint check can notice the truncation.
    append(&path, &numbered(50..150));
    run.wait_until("all lines", |r| r.lines().len() == 150);
    let (_, record) = run.stop();
    assert_exactly_once(&record, 150);
    let lines = record.lines();
    assert_ne!(lines[0].key, lines[50].key);
    assert_eq!(lines[50].offset_after, 13, "restarted at 0");
    assert_eq!(record.closed_keys(), vec![lines[0].key.clone()]);
}

#[test]
fn files_past_the_open_limit_wait_until_others_are_released() {
    let dir = tempfile::tempdir().expect("temp dir");
    let total = logship_tail::MAX_OPEN_FILES as u64 + 10;
    for n in 0..total {
        append(
            &dir.path().join(format!("f{n:05}.log")),
            &numbered(n..n + 1),
        );
    }
    let run = Running::start(config(dir.path(), "*.log"), Vec::new(), true);
    let limit = logship_tail::MAX_OPEN_FILES;
    run.wait_until("files up to the limit", |r| r.lines().len() == limit);
    // Give a few re-scans the chance to break the limit (not a synchronisation).
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(
        run.record().lines().len(),
        limit,
        "no file past the limit is opened"
    );
    let read: Vec<_> = run
        .record()
        .lines()
        .iter()
        .take(10)
        .map(|l| l.path.clone())
        .collect();
    for path in &read {
        std::fs::remove_file(path).expect("delete");
    }
    run.wait_until("remaining files", |r| r.lines().len() as u64 == total);
    let (_, record) = run.stop();
    assert_exactly_once(&record, total);
    assert_eq!(record.closed_keys().len(), 10);
}
