//! `logship-bench --mode syslog`: network devices' syslog into storage, logship against
//! rsyslog, over UDP and over TCP, in one run.
//!
//! ```text
//! sender (this process, as fast as it can) ─UDP or TCP─► receiver ─► storage
//!   rsyslog: one rsyslogd, imudp + imtcp on 127.0.0.1 ─► omfile (one line per message)
//!   logship: logship-agent [[syslog]] udp:// + tcp:// ─► spool ─mTLS─► collector store
//! ```
//!
//! Each (round, transport, system) runs on its own fresh receiver with the same pre-generated
//! messages (RFC 3164 `<PRI>` + a line of the file benchmark's generator, with `seq=N`). TCP is
//! lossless by construction: done = every message stored. UDP is not: done = no progress for
//! [`UDP_SETTLE`] after the sender finished. Every message is accounted for:
//! `sent = stored + counted drops + unexplained`, where counted drops are the kernel's
//! per-socket drop counter (`/proc/net/udp`, read while the receiver still holds the socket)
//! and, for logship, the agent's own `udp_dropped` from `status.json` (spool full). The rate is
//! messages stored per second from the first send to the last message stored (for logship the
//! collector's time of that commit, `records_last_stored_time`; for rsyslog its output file's
//! last modification time).
//!
//! On a small shared machine one pair's ratio moves by a fifth from run to run, so `--rounds N`
//! repeats every pair, rsyslog first in odd rounds and logship first in even ones (the order
//! effects cancel), and the summary gives each transport's ratios per round and their median.

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
    /// 1-based round (`--rounds`).
    pub(crate) round: u32,
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

/// Runs every transport against rsyslog and logship, `rounds` times (see the module doc for
/// the order); returns the results in run order.
pub(crate) fn run(
    out: &Path,
    bins: &Path,
    count: u64,
    transports: &[Transport],
    rounds: u32,
    stall: Duration,
) -> anyhow::Result<(Vec<SyslogResult>, Vec<String>)> {
    let messages = generate(count);
    tracing::info!(
        messages = count,
        bytes = messages.bytes,
        "Generated the syslog messages."
    );
    let (mut results, mut errors) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        for &transport in transports {
            for system in pair_order(round) {
                tracing::info!(round, system, ?transport, "Running.");
                let name = if rounds == 1 {
                    format!("syslog-{system}-{transport:?}")
                } else {
                    format!("syslog-{system}-{transport:?}-r{round}")
                };
                let dir = out.join(name.to_lowercase());
                let result = match system {
                    "rsyslog" => receivers::rsyslog(&dir, &messages, transport, stall),
                    _ => receivers::logship(&dir, bins, &messages, transport, stall),
                };
                match result {
                    Ok(r) => results.push(SyslogResult { round, ..r }),
                    Err(error) => {
                        tracing::error!(
                            round,
                            system,
                            ?transport,
                            error = format!("{error:#}"),
                            "Could not run."
                        );
                        errors.push(format!("round {round} {system} {transport:?}: {error:#}"));
                    }
                }
            }
        }
    }
    Ok((results, errors))
}

/// The systems in the order round `round` runs them: rsyslog first in odd rounds.
fn pair_order(round: u32) -> [&'static str; 2] {
    if round % 2 == 1 {
        ["rsyslog", "logship"]
    } else {
        ["logship", "rsyslog"]
    }
}

/// One transport's rounds: logship's stored/s over rsyslog's in each round both ran.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct PairSummary {
    pub(crate) transport: Transport,
    /// (round, ratio) in round order.
    pub(crate) ratios: Vec<(u32, f64)>,
    pub(crate) median_ratio: Option<f64>,
    /// Rounds in which logship stored at least rsyslog's rate.
    pub(crate) rounds_at_least_rsyslog: usize,
    /// Sum of both systems' unexplained losses over the rounds (0 is the target).
    pub(crate) unexplained: i64,
}

/// Pairs each round's two results per transport.
pub(crate) fn summarize(results: &[SyslogResult]) -> Vec<PairSummary> {
    let mut transports: Vec<Transport> = Vec::new();
    for r in results {
        if !transports.contains(&r.transport) {
            transports.push(r.transport);
        }
    }
    transports
        .into_iter()
        .map(|transport| {
            let of = |system: &str, round: u32| {
                results
                    .iter()
                    .find(|r| r.transport == transport && r.system == system && r.round == round)
            };
            let mut rounds: Vec<u32> = results
                .iter()
                .filter(|r| r.transport == transport)
                .map(|r| r.round)
                .collect();
            rounds.dedup();
            let ratios: Vec<(u32, f64)> = rounds
                .iter()
                .filter_map(|&n| match (of("logship", n), of("rsyslog", n)) {
                    (Some(l), Some(r)) if r.stored_per_sec > 0.0 => {
                        Some((n, l.stored_per_sec / r.stored_per_sec))
                    }
                    _ => None,
                })
                .collect();
            PairSummary {
                transport,
                median_ratio: crate::stats::median(ratios.iter().map(|r| r.1).collect()),
                rounds_at_least_rsyslog: ratios.iter().filter(|r| r.1 >= 1.0).count(),
                unexplained: results
                    .iter()
                    .filter(|r| r.transport == transport)
                    .map(|r| r.unexplained)
                    .sum(),
                ratios,
            }
        })
        .collect()
}

/// The summary as text: one line per transport.
pub(crate) fn render_summary(summaries: &[PairSummary]) -> String {
    let mut s = String::new();
    for p in summaries {
        let per: Vec<String> = p.ratios.iter().map(|r| format!("{:.2}", r.1)).collect();
        s.push_str(&format!(
            "{}: logship/rsyslog stored/s by round [{}], median {}, at least rsyslog's in {} of {}, \
             unexplained {}\n",
            format!("{:?}", p.transport).to_lowercase(),
            per.join(" "),
            p.median_ratio.map_or("-".to_owned(), |m| format!("{m:.2}")),
            p.rounds_at_least_rsyslog,
            p.ratios.len(),
            p.unexplained
        ));
    }
    s
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
            round: 1,
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
        "{:>5} {:<8} {:<9} {:>9} {:>9} {:>9} {:>9} {:>6} {:>8} {:>11} {:>8} {:>8} {:>8} {:>8}\n",
        "round",
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
            "{:>5} {:<8} {:<9} {:>9} {:>9} {:>9} {:>9} {:>6} {:>8.2} {:>11.0} {:>8.2} {:>8.1} {:>8.2} {:>8.2}\n",
            r.round,
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
        "summary": summarize(results),
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

    fn result(round: u32, system: &str, transport: Transport, rate: f64) -> SyslogResult {
        SyslogResult {
            round,
            stored_per_sec: rate,
            ..SyslogResult::new(
                system,
                transport,
                10,
                &Observed {
                    stored: 10,
                    kernel_drops: 0,
                    counted_drops: 0,
                    counted_includes_kernel: true,
                    send: send::Sent::default(),
                    wall: Duration::from_secs(1),
                    receiver: ProcSample::default(),
                },
            )
        }
    }

    #[test]
    fn rounds_alternate_the_order_and_the_summary_pairs_each_round() {
        assert_eq!(pair_order(1), ["rsyslog", "logship"]);
        assert_eq!(pair_order(2), ["logship", "rsyslog"]);
        let results = vec![
            result(1, "rsyslog", Transport::Udp, 100.0),
            result(1, "logship", Transport::Udp, 90.0),
            result(1, "rsyslog", Transport::Tcp, 100.0),
            result(1, "logship", Transport::Tcp, 200.0),
            result(2, "logship", Transport::Udp, 120.0),
            result(2, "rsyslog", Transport::Udp, 100.0),
            // Round 2's TCP rsyslog failed: no ratio for that round.
            result(2, "logship", Transport::Tcp, 200.0),
            result(3, "rsyslog", Transport::Udp, 100.0),
            result(3, "logship", Transport::Udp, 110.0),
        ];
        let s = summarize(&results);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].transport, Transport::Udp);
        let ratios: Vec<(u32, String)> = s[0]
            .ratios
            .iter()
            .map(|r| (r.0, format!("{:.2}", r.1)))
            .collect();
        assert_eq!(
            ratios,
            [(1, "0.90".into()), (2, "1.20".into()), (3, "1.10".into())]
        );
        assert_eq!(
            s[0].median_ratio.map(|m| format!("{m:.2}")),
            Some("1.10".into())
        );
        assert_eq!(s[0].rounds_at_least_rsyslog, 2);
        assert_eq!((s[1].ratios.len(), s[1].median_ratio), (1, Some(2.0)));
        let text = render_summary(&s);
        assert!(
            text.contains("udp: logship/rsyslog stored/s by round [0.90 1.20 1.10], median 1.10, at least rsyslog's in 2 of 3"),
            "{text}"
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
