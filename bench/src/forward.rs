//! `--mode forward` (issue 10): ingest while forwarding to a real rsyslog over TLS.
//!
//! ```text
//! mixed.log ─► agent ─mTLS gRPC─► collector store ─► forwarder "soc"  ─RFC 5425 TLS─► rsyslogd (imtcp gtls) ─► received.log
//!                                              └──► forwarder "dead" ─► tls://127.0.0.1:<nothing listens>
//! ```
//!
//! Four cases, each on a fresh collector data directory, run **interleaved** (`none`, `dead`,
//! `live`, `live+dead`, then again for every round) so that the load other programs put on the
//! machine falls on every case alike:
//!
//! - `none`: no forwarder: the ingest baseline;
//! - `dead`: one forwarder whose destination is down (connections refused): ingest beside it;
//! - `live`: one forwarder to a real Debian `rsyslogd` (`imtcp`, `gtls` stream driver, a CA made
//!   here);
//! - `live+dead`: the same, plus a second forwarder whose destination is down (connections
//!   refused).
//!
//! Measured per case: ingest (agent start until status.json says `records_stored` ≥ the file's
//! lines); for the live forwarder, its lag from status.json (`lag_records`, `lag_seconds`,
//! sampled every 50 ms; the collector rewrites the file about every 500 ms) at the end of ingest
//! and at its worst, and the time until it had delivered everything (`delivered` ≥ lines,
//! `lag_records` = 0); then `logship-collector forwarders --format json` once; then rsyslog's
//! file, checked: every line number of the file exactly once.
//!
//! Invariant: a case that loses or duplicates a line, or whose dead forwarder delivered
//! anything, is an error of the run (exit code 1), not a figure.

use std::fmt::Write as _;
use std::fs;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use serde::Serialize;
use serde_json::Value;

use crate::logship::Layout;
use crate::measure::{POLL_INTERVAL, Sampler, free_port, wait_listening};
use crate::report::FileInfo;
use crate::rsyslog::{Instance, QUEUE, find_rsyslogd};

/// How long a program may take to listen.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(30);
/// How long each program may take to stop on SIGTERM (rsyslog drains its queue first).
const STOP_DEADLINE: Duration = Duration::from_secs(60);

/// The forwarders of a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) enum Case {
    /// No forwarder.
    #[serde(rename = "none")]
    None,
    /// Only a forwarder whose destination is down.
    #[serde(rename = "dead")]
    Dead,
    /// One forwarder to rsyslog over TLS.
    #[serde(rename = "live")]
    Live,
    /// The live forwarder and one whose destination is down.
    #[serde(rename = "live+dead")]
    LiveAndDead,
}

pub(crate) const CASES: [Case; 4] = [Case::None, Case::Dead, Case::Live, Case::LiveAndDead];

impl Case {
    /// Whether the case has the live forwarder `soc`.
    fn live(self) -> bool {
        matches!(self, Case::Live | Case::LiveAndDead)
    }

    /// Whether the case has the forwarder `dead`.
    fn dead(self) -> bool {
        matches!(self, Case::Dead | Case::LiveAndDead)
    }
}

/// What one case of one round measured.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct CaseResult {
    pub(crate) case: String,
    pub(crate) round: u32,
    /// 1-minute load average of the machine when the case started and ended.
    pub(crate) loadavg_start: f64,
    pub(crate) loadavg_end: f64,
    pub(crate) ingest_s: f64,
    pub(crate) ingest_lines_per_s: f64,
    pub(crate) ingest_mb_per_s: f64,
    /// Collector CPU seconds during ingest (all threads: receive, store, normalizer, forwarders).
    pub(crate) collector_cpu_s: f64,
    /// Live forwarder: its lag when ingest completed.
    pub(crate) lag_records_at_ingest_end: Option<u64>,
    pub(crate) lag_seconds_at_ingest_end: Option<f64>,
    /// Live forwarder: the highest lag seen from agent start until everything was delivered.
    pub(crate) max_lag_records: Option<u64>,
    pub(crate) max_lag_seconds: Option<f64>,
    /// Live forwarder: from agent start until it had delivered every line.
    pub(crate) delivered_s: Option<f64>,
    /// Live forwarder: lines / `delivered_s`.
    pub(crate) delivered_per_s: Option<f64>,
    /// Lines rsyslog wrote (every line number once: checked).
    pub(crate) rsyslog_lines: Option<u64>,
    /// CPU seconds of the collector's forwarder threads (`forward-<name>`) and its normalizer
    /// thread over the whole case, read from `/proc/<pid>/task/*/stat` before stopping it.
    pub(crate) thread_cpu_s: std::collections::BTreeMap<String, f64>,
    /// `forwarders --format json` rows after delivery (live and dead).
    pub(crate) forwarders: Vec<Value>,
}

/// One status.json reading.
#[derive(Debug, Clone, Copy, Default)]
struct Reading {
    stored: u64,
    delivered: u64,
    lag_records: Option<u64>,
    lag_seconds: Option<f64>,
}

/// Runs every case `rounds` times, interleaved. Returns the results and the errors.
pub(crate) fn run(
    file: &FileInfo,
    out: &Path,
    bins: &Path,
    rounds: u32,
    stall: Duration,
    keep: bool,
) -> anyhow::Result<(Vec<CaseResult>, Vec<String>)> {
    let rsyslogd = find_rsyslogd()?;
    let pki = out.join("forward-pki");
    make_pki(&pki)?;
    let (mut results, mut errors) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        for case in CASES {
            let name = case_name(case);
            tracing::info!(round, case = name, "Running.");
            let work = out.join(format!("forward-{round}-{}", name.replace('+', "-")));
            match run_case(file, &work, bins, &rsyslogd, &pki, case, stall) {
                Ok(mut r) => {
                    r.round = round;
                    tracing::info!(
                        round,
                        case = name,
                        ingest_lines_per_s = r.ingest_lines_per_s,
                        delivered_s = r.delivered_s,
                        "Case done."
                    );
                    results.push(r);
                }
                Err(error) => {
                    tracing::error!(
                        round,
                        case = name,
                        error = format!("{error:#}"),
                        "Case failed."
                    );
                    errors.push(format!("round {round} {name}: {error:#}"));
                }
            }
            if !keep {
                remove_big_files(&work);
            }
        }
    }
    Ok((results, errors))
}

pub(crate) fn case_name(case: Case) -> &'static str {
    match case {
        Case::None => "none",
        Case::Dead => "dead",
        Case::Live => "live",
        Case::LiveAndDead => "live+dead",
    }
}

fn run_case(
    file: &FileInfo,
    work: &Path,
    bins: &Path,
    rsyslogd: &Path,
    pki: &Path,
    case: Case,
    stall: Duration,
) -> anyhow::Result<CaseResult> {
    let layout = Layout::prepare(work, bins)?;
    let port = free_port()?;
    layout.setup(SocketAddr::from(([127, 0, 0, 1], port)))?;
    let data = layout.data_dir().to_path_buf();
    let siem_dir = work.join("siem");
    let received = siem_dir.join("received.log");
    let mut siem = None;
    let mut tables = String::new();
    if case.live() {
        let siem_port = free_port()?;
        let conf = siem_conf(&siem_dir.join("receiver"), pki, siem_port, &received);
        let instance = Instance::prepare(&siem_dir, "receiver", &conf)?;
        instance.check(rsyslogd)?;
        let mut child = instance.start(rsyslogd)?;
        wait_listening(siem_port, &mut child, LISTEN_TIMEOUT)?;
        siem = Some(child);
        write!(
            tables,
            "\n[[forward]]\nname = \"soc\"\nformat = \"syslog\"\nurl = \"tls://localhost:{siem_port}\"\nca_cert = \"soc-ca.pem\"\n"
        )?;
    }
    if case.dead() {
        let dead = free_port()?;
        write!(
            tables,
            "\n[[forward]]\nname = \"dead\"\nformat = \"syslog\"\nurl = \"tls://127.0.0.1:{dead}\"\nca_cert = \"soc-ca.pem\"\n"
        )?;
    }
    if case != Case::None {
        fs::copy(pki.join("soc-ca.pem"), data.join("soc-ca.pem"))?;
        let toml = data.join("collector.toml");
        let mut config = fs::read_to_string(&toml)?;
        config.push_str(&tables);
        fs::write(&toml, config)?;
    }
    let mut collector = layout.start_collector(port)?;
    let mut result = CaseResult {
        case: case_name(case).into(),
        loadavg_start: loadavg(),
        ..CaseResult::default()
    };
    let status = data.join("status.json");
    let start = Instant::now();
    let mut agent = layout.start_agent(Some(&file.path))?;
    let mut sc = Sampler::new(collector.pid());
    let (mut max_records, mut max_seconds) = (0u64, 0f64);
    let mut note = |r: &Reading| {
        max_records = max_records.max(r.lag_records.unwrap_or(0));
        max_seconds = max_seconds.max(r.lag_seconds.unwrap_or(0.0));
    };
    let cpu_before = sc.update().cpu_s;
    let ingested = poll_until(
        stall,
        &status,
        |r| r.stored,
        file.lines,
        &mut note,
        || {
            sc.update();
            agent.ensure_running()?;
            collector.ensure_running()
        },
    )
    .context("the collector did not store every line")?;
    result.ingest_s = start.elapsed().as_secs_f64();
    result.collector_cpu_s = sc.update().cpu_s - cpu_before;
    result.ingest_lines_per_s = file.lines as f64 / result.ingest_s;
    result.ingest_mb_per_s = file.bytes as f64 / 1e6 / result.ingest_s;
    if case == Case::Dead {
        result.forwarders = forwarders_cmd(&layout, &data)?;
    }
    if case.live() {
        result.lag_records_at_ingest_end = ingested.lag_records;
        result.lag_seconds_at_ingest_end = ingested.lag_seconds;
        // Everything delivered: every line (the collector's own checkpoints may come on top)
        // and nothing left behind the cursor.
        let done = |r: &Reading| match r.lag_records {
            Some(0) => r.delivered,
            _ => r.delivered.min(file.lines.saturating_sub(1)),
        };
        poll_until(stall, &status, done, file.lines, &mut note, || {
            agent.ensure_running()?;
            collector.ensure_running()
        })
        .context("the live forwarder did not deliver every line")?;
        let took = start.elapsed().as_secs_f64();
        result.delivered_s = Some(took);
        result.delivered_per_s = Some(file.lines as f64 / took);
        result.max_lag_records = Some(max_records);
        result.max_lag_seconds = Some(max_seconds);
        result.forwarders = forwarders_cmd(&layout, &data)?;
    }
    result.loadavg_end = loadavg();
    result.thread_cpu_s = thread_cpu(collector.pid());
    for (name, child) in [("agent", &mut agent), ("collector", &mut collector)] {
        if !child.stop(STOP_DEADLINE)? {
            tracing::warn!(name, "Process did not stop within its SIGTERM deadline.");
        }
    }
    if let Some(mut child) = siem {
        child.stop(STOP_DEADLINE)?;
        result.rsyslog_lines = Some(check_received(&received, file.lines)?);
    }
    if case != Case::None {
        check_forwarders(&result.forwarders, case, file.lines)?;
    }
    Ok(result)
}

/// Reads status.json every [`POLL_INTERVAL`] until `progress` reaches `target`; fails when it
/// does not advance for `stall`. Every reading goes through `note`; returns the last one.
fn poll_until(
    stall: Duration,
    status: &Path,
    progress: impl Fn(&Reading) -> u64,
    target: u64,
    note: &mut impl FnMut(&Reading),
    mut on_poll: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<Reading> {
    let (mut best, mut last_change) = (0, Instant::now());
    loop {
        on_poll()?;
        let reading = read_status(status);
        note(&reading);
        let now = progress(&reading);
        if now >= target {
            return Ok(reading);
        }
        if now != best {
            (best, last_change) = (now, Instant::now());
        } else if last_change.elapsed() > stall {
            bail!("no progress for {stall:?}: {now} of {target}");
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// The figures of status.json this bench uses; zeros while it is missing or being replaced.
fn read_status(path: &Path) -> Reading {
    let Some(v) = fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
    else {
        return Reading::default();
    };
    let soc = &v["forwarders"]["soc"];
    Reading {
        stored: v["records_stored"].as_u64().unwrap_or(0),
        delivered: soc["delivered"].as_u64().unwrap_or(0),
        lag_records: soc["lag_records"].as_u64(),
        lag_seconds: soc["lag_seconds"].as_f64(),
    }
}

/// `logship-collector forwarders --data-dir D --format json`, one object per forwarder.
fn forwarders_cmd(layout: &Layout, data: &Path) -> anyhow::Result<Vec<Value>> {
    let out = Command::new(layout.collector_bin())
        .arg("forwarders")
        .arg("--data-dir")
        .arg(data)
        .args(["--format", "json"])
        .output()
        .context("cannot run logship-collector forwarders")?;
    ensure!(
        out.status.success(),
        "forwarders failed: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    String::from_utf8(out.stdout)?
        .lines()
        .map(|l| serde_json::from_str(l).context("forwarders printed a line that is not JSON"))
        .collect()
}

/// The live forwarder caught up; the dead one delivered nothing, counted errors and holds
/// back every line.
fn check_forwarders(rows: &[Value], case: Case, lines: u64) -> anyhow::Result<()> {
    let row = |name: &str| rows.iter().find(|r| r["name"] == name);
    if case.live() {
        let soc = row("soc").context("forwarders does not show \"soc\"")?;
        ensure!(
            soc["lag_records"].as_u64() == Some(0) && soc["delivered"].as_u64() >= Some(lines),
            "live forwarder after delivery: {soc}"
        );
    }
    if case.dead() {
        let dead = row("dead").context("forwarders does not show \"dead\"")?;
        ensure!(
            dead["delivered"].as_u64() == Some(0)
                && dead["errors"].as_u64() > Some(0)
                && dead["lag_records"].as_u64() >= Some(lines),
            "dead forwarder: {dead}"
        );
    }
    Ok(())
}

/// Checks rsyslog's file holds every line number 1..=`lines` exactly once; returns its lines.
fn check_received(path: &Path, lines: u64) -> anyhow::Result<u64> {
    let file = fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut seen = vec![false; usize::try_from(lines)? + 1];
    let (mut total, mut unique) = (0u64, 0u64);
    for line in BufReader::with_capacity(1 << 20, file).lines() {
        let line = line?;
        total += 1;
        // The collector's own signed checkpoints travel too; they carry no line number.
        let Some(seq) = crate::loggen::parse_seq(&line) else {
            continue;
        };
        let slot = seen
            .get_mut(usize::try_from(seq)?)
            .filter(|_| seq >= 1)
            .with_context(|| format!("rsyslog received line number {seq} of {lines}"))?;
        ensure!(!*slot, "rsyslog received line {seq} twice");
        *slot = true;
        unique += 1;
    }
    ensure!(
        unique == lines,
        "rsyslog received {unique} of {lines} lines"
    );
    Ok(total)
}

/// rsyslog standing in for the SOC's SIEM: `imtcp` with the `gtls` stream driver, each
/// message's MSG part written as one line.
pub(crate) fn siem_conf(work: &Path, pki: &Path, port: u16, out: &Path) -> String {
    let p = |f: &str| pki.join(f).display().to_string();
    format!(
        r#"# logship-bench forwarding destination (rsyslog over TLS)
global(workDirectory="{work}" maxMessageSize="64k"
       DefaultNetstreamDriverCAFile="{ca}"
       DefaultNetstreamDriverCertFile="{cert}"
       DefaultNetstreamDriverKeyFile="{key}")
main_queue({QUEUE} queue.workerThreads="1" queue.timeoutShutdown="60000")
module(load="imtcp" StreamDriver.Name="gtls" StreamDriver.Mode="1" StreamDriver.AuthMode="anon" maxSessions="16")
input(type="imtcp" address="127.0.0.1" port="{port}")
template(name="bench_msg" type="string" string="%msg%\n")
action(type="omfile" file="{out}" template="bench_msg" ioBufferSize="256k" flushOnTXEnd="on")
"#,
        work = work.display(),
        ca = p("soc-ca.pem"),
        cert = p("siem.pem"),
        key = p("siem.key"),
        out = out.display(),
    )
}

/// A CA and a server certificate for localhost / 127.0.0.1, as PEM files in `dir`.
fn make_pki(dir: &Path) -> anyhow::Result<()> {
    fs::create_dir_all(dir)?;
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.distinguished_name
        .push(DnType::CommonName, "logship-bench SOC CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key)?;
    fs::write(dir.join("soc-ca.pem"), ca_cert.pem())?;
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate()?;
    let mut p = CertificateParams::new(vec!["localhost".to_string()])?;
    p.distinguished_name.push(DnType::CommonName, "localhost");
    p.subject_alt_names
        .push(SanType::IpAddress("127.0.0.1".parse()?));
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = p.signed_by(&key, &issuer)?;
    fs::write(dir.join("siem.pem"), cert.pem())?;
    fs::write(dir.join("siem.key"), key.serialize_pem())?;
    Ok(())
}

/// CPU seconds (utime + stime) of the threads of `pid` named `forward-*` or `normalizer`.
fn thread_cpu(pid: u32) -> std::collections::BTreeMap<String, f64> {
    let mut out = std::collections::BTreeMap::new();
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for task in tasks.flatten() {
        let Ok(stat) = fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        let Some((head, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let name = head.split_once('(').map_or("", |(_, n)| n);
        if !(name.starts_with("forward-") || name == "normalizer") {
            continue;
        }
        // After the comm: state is field 0, utime 11 and stime 12.
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks: u64 = [11, 12]
            .iter()
            .filter_map(|&i| fields.get(i)?.parse::<u64>().ok())
            .sum();
        *out.entry(name.to_string()).or_default() +=
            ticks as f64 / crate::measure::clock_ticks_per_sec();
    }
    out
}

/// The 1-minute load average; 0 when unreadable.
fn loadavg() -> f64 {
    fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

fn remove_big_files(work: &Path) {
    let data = work.join("logship/collector");
    for dir in [data.join("store"), data.join("fields"), work.join("siem")] {
        if let Err(error) = fs::remove_dir_all(&dir)
            && error.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(%error, path = %dir.display(), "Could not remove a benchmark directory.");
        }
    }
}

/// The table: one row per case and round, then the median of each case.
pub(crate) fn render(file: &FileInfo, results: &[CaseResult]) -> String {
    let mut s = String::new();
    s += &format!(
        "forwarding: {} lines ({:.1} MB), cases interleaved; lag of the live forwarder \"soc\"\n",
        file.lines,
        file.bytes as f64 / 1e6
    );
    s += &format!(
        "{:<6} {:<10} {:>6} {:>9} {:>11} {:>8} {:>10} {:>8} {:>10} {:>8} {:>9} {:>10} {:>8} {:>8}\n",
        "round",
        "case",
        "load",
        "ingest s",
        "ingest l/s",
        "coll CPU",
        "lag@end",
        "lag@end",
        "max lag",
        "max lag",
        "deliv s",
        "deliv l/s",
        "soc CPU",
        "dead CPU"
    );
    s += &format!(
        "{:<6} {:<10} {:>6} {:>9} {:>11} {:>8} {:>10} {:>8} {:>10} {:>8} {:>9} {:>10} {:>8} {:>8}\n",
        "", "", "1-min", "", "", "s", "records", "s", "records", "s", "", "", "s", "s"
    );
    let opt_u = |v: Option<u64>| v.map_or("-".into(), |v| v.to_string());
    let opt_f = |v: Option<f64>, p: usize| v.map_or("-".into(), |v| format!("{v:.p$}"));
    for r in results {
        s += &format!(
            "{:<6} {:<10} {:>6.2} {:>9.2} {:>11.0} {:>8.2} {:>10} {:>8} {:>10} {:>8} {:>9} {:>10} {:>8} {:>8}\n",
            r.round,
            r.case,
            r.loadavg_start,
            r.ingest_s,
            r.ingest_lines_per_s,
            r.collector_cpu_s,
            opt_u(r.lag_records_at_ingest_end),
            opt_f(r.lag_seconds_at_ingest_end, 1),
            opt_u(r.max_lag_records),
            opt_f(r.max_lag_seconds, 1),
            opt_f(r.delivered_s, 2),
            opt_f(r.delivered_per_s, 0),
            opt_f(r.thread_cpu_s.get("forward-soc").copied(), 2),
            opt_f(r.thread_cpu_s.get("forward-dead").copied(), 2),
        );
    }
    for case in CASES {
        let rows: Vec<&CaseResult> = results
            .iter()
            .filter(|r| r.case == case_name(case))
            .collect();
        let m = |f: &dyn Fn(&CaseResult) -> Option<f64>| {
            crate::stats::median(rows.iter().filter_map(|r| f(r)).collect())
        };
        s += &format!(
            "{:<6} {:<10} {:>6} {:>9} {:>11} {:>8} {:>10} {:>8} {:>10} {:>8} {:>9} {:>10} {:>8} {:>8}\n",
            "median",
            case_name(case),
            opt_f(m(&|r| Some(r.loadavg_start)), 2),
            opt_f(m(&|r| Some(r.ingest_s)), 2),
            opt_f(m(&|r| Some(r.ingest_lines_per_s)), 0),
            opt_f(m(&|r| Some(r.collector_cpu_s)), 2),
            opt_f(m(&|r| r.lag_records_at_ingest_end.map(|v| v as f64)), 0),
            opt_f(m(&|r| r.lag_seconds_at_ingest_end), 1),
            opt_f(m(&|r| r.max_lag_records.map(|v| v as f64)), 0),
            opt_f(m(&|r| r.max_lag_seconds), 1),
            opt_f(m(&|r| r.delivered_s), 2),
            opt_f(m(&|r| r.delivered_per_s), 0),
            opt_f(m(&|r| r.thread_cpu_s.get("forward-soc").copied()), 2),
            opt_f(m(&|r| r.thread_cpu_s.get("forward-dead").copied()), 2),
        );
    }
    s
}

/// Writes `<out>/forward.json` (`{file, cases[]}`) and returns its path.
pub(crate) fn write_json(
    out: &Path,
    file: &FileInfo,
    results: &[CaseResult],
    errors: &[String],
) -> anyhow::Result<PathBuf> {
    let path = out.join("forward.json");
    let doc = serde_json::json!({ "file": file, "cases": results, "errors": errors });
    fs::write(&path, serde_json::to_vec_pretty(&doc)?)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn received_file_must_hold_every_line_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("r.log");
        let write = |body: &str| {
            let mut f = fs::File::create(&path).expect("create");
            f.write_all(body.as_bytes()).expect("write");
        };
        write("a seq=1\nLOGSHIP-CHECKPOINT x\nb seq=2\n");
        assert_eq!(check_received(&path, 2).expect("complete"), 3);
        write("a seq=1\nb seq=1\n");
        assert!(check_received(&path, 2).is_err(), "a repeat passed");
        write("a seq=1\n");
        assert!(check_received(&path, 2).is_err(), "a gap passed");
        write("a seq=1\nb seq=2\nc seq=3\n");
        assert!(check_received(&path, 2).is_err(), "an unknown line passed");
    }

    #[test]
    fn the_dead_forwarder_must_deliver_nothing() {
        let soc = serde_json::json!({"name": "soc", "lag_records": 0, "delivered": 10});
        let dead =
            serde_json::json!({"name": "dead", "lag_records": 10, "delivered": 0, "errors": 3});
        check_forwarders(&[soc.clone(), dead], Case::LiveAndDead, 10).expect("good");
        let sent =
            serde_json::json!({"name": "dead", "lag_records": 5, "delivered": 5, "errors": 3});
        assert!(check_forwarders(&[soc.clone(), sent], Case::LiveAndDead, 10).is_err());
        let behind = serde_json::json!({"name": "soc", "lag_records": 1, "delivered": 9});
        assert!(check_forwarders(&[behind], Case::Live, 10).is_err());
        let dead =
            serde_json::json!({"name": "dead", "lag_records": 10, "delivered": 0, "errors": 1});
        check_forwarders(&[dead], Case::Dead, 10).expect("dead alone");
        assert!(
            check_forwarders(&[], Case::Dead, 10).is_err(),
            "dead missing passed"
        );
    }

    #[test]
    fn siem_config_passes_rsyslogd_check() {
        // Fails (never skips) without Debian's rsyslog and rsyslog-gnutls (scripts/test.sh
        // installs both).
        let rsyslogd = find_rsyslogd().expect("rsyslogd is installed");
        let dir = tempfile::tempdir().expect("tempdir");
        make_pki(&dir.path().join("pki")).expect("pki");
        let conf = siem_conf(
            &dir.path().join("receiver"),
            &dir.path().join("pki"),
            6514,
            &dir.path().join("out.log"),
        );
        Instance::prepare(dir.path(), "receiver", &conf)
            .expect("prepare")
            .check(&rsyslogd)
            .expect("config valid");
    }

    #[test]
    fn thread_cpu_finds_named_threads_of_this_process() {
        let t = std::thread::Builder::new()
            .name("forward-test".into())
            .spawn(|| {
                let mut x = 0u64;
                for i in 0..50_000_000u64 {
                    x = x.wrapping_add(i * i);
                }
                std::thread::sleep(Duration::from_millis(300));
                x
            })
            .expect("spawn");
        std::thread::sleep(Duration::from_millis(100));
        let cpu = thread_cpu(std::process::id());
        assert!(cpu.contains_key("forward-test"), "{cpu:?}");
        assert!(!cpu.keys().any(|k| k.starts_with("main")), "{cpu:?}");
        t.join().expect("join");
    }
}
