//! Heartbeats: host facts (sysinfo: names, versions, IP addresses) and the agent's own health
//! (spool depth, drops, read positions with how far each file input is behind), sent to the
//! collector periodically over the shipper's channel. sysinfo refreshes and the `stat`s behind
//! the lag figures run on a blocking thread.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use logship_proto::v1::ingest_client::IngestClient;
use logship_proto::v1::{HeartbeatRequest, HostFacts, InputPosition};
use logship_spool::Spool;
use sysinfo::{Networks, Pid, ProcessRefreshKind, ProcessesToUpdate, System};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

use crate::batcher::BatcherStats;
use crate::input_errors::InputErrors;
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
    /// Inputs that cannot read their source (journalctl failing).
    pub input_errors: InputErrors,
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
        let checkpoints = self.checkpoints();
        let (facts, positions, system) = tokio::task::spawn_blocking(move || {
            let mut system = system;
            let facts = host_facts(&mut system);
            (facts, read_positions(checkpoints), system)
        })
        .await
        .ok()?;
        let stats = self.spool.stats();
        let mut drops = HashMap::new();
        drops.insert("spool_corruption".to_string(), self.spool_lost_records);
        let (mut gaps, mut udp_dropped) = (0, 0);
        let (mut decode_errors, mut multiline_truncated) = (0, 0);
        for s in self
            .inputs
            .lock()
            .expect("input stats lock is never poisoned")
            .values()
        {
            gaps += s.gaps.load(Ordering::Relaxed);
            udp_dropped += s.udp_dropped.load(Ordering::Relaxed);
            decode_errors += s.decode_errors.load(Ordering::Relaxed);
            multiline_truncated += s.multiline_truncated.load(Ordering::Relaxed);
        }
        drops.insert("gaps".to_string(), gaps);
        drops.insert("udp_dropped".to_string(), udp_dropped);
        drops.insert("decode_errors".to_string(), decode_errors);
        drops.insert("multiline_truncated".to_string(), multiline_truncated);
        let request = HeartbeatRequest {
            agent_version: env!("CARGO_PKG_VERSION").to_string(),
            host: Some(facts),
            spool_bytes: stats.bytes,
            spool_records: stats.records,
            positions,
            drops,
            stream_id: self.stream_id.clone(),
            spool_blocked_reason: self.spool_blocked.reason(),
            input_errors: self.input_errors.snapshot().into_iter().collect(),
        };
        Some((request, system))
    }
}

impl Heartbeat {
    /// The live read positions of every file input, by input name.
    fn checkpoints(&self) -> Vec<(String, logship_tail::Checkpoint)> {
        let handles = self
            .positions
            .lock()
            .expect("positions lock is never poisoned");
        handles
            .iter()
            .flat_map(|(input, handle)| handle.get().into_iter().map(|c| (input.clone(), c)))
            .collect()
    }
}

/// The positions with how far each is behind its file (one `stat` each: run off the async
/// workers). A file no longer at its path reports no lag rather than a wrong one.
fn read_positions(checkpoints: Vec<(String, logship_tail::Checkpoint)>) -> Vec<InputPosition> {
    checkpoints
        .into_iter()
        .map(|(input, c)| {
            let behind = c.behind();
            InputPosition {
                input,
                path: c.path,
                offset: c.offset,
                size: behind.map(|b| b.size),
                lag_bytes: behind.map(|b| b.bytes),
                lag_entries: None,
            }
        })
        .collect()
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
        ip_addresses: ip_addresses(),
    }
}

/// Every address of the host's interfaces, non-loopback ones first, each once.
fn ip_addresses() -> Vec<String> {
    let networks = Networks::new_with_refreshed_list();
    let mut addrs: Vec<std::net::IpAddr> = networks
        .list()
        .values()
        .flat_map(|n| n.ip_networks().iter().map(|ip| ip.addr))
        .collect();
    addrs.sort_by_key(|a| (a.is_loopback(), a.is_ipv6(), *a));
    addrs.dedup();
    addrs.iter().map(ToString::to_string).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_this_hosts_once_each_loopback_last() {
        let addrs: Vec<std::net::IpAddr> = ip_addresses()
            .iter()
            .map(|a| a.parse().expect("an IP address"))
            .collect();
        // Every Linux host has its loopback interface up: 127.0.0.1 is listed.
        assert!(
            addrs.contains(&std::net::Ipv4Addr::LOCALHOST.into()),
            "{addrs:?}"
        );
        let first_loopback = addrs.iter().position(|a| a.is_loopback()).unwrap();
        assert!(
            addrs[first_loopback..].iter().all(|a| a.is_loopback()),
            "{addrs:?}"
        );
        let mut unique = addrs.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), addrs.len(), "{addrs:?}");
    }

    #[cfg(unix)]
    #[test]
    fn positions_report_how_far_each_file_is_behind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.log");
        std::fs::write(&path, b"one\ntwo\nthr").unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        use std::os::unix::fs::MetadataExt;
        let key = format!("{}:{}:3:00000000", meta.dev(), meta.ino());
        let at = |offset| {
            let c = logship_tail::Checkpoint {
                key: key.clone(),
                path: path.display().to_string(),
                offset,
            };
            read_positions(vec![("app".into(), c)]).remove(0)
        };
        let p = at(8);
        assert_eq!(
            (p.input.as_str(), p.offset, p.size, p.lag_bytes),
            ("app", 8, Some(11), Some(3))
        );
        assert_eq!(p.lag_entries, None);
        std::fs::remove_file(&path).unwrap();
        let gone = at(8);
        assert_eq!((gone.size, gone.lag_bytes), (None, None), "unknown, not 0");
    }
}
