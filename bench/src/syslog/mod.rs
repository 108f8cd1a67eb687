//! `logship-bench --mode syslog`: network devices' syslog into storage, logship against
//! rsyslog, over UDP and over TCP, in one run.
//!
//! ```text
//! sender (this process, as fast as it can) ─UDP or TCP─► receiver ─► storage
//!   rsyslog: one rsyslogd, imudp + imtcp on 127.0.0.1 ─► omfile (one line per message)
//!   logship: logship-agent [[syslog]] udp:// + tcp:// ─► spool ─mTLS─► collector store
//! ```
//!
//! Each (transport, system) pair runs on its own fresh receiver with the same pre-generated
//! messages (RFC 3164 `<PRI>` + a line of the file benchmark's generator, with `seq=N`). TCP is
//! lossless by construction: done = every message stored. UDP is not: done = no progress for
//! [`UDP_SETTLE`] after the sender finished. Every message is accounted for:
//! `sent = stored + counted drops + unexplained`, where counted drops are the kernel's
//! per-socket drop counter (`/proc/net/udp`, read while the receiver still holds the socket)
//! and, for logship, the agent's own `udp_dropped` from `status.json` (spool full). The rate is
//! messages stored per second from the first send to the last message stored (for logship the
//! collector's time of that commit, `records_last_stored_time`; for rsyslog its output file's
//! last modification time).

mod receivers;
mod send;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;

use crate::loggen::LineGen;
use crate::measure::ProcSample;

/// After the UDP sender finished, the receiver is done when nothing new arrived for this long.
pub(crate) const UDP_SETTLE: Duration = Duration::from_secs(3);

/// Syslog transports measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Transport {
    Udp,
    Tcp,
}

/// One (transport, system) measurement.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct SyslogResult {
    pub(crate) system: String,
    pub(crate) transport: Transport,
    pub(crate) sent: u64,
    pub(crate) stored: u64,
    /// Kernel drops on the receiving socket (`/proc/net/udp`), UDP only.
    pub(crate) kernel_drops: u64,
    /// Drops the receiver itself counted and reported (logship `udp_dropped`).
    pub(crate) counted_drops: u64,
    /// `sent - stored - kernel_drops - counted_drops` where the receiver's own counter does not
    /// already include the kernel's (see `receivers`); 0 is the target.
    pub(crate) unexplained: i64,
    pub(crate) send_secs: f64,
    /// CPU seconds of the sending thread.
    pub(crate) sender_cpu_s: f64,
    pub(crate) wall_secs: f64,
    pub(crate) stored_per_sec: f64,
    pub(crate) receiver_cpu_s: f64,
    pub(crate) receiver_peak_rss_mib: f64,
}

/// The messages, generated once and sent to every receiver.
pub(crate) struct Messages {
    pub(crate) framed: Vec<Vec<u8>>,
    pub(crate) bytes: u64,
}

/// Runs every transport against rsyslog and logship; returns the results in run order.
pub(crate) fn run(
    out: &Path,
    bins: &Path,
    count: u64,
    transports: &[Transport],
    stall: Duration,
) -> anyhow::Result<(Vec<SyslogResult>, Vec<String>)> {
    let messages = generate(count);
    tracing::info!(
        messages = count,
        bytes = messages.bytes,
        "Generated the syslog messages."
    );
    let (mut results, mut errors) = (Vec::new(), Vec::new());
    for &transport in transports {
        for system in ["rsyslog", "logship"] {
            tracing::info!(system, ?transport, "Running.");
            let dir = out.join(format!("syslog-{system}-{transport:?}").to_lowercase());
            let result = match system {
                "rsyslog" => receivers::rsyslog(&dir, &messages, transport, stall),
                _ => receivers::logship(&dir, bins, &messages, transport, stall),
            };
            match result {
                Ok(r) => results.push(r),
                Err(error) => {
                    tracing::error!(
                        system,
                        ?transport,
                        error = format!("{error:#}"),
                        "Could not run."
                    );
                    errors.push(format!("{system} {transport:?}: {error:#}"));
                }
            }
        }
    }
    Ok((results, errors))
}

/// `<134>` + a generated line (no newline; framing is the transport's).
fn generate(count: u64) -> Messages {
    let mut lines = LineGen::new(7);
    let mut line = String::with_capacity(512);
    let mut framed = Vec::with_capacity(count as usize);
    let mut bytes = 0;
    for seq in 1..=count {
        line.clear();
        lines.write_line(seq, &mut line);
        let mut m = Vec::with_capacity(line.len() + 5);
        m.extend_from_slice(b"<134>");
        m.extend_from_slice(line.trim_end().as_bytes());
        bytes += m.len() as u64;
        framed.push(m);
    }
    Messages { framed, bytes }
}

/// How a receiver run went, before accounting.
pub(crate) struct Observed {
    pub(crate) stored: u64,
    pub(crate) kernel_drops: u64,
    pub(crate) counted_drops: u64,
    /// Whether `counted_drops` already includes the kernel's drops.
    pub(crate) counted_includes_kernel: bool,
    pub(crate) send: send::Sent,
    pub(crate) wall: Duration,
    pub(crate) receiver: ProcSample,
}

impl SyslogResult {
    pub(crate) fn new(system: &str, transport: Transport, sent: u64, o: &Observed) -> Self {
        let explained = if o.counted_includes_kernel {
            o.counted_drops.max(o.kernel_drops)
        } else {
            o.counted_drops + o.kernel_drops
        };
        let wall = o.wall.as_secs_f64().max(1e-9);
        SyslogResult {
            system: system.to_owned(),
            transport,
            sent,
            stored: o.stored,
            kernel_drops: o.kernel_drops,
            counted_drops: o.counted_drops,
            unexplained: sent as i64 - o.stored as i64 - explained as i64,
            send_secs: o.send.wall.as_secs_f64(),
            sender_cpu_s: o.send.cpu_s,
            wall_secs: o.wall.as_secs_f64(),
            stored_per_sec: o.stored as f64 / wall,
            receiver_cpu_s: o.receiver.cpu_s,
            receiver_peak_rss_mib: o.receiver.peak_rss_kib as f64 / 1024.0,
        }
    }
}

/// The results as a text table.
pub(crate) fn render(results: &[SyslogResult]) -> String {
    let mut s = format!(
        "{:<8} {:<9} {:>9} {:>9} {:>9} {:>9} {:>6} {:>8} {:>11} {:>8} {:>8} {:>8} {:>8}\n",
        "system",
        "transport",
        "sent",
        "stored",
        "k-drops",
        "counted",
        "unexp",
        "wall s",
        "stored/s",
        "CPU s",
        "RSS MiB",
        "send s",
        "snd CPU"
    );
    for r in results {
        s.push_str(&format!(
            "{:<8} {:<9} {:>9} {:>9} {:>9} {:>9} {:>6} {:>8.2} {:>11.0} {:>8.2} {:>8.1} {:>8.2} {:>8.2}\n",
            r.system,
            format!("{:?}", r.transport).to_lowercase(),
            r.sent,
            r.stored,
            r.kernel_drops,
            r.counted_drops,
            r.unexplained,
            r.wall_secs,
            r.stored_per_sec,
            r.receiver_cpu_s,
            r.receiver_peak_rss_mib,
            r.send_secs,
            r.sender_cpu_s
        ));
    }
    s
}

/// Writes the results as JSON next to the other outputs; returns the path.
pub(crate) fn write_json(out: &Path, results: &[SyslogResult]) -> anyhow::Result<PathBuf> {
    let path = out.join("syslog-result.json");
    let text = serde_json::to_string_pretty(&serde_json::json!({
        "finished_unix_secs": std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        "results": results,
    }))?;
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

/// Waits until `progress` reaches `target` (TCP) or stops moving for [`UDP_SETTLE`] after the
/// sender finished (UDP). Returns the time of the last progress since `start` and the count.
/// `on_poll(progressed)` runs after each read of `progress`, `progressed` telling whether it
/// moved: a receiver samples its CPU there and keeps the sample of the last progress, so the
/// CPU reported is what storing took, not the settle time after it (logship's normalizer
/// catching up on the fields, at lower priority, once every message is stored).
pub(crate) fn wait_stored(
    transport: Transport,
    target: u64,
    start: Instant,
    stall: Duration,
    mut progress: impl FnMut() -> anyhow::Result<u64>,
    mut on_poll: impl FnMut(bool) -> anyhow::Result<()>,
) -> anyhow::Result<(Duration, u64)> {
    let (mut best, mut last_change) = (0, Instant::now());
    let mut at = start.elapsed();
    loop {
        let now = progress()?;
        let progressed = now != best;
        if progressed {
            (best, last_change, at) = (now, Instant::now(), start.elapsed());
        }
        on_poll(progressed)?;
        if now >= target {
            return Ok((at, now));
        }
        let quiet = last_change.elapsed();
        match transport {
            Transport::Udp if quiet > UDP_SETTLE => return Ok((at, now)),
            Transport::Tcp if quiet > stall => {
                anyhow::bail!("no progress for {stall:?}: {now} of {target} stored")
            }
            _ => {}
        }
        std::thread::sleep(crate::measure::POLL_INTERVAL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounting_adds_kernel_and_own_drops_unless_one_includes_the_other() {
        let o = Observed {
            stored: 90,
            kernel_drops: 4,
            counted_drops: 6,
            counted_includes_kernel: false,
            send: send::Sent::default(),
            wall: Duration::from_secs(2),
            receiver: ProcSample::default(),
        };
        let r = SyslogResult::new("x", Transport::Udp, 100, &o);
        assert_eq!((r.unexplained, r.stored_per_sec as u64), (0, 45));
        let o = Observed {
            counted_includes_kernel: true,
            ..o
        };
        assert_eq!(
            SyslogResult::new("x", Transport::Udp, 100, &o).unexplained,
            4
        );
    }

    #[test]
    fn generated_messages_carry_a_pri_and_their_number() {
        let m = generate(3);
        assert_eq!(m.framed.len(), 3);
        for (i, msg) in m.framed.iter().enumerate() {
            let text = std::str::from_utf8(msg).unwrap();
            assert!(text.starts_with("<134>"), "{text}");
            assert_eq!(crate::loggen::parse_seq(text), Some(i as u64 + 1));
            assert!(!text.ends_with('\n'));
        }
    }
}
