//! Spool tests: real files in temp dirs.

mod basic;
mod corruption;
mod durability;
mod model;

use std::fs;
use std::path::{Path, PathBuf};

use crate::{NewBatch, Position, Spool, SpoolConfig, StoredBatch};

/// fsync after every append, big cap, small segments.
fn config(dir: &Path) -> SpoolConfig {
    SpoolConfig {
        dir: dir.to_path_buf(),
        max_bytes: 1 << 20,
        segment_max_bytes: 4096,
        fsync_interval_ms: 0,
        fsync_bytes: 0,
    }
}

fn open(config: &SpoolConfig) -> (Spool, crate::Recovered) {
    Spool::open(config.clone()).expect("open spool")
}

fn batch(count: u32, payload: &[u8], positions: Vec<Position>) -> NewBatch {
    NewBatch {
        count,
        uncompressed_len: payload.len() as u64 * 3,
        payload: payload.to_vec(),
        positions,
    }
}

fn pos(key: &str, offset: u64) -> Position {
    Position {
        key: key.into(),
        path: format!("/var/log/{key}.log"),
        offset,
    }
}

/// A payload that differs per `i`.
fn payload(i: u64, len: usize) -> Vec<u8> {
    (0..len).map(|j| (i as usize * 31 + j) as u8).collect()
}

/// Framed size of a record without positions.
fn frame_len(payload_len: usize) -> u64 {
    (8 + 24 + payload_len) as u64
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    v.sort();
    v
}

fn segment_bytes_on_disk(dir: &Path) -> u64 {
    segment_files(dir)
        .iter()
        .map(|p| fs::metadata(p).expect("metadata").len())
        .sum()
}

/// Every readable batch from `seq` on.
fn read_all(spool: &Spool, mut seq: u64) -> Vec<StoredBatch> {
    let mut out = Vec::new();
    while let Some(b) = spool.read_from(seq).expect("read") {
        seq = b.first_seq + u64::from(b.count);
        out.push(b);
    }
    out
}

/// XORs one byte of a file.
fn flip_byte(path: &Path, offset: u64) {
    let mut bytes = fs::read(path).expect("read segment");
    bytes[offset as usize] ^= 0x5a;
    fs::write(path, bytes).expect("write segment");
}

/// Polls `cond` until true (panics after a generous deadline so a bug cannot hang the suite).
fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !cond() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}
