//! Component benchmark of the normalizer pipeline: decompress a stored block → parse every
//! record → write its fields column to the sidecar on disk, on the benchmark's mixed log
//! (`bench/src/gen.rs`, same seed and mix as `logship-bench`), in MB/s of raw log per core.
//!
//! ```sh
//! cargo run --release -p logship-collector --example normalize_bench -- [--size-mib 256] [--dir DIR]
//! ```
//!
//! Two paths, run one after the other on the same blocks in the same process:
//! - `json`: the earlier pipeline (one JSON object per record, zstd JSON lines appended to a
//!   per-stream sidecar file, CRC-framed), kept here so the figure before can be measured
//!   beside the figure after on the same machine;
//! - `column`: the collector's [`Pipeline`] (the normalizer worker's own code): typed,
//!   dictionary-encoded column appended to the segment's sidecar.
//!
//! Untimed: generating the lines, framing them into agent-sized batches (20,000 records or
//! 4 MiB, zstd -1, like the agent's defaults), storing them and reading the blocks back through
//! a store cursor. Timed: the thread's CPU time (`/proc/thread-self/schedstat`) and wall time of
//! the pipeline over every block, including the final fsync.

#[path = "../../bench/src/gen.rs"]
#[allow(dead_code)]
mod generator;

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context as _, Result, bail};
use logship_collector::normalize::{Done, Pipeline};
use logship_normalize::{Context, Normalizer, Origin};
use logship_proto::payload::decode_payload;
use logship_proto::v1::{Record, RecordList, Source};
use logship_store::{BlockInput, Cursor, CursorBlock, CursorItem, Store, StoreConfig};
use prost::Message;

const BATCH_RECORDS: usize = 20_000;
const BATCH_BYTES: usize = 4 << 20;
const CAP: usize = 64 << 20;
const START_NS: i64 = 1_709_596_800_000_000_000;

struct Args {
    size_mib: u64,
    dir: Option<PathBuf>,
    paths: Vec<String>,
}

fn args() -> Result<Args> {
    let mut a = Args {
        size_mib: 256,
        dir: None,
        paths: vec!["json".into(), "column".into()],
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--size-mib" => a.size_mib = value()?.parse()?,
            "--dir" => a.dir = Some(value()?.into()),
            "--paths" => a.paths = value()?.split(',').map(String::from).collect(),
            other => bail!("unknown flag {other} (--size-mib N, --dir DIR, --paths json,column)"),
        }
    }
    Ok(a)
}

/// On-CPU time of the calling thread, in seconds.
fn thread_cpu_s() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0.0, |ns| ns as f64 / 1e9)
}

/// Generates the mix and stores it as agent-sized blocks; returns (raw bytes, records).
fn fill(store_dir: &Path, size: u64) -> Result<(u64, u64)> {
    let (mut store, _) = Store::open(StoreConfig {
        dir: store_dir.to_path_buf(),
        ..StoreConfig::default()
    })?;
    let mut lines = generator::LineGen::new(1);
    let mut line = String::new();
    let (mut bytes, mut seq) = (0u64, 0u64);
    let mut batch: Vec<Record> = Vec::new();
    let mut batch_bytes = 0usize;
    let mut first_seq = 1u64;
    let mut flush = |batch: &mut Vec<Record>, first_seq: &mut u64| -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let count = batch.len() as u32;
        let list = RecordList {
            host: "web01".into(),
            sources: vec![Source {
                input: "bench".into(),
                path: "/var/log/mixed.log".into(),
            }],
            records: std::mem::take(batch),
            agent_tz: "UTC".into(),
            observed_unix_nanos: START_NS,
        };
        let payload = logship_proto::payload::compress(&list.encode_to_vec(), 1)?;
        store.append(BlockInput {
            agent: "bench".into(),
            stream_id: "0123456789abcdef0123456789abcdef".into(),
            first_seq: *first_seq,
            count,
            host: "web01".into(),
            min_time_ns: START_NS,
            max_time_ns: START_NS,
            inputs: vec!["bench".into()],
            payload: payload.into(),
            fields: None,
        })?;
        *first_seq += u64::from(count);
        Ok(())
    };
    while bytes < size {
        seq += 1;
        line.clear();
        lines.write_line(seq, &mut line);
        bytes += line.len() as u64;
        let raw = line.trim_end_matches('\n').as_bytes().to_vec();
        batch_bytes += raw.len();
        batch.push(Record {
            raw: raw.into(),
            observed_unix_nanos: START_NS + seq as i64,
            ..Default::default()
        });
        if batch.len() >= BATCH_RECORDS || batch_bytes >= BATCH_BYTES {
            flush(&mut batch, &mut first_seq)?;
            batch_bytes = 0;
        }
    }
    flush(&mut batch, &mut first_seq)?;
    store.sync()?;
    Ok((bytes, seq))
}

fn blocks(store_dir: &Path) -> Result<Vec<CursorBlock>> {
    let mut cursor = Cursor::open(store_dir, "bench", None)?;
    let mut out = Vec::new();
    while let Some(item) = cursor.read_next()? {
        match item {
            CursorItem::Block(b) => out.push(*b),
            CursorItem::Skipped(s) => bail!("damaged store: {}", s.reason),
        }
    }
    Ok(out)
}

/// The earlier pipeline: JSON lines per block, zstd -1, CRC-framed, appended to one file.
fn json_path(blocks: &[CursorBlock], sidecar: &Path) -> Result<()> {
    let mut file = std::fs::File::create(sidecar)?;
    file.write_all(b"LSFLD001")?;
    let mut normalizers: HashMap<(String, String), Normalizer> = HashMap::new();
    let (mut scratch, mut text, mut frame) = (Vec::new(), Vec::new(), Vec::new());
    for b in blocks {
        let normalizer = normalizers
            .entry((b.agent.clone(), b.stream_id.clone()))
            .or_default();
        let list = decode_payload(&b.payload, CAP, &mut scratch)?;
        text.clear();
        for r in &list.records {
            let fields = if r.kind == 1 {
                serde_json::Map::new()
            } else {
                let source = list.sources.get(r.source as usize);
                let ctx = Context {
                    host: &list.host,
                    input: source.map_or("", |s| s.input.as_str()),
                    path: source.map_or("", |s| s.path.as_str()),
                    agent_tz: &list.agent_tz,
                    observed_unix_nanos: r.observed_unix_nanos,
                };
                let origin = Origin::from_journal(&r.attributes, r.event_unix_nanos);
                normalizer
                    .normalize_from(&r.raw, &ctx, origin.as_ref())
                    .fields
            };
            serde_json::to_writer(&mut text, &fields)?;
            text.push(b'\n');
        }
        let column = zstd::bulk::compress(&text, 1)?;
        frame.clear();
        frame.extend_from_slice(&b.first_seq.to_le_bytes());
        frame.extend_from_slice(&b.count.to_le_bytes());
        frame.extend_from_slice(&(column.len() as u32).to_le_bytes());
        let crc = crc32c::crc32c_append(crc32c::crc32c(&frame), &column);
        frame.extend_from_slice(&crc.to_le_bytes());
        frame.extend_from_slice(&column);
        file.write_all(&frame)?;
    }
    file.sync_data()?;
    Ok(())
}

fn column_path(blocks: &[CursorBlock], store_dir: &Path) -> Result<()> {
    let mut pipeline = Pipeline::new(store_dir, CAP);
    for b in blocks {
        match pipeline.block(b) {
            Done::Written => {}
            other => bail!("block at {:?}: {other:?}", b.at),
        }
    }
    pipeline.sync()?;
    Ok(())
}

fn sidecar_bytes(dir: &Path, ext: &str) -> u64 {
    let mut n = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == ext) {
                n += e.metadata().map_or(0, |m| m.len());
            }
        }
    }
    n
}

fn main() -> Result<()> {
    // As the collector binary does (`logship-collector` calls it first).
    logship_collector::heap::keep_heap_pad();
    let args = args()?;
    let tmp;
    let dir = match &args.dir {
        Some(d) => d.clone(),
        None => {
            tmp = tempfile::Builder::new()
                .prefix("normalize-bench-")
                .tempdir_in("/var/tmp")?;
            tmp.path().to_path_buf()
        }
    };
    let store_dir = dir.join("store");
    std::fs::create_dir_all(&dir)?;
    let (raw, records) = fill(&store_dir, args.size_mib << 20)?;
    let blocks = blocks(&store_dir)?;
    eprintln!(
        "{} MiB raw, {records} records in {} blocks",
        raw >> 20,
        blocks.len()
    );
    println!("path\traw_MB\trecords\tcpu_s\twall_s\tMB_per_s_per_core\tsidecar_bytes_per_record");
    for path in &args.paths {
        let (cpu0, wall0) = (thread_cpu_s(), Instant::now());
        let ext = match path.as_str() {
            "json" => {
                json_path(&blocks, &dir.join("json-sidecar.fld"))?;
                "fld"
            }
            "column" => {
                column_path(&blocks, &store_dir)?;
                "fld"
            }
            other => bail!("unknown path {other} (json, column)"),
        };
        let (cpu, wall) = (thread_cpu_s() - cpu0, wall0.elapsed().as_secs_f64());
        let sidecar = match path.as_str() {
            "json" => std::fs::metadata(dir.join("json-sidecar.fld"))?.len(),
            _ => sidecar_bytes(&store_dir, ext),
        };
        println!(
            "{path}\t{:.1}\t{records}\t{cpu:.2}\t{wall:.2}\t{:.1}\t{:.1}",
            raw as f64 / 1e6,
            raw as f64 / 1e6 / cpu,
            sidecar as f64 / records as f64
        );
    }
    Ok(())
}
