//! Restart recovery from the checkpoints the agent persisted.

use std::sync::atomic::Ordering;

use logship_tail::{Checkpoint, TailConfig};

use crate::harness::{Controls, Record, Running, append, assert_exactly_once, config, numbered};

/// Runs a tailer until its sink closed after `lines` lines; returns the record.
fn run_until_sink_closes(cfg: TailConfig, checkpoints: Vec<Checkpoint>, lines: usize) -> Record {
    let controls = Controls::default();
    controls.close_after.store(lines, Ordering::SeqCst);
    let run = Running::start_with(cfg, checkpoints, true, controls);
    run.join().1
}

fn merged(first: Record, second: &Record) -> Record {
    let mut all = first;
    let base = all.sources.len() as u32;
    all.sources.extend(second.sources.iter().cloned());
    all.events
        .extend(second.events.iter().cloned().map(|e| shift(e, base)));
    all
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

#[test]
fn restart_drains_a_file_renamed_while_stopped_then_reads_the_new_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("app.log");
    append(&path, &numbered(0..1000));
    let cfg = config(dir.path(), "*.log");
    let first = run_until_sink_closes(cfg.clone(), Vec::new(), 400);
    assert_eq!(first.lines().len(), 400);
    // While stopped: more lines, rename rotation, a new file.
    append(&path, &numbered(1000..1100));
    std::fs::rename(&path, dir.path().join("app.log.1")).expect("rename");
    append(&path, &numbered(1100..1200));
    let run = Running::start(cfg, first.checkpoints(), false);
    run.wait_until("all lines", |r| r.lines().len() == 800);
    run.wait_until("rotated file released", |r| r.closed_keys().len() == 1);
    let (_, second) = run.stop();
    assert_exactly_once(&merged(first, &second), 1200);
}

#[test]
fn restart_after_copytruncate_while_stopped_reads_the_copy_from_the_checkpoint() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("app.log");
    append(&path, &numbered(0..1000));
    let cfg = config(dir.path(), "*.log");
    let first = run_until_sink_closes(cfg.clone(), Vec::new(), 250);
    std::fs::copy(&path, dir.path().join("app.log.1")).expect("copy");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .expect("open")
        .set_len(0)
        .expect("truncate");
    append(&path, &numbered(1000..1010));
    let run = Running::start(cfg, first.checkpoints(), false);
    run.wait_until("all lines", |r| r.lines().len() == 760);
    let (_, second) = run.stop();
    assert_exactly_once(&merged(first, &second), 1010);
}

#[test]
fn restart_with_a_vanished_file_reports_a_gap() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("app.log");
    append(&path, &numbered(0..100));
    let cfg = config(dir.path(), "*.log");
    let first = run_until_sink_closes(cfg.clone(), Vec::new(), 10);
    std::fs::remove_file(&path).expect("delete");
    let checkpoints = first.checkpoints();
    let run = Running::start(cfg, checkpoints.clone(), false);
    run.wait_until("gap", |r| r.gaps().len() == 1);
    let (_, second) = run.stop();
    let gap = &second.gaps()[0];
    assert_eq!(gap.0, checkpoints[0].key);
    assert_eq!(gap.2, checkpoints[0].offset);
    assert!(gap.1.starts_with("file not found at restart"), "{}", gap.1);
    assert_eq!(second.closed_keys(), vec![checkpoints[0].key.clone()]);
}

#[test]
fn restart_resumes_at_the_checkpoint_of_a_file_at_the_same_path() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("app.log");
    append(&path, &numbered(0..100));
    let cfg = config(dir.path(), "*.log");
    let first = run_until_sink_closes(cfg.clone(), Vec::new(), 40);
    append(&path, &numbered(100..120));
    // A file without checkpoint: not a first run, so it is read from 0.
    append(&dir.path().join("other.log"), &numbered(120..125));
    let checkpoints = first.checkpoints();
    assert_eq!(checkpoints.len(), 1);
    let run = Running::start(cfg, checkpoints, false);
    run.wait_until("rest of the lines", |r| r.lines().len() == 85);
    let (tailer, second) = run.stop();
    let resumed = second
        .sources
        .iter()
        .find(|(_, p)| p == &path)
        .expect("app.log reopened");
    assert_eq!(resumed.0, first.sources[0].0, "same key after restart");
    assert_exactly_once(&merged(first, &second), 125);
    assert_eq!(tailer.positions().len(), 2);
}
