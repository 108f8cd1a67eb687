//! Threaded stress tests: a writer rotating under the tailer, and a restart with rotations.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::Ordering;

use logship_tail::TailConfig;

use crate::harness::{Controls, Record, Running, append, assert_exactly_once, config, numbered};

const TOTAL: u64 = 200_000;
const PER_FILE: u64 = 20_000;
const BATCH: u64 = 100;

#[derive(Clone, Copy)]
enum Rotation {
    Rename,
    CopyTruncate,
}

fn stress_config(dir: &Path) -> TailConfig {
    // A long idle flush: a writer starved mid-batch must not split a line.
    TailConfig {
        idle_flush_ms: 5_000,
        ..config(dir, "*.log")
    }
}

/// Number of distinct keys the tailer registered at `path`: each is one file (or incarnation).
fn keys_at(record: &Record, path: &Path) -> usize {
    let mut keys: Vec<&String> = record
        .sources
        .iter()
        .filter(|(_, p)| p == path)
        .map(|(k, _)| k)
        .collect();
    keys.sort();
    keys.dedup();
    keys.len()
}

fn open_append(path: &Path) -> File {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open for append")
}

/// Appends `TOTAL` numbered lines in batches, rotating every `PER_FILE` lines. Before rotating a
/// file away, waits until the tailer has opened it (rotations are far apart in real life; a file
/// rotated away before any scan saw it cannot be followed by a polling tailer).
fn write_with_rotations(run: &Running, dir: &Path, rotation: Rotation) {
    let path = dir.join("app.log");
    let mut file = open_append(&path);
    for start in (0..TOTAL).step_by(BATCH as usize) {
        file.write_all(&numbered(start..start + BATCH))
            .expect("write batch");
        let written = start + BATCH;
        if !written.is_multiple_of(PER_FILE) || written == TOTAL {
            continue;
        }
        let generation = (written / PER_FILE) as usize;
        run.wait_until("tailer opened the current file", |r| {
            keys_at(r, &path) >= generation
        });
        let rotated = dir.join(format!("app.log.{generation}"));
        match rotation {
            Rotation::Rename => {
                std::fs::rename(&path, &rotated).expect("rename");
                file = open_append(&path);
            }
            Rotation::CopyTruncate => {
                std::fs::copy(&path, &rotated).expect("copy");
                file.set_len(0).expect("truncate");
            }
        }
    }
}

fn stress(rotation: Rotation) {
    let dir = tempfile::tempdir().expect("temp dir");
    let run = Running::start(stress_config(dir.path()), Vec::new(), true);
    std::thread::scope(|scope| {
        let writer = scope.spawn(|| write_with_rotations(&run, dir.path(), rotation));
        writer.join().expect("writer thread");
    });
    run.wait_until("every line", |r| r.lines().len() as u64 >= TOTAL);
    let (_, record) = run.stop();
    assert_exactly_once(&record, TOTAL);
}

#[test]
fn stress_rename_rotation_every_20000_lines() {
    stress(Rotation::Rename);
}

#[test]
fn stress_copytruncate_rotation_every_20000_lines() {
    stress(Rotation::CopyTruncate);
}

#[test]
fn stress_restart_with_rotation_while_stopped() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("app.log");
    let cfg = stress_config(dir.path());
    append(&path, &numbered(0..20_000));
    let controls = Controls::default();
    controls.close_after.store(30_000, Ordering::SeqCst);
    let run = Running::start_with(cfg.clone(), Vec::new(), true, controls);
    run.wait_until("first file opened", |r| keys_at(r, &path) == 1);
    std::fs::rename(&path, dir.path().join("app.log.1")).expect("rename");
    append(&path, &numbered(20_000..40_000));
    let (_, first) = run.join();
    assert_eq!(first.lines().len(), 30_000, "stopped mid-way");
    // While stopped: the writer goes on, and rotates again.
    append(&path, &numbered(40_000..50_000));
    std::fs::rename(&path, dir.path().join("app.log.2")).expect("rename");
    append(&path, &numbered(50_000..60_000));
    let run = Running::start(cfg, first.checkpoints(), false);
    run.wait_until("every line", |r| r.lines().len() >= 30_000);
    let (_, second) = run.stop();
    let mut all = first;
    let base = all.sources.len() as u32;
    all.sources.extend(second.sources.iter().cloned());
    all.events
        .extend(second.events.iter().cloned().map(|e| shift(e, base)));
    assert_exactly_once(&all, 60_000);
}

fn shift(event: crate::harness::Event, base: u32) -> crate::harness::Event {
    use crate::harness::Event::*;
    match event {
        Open { id } => Open { id: id + base },
        Line {
            id,
            raw,
            truncated_from,
            offset_after,
        } => Line {
            id: id + base,
            raw,
            truncated_from,
            offset_after,
        },
        Gap {
            id,
            message,
            offset_after,
        } => Gap {
            id: id + base,
            message,
            offset_after,
        },
        Close { id } => Close { id: id + base },
    }
}
