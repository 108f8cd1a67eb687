//! `--mode search`: field search over a day of the mixed log, with and without the field index
//! (issue 13 item 4).
//!
//! ```text
//! <work>/search.log            the benchmark's mixed log (gen.rs), with one "needle" user's
//!                              sshd failures every NEEDLE_EVERY lines (removed after ingest
//!                              unless --keep)
//! <work>/logship/...           agent → relay → collector, as in the file mode; the collector's
//!                              segments roll at SEGMENT_MAX_BYTES
//! <work>/search.json           the figures
//! <work>/search-<name>.{out,log}  each configuration's last output and debug log
//! ```
//!
//! Steps: generate; ship through the real agent and collector; wait until every record is
//! stored, its fields are precomputed and every sealed segment has its field index; stop both
//! programs; then time `logship-collector search --where user.name=<needle> --where
//! event.outcome=failure` with a cold page cache (`echo 3 > /proc/sys/vm/drop_caches`) and a
//! warm one, first with the index, then with the index files moved aside (a full scan), and
//! check that both print the same bytes. Each search's debug log line "Search walked the
//! store." gives where its time went ([`Split`]: index reading, block frames, fields columns,
//! payloads, filtering and printing), printed under the table.
//!
//! Why a needle user: the mix draws its users from pools of 16 and 12 names, so each of them
//! is in every block and no block index can skip anything for them; a user that shows up a few
//! dozen times a day is what an investigation looks for.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use serde::{Deserialize, Serialize};

use crate::loggen::LineGen;
use crate::logship::Layout;
use crate::measure::{free_port, wait_for_progress};
use crate::relay::Relay;

/// The needle user's name (not in the generator's pools).
pub(crate) const NEEDLE: &str = "z.needle";
/// One needle failure every this many lines.
const NEEDLE_EVERY: u64 = 2_000_000;
/// Segment size of the benchmark's collector: the active segment is never indexed, so it is
/// scanned by every search; this keeps it a small part of the store.
const SEGMENT_MAX_BYTES: u64 = 4 << 20;
/// Warm runs per configuration (the median is reported).
const WARM_RUNS: usize = 3;
const STOP_DEADLINE: Duration = Duration::from_secs(60);

/// What the search mode measured.
#[derive(Debug, Serialize)]
pub(crate) struct SearchReport {
    pub(crate) raw_bytes: u64,
    pub(crate) lines: u64,
    pub(crate) needle_lines: u64,
    pub(crate) store_bytes: u64,
    pub(crate) segments: u64,
    pub(crate) index_bytes: u64,
    pub(crate) ingest_s: f64,
    pub(crate) fields_ready_s: f64,
    pub(crate) drop_caches: bool,
    pub(crate) load_avg: String,
    pub(crate) command: String,
    pub(crate) with_index_cold_s: f64,
    pub(crate) with_index_warm_s: f64,
    /// Every warm run with the index, in order (`with_index_warm_s` is their median).
    pub(crate) with_index_warm_runs: Vec<f64>,
    pub(crate) without_index_cold_s: f64,
    pub(crate) without_index_warm_s: f64,
    pub(crate) matches: u64,
    /// Where the indexed search's time went, cold and warm (last warm run).
    pub(crate) with_index_cold: Split,
    pub(crate) with_index_warm: Split,
    /// The same for the full scan (cold run).
    pub(crate) without_index_cold: Split,
}

/// What one search read and where its time went (from its debug log line "Search walked the
/// store."). The rest of the wall time is process start, listing segments and opening files.
#[derive(Debug, Default, Clone, Serialize)]
pub(crate) struct Split {
    /// Blocks whose frame was read.
    pub(crate) blocks_scanned: u64,
    /// Blocks the field index let it skip.
    pub(crate) blocks_skipped_by_field_index: u64,
    /// Of the blocks read, those whose fields column ruled out every record (payload not
    /// decompressed).
    pub(crate) blocks_rejected_by_fields: u64,
    /// Bytes read from `.fidx` files.
    pub(crate) field_index_bytes: u64,
    /// Reading segment and field indexes.
    pub(crate) index_ms: u64,
    /// Reading and checking block frames.
    pub(crate) frame_ms: u64,
    /// Reading and decoding sidecar columns.
    pub(crate) column_ms: u64,
    /// Decompressing and decoding payloads.
    pub(crate) payload_ms: u64,
    /// Filtering and printing records.
    pub(crate) emit_ms: u64,
}

impl Split {
    fn from_log(log: &str) -> anyhow::Result<Split> {
        let line = log
            .lines()
            .rev()
            .find(|l| l.contains("Search walked the store."))
            .context("no \"Search walked the store.\" line in the search log")?;
        let figure = |key: &str| -> anyhow::Result<u64> {
            let key = format!(" {key}=");
            let at = line
                .find(&key)
                .with_context(|| format!("no{key} in the search log"))?
                + key.len();
            let digits: String = line[at..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            Ok(digits.parse()?)
        };
        Ok(Split {
            blocks_scanned: figure("blocks_scanned")?,
            blocks_skipped_by_field_index: figure("blocks_skipped_by_field_index")?,
            blocks_rejected_by_fields: figure("blocks_rejected_by_fields")?,
            field_index_bytes: figure("field_index_bytes")?,
            index_ms: figure("index_ms")?,
            frame_ms: figure("frame_ms")?,
            column_ms: figure("column_ms")?,
            payload_ms: figure("payload_ms")?,
            emit_ms: figure("emit_ms")?,
        })
    }
}

#[derive(Deserialize)]
struct Status {
    records_stored: u64,
    #[serde(default)]
    normalized_records: u64,
}

/// Runs the search benchmark in `work` with the binaries of `bins`.
pub(crate) fn run(
    work: &Path,
    bins: &Path,
    size_mib: u64,
    seed: u64,
    keep: bool,
    stall: Duration,
) -> anyhow::Result<SearchReport> {
    let log = work.join("search.log");
    let (lines, raw_bytes, needle_lines) = generate(&log, size_mib << 20, seed)?;
    tracing::info!(lines, raw_bytes, needle_lines, "Generated the search log.");
    let layout = Layout::prepare(work, bins)?;
    let port = free_port()?;
    let relay = Relay::start(std::net::SocketAddr::from(([127, 0, 0, 1], port)))?;
    layout.setup(relay.addr())?;
    set_segment_size(&layout.data_dir().join("collector.toml"))?;
    let mut collector = layout.start_collector(port)?;
    let start = Instant::now();
    let mut agent = layout.start_agent(Some(&log))?;
    let status = layout.data_dir().join("status.json");
    let read = |status: &Path| -> Status {
        fs::read(status)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(Status {
                records_stored: 0,
                normalized_records: 0,
            })
    };
    wait_for_progress(
        lines,
        stall,
        || Ok(read(&status).records_stored),
        || {
            agent.ensure_running()?;
            collector.ensure_running()
        },
    )
    .context("logship did not store every line")?;
    let ingest_s = start.elapsed().as_secs_f64();
    tracing::info!(ingest_s, "Stored; waiting for fields and the field index.");
    wait_for_progress(
        lines,
        stall,
        || Ok(read(&status).normalized_records),
        || collector.ensure_running(),
    )
    .context("the normalizer did not catch up")?;
    let store = layout.data_dir().join("store");
    let ready = || -> anyhow::Result<u64> {
        let segs = files(&store, "seg")?.len() as u64;
        let idx = files(&store, "fidx")?.len() as u64;
        Ok(u64::from(idx + 1 == segs))
    };
    wait_for_progress(1, stall, ready, || collector.ensure_running())
        .context("the field index of every sealed segment was not written")?;
    let fields_ready_s = start.elapsed().as_secs_f64();
    for (name, child) in [("agent", &mut agent), ("collector", &mut collector)] {
        if !child.stop(STOP_DEADLINE)? {
            tracing::warn!(name, "Process did not stop within its SIGTERM deadline.");
        }
    }
    if !keep {
        fs::remove_file(&log).ok();
    }
    let collector_bin = bins.join("logship-collector");
    let data = layout.data_dir().to_path_buf();
    let args = [
        "--where".to_string(),
        format!("user.name={NEEDLE}"),
        "--where".into(),
        "event.outcome=failure".into(),
    ];
    let searcher = Searcher {
        bin: &collector_bin,
        data: &data,
        args: &args,
        out_dir: work,
    };
    let load_avg = fs::read_to_string("/proc/loadavg")?.trim().to_string();
    let drop_caches = drop_caches().is_ok();
    if !drop_caches {
        tracing::warn!("Cannot drop the page cache (needs root): the cold figures are not cold.");
    }
    let (cold_with, with_index_cold) = searcher.cold("with-index")?;
    let (warm_with, with_index_warm, with_index_warm_runs) = searcher.warm("with-index")?;
    let indexes = files(&store, "fidx")?;
    let index_bytes = indexes
        .iter()
        .map(|p| fs::metadata(p).map(|m| m.len()))
        .sum::<std::io::Result<u64>>()?;
    let aside = work.join("fidx.aside");
    fs::create_dir_all(&aside)?;
    for p in &indexes {
        fs::rename(p, aside.join(p.file_name().context("file name")?))?;
    }
    let (cold_without, without_index_cold) = searcher.cold("without-index")?;
    let (warm_without, _) = searcher.warm_once("without-index")?;
    for p in &indexes {
        fs::rename(aside.join(p.file_name().context("file name")?), p)?;
    }
    let with_out = fs::read(work.join("search-with-index.out"))?;
    let without_out = fs::read(work.join("search-without-index.out"))?;
    ensure!(
        with_out == without_out,
        "search output differs with and without the index"
    );
    let matches = with_out.iter().filter(|&&b| b == b'\n').count() as u64;
    ensure!(
        matches == needle_lines,
        "found {matches} failures of {NEEDLE}, wrote {needle_lines}"
    );
    let segs = files(&store, "seg")?;
    let store_bytes = segs
        .iter()
        .map(|p| fs::metadata(p).map(|m| m.len()))
        .sum::<std::io::Result<u64>>()?;
    Ok(SearchReport {
        raw_bytes,
        lines,
        needle_lines,
        store_bytes,
        segments: segs.len() as u64,
        index_bytes,
        ingest_s,
        fields_ready_s,
        drop_caches,
        load_avg,
        command: format!(
            "logship-collector search --data-dir <data> {} --format json",
            args.join(" ")
        ),
        with_index_cold_s: cold_with,
        with_index_warm_s: warm_with,
        with_index_warm_runs,
        without_index_cold_s: cold_without,
        without_index_warm_s: warm_without,
        matches,
        with_index_cold,
        with_index_warm,
        without_index_cold,
    })
}

/// The table printed at the end.
pub(crate) fn render(r: &SearchReport) -> String {
    let mut s = String::new();
    let gib = |b: u64| b as f64 / f64::from(1u32 << 30);
    s += &format!(
        "store: {:.2} GiB raw, {} lines, {:.2} GiB in {} segments, field index {:.1} MiB\n",
        gib(r.raw_bytes),
        r.lines,
        gib(r.store_bytes),
        r.segments,
        r.index_bytes as f64 / f64::from(1u32 << 20)
    );
    s += &format!(
        "ingest {:.0} s (stored), fields and index ready at {:.0} s; load average {}\n",
        r.ingest_s, r.fields_ready_s, r.load_avg
    );
    s += &format!("search: {}\n", r.command);
    s += &format!(
        "matches: {} (wrote {}); warm runs with the index: {:.2?} s\n",
        r.matches, r.needle_lines, r.with_index_warm_runs
    );
    s += &format!(
        "{:<16}{:>10}{:>10}\n{:<16}{:>10.2}{:>10.2}\n{:<16}{:>10.2}{:>10.2}\n",
        "seconds",
        "cold",
        "warm",
        "with index",
        r.with_index_cold_s,
        r.with_index_warm_s,
        "full scan",
        r.without_index_cold_s,
        r.without_index_warm_s
    );
    s += &format!(
        "speed-up: {:.0}x cold, {:.0}x warm{}\n",
        r.without_index_cold_s / r.with_index_cold_s,
        r.without_index_warm_s / r.with_index_warm_s,
        if r.drop_caches {
            ""
        } else {
            " (page cache NOT dropped: cold = warm)"
        }
    );
    s += &format!(
        "{:<20}{:>8}{:>8}{:>8}{:>10}{:>9}{:>9}{:>9}{:>9}{:>9}\n",
        "where the time went",
        "blocks",
        "skipped",
        "col-rej",
        "fidx KiB",
        "index ms",
        "frame ms",
        "col ms",
        "pay ms",
        "emit ms"
    );
    for (name, t) in [
        ("with index, cold", &r.with_index_cold),
        ("with index, warm", &r.with_index_warm),
        ("full scan, cold", &r.without_index_cold),
    ] {
        s += &format!(
            "{:<20}{:>8}{:>8}{:>8}{:>10}{:>9}{:>9}{:>9}{:>9}{:>9}\n",
            name,
            t.blocks_scanned,
            t.blocks_skipped_by_field_index,
            t.blocks_rejected_by_fields,
            t.field_index_bytes / 1024,
            t.index_ms,
            t.frame_ms,
            t.column_ms,
            t.payload_ms,
            t.emit_ms
        );
    }
    s += "(blocks: read; skipped: by the field index; col-rej: read, but their fields column \
          ruled out every record, payload not decompressed)\n";
    s
}

/// Writes the figures next to the run's other files.
pub(crate) fn write_json(out: &Path, r: &SearchReport) -> anyhow::Result<PathBuf> {
    let path = out.join("search.json");
    fs::write(&path, serde_json::to_vec_pretty(r)?)?;
    Ok(path)
}

/// Times one search command.
struct Searcher<'a> {
    bin: &'a Path,
    data: &'a Path,
    args: &'a [String],
    out_dir: &'a Path,
}

impl Searcher<'_> {
    /// One run, stdout to `search-<name>.out`, its debug log to `search-<name>.log`; wall
    /// seconds and where they went.
    fn once(&self, name: &str) -> anyhow::Result<(f64, Split)> {
        let out = File::create(self.out_dir.join(format!("search-{name}.out")))?;
        let log_path = self.out_dir.join(format!("search-{name}.log"));
        let log = File::create(&log_path)?;
        let start = Instant::now();
        let status = Command::new(self.bin)
            .arg("search")
            .arg("--data-dir")
            .arg(self.data)
            .args(self.args)
            .args(["--format", "json"])
            .env("LOGSHIP_LOG", "logship_collector=debug")
            .stdout(out)
            .stderr(log)
            .status()?;
        let secs = start.elapsed().as_secs_f64();
        ensure!(status.success(), "search failed: {status}");
        let split = Split::from_log(&fs::read_to_string(&log_path)?)?;
        tracing::info!(name, secs, ?split, "Search ran.");
        Ok((secs, split))
    }

    fn cold(&self, name: &str) -> anyhow::Result<(f64, Split)> {
        drop_caches().ok();
        self.once(name)
    }

    /// Median of [`WARM_RUNS`] runs (and the split of the last).
    fn warm(&self, name: &str) -> anyhow::Result<(f64, Split, Vec<f64>)> {
        let mut runs = Vec::with_capacity(WARM_RUNS);
        let mut split = Split::default();
        for _ in 0..WARM_RUNS {
            let (secs, s) = self.once(name)?;
            runs.push(secs);
            split = s;
        }
        let in_order = runs.clone();
        runs.sort_by(f64::total_cmp);
        Ok((runs[runs.len() / 2], split, in_order))
    }

    /// One warm run (a full scan takes minutes).
    fn warm_once(&self, name: &str) -> anyhow::Result<(f64, Split)> {
        self.once(name)
    }
}

/// Generates the mixed log with the needle user's failures; (lines, bytes, needle lines).
fn generate(path: &Path, size_bytes: u64, seed: u64) -> anyhow::Result<(u64, u64, u64)> {
    let mut out = BufWriter::with_capacity(1 << 20, File::create(path)?);
    let mut lines = LineGen::new(seed);
    let mut line = String::with_capacity(512);
    let (mut n, mut bytes, mut needles) = (0u64, 0u64, 0u64);
    while bytes < size_bytes {
        n += 1;
        line.clear();
        if n % NEEDLE_EVERY == 0 {
            // No " seq=N" suffix here: sshd's parser does not recognize a line with trailing
            // text after "ssh2", and the needle must be a failure in its fields.
            needles += 1;
            let hh = (needles * 7) % 24;
            line.push_str(&format!(
                "Mar  5 {hh:02}:17:{:02} bastion sshd[4242]: Failed password for {NEEDLE} from 198.51.100.{} port {} ssh2\n",
                needles % 60,
                needles % 250,
                50000 + needles
            ));
        } else {
            lines.write_line(n, &mut line);
        }
        out.write_all(line.as_bytes())?;
        bytes += line.len() as u64;
    }
    out.into_inner()
        .map_err(std::io::IntoInnerError::into_error)?
        .sync_all()?;
    Ok((n, bytes, needles))
}

/// Sets `[store] segment_max_bytes` in the collector's config.
fn set_segment_size(toml: &Path) -> anyhow::Result<()> {
    let text = fs::read_to_string(toml)?;
    let mut done = false;
    let new: String = text
        .lines()
        .map(|l| {
            if l.trim_start().starts_with("segment_max_bytes") {
                done = true;
                format!("segment_max_bytes = {SEGMENT_MAX_BYTES}\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    if !done {
        bail!("no segment_max_bytes in {}", toml.display());
    }
    fs::write(toml, new)?;
    Ok(())
}

/// `sync; echo 3 > /proc/sys/vm/drop_caches`.
fn drop_caches() -> std::io::Result<()> {
    Command::new("sync").status()?;
    fs::write("/proc/sys/vm/drop_caches", b"3")
}

/// Files under `dir` (recursive) named `*.{ext}`.
fn files(dir: &Path, ext: &str) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return Ok(out);
    };
    for e in entries {
        let p = e?.path();
        if p.is_dir() {
            out.extend(files(&p, ext)?);
        } else if p.extension().is_some_and(|x| x == ext) {
            out.push(p);
        }
    }
    Ok(out)
}
