//! Heartbeats: host facts (sysinfo) and the agent's own health, sent to the collector
//! periodically over the shipper's channel. sysinfo refreshes run on a blocking thread.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use logship_proto::v1::ingest_client::IngestClient;
use logship_proto::v1::{HeartbeatRequest, HostFacts, InputPosition};
use logship_spool::Spool;
use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

use crate::batcher::BatcherStats;
use crate::spool_blocked::SpoolBlocked;

/// What a heartbeat reports, shared by the tasks that produce it.
#[derive(Clone)]
pub struct Heartbeat {
    /// Spool to report depth of.
    pub spool: Spool,
    /// The spool's stream id.
    pub stream_id: String,
    /// Interval between beats.
    pub interval: std::time::Duration,
    /// Per-input batcher counters.
    pub inputs: Arc<Mutex<HashMap<String, Arc<BatcherStats>>>>,
    /// Lost spool records at start-up (corruption).
    pub spool_lost_records: u64,
    /// Live read positions of each file input, registered once its tailer has started.
    pub positions: Arc<Mutex<Vec<(String, logship_tail::PositionsHandle)>>>,
    /// Inputs whose spool appends fail (disk full, I/O errors).
    pub spool_blocked: SpoolBlocked,
}

// === impl Heartbeat ===

impl Heartbeat {
    /// Sends a beat every interval until `shutdown`; failures are logged and retried next time.
    pub async fn run(self, channel: Channel, shutdown: CancellationToken) {
        let mut client = IngestClient::new(channel);
        let mut system = System::new();
        loop {
            let (request, back) = match self.collect(system).await {
                Some(x) => x,
                None => return,
            };
            system = back;
            if let Err(status) = client.heartbeat(request).await {
                tracing::debug!(%status, "Heartbeat failed.");
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(self.interval) => {}
            }
        }
    }

    async fn collect(&self, system: System) -> Option<(HeartbeatRequest, System)> {
        let (facts, system) = tokio::task::spawn_blocking(move || {
            let mut system = system;
            let facts = host_facts(&mut system);
            (facts, system)
        })
        .await
        .ok()?;
        let stats = self.spool.stats();
        let mut drops = HashMap::new();
        drops.insert("spool_corruption".to_string(), self.spool_lost_records);
        let (mut gaps, mut decode_errors, mut multiline_truncated) = (0, 0, 0);
        for s in self
            .inputs
            .lock()
            .expect("input stats lock is never poisoned")
            .values()
        {
            gaps += s.gaps.load(Ordering::Relaxed);
            decode_errors += s.decode_errors.load(Ordering::Relaxed);
            multiline_truncated += s.multiline_truncated.load(Ordering::Relaxed);
        }
        drops.insert("gaps".to_string(), gaps);
        drops.insert("decode_errors".to_string(), decode_errors);
        drops.insert("multiline_truncated".to_string(), multiline_truncated);
        let request = HeartbeatRequest {
            agent_version: env!("CARGO_PKG_VERSION").to_string(),
            host: Some(facts),
            spool_bytes: stats.bytes,
            spool_records: stats.records,
            positions: self.read_positions(),
            drops,
            stream_id: self.stream_id.clone(),
            spool_blocked_reason: self.spool_blocked.reason(),
        };
        Some((request, system))
    }
}

impl Heartbeat {
    fn read_positions(&self) -> Vec<InputPosition> {
        let handles = self
            .positions
            .lock()
            .expect("positions lock is never poisoned");
        handles
            .iter()
            .flat_map(|(input, handle)| {
                handle.get().into_iter().map(move |c| InputPosition {
                    input: input.clone(),
                    path: c.path,
                    offset: c.offset,
                })
            })
            .collect()
    }
}

/// Reads host facts and this process's resource use.
pub fn host_facts(system: &mut System) -> HostFacts {
    system.refresh_memory();
    let pid = Pid::from_u32(std::process::id());
    system.refresh_processes_specifics(
        ProcessesToUpdate::Some(&[pid]),
        true,
        ProcessRefreshKind::nothing().with_memory().with_cpu(),
    );
    let (rss, cpu) = system
        .process(pid)
        .map(|p| (p.memory(), p.cpu_usage()))
        .unwrap_or((0, 0.0));
    HostFacts {
        host_name: System::host_name().unwrap_or_default(),
        os_name: System::name().unwrap_or_default(),
        os_version: System::os_version().unwrap_or_default(),
        kernel_version: System::kernel_version().unwrap_or_default(),
        cpu_count: std::thread::available_parallelism()
            .map(|n| n.get() as u32)
            .unwrap_or(1),
        memory_total_bytes: system.total_memory(),
        uptime_secs: System::uptime(),
        agent_rss_bytes: rss,
        agent_cpu_percent: cpu,
    }
}
