//! `logship-agent import-evtx`: the agent's normal machinery (spool, shipper, heartbeats) with
//! the given `.evtx` files as its only input; the config's other inputs are not started.
//!
//! Invariants:
//! - Each file is read by [`super::file::import_file`] from where the spool says an earlier run
//!   stopped, so events reach the spool once per file content (two paths with the same content
//!   are one file).
//! - The import ends successfully only when the collector has acked every seq on the spool
//!   (`acked_through >= next_seq - 1` after the last append and an fsync), so exit status 0 means
//!   every event is stored.
//! - A stop signal ends reading at the next record and ends waiting; what was spooled stays on
//!   the spool and is shipped by the next run (or by the agent sharing the spool).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use logship_spool::Spool;
use tokio_util::sync::CancellationToken;

use super::file::{FileError, FileReport, Progress, identify, import_file};
use crate::batcher::{Batcher, report_lost_ranges};
use crate::config::Config;
use crate::heartbeat::Heartbeat;
use crate::shipper::Shipper;
use crate::spool_blocked::SpoolBlocked;

/// Input name of imported events (the `input` of every stored record; positions are
/// namespaced with it).
pub const IMPORT_INPUT: &str = "import-evtx";
/// Input name of the agent's own gap records (spool damage), as in `crate::run`.
const AGENT_INPUT: &str = "logship-agent";
/// How often the acked seq is checked while waiting.
const ACK_POLL: Duration = Duration::from_millis(50);
/// How often the wait for acks is reported in the log.
const WAIT_REPORT: Duration = Duration::from_secs(10);
/// How long the reader gets to stop after a stop signal before the spool is closed under it.
const STOP_DEADLINE: Duration = Duration::from_secs(3);

/// The result of one file.
#[derive(Debug)]
pub struct FileOutcome {
    /// The path given.
    pub path: PathBuf,
    /// What was read, or why the file could not be read.
    pub result: Result<FileReport, FileError>,
}

/// What an import did.
#[derive(Debug)]
pub struct Outcome {
    /// One entry per file given, in order.
    pub files: Vec<FileOutcome>,
    /// The collector acked every record on the spool.
    pub all_acked: bool,
    /// Records on the spool not yet acked when the import ended.
    pub unacked: u64,
}

impl Outcome {
    /// Some file, or part of one, could not be read.
    pub fn some_unreadable(&self) -> bool {
        self.files
            .iter()
            .any(|f| f.result.as_ref().map_or(true, |r| r.unreadable > 0))
    }
}

/// Imports `files` and waits until the collector has acked everything, or `shutdown`.
pub async fn import(
    config: Config,
    files: Vec<PathBuf>,
    shutdown: CancellationToken,
) -> Result<Outcome> {
    let tls = crate::tls::client_config(&config.ca_cert, &config.cert, &config.key)?;
    let spool_config = config.spool.clone();
    let dir = config.spool.dir.clone();
    let (spool, recovered) = tokio::task::spawn_blocking(move || Spool::open(spool_config))
        .await?
        .with_context(|| {
            format!(
                "opening the spool {} (if an agent running with this config holds it: stop it, \
                 or import with a config whose [spool] dir is another folder)",
                dir.display()
            )
        })?;
    let spool_dir = config.spool.dir.clone();
    let lineage = tokio::task::spawn_blocking(move || crate::instance::start(&spool_dir))
        .await?
        .context("recording this agent instance in the spool")?;
    let host = crate::host_name();
    let agent_tz = jiff::tz::TimeZone::system()
        .iana_name()
        .unwrap_or("UTC")
        .to_string();
    let blocked = SpoolBlocked::default();
    let new_batcher = |input: &str| {
        Batcher::new(
            spool.clone(),
            config.batch,
            input.to_string(),
            host.clone(),
            agent_tz.clone(),
        )
        .map(|b| b.report_to(&blocked))
        .context("creating the zstd compressor")
    };
    let batcher = new_batcher(IMPORT_INPUT)?;
    let mut gaps = new_batcher(AGENT_INPUT)?;
    let stats = Arc::new(Mutex::new(HashMap::from([(
        IMPORT_INPUT.to_string(),
        batcher.stats(),
    )])));
    let lost_records: u64 = recovered
        .lost
        .iter()
        .map(|l| l.last_seq - l.first_seq + 1)
        .sum();
    let heartbeat = Heartbeat {
        spool: spool.clone(),
        stream_id: recovered.stream_id.clone(),
        interval: config.shipper.heartbeat_interval,
        inputs: stats,
        spool_lost_records: lost_records,
        positions: Arc::default(),
        spool_blocked: blocked.clone(),
        input_errors: crate::input_errors::InputErrors::default(),
    };
    let shipper = Shipper {
        spool: spool.clone(),
        stream_id: recovered.stream_id.clone(),
        lineage,
        endpoints: config.endpoints.clone(),
        tls,
        config: config.shipper,
        heartbeat,
    };
    let stop_shipper = CancellationToken::new();
    let shipper_task = tokio::spawn(shipper.run(stop_shipper.clone()));

    let done: HashMap<String, Progress> = recovered
        .positions
        .iter()
        .filter_map(|p| {
            let id = p.key.strip_prefix(IMPORT_INPUT)?.strip_prefix('|')?;
            Some((id.to_string(), Progress::from_position(p.offset, &p.path)))
        })
        .collect();
    let lost = recovered.lost;
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let stop = stop.clone();
        tokio::task::spawn_blocking(move || {
            report_lost_ranges(&mut gaps, lost);
            let files = read_files(batcher, files, done, &stop);
            if let Err(error) = gaps.flush() {
                tracing::warn!(%error, "Spool damage gap records not spooled.");
            }
            (files, gaps)
        })
    };
    tokio::pin!(reader);
    let read = tokio::select! {
        r = &mut reader => r,
        () = shutdown.cancelled() => {
            tracing::info!("Stop signal received; stopping the import.");
            stop.store(true, Ordering::SeqCst);
            // The reader stops at its next record, or when the spool closes if it is blocked
            // on a full spool.
            match tokio::time::timeout(STOP_DEADLINE, &mut reader).await {
                Ok(r) => r,
                Err(_) => {
                    let s = spool.clone();
                    tokio::task::spawn_blocking(move || s.close()).await?;
                    reader.await
                }
            }
        }
    };
    let (files, gaps) = read.context("the evtx reader panicked")?;
    let mut gaps = Some(gaps);
    let interrupted = shutdown.is_cancelled();
    let all_acked = if interrupted {
        false
    } else {
        wait_acked(&spool, &mut gaps, &shutdown).await?
    };
    stop_shipper.cancel();
    if let Err(error) = shipper_task.await {
        tracing::error!(%error, "Shipper task failed.");
    }
    let s = spool.clone();
    tokio::task::spawn_blocking(move || s.close()).await?;
    let stats = spool.stats();
    let unacked = (stats.next_seq - 1).saturating_sub(stats.acked_through);
    Ok(Outcome {
        files,
        all_acked: all_acked && unacked == 0,
        unacked,
    })
}

/// Reads every file in turn (blocking).
fn read_files(
    mut batcher: Batcher,
    files: Vec<PathBuf>,
    mut done: HashMap<String, Progress>,
    stop: &AtomicBool,
) -> Vec<FileOutcome> {
    let mut out = Vec::new();
    for path in files {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let result = identify(&path).and_then(|id| {
            let before = done.get(&id).cloned().unwrap_or_default();
            let report = import_file(&mut batcher, &path, &id, &before, stop)?;
            done.insert(id, report.progress.clone());
            Ok(report)
        });
        match &result {
            Ok(r) => tracing::info!(file = %path.display(), imported = r.imported,
                already = r.already, unreadable = r.unreadable, late = r.late,
                interrupted = r.interrupted, "File read."),
            Err(error) => tracing::error!(file = %path.display(), %error, "File not imported."),
        }
        let closed = matches!(result, Err(FileError::Closed));
        out.push(FileOutcome { path, result });
        if closed {
            break;
        }
    }
    if let Err(error) = batcher.flush() {
        tracing::warn!(%error, "Last batch not spooled; the next run reads it again.");
    }
    out
}

/// Waits until every record on the spool is acked (true) or `shutdown` (false). Damage found
/// meanwhile becomes gap records, which are waited for too.
async fn wait_acked(
    spool: &Spool,
    gaps: &mut Option<Batcher>,
    shutdown: &CancellationToken,
) -> Result<bool> {
    let s = spool.clone();
    tokio::task::spawn_blocking(move || s.sync())
        .await?
        .context("fsync of the spool")?;
    let started = Instant::now();
    let mut reported = Instant::now();
    loop {
        let lost = spool.take_lost();
        if !lost.is_empty()
            && let Some(mut b) = gaps.take()
        {
            let s = spool.clone();
            let back = tokio::task::spawn_blocking(move || {
                let ok = report_lost_ranges(&mut b, lost) && b.flush().is_ok() && s.sync().is_ok();
                (b, ok)
            })
            .await?;
            if back.1 {
                *gaps = Some(back.0);
            }
        }
        let st = spool.stats();
        let last = st.next_seq - 1;
        if st.acked_through >= last && st.durable_next_seq == st.next_seq {
            tracing::info!(
                acked_through = st.acked_through,
                waited_ms = started.elapsed().as_millis() as u64,
                "The collector acked every imported event."
            );
            return Ok(true);
        }
        if reported.elapsed() >= WAIT_REPORT {
            reported = Instant::now();
            tracing::info!(
                unacked = last - st.acked_through,
                "Waiting for the collector to ack the imported events."
            );
        }
        tokio::select! {
            () = shutdown.cancelled() => return Ok(false),
            () = tokio::time::sleep(ACK_POLL) => {}
        }
    }
}
