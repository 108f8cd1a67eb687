//! Forwarding to the SOC (issue 10): a real rsyslog from Debian, started here with its own
//! config (`imtcp` with the `gtls` stream driver, a CA made here), receives the store's records
//! as RFC 5424 over TLS; its file (one JSON object per message: the structured data and the
//! MSG, both JSON-escaped by rsyslog itself) is checked against the store: every `event_id`,
//! every byte of every raw text (newlines, quotes, `]`, `=`, `\`, Japanese).
//!
//! Also: a second forwarder to a dead address never holds back the live one; rsyslog stopped
//! for 60 s mid-stream and a SIGKILL of the collector lose nothing (ingest rates before and
//! during the outage are printed); the normalizer killed mid-catch-up resumes from its cursor,
//! with every record's fields column written exactly once; the collector's signed checkpoints
//! reach rsyslog through a forwarder filtered to one dataset, and the file rsyslog wrote lets
//! `verify --checkpoint` catch blocks cut from the end of the store.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use logship_e2e::{
    Agent, AgentOpts, Collector, CollectorOpts, FileInput, KILL_POLL, Proc, Sandbox, Store, bin,
    free_port, poll_until, run_test, wait_until,
};
use logship_store::COLLECTOR_IDENTITY;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use serde_json::Value;

pub(crate) const ARRIVAL: Duration = Duration::from_secs(600);
/// The agents' multiline rule: a record starts with a date.
const MULTILINE: &str = r"multiline = { start = '^\d{4}-\d{2}-\d{2} ', timeout_ms = 300 }";

/// Raw text of record `i`: hostile for syslog framing and structured data on purpose; every
/// fifth record spans three lines.
pub(crate) fn record(i: u64) -> String {
    let mut s = format!(
        "2026-11-29 10:00:00 rec={i:09} quote\" bracket] eq=a=b back\\slash [x@1 k=\"v\"] 日本語のログ 終わり"
    );
    if i.is_multiple_of(5) {
        s.push_str(&format!(
            "\n  second line ] \" \\ = of {i}\n\tthird line 文字 {i}"
        ));
    }
    s
}

pub(crate) fn write_records(path: &Path, range: std::ops::Range<u64>) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    let mut buf = String::new();
    for i in range {
        buf.push_str(&record(i));
        buf.push('\n');
        if buf.len() > 1 << 20 {
            f.write_all(buf.as_bytes())?;
            buf.clear();
        }
    }
    f.write_all(buf.as_bytes())?;
    Ok(())
}

/// The record number in a raw text made by [`record`].
pub(crate) fn record_number(raw: &str) -> Option<u64> {
    let at = raw.find("rec=")? + 4;
    raw.get(at..at + 9)?.parse().ok()
}

/// CA and a server certificate for localhost / 127.0.0.1, as PEM files in `dir`.
pub(crate) fn make_pki(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.distinguished_name
        .push(DnType::CommonName, "forwarding test SOC CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key)?;
    std::fs::write(dir.join("soc-ca.pem"), ca_cert.pem())?;
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
    std::fs::write(dir.join("siem.pem"), cert.pem())?;
    std::fs::write(dir.join("siem.key"), key.serialize_pem())?;
    Ok(())
}

fn find_rsyslogd() -> Result<PathBuf> {
    for dir in ["/usr/sbin", "/sbin", "/usr/bin"] {
        let p = Path::new(dir).join("rsyslogd");
        if p.is_file() {
            return Ok(p);
        }
    }
    bail!("rsyslogd not found: install the Debian packages rsyslog and rsyslog-gnutls")
}

/// A private rsyslogd standing in for the SOC's SIEM: `imtcp` over TLS (gtls) on `port`,
/// writing each message as one JSON line `{"sd": STRUCTURED-DATA, "msg": MSG}` to `out`.
/// Control characters are kept as received (no `#012` escaping) and its queue is drained at
/// shutdown, so a stop loses nothing it had read.
struct Siem {
    conf: PathBuf,
    work: PathBuf,
    out: PathBuf,
    proc: Option<Proc>,
}

impl Siem {
    fn new(sb: &Sandbox, pki: &Path, port: u16) -> Result<Siem> {
        let work = sb.path().join("siem");
        std::fs::create_dir_all(&work)?;
        let conf = work.join("rsyslog.conf");
        let out = work.join("received.jsonl");
        let p = |f: &str| pki.join(f).display().to_string();
        std::fs::write(
            &conf,
            format!(
                r#"global(workDirectory="{work}" maxMessageSize="256k"
       parser.escapeControlCharactersOnReceive="off"
       DefaultNetstreamDriverCAFile="{ca}"
       DefaultNetstreamDriverCertFile="{cert}"
       DefaultNetstreamDriverKeyFile="{key}")
main_queue(queue.size="200000" queue.timeoutShutdown="60000")
module(load="imtcp" StreamDriver.Name="gtls" StreamDriver.Mode="1" StreamDriver.AuthMode="anon")
input(type="imtcp" port="{port}" ruleset="siem")
template(name="keep" type="list") {{
  constant(value="{{\"sd\":\"")
  property(name="structured-data" format="json")
  constant(value="\",\"msg\":\"")
  property(name="msg" format="json")
  constant(value="\"}}\n")
}}
ruleset(name="siem") {{
  action(type="omfile" file="{out}" template="keep")
}}
"#,
                work = work.display(),
                ca = p("soc-ca.pem"),
                cert = p("siem.pem"),
                key = p("siem.key"),
                out = out.display(),
            ),
        )?;
        let check = Command::new(find_rsyslogd()?)
            .arg("-N1")
            .arg("-f")
            .arg(&conf)
            .output()?;
        ensure!(
            check.status.success(),
            "rsyslog rejected {}: {}",
            conf.display(),
            String::from_utf8_lossy(&check.stderr)
        );
        Ok(Siem {
            conf,
            work,
            out,
            proc: None,
        })
    }

    fn start(&mut self, sb: &Sandbox, port: u16) -> Result<()> {
        let mut cmd = Command::new(find_rsyslogd()?);
        cmd.arg("-n")
            .arg("-f")
            .arg(&self.conf)
            .arg("-i")
            .arg(self.work.join("rsyslog.pid"));
        self.proc = Some(Proc::spawn("rsyslog", cmd, &sb.log_path("rsyslog"))?);
        wait_until(Duration::from_secs(30), "rsyslog listening", || {
            Ok(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok())
        })
    }

    /// Stops rsyslog with SIGTERM (it drains its queue to the file first).
    fn stop(&mut self) -> Result<()> {
        match self.proc.take() {
            Some(p) => p.terminate(Duration::from_secs(90)),
            None => Ok(()),
        }
    }

    /// (record number -> how many times received, event ids -> count, bad lines).
    fn received(&self) -> Result<Received> {
        let mut r = Received::default();
        let file = match std::fs::File::open(&self.out) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(r),
            Err(e) => return Err(e.into()),
        };
        for line in BufReader::with_capacity(1 << 20, file).lines() {
            let line = line?;
            let Ok(v) = serde_json::from_str::<Value>(&line) else {
                // rsyslog may be writing this line right now.
                r.partial += 1;
                continue;
            };
            let sd = v["sd"].as_str().unwrap_or_default();
            let msg = v["msg"].as_str().unwrap_or_default().to_string();
            let id = sd_param(sd, "event_id").unwrap_or_default();
            *r.ids.entry(id.clone()).or_default() += 1;
            r.msgs.insert(id, msg);
            r.lines += 1;
        }
        Ok(r)
    }
}

#[derive(Default)]
struct Received {
    ids: HashMap<String, u32>,
    msgs: HashMap<String, String>,
    lines: u64,
    partial: u64,
}

/// The unescaped value of `name` in the first SD element holding it.
fn sd_param(sd: &str, name: &str) -> Option<String> {
    let start = sd.find(&format!(" {name}=\""))? + name.len() + 3;
    let mut out = String::new();
    let mut chars = sd[start..].chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push(chars.next()?),
            '"' => return Some(out),
            c => out.push(c),
        }
    }
    None
}

/// A running rsyslog SIEM (TLS, with a CA made for it) and a collector, not started, with the
/// CA as `soc-ca.pem` in its data directory and `tables(siem port)` added to its config; and
/// the SIEM's port.
fn siem_and_collector(
    sb: &Sandbox,
    tables: impl Fn(u16) -> String,
) -> Result<(Siem, Collector, u16)> {
    let pki = sb.path().join("pki");
    make_pki(&pki)?;
    let siem_port = free_port();
    let mut siem = Siem::new(sb, &pki, siem_port)?;
    siem.start(sb, siem_port)?;
    let collector = Collector::init(sb, "collector", &CollectorOpts::default())?;
    std::fs::copy(
        pki.join("soc-ca.pem"),
        collector.data_dir().join("soc-ca.pem"),
    )?;
    add_forward(&collector, &tables(siem_port))?;
    Ok((siem, collector, siem_port))
}

/// Appends `[[forward]]` tables to the collector's config.
pub(crate) fn add_forward(collector: &Collector, tables: &str) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(collector.data_dir().join("collector.toml"))?;
    write!(f, "\n{tables}\n")?;
    Ok(())
}

pub(crate) fn forwarder(collector: &Collector, name: &str) -> Result<Value> {
    Ok(collector
        .status()?
        .map(|s| s["forwarders"][name].clone())
        .unwrap_or(Value::Null))
}

/// `forwarders --format json` as one object per forwarder name.
pub(crate) fn forwarders_cmd(data_dir: &Path) -> Result<HashMap<String, Value>> {
    let out = Command::new(bin("logship-collector"))
        .arg("forwarders")
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--format", "json"])
        .output()?;
    ensure!(
        out.status.success(),
        "forwarders failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut m = HashMap::new();
    for line in String::from_utf8(out.stdout)?.lines() {
        let v: Value = serde_json::from_str(line)?;
        m.insert(v["name"].as_str().unwrap_or_default().to_string(), v);
    }
    Ok(m)
}

/// Every stored record: event id -> raw text.
pub(crate) fn stored(store: &Store) -> Result<HashMap<String, String>> {
    let mut m = HashMap::new();
    store.search_each(&[], |rec| {
        m.insert(
            rec["event_id"].as_str().unwrap_or_default().to_string(),
            rec["raw"].as_str().unwrap_or_default().to_string(),
        );
        Ok(())
    })?;
    Ok(m)
}

pub(crate) fn agent_with_file(sb: &Sandbox, collector: &Collector, log: &Path) -> Result<Agent> {
    let mut input = FileInput::new("app", log);
    input.extra.push(MULTILINE.to_string());
    let mut opts = AgentOpts::new(collector, vec![input]);
    opts.spool_max_bytes = 512 << 20;
    opts.spool_segment_max_bytes = 8 << 20;
    Agent::enroll(sb, collector, "plant-1", &opts)
}

fn records_stored(collector: &Collector) -> Result<u64> {
    Ok(collector
        .status()?
        .and_then(|s| s["records_stored"].as_u64())
        .unwrap_or(0))
}

/// Writes `n` records starting at `from` and returns the store's ingest rate (records per
/// second from the write until they are all stored).
fn burst(collector: &Collector, log: &Path, from: u64, n: u64) -> Result<f64> {
    let before = records_stored(collector)?;
    let started = Instant::now();
    write_records(log, from..from + n)?;
    wait_until(ARRIVAL, "burst stored", || {
        Ok(records_stored(collector)? >= before + n)
    })?;
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

#[test]
fn forwards_200000_records_over_tls_to_rsyslog_once_each_byte_for_byte_past_a_dead_forwarder() {
    run_test(|sb| {
        let pki = sb.path().join("pki");
        make_pki(&pki)?;
        let siem_port = free_port();
        let mut siem = Siem::new(sb, &pki, siem_port)?;
        siem.start(sb, siem_port)?;
        let mut collector = Collector::init(sb, "collector", &CollectorOpts::default())?;
        std::fs::copy(
            pki.join("soc-ca.pem"),
            collector.data_dir().join("soc-ca.pem"),
        )?;
        let dead = free_port();
        add_forward(
            &collector,
            &format!(
                "[[forward]]\nname = \"soc\"\nformat = \"syslog\"\nurl = \"tls://localhost:{siem_port}\"\n\
                 ca_cert = \"soc-ca.pem\"\n\n\
                 [[forward]]\nname = \"dead\"\nformat = \"syslog\"\nurl = \"tls://127.0.0.1:{dead}\"\n\
                 ca_cert = \"soc-ca.pem\"\n"
            ),
        )?;
        collector.start()?;
        let log = sb.path().join("app.log");
        const N: u64 = 200_000;
        write_records(&log, 0..N)?;
        let mut agent = agent_with_file(sb, &collector, &log)?;
        agent.start()?;
        let started = Instant::now();
        wait_until(ARRIVAL, "200,000 records delivered to rsyslog", || {
            agent.check_alive()?;
            let soc = forwarder(&collector, "soc")?;
            Ok(soc["delivered"].as_u64() == Some(N) && soc["lag_records"].as_u64() == Some(0))
        })?;
        let took = started.elapsed();
        // The dead one kept failing, counted, and never delivered anything.
        let dead_status = forwarder(&collector, "dead")?;
        ensure!(
            dead_status["delivered"].as_u64() == Some(0),
            "{dead_status}"
        );
        ensure!(dead_status["errors"].as_u64() > Some(0), "{dead_status}");
        ensure!(
            dead_status["lag_records"].as_u64() == Some(N),
            "{dead_status}"
        );
        ensure!(
            dead_status["last_error"]
                .as_str()
                .is_some_and(|e| !e.is_empty()),
            "{dead_status}"
        );
        let shown = forwarders_cmd(collector.data_dir())?;
        ensure!(shown["soc"]["lag_records"].as_u64() == Some(0), "{shown:?}");
        ensure!(
            shown["dead"]["lag_records"].as_u64() == Some(N),
            "{shown:?}"
        );
        ensure!(
            shown["soc"]["last_event_id"]
                .as_str()
                .is_some_and(|e| e.len() == 32),
            "{shown:?}"
        );
        // rsyslog has written everything it got once its queue drained: stop it.
        siem.stop()?;
        let got = siem.received()?;
        ensure!(
            got.partial == 0,
            "{} unparseable lines in rsyslog's file",
            got.partial
        );
        let store = stored(&collector.store())?;
        ensure!(
            store.len() as u64 == N,
            "store holds {} records",
            store.len()
        );
        let mut numbers = vec![0u8; N as usize];
        for (id, raw) in &store {
            let times = got.ids.get(id).copied().unwrap_or(0);
            ensure!(times == 1, "event {id} received {times} times");
            let msg = &got.msgs[id];
            ensure!(
                msg == raw,
                "event {id}: rsyslog got {msg:?}, the store holds {raw:?}"
            );
            let i = record_number(raw).context("record number")?;
            ensure!(
                raw == &record(i),
                "stored raw of record {i} differs: {raw:?}"
            );
            numbers[i as usize] += 1;
        }
        ensure!(got.lines == N, "rsyslog wrote {} messages", got.lines);
        ensure!(
            numbers.iter().all(|c| *c == 1),
            "record numbers not each once"
        );
        println!(
            "forwarded {N} records to rsyslog over TLS in {:.1} s ({:.0} records/s, agent \
             shipping and collector ingest included), with a dead second forwarder",
            took.as_secs_f64(),
            N as f64 / took.as_secs_f64()
        );
        // Replay: refused while the collector runs, then moves the cursor back.
        let data_dir = collector.data_dir().to_path_buf();
        let replay = |since: &str| {
            Command::new(bin("logship-collector"))
                .args([
                    "forwarders",
                    "replay",
                    "soc",
                    "--since",
                    since,
                    "--data-dir",
                ])
                .arg(&data_dir)
                .output()
        };
        let refused = replay("1d")?;
        ensure!(
            !refused.status.success()
                && String::from_utf8_lossy(&refused.stderr).contains("collector is running"),
            "replay while running: {refused:?}"
        );
        agent.stop()?;
        collector.stop()?;
        let done = replay("1d")?;
        ensure!(done.status.success(), "replay: {done:?}");
        let shown = forwarders_cmd(collector.data_dir())?;
        // Replayed: every record again, and the collector's own signed checkpoint(s) (one at
        // least, signed at the stop), which every forwarder carries.
        let checkpoints = collector.store().count(&["--agent", COLLECTOR_IDENTITY])?;
        ensure!(checkpoints >= 1, "no checkpoint signed at the stop");
        ensure!(
            shown["soc"]["lag_records"].as_u64() == Some(N + checkpoints),
            "{checkpoints} checkpoints: {shown:?}"
        );
        ensure!(
            shown["soc"]["state"].as_str() == Some("stopped"),
            "{shown:?}"
        );
        Ok(())
    });
}

#[test]
fn rsyslog_down_60_s_and_a_collector_sigkill_lose_nothing_and_ingest_goes_on() {
    run_test(|sb| {
        let (mut siem, mut collector, siem_port) = siem_and_collector(sb, |siem_port| {
            format!(
                "[[forward]]\nname = \"soc\"\nformat = \"syslog\"\nurl = \"tls://localhost:{siem_port}\"\n\
                 ca_cert = \"soc-ca.pem\"\n"
            )
        })?;
        collector.start()?;
        let log = sb.path().join("app.log");
        let mut agent = agent_with_file(sb, &collector, &log)?;
        agent.start()?;
        const BURST: u64 = 50_000;
        // Before: ingest while forwarding.
        let before = burst(&collector, &log, 0, BURST)?;
        wait_until(ARRIVAL, "forwarding under way", || {
            Ok(forwarder(&collector, "soc")?["delivered"].as_u64() > Some(0))
        })?;
        let stopped = Instant::now();
        siem.stop()?;
        let at_stop = forwarder(&collector, "soc")?;
        // During the outage: the same burst again.
        let during = burst(&collector, &log, BURST, BURST)?;
        wait_until(ARRIVAL, "the forwarder notices the outage", || {
            Ok(forwarder(&collector, "soc")?["errors"].as_u64() > Some(0))
        })?;
        std::thread::sleep(Duration::from_secs(60).saturating_sub(stopped.elapsed()));
        siem.start(sb, siem_port)?;
        // Kill the collector while it forwards the backlog.
        let delivered_before_restart = forwarder(&collector, "soc")?["delivered"]
            .as_u64()
            .unwrap_or(0);
        wait_until(ARRIVAL, "forwarding resumed", || {
            Ok(
                forwarder(&collector, "soc")?["delivered"].as_u64()
                    > Some(delivered_before_restart),
            )
        })?;
        collector.kill9()?;
        collector.start()?;
        let total = 2 * BURST;
        wait_until(ARRIVAL, "backlog delivered after the restart", || {
            agent.check_alive()?;
            Ok(records_stored(&collector)? == total
                && forwarder(&collector, "soc")?["lag_records"].as_u64() == Some(0))
        })?;
        siem.stop()?;
        let got = siem.received()?;
        let store = stored(&collector.store())?;
        ensure!(store.len() as u64 == total, "store holds {}", store.len());
        let missing: Vec<_> = store
            .keys()
            .filter(|id| !got.ids.contains_key(*id))
            .collect();
        ensure!(
            missing.is_empty(),
            "{} records never reached rsyslog (first {:?})",
            missing.len(),
            missing.first()
        );
        for (id, raw) in &store {
            ensure!(&got.msgs[id] == raw, "event {id} differs");
        }
        let repeats: u64 = got.ids.values().map(|c| u64::from(c - 1)).sum();
        println!(
            "ingest {before:.0} records/s before the outage (forwarding), {during:.0} records/s \
             with rsyslog down; status at the stop: {at_stop}; {repeats} records sent twice \
             (at-least-once across the outage and the SIGKILL), none missing"
        );
        agent.stop()?;
        collector.stop()
    });
}

/// A forwarder killed in the middle of a backlog resumes exactly at its persisted cursor: what
/// it sends twice is exactly what reached the destination after the cursor's last commit (the
/// batches not yet settled), nothing before it, and nothing is skipped.
#[test]
fn a_forwarder_killed_mid_catch_up_resends_exactly_what_its_persisted_cursor_had_not_passed() {
    run_test(|sb| {
        // No checkpoint records: the store holds the agent's records only, in file order.
        let (mut siem, mut collector, _) = siem_and_collector(sb, |siem_port| {
            format!(
                "[integrity]\ncheckpoint_every_secs = 86400\n\n\
                 [[forward]]\nname = \"soc\"\nformat = \"syslog\"\n\
                 url = \"tls://localhost:{siem_port}\"\nca_cert = \"soc-ca.pem\"\n"
            )
        })?;
        collector.start()?;
        let log = sb.path().join("app.log");
        let mut agent = agent_with_file(sb, &collector, &log)?;
        agent.start()?;
        const N: u64 = 300_000;
        burst(&collector, &log, 0, N)?;
        wait_until(ARRIVAL, "forwarding under way", || {
            Ok(forwarder(&collector, "soc")?["delivered"].as_u64() > Some(10_000))
        })?;
        agent.stop()?;
        collector.kill9()?;

        // What the forwarder's cursor says it delivered, read with the collector down.
        let lag = forwarders_cmd(collector.data_dir())?["soc"]["lag_records"]
            .as_u64()
            .context("lag_records of the stopped collector's forwarder")?;
        ensure!(
            lag > 0 && lag < N,
            "the kill came after the forwarder had finished (lag {lag}); nothing to show"
        );
        let passed = N - lag; // records 0..passed are behind the persisted cursor
        // What rsyslog got before the restart (once its file stops growing).
        let mut before = siem.received()?;
        loop {
            std::thread::sleep(Duration::from_secs(2));
            let now = siem.received()?;
            if now.lines == before.lines && now.partial == 0 {
                break;
            }
            before = now;
        }
        // The agent's records by number (the collector's own records, such as the checkpoint
        // it signs when it stops, have none).
        let number = |got: &Received, id: &String| record_number(&got.msgs[id]);
        let got_before: std::collections::HashSet<u64> = before
            .ids
            .keys()
            .filter_map(|id| number(&before, id))
            .collect();
        ensure!(
            before.ids.values().all(|c| *c == 1),
            "records repeated before the kill"
        );

        collector.start()?;
        wait_until(ARRIVAL, "backlog delivered after the restart", || {
            Ok(
                forwarders_cmd(collector.data_dir())?["soc"]["lag_records"].as_u64() == Some(0)
                    && forwarder(&collector, "soc")?["lag_records"].as_u64() == Some(0),
            )
        })?;
        collector.stop()?;
        siem.stop()?;
        let got = siem.received()?;
        let mut twice = std::collections::BTreeSet::new();
        let mut seen = std::collections::HashSet::new();
        for (id, count) in &got.ids {
            let Some(n) = number(&got, id) else {
                continue;
            };
            ensure!(*count <= 2, "record {n} arrived {count} times");
            seen.insert(n);
            if *count == 2 {
                twice.insert(n);
            }
        }
        let missing = (0..N).filter(|n| !seen.contains(n)).count();
        ensure!(missing == 0, "{missing} records never reached rsyslog");
        // Resent = exactly those that had arrived but were past the persisted cursor.
        let expected: std::collections::BTreeSet<u64> = got_before
            .iter()
            .copied()
            .filter(|n| *n >= passed)
            .collect();
        ensure!(
            twice.iter().all(|n| *n >= passed),
            "a record behind the persisted cursor was sent again (first {:?}, cursor at {passed})",
            twice.iter().next()
        );
        ensure!(
            twice == expected,
            "sent twice: {} records, expected the {} that arrived past the cursor at {passed}",
            twice.len(),
            expected.len()
        );
        println!(
            "killed with {} of {N} records at rsyslog and the cursor at {passed}: {} sent twice \
             (all past the cursor), none missing",
            got_before.len(),
            twice.len()
        );
        Ok(())
    });
}

/// (first_seq, count, columns) of every agent block of the store: how many fields columns its
/// segment's sidecar holds for it.
fn sidecar_columns(data_dir: &Path) -> Result<Vec<(u64, u32, u32)>> {
    Ok(logship_store::fields::coverage(&data_dir.join("store"))?
        .into_iter()
        // The collector's own checkpoint stream has seqs of its own.
        .filter(|b| b.agent != COLLECTOR_IDENTITY)
        .map(|b| (b.first_seq, b.count, b.columns))
        .collect())
}

#[test]
fn the_normalizer_killed_mid_catch_up_resumes_from_its_cursor() {
    run_test(|sb| {
        let mut collector = Collector::init(sb, "collector", &CollectorOpts::default())?;
        let toml = collector.data_dir().join("collector.toml");
        let config = std::fs::read_to_string(&toml)?;
        std::fs::write(&toml, format!("{config}\n[normalize]\nenabled = false\n"))?;
        collector.start()?;
        let log = sb.path().join("auth.log");
        const N: u64 = 150_000;
        let mut text = String::new();
        for i in 0..N {
            text.push_str(&format!(
                "Feb 12 14:10:21 gw sshd[{}]: Failed password for user{i} from 10.0.{}.{} port 22 ssh2\n",
                i % 30000,
                i % 250,
                i % 200
            ));
        }
        std::fs::write(&log, text)?;
        // Blocks of 100 records: 1,500 blocks, so the normalizer's first cursor commit (after
        // 256 blocks) comes a sixth of the way through, however fast it parses.
        let opts = AgentOpts {
            batch_max_records: 100,
            ..AgentOpts::new(&collector, vec![FileInput::new("auth", &log)])
        };
        let mut agent = Agent::enroll(sb, &collector, "gw", &opts)?;
        agent.start()?;
        wait_until(ARRIVAL, "all stored", || {
            Ok(records_stored(&collector)? == N)
        })?;
        agent.stop()?;
        collector.stop()?;
        // Normalization on: the normalizer catches up on the whole store from its cursor.
        std::fs::write(&toml, format!("{config}\n[normalize]\nenabled = true\n"))?;
        collector.start()?;
        let cursor = collector.data_dir().join("store/cursors/normalizer.cur");
        poll_until(ARRIVAL, KILL_POLL, "a first cursor commit", || {
            cursor.try_exists().map_err(Into::into)
        })?;
        collector.kill9()?;
        let columns = sidecar_columns(collector.data_dir())?;
        let done: u64 = columns
            .iter()
            .map(|c| u64::from(c.1) * u64::from(c.2))
            .sum();
        ensure!(
            done < N,
            "the normalizer caught up before it could be killed ({done})"
        );
        let at_kill = std::fs::read_to_string(&cursor)?;
        collector.start()?;
        wait_until(ARRIVAL, "normalizer caught up", || {
            let s = collector.status()?.unwrap_or_default();
            Ok(s["normalize_deferred_records"].as_u64() == Some(0)
                && s["normalized_records"].as_u64().is_some_and(|n| n > 0))
        })?;
        let log_text = std::fs::read_to_string(sb.log_path("collector"))?;
        let resumed = log_text
            .lines()
            .rfind(|l| l.contains("Normalizer resumes from its cursor"))
            .context("no resume line in the collector's log")?
            .to_string();
        // Every record has its fields column exactly once: none skipped, none twice.
        let mut seen = vec![0u8; N as usize + 1];
        for (first, count, columns) in sidecar_columns(collector.data_dir())? {
            for s in first..first + u64::from(count) {
                seen[s as usize] += columns as u8;
            }
        }
        let missing = (1..=N).filter(|s| seen[*s as usize] == 0).count();
        let twice = (1..=N).filter(|s| seen[*s as usize] > 1).count();
        ensure!(
            missing == 0 && twice == 0,
            "{missing} seqs without fields, {twice} twice"
        );
        ensure!(at_kill.starts_with("logship-cursor 1 "), "{at_kill}");
        let backlog: u64 = resumed
            .rsplit_once("records=")
            .and_then(|(_, n)| n.trim().parse().ok())
            .context("records= in the resume line")?;
        ensure!(
            backlog < N,
            "the restart did not resume from the cursor: {resumed}"
        );
        println!("cursor at the kill: {at_kill}; after restart: {resumed}");
        let hits = collector.store().count(&[
            "--where",
            "event.dataset=sshd",
            "--where",
            "user.name=user149999",
        ])?;
        ensure!(hits == 1, "{hits}");
        collector.stop()
    });
}

/// Python with `pycef` (PyPI, a CEF parser written elsewhere): `LOGSHIP_PYCEF_PYTHON`, else the
/// venv `scripts/test.sh` makes. Missing is a failure, not a skip.
fn pycef_python() -> Result<PathBuf> {
    let python = std::env::var_os("LOGSHIP_PYCEF_PYTHON").map_or_else(
        || PathBuf::from("/opt/logship-pycef/bin/python"),
        PathBuf::from,
    );
    let ok = Command::new(&python)
        .args(["-c", "import pycef"])
        .status()
        .is_ok_and(|s| s.success());
    ensure!(
        ok,
        "{} cannot import pycef: run scripts/test.sh (it makes that venv) or set \
         LOGSHIP_PYCEF_PYTHON",
        python.display()
    );
    Ok(python)
}

/// CEF extension/header unescaping (`\\`, `\=`, `\|`, `\n`, `\r`).
fn cef_unescape(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some(c) => out.push(c),
            None => out.push('\\'),
        }
    }
    out
}

fn cef_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().map(cef_text).collect::<Vec<_>>().join(","),
        v => v.to_string(),
    }
}

#[test]
fn cef_output_parses_with_pycef_and_every_mapped_field_round_trips() {
    run_test(|sb| {
        let python = pycef_python()?;
        let (mut siem, mut collector, _) = siem_and_collector(sb, |siem_port| {
            format!(
                "[[forward]]\nname = \"soc-cef\"\nformat = \"cef\"\nurl = \"tls://localhost:{siem_port}\"\n\
                 ca_cert = \"soc-ca.pem\"\n"
            )
        })?;
        collector.start()?;
        let auth = sb.path().join("auth.log");
        let mut text = String::new();
        for i in 0..3000u64 {
            text.push_str(&match i % 3 {
                0 => format!(
                    "Feb 12 14:10:21 gw sshd[{}]: Failed password for invalid user adm{i} from 10.1.{}.{} port {} ssh2\n",
                    1000 + i, i % 250, i % 200, 20000 + i
                ),
                1 => format!(
                    "Feb 12 14:10:22 gw sshd[{}]: Accepted publickey for user{i} from 192.168.{}.{} port {} ssh2: RSA SHA256:abc\n",
                    2000 + i, i % 250, i % 200, 30000 + i
                ),
                _ => format!("Feb 12 14:10:23 gw sudo:    alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/bin/ls -l {i}\n"),
            });
        }
        std::fs::write(&auth, text)?;
        let app = sb.path().join("app.log");
        write_records(&app, 0..2000)?;
        let mut multiline = FileInput::new("app", &app);
        multiline.extra.push(MULTILINE.to_string());
        let opts = AgentOpts::new(&collector, vec![FileInput::new("auth", &auth), multiline]);
        let mut agent = Agent::enroll(sb, &collector, "gw", &opts)?;
        agent.start()?;
        let n = 5000u64;
        wait_until(ARRIVAL, "all records delivered as CEF", || {
            agent.check_alive()?;
            let f = forwarder(&collector, "soc-cef")?;
            Ok(records_stored(&collector)? == n
                && f["lag_records"].as_u64() == Some(0)
                && f["delivered"].as_u64() == Some(n))
        })?;
        siem.stop()?;
        // pycef parses every message rsyslog wrote.
        let script = r#"
import json, sys, pycef
for line in open(sys.argv[1], encoding="utf-8"):
    msg = json.loads(line)["msg"]
    print(json.dumps(pycef.parse(msg), ensure_ascii=False))
"#;
        let out = Command::new(&python)
            .args(["-c", script])
            .arg(&siem.out)
            .output()?;
        ensure!(
            out.status.success(),
            "pycef: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut parsed: HashMap<String, Value> = HashMap::new();
        for line in String::from_utf8(out.stdout)?.lines() {
            let v: Value = serde_json::from_str(line)?;
            ensure!(v.is_object(), "pycef could not parse a message: {line}");
            ensure!(
                v["DeviceVendor"] == "logship" && v["CEFVersion"] == "0",
                "{v}"
            );
            parsed.insert(v["externalId"].as_str().unwrap_or_default().to_string(), v);
        }
        const MAPPED: &[(&str, &str)] = &[
            ("user.name", "suser"),
            ("user.target.name", "duser"),
            ("source.ip", "src"),
            ("source.port", "spt"),
            ("event.action", "act"),
            ("event.outcome", "outcome"),
            ("event.dataset", "cat"),
            ("process.name", "sproc"),
            ("process.pid", "spid"),
            ("process.command_line", "-"),
        ];
        let mut checked = 0u64;
        let mut records = 0u64;
        collector.store().search_each(&[], |rec| {
            records += 1;
            let id = rec["event_id"].as_str().unwrap_or_default();
            let p = parsed
                .get(id)
                .with_context(|| format!("event {id} not received"))?;
            let raw = rec["raw"].as_str().unwrap_or_default();
            let msg = cef_unescape(p["msg"].as_str().unwrap_or_default());
            ensure!(msg == raw, "event {id}: msg {msg:?} != raw {raw:?}");
            ensure!(
                p["input"] == rec["input"] && p["seq"].as_str() == Some(&rec["seq"].to_string()),
                "{p}"
            );
            ensure!(p["deviceExternalId"] == rec["agent"], "{p}");
            for (ecs, key) in MAPPED {
                let Some(v) = rec["fields"].get(*ecs) else {
                    continue;
                };
                if *key == "-" {
                    continue;
                }
                let got = p[*key].as_str().map(cef_unescape);
                ensure!(
                    got.as_deref() == Some(cef_text(v).as_str()),
                    "event {id} {ecs}: {got:?} vs {v}"
                );
                checked += 1;
            }
            Ok(())
        })?;
        ensure!(
            records == n && parsed.len() as u64 == n,
            "{records} stored, {} parsed",
            parsed.len()
        );
        ensure!(checked >= 3000 * 4, "only {checked} mapped values checked");
        println!("pycef parsed {n} CEF messages; {checked} mapped field values round-tripped");
        agent.stop()?;
        collector.stop()
    });
}

/// `verify --data-dir DIR --checkpoint FILE --format json`: (exit success, problems text).
fn verify_against(data_dir: &Path, soc_file: &Path) -> Result<(bool, String)> {
    let out = Command::new(bin("logship-collector"))
        .arg("verify")
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--checkpoint")
        .arg(soc_file)
        .args(["--format", "json"])
        .output()?;
    let doc: Value = serde_json::from_slice(&out.stdout)
        .with_context(|| format!("verify output: {}", String::from_utf8_lossy(&out.stderr)))?;
    Ok((out.status.success(), doc["problems"].to_string()))
}

/// The witness end to end: the collector's signed checkpoints travel to a real rsyslog like any
/// other record, even through a forwarder filtered to one dataset, and the file rsyslog wrote
/// is what `verify --checkpoint` needs to catch blocks cut from the end of the store, which the
/// chain alone cannot see.
#[test]
fn checkpoints_forwarded_to_rsyslog_let_verify_catch_blocks_cut_from_the_end() {
    run_test(|sb| {
        let (mut siem, mut collector, _) = siem_and_collector(sb, |siem_port| {
            format!(
                "[integrity]\ncheckpoint_every_secs = 1\n\n\
                 [[forward]]\nname = \"soc\"\nformat = \"syslog\"\nurl = \"tls://localhost:{siem_port}\"\n\
                 ca_cert = \"soc-ca.pem\"\ndatasets = [\"sshd\"]\n"
            )
        })?;
        collector.start()?;
        let log = sb.path().join("app.log");
        let mut agent = agent_with_file(sb, &collector, &log)?;
        agent.start()?;
        // Three rounds of lines, so checkpoints are signed over a growing store.
        for round in 0..3u64 {
            write_records(&log, round * 5_000..(round + 1) * 5_000)?;
            wait_until(
                ARRIVAL,
                "a round stored and a checkpoint signed after it",
                || {
                    agent.check_alive()?;
                    let stored = records_stored(&collector)?;
                    let signed = collector
                        .status()?
                        .and_then(|s| s["checkpoints_signed"].as_u64())
                        .unwrap_or(0);
                    Ok(stored == (round + 1) * 5_000 && signed > round)
                },
            )?;
        }
        wait_until(ARRIVAL, "the forwarder caught up", || {
            Ok(forwarder(&collector, "soc")?["lag_records"].as_u64() == Some(0))
        })?;
        agent.stop()?;
        collector.stop()?;
        siem.stop()?;
        let soc_file = siem.out.clone();
        let received = siem.received()?;
        // Only checkpoints match this forwarder's filter (the lines are not sshd).
        let checkpoints = std::fs::read_to_string(&soc_file)?
            .matches("LOGSHIP-CHECKPOINT v1 ")
            .count();
        ensure!(
            checkpoints >= 3 && received.lines as usize == checkpoints,
            "{checkpoints} checkpoints in {} lines received",
            received.lines
        );

        let (ok, problems) = verify_against(collector.data_dir(), &soc_file)?;
        ensure!(ok, "the untouched store against the SOC's file: {problems}");

        // Cut whole blocks from the end of the last segment: a shorter chain still links.
        let store_dir = collector.data_dir().join("store");
        let last = logship_store::tamper::segment_files(&store_dir)
            .last()
            .cloned()
            .context("a segment")?;
        let spans = logship_store::tamper::block_spans(&last, 16);
        ensure!(spans.len() >= 3, "last segment has {} blocks", spans.len());
        let (cut_at, _) = spans[spans.len() / 2];
        std::fs::OpenOptions::new()
            .write(true)
            .open(&last)?
            .set_len(cut_at)?;
        let (ok, problems) = verify_against(collector.data_dir(), &soc_file)?;
        ensure!(
            !ok && problems.contains("cut from the end"),
            "blocks cut from the end: {problems}"
        );
        Ok(())
    });
}

/// The params of SD element `id` in `sd` (values unescaped), with the `_json` param's members
/// as their JSON text.
fn sd_element(sd: &str, id: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let Some(start) = sd.find(&format!("[{id} ")) else {
        return out;
    };
    let mut chars = sd[start + id.len() + 2..].chars().peekable();
    loop {
        let name: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if chars.next() != Some('"') {
            break;
        }
        let mut value = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => value.extend(chars.next()),
                '"' => break,
                c => value.push(c),
            }
        }
        out.insert(name, value);
        if chars.next() != Some(' ') {
            break;
        }
    }
    if let Some(json) = out.remove("_json")
        && let Ok(Value::Object(m)) = serde_json::from_str::<Value>(&json)
    {
        for (k, v) in m {
            out.insert(k, v.as_str().map_or_else(|| v.to_string(), str::to_string));
        }
    }
    out
}

/// Fields the normalizer put in the store's sidecars reach the SIEM as they are, and blocks
/// whose sidecar is damaged (a flipped byte) or cut (a truncated tail) are normalized by the
/// forwarder instead: every record's forwarded fields equal the fields `search` gives it.
#[test]
fn forwarded_fields_are_the_same_from_the_sidecar_or_normalized_again() {
    run_test(|sb| {
        let (mut siem, mut collector, siem_port) = siem_and_collector(sb, |_| String::new())?;
        collector.start()?;
        let auth = sb.path().join("auth.log");
        const N: u64 = 30_000;
        let mut text = String::new();
        for i in 0..N {
            text.push_str(&match i % 3 {
                0 => format!(
                    "Feb 12 14:10:21 gw sshd[{}]: Failed password for invalid user adm{i} from 10.1.{}.{} port {} ssh2\n",
                    1000 + i % 9000, i % 250, i % 200, 20000 + i % 40000
                ),
                1 => format!(
                    "Feb 12 14:10:22 gw sshd[{}]: Accepted publickey for user{i} from 192.168.{}.{} port {} ssh2: RSA SHA256:abc\n",
                    2000 + i % 9000, i % 250, i % 200, 30000 + i % 30000
                ),
                _ => format!("Feb 12 14:10:23 gw sudo:    alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/bin/ls -l {i}\n"),
            });
        }
        std::fs::write(&auth, text)?;
        let opts = AgentOpts::new(&collector, vec![FileInput::new("auth", &auth)]);
        let mut agent = Agent::enroll(sb, &collector, "gw", &opts)?;
        agent.start()?;
        wait_until(
            ARRIVAL,
            "all stored and their fields in the sidecars",
            || {
                let columns = sidecar_columns(collector.data_dir())?;
                let covered: u64 = columns
                    .iter()
                    .map(|c| u64::from(c.1) * u64::from(c.2))
                    .sum();
                Ok(records_stored(&collector)? == N && covered == N)
            },
        )?;
        agent.stop()?;
        collector.stop()?;
        // Damage the largest sidecar: a byte flipped a quarter in (that entry's body fails its
        // CRC) and the last quarter cut off (those entries are gone).
        let mut fld: Vec<(u64, PathBuf)> = Vec::new();
        for day in std::fs::read_dir(collector.data_dir().join("store/segments"))? {
            for f in std::fs::read_dir(day?.path())? {
                let p = f?.path();
                if p.extension().is_some_and(|e| e == "fld") {
                    fld.push((std::fs::metadata(&p)?.len(), p));
                }
            }
        }
        fld.sort();
        let (len, path) = fld.pop().context("no sidecar")?;
        let mut bytes = std::fs::read(&path)?;
        bytes[len as usize / 4] ^= 0x5a;
        bytes.truncate(len as usize * 3 / 4);
        std::fs::write(&path, &bytes)?;
        let columns = sidecar_columns(collector.data_dir())?;
        let covered = columns.iter().filter(|c| c.2 > 0).count();
        let uncovered = columns.iter().filter(|c| c.2 == 0).count();
        ensure!(
            covered > 0 && uncovered > 0,
            "{covered} blocks covered, {uncovered} not"
        );
        add_forward(
            &collector,
            &format!(
                "[[forward]]\nname = \"soc\"\nformat = \"syslog\"\nurl = \"tls://localhost:{siem_port}\"\n\
                 ca_cert = \"soc-ca.pem\"\n"
            ),
        )?;
        collector.start()?;
        wait_until(ARRIVAL, "every record forwarded", || {
            let f = forwarder(&collector, "soc")?;
            Ok(f["lag_records"].as_u64() == Some(0)
                && f["delivered"].as_u64().is_some_and(|d| d >= N))
        })?;
        siem.stop()?;
        let mut sent: HashMap<String, HashMap<String, String>> = HashMap::new();
        for line in std::fs::read_to_string(&siem.out)?.lines() {
            let v: Value = serde_json::from_str(line)?;
            let sd = v["sd"].as_str().unwrap_or_default();
            if sd_param(sd, "agent").as_deref() != Some("gw") {
                continue;
            }
            let id = sd_param(sd, "event_id").context("event_id")?;
            ensure!(
                sent.insert(id.clone(), sd_element(sd, "fields@32473"))
                    .is_none(),
                "{id} twice"
            );
        }
        let (mut records, mut compared) = (0u64, 0u64);
        collector.store().search_each(&["--agent", "gw"], |rec| {
            records += 1;
            let id = rec["event_id"].as_str().unwrap_or_default();
            let got = sent
                .remove(id)
                .with_context(|| format!("event {id} not forwarded"))?;
            let want: HashMap<String, String> = rec["fields"]
                .as_object()
                .context("search fields")?
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.as_str().map_or_else(|| v.to_string(), str::to_string),
                    )
                })
                .collect();
            ensure!(
                got == want,
                "event {id}: forwarded {got:?}, search {want:?}"
            );
            compared += want.len() as u64;
            Ok(())
        })?;
        ensure!(
            records == N && sent.is_empty(),
            "{records} stored, {} extra sent",
            sent.len()
        );
        println!(
            "{N} records: fields of {covered} blocks from the sidecar, {uncovered} normalized again; {compared} field values equal"
        );
        collector.stop()
    });
}
