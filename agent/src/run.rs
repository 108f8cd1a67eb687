//! Wiring of a running agent: spool recovery, one thread per input (tailer + batcher, or
//! journalctl follower + batcher), the
//! gap reporter, the shipper, and an orderly, deadline-bounded shutdown (STYLE.md habit 10).
//!
//! Read positions are namespaced per input in the spool (`"{input}|{file key}"`), so two inputs
//! never claim each other's files after a restart.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result};
use logship_spool::{LostRange, Position, Spool};
use logship_tail::{Checkpoint, Tailer};
use tokio_util::sync::CancellationToken;

use crate::batcher::{Batcher, report_lost_ranges};
use crate::config::{Config, FileInput};
use crate::file_input::FileInputSink;
use crate::heartbeat::Heartbeat;
use crate::input_errors::InputErrors;
use crate::shipper::Shipper;
use crate::spool_blocked::SpoolBlocked;
use crate::tls;

/// How long inputs get to flush their last batch after a stop signal.
const INPUT_STOP_DEADLINE: Duration = Duration::from_secs(3);
/// Input name of the agent's own gap records (spool damage).
const AGENT_INPUT: &str = "logship-agent";

/// Runs the agent until `shutdown` is cancelled.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<()> {
    let (tls, identity) =
        tls::client_config_with_identity(&config.ca_cert, &config.cert, &config.key)?;
    let spool_config = config.spool.clone();
    let (spool, recovered) = tokio::task::spawn_blocking(move || Spool::open(spool_config))
        .await?
        .context("opening the spool")?;
    let spool_dir = config.spool.dir.clone();
    let lineage = tokio::task::spawn_blocking(move || crate::instance::start(&spool_dir))
        .await?
        .context("recording this agent instance in the spool")?;
    tracing::info!(
        stream_id = %recovered.stream_id,
        instance_id = %lineage.current,
        next_seq = recovered.next_seq,
        acked_through = recovered.acked_through,
        positions = recovered.positions.len(),
        first_run = recovered.first_run,
        "Spool opened."
    );
    let host = crate::host_name();
    let agent_tz = jiff::tz::TimeZone::system()
        .iana_name()
        .unwrap_or("UTC")
        .to_string();
    let stop = Arc::new(AtomicBool::new(false));
    let input_stats = Arc::new(Mutex::new(HashMap::new()));
    let ctx = InputContext {
        spool: spool.clone(),
        config: config.clone(),
        host,
        agent_tz,
        blocked: SpoolBlocked::default(),
    };
    let lost_records: u64 = recovered
        .lost
        .iter()
        .map(|l| l.last_seq - l.first_seq + 1)
        .sum();
    let mut threads = vec![spawn_gap_reporter(&ctx, recovered.lost, stop.clone())?];
    let positions = Arc::new(Mutex::new(Vec::new()));
    for input in &config.files {
        let checkpoints = checkpoints_for(&input.tail.input, &recovered.positions);
        let batcher = ctx.batcher(&input.tail.input)?;
        input_stats
            .lock()
            .expect("input stats lock is never poisoned")
            .insert(input.tail.input.clone(), batcher.stats());
        threads.push(spawn_file_input(
            positions.clone(),
            input.clone(),
            checkpoints,
            recovered.first_run,
            batcher,
            stop.clone(),
        )?);
    }
    let input_errors = InputErrors::default();
    for input in &config.journald {
        let stored =
            crate::journald::input::stored(&checkpoints_for(&input.name, &recovered.positions));
        let batcher = ctx.batcher(&input.name)?;
        input_stats
            .lock()
            .expect("input stats lock is never poisoned")
            .insert(input.name.clone(), batcher.stats());
        threads.push(crate::journald::spawn(
            input.clone(),
            stored,
            batcher,
            input_errors.clone(),
            stop.clone(),
        )?);
    }
    for input in &config.syslog {
        let batcher = ctx.batcher(&input.name)?;
        input_stats
            .lock()
            .expect("input stats lock is never poisoned")
            .insert(input.name.clone(), batcher.stats());
        threads.push(
            crate::syslog::start(
                input.clone(),
                batcher,
                crate::syslog::SpoolFull {
                    spool: spool.clone(),
                    blocked: ctx.blocked.clone(),
                },
                stop.clone(),
                shutdown.clone(),
            )
            .await?,
        );
    }
    for input in &config.evtx {
        let batcher = ctx.batcher(&input.name)?;
        input_stats
            .lock()
            .expect("input stats lock is never poisoned")
            .insert(input.name.clone(), batcher.stats());
        threads.push(crate::evtx::watch::spawn(
            input.clone(),
            &checkpoints_for(&input.name, &recovered.positions),
            batcher,
            input_errors.clone(),
            stop.clone(),
        )?);
    }
    spawn_eventlog_inputs(
        &ctx,
        &config,
        &recovered.positions,
        &input_stats,
        &input_errors,
        &stop,
        &mut threads,
    )?;
    let heartbeat = Heartbeat {
        spool: spool.clone(),
        stream_id: recovered.stream_id.clone(),
        interval: config.shipper.heartbeat_interval,
        inputs: input_stats,
        spool_lost_records: lost_records,
        positions,
        spool_blocked: ctx.blocked.clone(),
        input_errors,
    };
    let shipper = Shipper {
        spool: spool.clone(),
        stream_id: recovered.stream_id,
        lineage,
        endpoints: config.endpoints.clone(),
        tls,
        config: config.shipper,
        heartbeat,
    };
    let renewal = crate::enroll::renew::Renewal {
        identity,
        tls: shipper.tls.clone(),
        endpoints: config.endpoints.clone(),
        cert: config.cert.clone(),
        key: config.key.clone(),
    };
    tokio::spawn(renewal.run(shutdown.clone()));
    let shipper_task = tokio::spawn(shipper.run(shutdown.clone()));
    tokio::spawn(crate::memory::trim_when_idle(
        spool.clone(),
        shutdown.clone(),
    ));
    shutdown.cancelled().await;
    tracing::info!("Stopping inputs.");
    stop.store(true, Ordering::SeqCst);
    join_all(threads, &spool).await;
    if let Err(error) = shipper_task.await {
        tracing::error!(%error, "Shipper task failed.");
    }
    let s = spool.clone();
    tokio::task::spawn_blocking(move || s.close()).await?;
    tracing::info!("Agent stopped.");
    Ok(())
}

/// Starts the `[[eventlog]]` inputs (config validation admits them on Windows only).
#[cfg(windows)]
fn spawn_eventlog_inputs(
    ctx: &InputContext,
    config: &Config,
    positions: &[Position],
    input_stats: &Mutex<HashMap<String, Arc<crate::batcher::BatcherStats>>>,
    input_errors: &InputErrors,
    stop: &Arc<AtomicBool>,
    threads: &mut Vec<JoinHandle<()>>,
) -> Result<()> {
    for input in &config.eventlog {
        let stored = crate::eventlog::stored(&checkpoints_for(&input.name, positions));
        let batcher = ctx.batcher(&input.name)?;
        input_stats
            .lock()
            .expect("input stats lock is never poisoned")
            .insert(input.name.clone(), batcher.stats());
        let source = crate::eventlog::windows::WindowsSource::new(input)
            .context("creating the event log signal")?;
        threads.push(crate::eventlog::spawn(
            input.clone(),
            source,
            stored,
            batcher,
            input_errors.clone(),
            stop.clone(),
        )?);
    }
    Ok(())
}

/// `[[eventlog]]` needs Windows; validation refuses it elsewhere, so there is nothing to start.
#[cfg(not(windows))]
fn spawn_eventlog_inputs(
    _ctx: &InputContext,
    config: &Config,
    _positions: &[Position],
    _input_stats: &Mutex<HashMap<String, Arc<crate::batcher::BatcherStats>>>,
    _input_errors: &InputErrors,
    _stop: &Arc<AtomicBool>,
    _threads: &mut Vec<JoinHandle<()>>,
) -> Result<()> {
    anyhow::ensure!(
        config.eventlog.is_empty(),
        "[[eventlog]] inputs need Windows"
    );
    Ok(())
}

/// What every input thread needs.
struct InputContext {
    spool: Spool,
    config: Config,
    host: String,
    agent_tz: String,
    /// Inputs whose appends fail, for heartbeats.
    blocked: SpoolBlocked,
}

impl InputContext {
    fn batcher(&self, input: &str) -> Result<Batcher> {
        Batcher::new(
            self.spool.clone(),
            self.config.batch,
            input.to_string(),
            self.host.clone(),
            self.agent_tz.clone(),
        )
        .map(|b| b.report_to(&self.blocked))
        .context("creating the zstd compressor")
    }
}

/// The checkpoints of `input`, with the input prefix removed.
fn checkpoints_for(input: &str, positions: &[Position]) -> Vec<Checkpoint> {
    let prefix = format!("{input}|");
    positions
        .iter()
        .filter_map(|p| {
            let key = p.key.strip_prefix(&prefix)?;
            Some(Checkpoint {
                key: key.to_string(),
                path: p.path.clone(),
                offset: p.offset,
            })
        })
        .collect()
}

fn spawn_file_input(
    positions: Arc<Mutex<Vec<(String, logship_tail::PositionsHandle)>>>,
    input: FileInput,
    checkpoints: Vec<Checkpoint>,
    first_run: bool,
    batcher: Batcher,
    stop: Arc<AtomicBool>,
) -> Result<JoinHandle<()>> {
    let name = input.tail.input.clone();
    let thread = std::thread::Builder::new().name(format!("input-{name}")).spawn(move || {
        // Tailer::new scans and opens files: blocking work, so it runs on this thread.
        let mut tailer = match Tailer::new(input.tail, checkpoints, first_run) {
            Ok(t) => t,
            Err(error) => {
                tracing::error!(input = %name, %error, "File input could not start.");
                return;
            }
        };
        positions
            .lock()
            .expect("positions lock is never poisoned")
            .push((name.clone(), tailer.positions_handle()));
        let mut batcher = batcher;
        if first_run {
            // start_at = end keys files at their end before any line: persist those positions
            // now, or a restart would find no checkpoint and read them from the beginning.
            if let Err(error) = batcher.record_positions(&tailer.positions()) {
                tracing::warn!(input = %name, %error, "Initial positions not spooled.");
            }
        }
        let mut sink = FileInputSink::new(batcher, input.text);
        if let Err(error) = tailer.run(&mut sink, &stop) {
            tracing::error!(input = %name, %error, "File input failed.");
        }
        if let Err(error) = sink.flush() {
            tracing::warn!(input = %name, %error, "Last batch not spooled; it will be read again.");
        }
    })?;
    Ok(thread)
}

/// Turns spool damage (found at start-up or while reading) into gap records in the store.
fn spawn_gap_reporter(
    ctx: &InputContext,
    initial: Vec<LostRange>,
    stop: Arc<AtomicBool>,
) -> Result<JoinHandle<()>> {
    let mut batcher = ctx.batcher(AGENT_INPUT)?;
    let spool = ctx.spool.clone();
    let thread = std::thread::Builder::new()
        .name("gap-reporter".into())
        .spawn(move || {
            let mut lost = initial;
            loop {
                if !report_lost_ranges(&mut batcher, std::mem::take(&mut lost)) {
                    return;
                }
                if batcher.flush().is_err() || stop.load(Ordering::SeqCst) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(500));
                lost = spool.take_lost();
            }
        })?;
    Ok(thread)
}

async fn join_all(threads: Vec<JoinHandle<()>>, spool: &Spool) {
    let join = tokio::task::spawn_blocking(move || {
        for t in threads {
            if t.join().is_err() {
                tracing::error!("An input thread panicked.");
            }
        }
    });
    tokio::pin!(join);
    if tokio::time::timeout(INPUT_STOP_DEADLINE, &mut join)
        .await
        .is_err()
    {
        tracing::warn!("Inputs are blocked on a full spool; closing it to stop them.");
        let s = spool.clone();
        if tokio::task::spawn_blocking(move || s.close())
            .await
            .is_err()
            || join.await.is_err()
        {
            tracing::error!("Stopping the inputs failed.");
        }
    }
    let s = spool.clone();
    if let Ok(Err(error)) = tokio::task::spawn_blocking(move || s.sync()).await {
        tracing::error!(%error, "Final spool fsync failed.");
    }
}
