//! Test harness: a recording sink, a tailer running on its own thread, condition polling.

use std::collections::{BTreeMap, HashMap};
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use logship_tail::{Bom, Checkpoint, LineSink, SinkClosed, SourceId, TailConfig, Tailer};

/// How long any condition may take before the test fails.
const DEADLINE: Duration = Duration::from_secs(60);

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Event {
    Open {
        id: u32,
    },
    Line {
        id: u32,
        raw: Vec<u8>,
        truncated_from: u64,
        offset_after: u64,
    },
    Gap {
        id: u32,
        message: String,
        offset_after: u64,
    },
    Close {
        id: u32,
    },
}

/// A line as seen by the sink, with the key and path of its source.
#[derive(Clone, Debug)]
pub(crate) struct SeenLine {
    pub(crate) key: String,
    pub(crate) path: PathBuf,
    pub(crate) raw: Vec<u8>,
    pub(crate) truncated_from: u64,
    pub(crate) offset_after: u64,
}

/// Everything the sink received, in order. `sources[id]` is the (key, path) of `SourceId(id)`.
#[derive(Default, Debug)]
pub(crate) struct Record {
    pub(crate) events: Vec<Event>,
    pub(crate) sources: Vec<(String, PathBuf)>,
    /// Byte-order marks reported, with the source id.
    pub(crate) boms: Vec<(u32, Bom)>,
}

/// Shared controls of a [`CollectSink`].
#[derive(Default)]
pub(crate) struct Controls {
    /// While true, `line` blocks (back-pressure).
    pub(crate) pause: AtomicBool,
    /// Set while `line` is blocked by `pause`.
    pub(crate) blocked: AtomicBool,
    /// When non-zero, `line` returns SinkClosed once this many lines were accepted.
    pub(crate) close_after: AtomicUsize,
    pub(crate) accepted: AtomicUsize,
}

pub(crate) struct CollectSink {
    record: Arc<Mutex<Record>>,
    controls: Arc<Controls>,
}

/// A tailer running on its own thread.
pub(crate) struct Running {
    pub(crate) record: Arc<Mutex<Record>>,
    pub(crate) controls: Arc<Controls>,
    stop: Arc<AtomicBool>,
    handle: JoinHandle<Tailer>,
}

// === impl Record ===

impl Record {
    pub(crate) fn lines(&self) -> Vec<SeenLine> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Line {
                    id,
                    raw,
                    truncated_from,
                    offset_after,
                } => {
                    let (key, path) = self.sources[*id as usize].clone();
                    let (raw, truncated_from, offset_after) =
                        (raw.clone(), *truncated_from, *offset_after);
                    Some(SeenLine {
                        key,
                        path,
                        raw,
                        truncated_from,
                        offset_after,
                    })
                }
                _ => None,
            })
            .collect()
    }

    pub(crate) fn texts(&self) -> Vec<String> {
        self.lines()
            .iter()
            .map(|l| String::from_utf8_lossy(&l.raw).into_owned())
            .collect()
    }

    /// (key, message, offset_after) of every gap.
    pub(crate) fn gaps(&self) -> Vec<(String, String, u64)> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Gap {
                    id,
                    message,
                    offset_after,
                } => Some((
                    self.sources[*id as usize].0.clone(),
                    message.clone(),
                    *offset_after,
                )),
                _ => None,
            })
            .collect()
    }

    pub(crate) fn closed_keys(&self) -> Vec<String> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Close { id } => Some(self.sources[*id as usize].0.clone()),
                _ => None,
            })
            .collect()
    }

    /// What the agent would persist: the last offset and path per key, without closed keys.
    pub(crate) fn checkpoints(&self) -> Vec<Checkpoint> {
        let mut last: BTreeMap<String, Checkpoint> = BTreeMap::new();
        for e in &self.events {
            let (id, offset) = match e {
                Event::Line {
                    id, offset_after, ..
                }
                | Event::Gap {
                    id, offset_after, ..
                } => (*id, Some(*offset_after)),
                Event::Open { id } => (*id, None),
                Event::Close { id } => {
                    last.remove(&self.sources[*id as usize].0);
                    continue;
                }
            };
            let (key, path) = &self.sources[id as usize];
            let entry = last.entry(key.clone()).or_insert_with(|| Checkpoint {
                key: key.clone(),
                path: String::new(),
                offset: 0,
            });
            entry.path = path.to_string_lossy().into_owned();
            if let Some(offset) = offset {
                entry.offset = offset;
            }
        }
        last.into_values().collect()
    }
}

// === impl CollectSink ===

impl LineSink for CollectSink {
    fn open_source(&mut self, key: &str, path: &Path) -> Result<SourceId, SinkClosed> {
        let mut record = self.record.lock().expect("record lock");
        let id = record.sources.len() as u32;
        record.sources.push((key.to_owned(), path.to_path_buf()));
        record.events.push(Event::Open { id });
        Ok(SourceId(id))
    }

    fn line(
        &mut self,
        source: SourceId,
        raw: &[u8],
        truncated_from: u64,
        offset_after: u64,
    ) -> Result<(), SinkClosed> {
        while self.controls.pause.load(Ordering::SeqCst) {
            self.controls.blocked.store(true, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(1));
        }
        self.controls.blocked.store(false, Ordering::SeqCst);
        let close_after = self.controls.close_after.load(Ordering::SeqCst);
        if close_after != 0 && self.controls.accepted.load(Ordering::SeqCst) >= close_after {
            return Err(SinkClosed);
        }
        self.controls.accepted.fetch_add(1, Ordering::SeqCst);
        let raw = raw.to_vec();
        let event = Event::Line {
            id: source.0,
            raw,
            truncated_from,
            offset_after,
        };
        self.record.lock().expect("record lock").events.push(event);
        Ok(())
    }

    fn gap(
        &mut self,
        source: SourceId,
        message: &str,
        offset_after: u64,
    ) -> Result<(), SinkClosed> {
        let event = Event::Gap {
            id: source.0,
            message: message.to_owned(),
            offset_after,
        };
        self.record.lock().expect("record lock").events.push(event);
        Ok(())
    }

    fn byte_order_mark(&mut self, source: SourceId, bom: Bom) -> Result<(), SinkClosed> {
        let mut record = self.record.lock().expect("record lock");
        record.boms.push((source.0, bom));
        Ok(())
    }

    fn close_source(&mut self, source: SourceId) -> Result<(), SinkClosed> {
        self.record
            .lock()
            .expect("record lock")
            .events
            .push(Event::Close { id: source.0 });
        Ok(())
    }

    fn tick(&mut self) -> Result<(), SinkClosed> {
        Ok(())
    }
}

// === impl Running ===

impl Running {
    pub(crate) fn start(
        config: TailConfig,
        checkpoints: Vec<Checkpoint>,
        first_run: bool,
    ) -> Running {
        Running::start_with(config, checkpoints, first_run, Controls::default())
    }

    pub(crate) fn start_with(
        config: TailConfig,
        checkpoints: Vec<Checkpoint>,
        first_run: bool,
        controls: Controls,
    ) -> Running {
        let tailer = Tailer::new(config, checkpoints, first_run).expect("valid config");
        Running::spawn(tailer, controls)
    }

    pub(crate) fn start_tailer(tailer: Tailer) -> Running {
        Running::spawn(tailer, Controls::default())
    }

    fn spawn(mut tailer: Tailer, controls: Controls) -> Running {
        let record = Arc::new(Mutex::new(Record::default()));
        let controls = Arc::new(controls);
        let stop = Arc::new(AtomicBool::new(false));
        let mut sink = CollectSink {
            record: record.clone(),
            controls: controls.clone(),
        };
        let thread_stop = stop.clone();
        let handle = std::thread::spawn(move || {
            tailer.run(&mut sink, &thread_stop).expect("tailer run");
            tailer
        });
        Running {
            record,
            controls,
            stop,
            handle,
        }
    }

    pub(crate) fn record(&self) -> MutexGuard<'_, Record> {
        self.record.lock().expect("record lock")
    }

    /// Polls `cond` until it holds; panics with `what` after the deadline.
    pub(crate) fn wait_until(&self, what: &str, cond: impl Fn(&Record) -> bool) {
        let start = Instant::now();
        loop {
            if cond(&self.record()) {
                return;
            }
            assert!(
                !self.handle.is_finished(),
                "tailer exited while waiting for {what}"
            );
            if start.elapsed() > DEADLINE {
                panic!(
                    "timed out waiting for {what}; record: {:?}",
                    self.record().events.len()
                );
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Waits until the sink is blocked inside `line` by `pause`.
    pub(crate) fn wait_blocked(&self) {
        wait_for("sink blocked", || {
            self.controls.blocked.load(Ordering::SeqCst)
        });
    }

    pub(crate) fn resume(&self) {
        self.controls.pause.store(false, Ordering::SeqCst);
    }

    /// Stops the tailer and returns it with everything the sink received.
    pub(crate) fn stop(self) -> (Tailer, Record) {
        self.stop.store(true, Ordering::SeqCst);
        let tailer = self.handle.join().expect("tailer thread");
        let record = std::mem::take(&mut *self.record.lock().expect("record lock"));
        (tailer, record)
    }

    /// Waits for the tailer to exit by itself (sink closed).
    pub(crate) fn join(self) -> (Tailer, Record) {
        let tailer = self.handle.join().expect("tailer thread");
        let record = std::mem::take(&mut *self.record.lock().expect("record lock"));
        (tailer, record)
    }
}

/// Polls `cond` until it holds; panics with `what` after the deadline.
pub(crate) fn wait_for(what: &str, cond: impl Fn() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// A config with short intervals, tailing `pattern` inside `dir`.
pub(crate) fn config(dir: &Path, pattern: &str) -> TailConfig {
    TailConfig {
        input: "test".to_owned(),
        include: vec![dir.join(pattern).to_string_lossy().into_owned()],
        idle_flush_ms: 100,
        poll_interval_ms: 20,
        glob_interval_ms: 30,
        ..TailConfig::default()
    }
}

pub(crate) fn append(path: &Path, bytes: &[u8]) {
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open for append");
    file.write_all(bytes).expect("append");
}

/// "line {n}\n" for each n in the range, concatenated.
pub(crate) fn numbered(range: std::ops::Range<u64>) -> Vec<u8> {
    range
        .flat_map(|n| format!("line {n:07}\n").into_bytes())
        .collect()
}

/// Asserts every number in `0..total` was seen exactly once and that the lines of each key are
/// in increasing order.
pub(crate) fn assert_exactly_once(record: &Record, total: u64) {
    let mut count: HashMap<u64, usize> = HashMap::new();
    let mut last_per_key: HashMap<String, u64> = HashMap::new();
    for line in record.lines() {
        let text = String::from_utf8_lossy(&line.raw).into_owned();
        let n: u64 = text
            .strip_prefix("line ")
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("unexpected line {text:?}"));
        *count.entry(n).or_default() += 1;
        if let Some(prev) = last_per_key.insert(line.key.clone(), n) {
            assert!(
                n > prev,
                "out of order within {}: {n} after {prev}",
                line.key
            );
        }
    }
    let missing: Vec<u64> = (0..total)
        .filter(|n| !count.contains_key(n))
        .take(10)
        .collect();
    let dups: Vec<u64> = count
        .iter()
        .filter(|(_, c)| **c > 1)
        .map(|(n, _)| *n)
        .take(10)
        .collect();
    assert!(missing.is_empty(), "missing lines (first 10): {missing:?}");
    assert!(dups.is_empty(), "duplicated lines (first 10): {dups:?}");
    assert_eq!(count.len() as u64, total, "unexpected extra lines");
    assert!(
        record.gaps().is_empty(),
        "unexpected gaps: {:?}",
        record.gaps()
    );
}
