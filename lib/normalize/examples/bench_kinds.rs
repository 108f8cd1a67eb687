//! Normalizer CPU per line kind of the benchmark's mixed log (`bench/src/gen.rs`, the input of
//! `logship-bench` and of the collector's `normalize_bench`): which kinds of line cost what in
//! `Normalizer::normalize_into` alone (no column, no sidecar). Run:
//!
//! ```sh
//! cargo run --release --example bench_kinds -p logship-normalize [-- KIND]
//! ```
//!
//! 400,000 generated lines are grouped by the dataset they parse to (`unparsed` lines by their
//! program), then each group is normalized three times (forty with `KIND`, for `perf`); the
//! figure is the calling thread's CPU time (`/proc/thread-self/schedstat`) per line, so it holds
//! on a busy machine within its cache-sharing noise.

#[path = "../../../bench/src/gen.rs"]
#[allow(dead_code)]
mod generator;

use std::collections::BTreeMap;

use logship_normalize::{Context, Fields, Normalizer};

const LINES: u64 = 400_000;

/// On-CPU time of the calling thread, in seconds.
fn thread_cpu_s() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split(' ').next()?.parse::<f64>().ok())
        .map_or(f64::NAN, |ns| ns / 1e9)
}

fn main() {
    let ctx = Context {
        host: "bench",
        input: "bench",
        path: "bench",
        agent_tz: "UTC",
        observed_unix_nanos: 1_709_596_800_000_000_000,
    };
    let mut normalizer = Normalizer::new();
    let mut fields = Fields::new();
    let mut kinds: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut lines_of = generator::LineGen::new(42);
    for seq in 1..=LINES {
        let mut line = String::new();
        lines_of.write_line(seq, &mut line);
        let line = line.trim_end().to_owned();
        let dataset = normalizer.normalize_into(line.as_bytes(), &ctx, None, &mut fields);
        let kind = if dataset == "unparsed" {
            // `Mmm dd hh:mm:ss host PROGRAM[pid]: …`
            let program = line.split_whitespace().nth(4).unwrap_or("");
            format!("unparsed ({})", program.split('[').next().unwrap_or(""))
        } else {
            dataset.to_owned()
        };
        kinds.entry(kind).or_default().push(line);
    }
    let only = std::env::args().nth(1);
    let rounds = if only.is_some() { 40 } else { 3 };
    println!("| kind | lines | ns per line (CPU) |\n|---|---:|---:|");
    let mut total = 0.0;
    for (kind, lines) in &kinds {
        if only.as_ref().is_some_and(|o| o != kind) {
            continue;
        }
        let start = thread_cpu_s();
        for _ in 0..rounds {
            for l in lines {
                normalizer.normalize_into(l.as_bytes(), &ctx, None, &mut fields);
            }
        }
        let cpu = (thread_cpu_s() - start) / f64::from(rounds);
        total += cpu;
        let per = cpu * 1e9 / lines.len() as f64;
        println!("| {kind} | {} | {per:.0} |", lines.len());
    }
    if only.is_none() {
        println!("| **all** | {LINES} | {:.0} |", total * 1e9 / LINES as f64);
    }
}
