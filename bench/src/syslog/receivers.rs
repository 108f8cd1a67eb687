//! The two receivers of the syslog benchmark, each started fresh for one transport.

use std::fs;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::send::{kernel_udp_drops, send, udp_bound};
use super::{Messages, Observed, SyslogResult, Transport, wait_stored};
use crate::logship::{Layout, records_stored};
use crate::measure::{ProcSample, Sampler, free_port, wait_listening};
use crate::rsyslog::{Instance, LineCounter, QUEUE, find_rsyslogd};

/// How long a receiver may take to open its socket.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(30);
/// How long each program may take to stop on SIGTERM.
const STOP_DEADLINE: Duration = Duration::from_secs(15);
/// Socket receive buffer both receivers ask for (rsyslog `rcvbufSize`; the agent sets its own).
const RCVBUF: &str = "8m";

/// rsyslogd with imudp or imtcp on 127.0.0.1, writing each message's raw text as one line.
pub(crate) fn rsyslog(
    dir: &Path,
    messages: &Messages,
    transport: Transport,
    stall: Duration,
) -> anyhow::Result<SyslogResult> {
    let rsyslogd = find_rsyslogd()?;
    reset(dir)?;
    let port = free_port()?;
    let out = dir.join("received.log");
    let conf = receiver_conf(&dir.join("receiver"), transport, port, &out);
    let instance = Instance::prepare(dir, "receiver", &conf)?;
    instance.check(&rsyslogd)?;
    let mut child = instance.start(&rsyslogd)?;
    wait_socket(transport, port, &mut child)?;
    let mut sampler = Sampler::new(child.pid());
    let mut counter = LineCounter::new(out.clone());
    let mut at_stored = crate::measure::ProcSample::default();
    let to = SocketAddr::from(([127, 0, 0, 1], port));
    let (start, start_unix) = (Instant::now(), std::time::SystemTime::now());
    let sent_in = send(messages, transport, to).context("sending to rsyslog")?;
    let (wall, stored) = wait_stored(
        transport,
        messages.framed.len() as u64,
        start,
        stall,
        || counter.poll(),
        |progressed| {
            let s = sampler.update();
            if progressed {
                at_stored = s;
            }
            child.ensure_running()
        },
    )?;
    // The output file's last write (its mtime), as precise as logship's commit time.
    let modified = fs::metadata(&out).and_then(|m| m.modified()).ok();
    let wall = crate::logship::since_or_polled(modified, start_unix, wall);
    let kernel_drops = match transport {
        Transport::Udp => kernel_udp_drops(port),
        Transport::Tcp => 0,
    };
    let observed = Observed {
        stored,
        kernel_drops,
        counted_drops: 0,
        counted_includes_kernel: false,
        send: sent_in,
        wall,
        receiver: at_stored,
    };
    child.stop(STOP_DEADLINE)?;
    Ok(SyslogResult::new(
        "rsyslog",
        transport,
        messages.framed.len() as u64,
        &observed,
    ))
}

/// logship-agent with a `[[syslog]]` input, shipping to a collector; stored = the collector's
/// `records_stored`, counted drops = the agent's `udp_dropped` in `status.json`.
pub(crate) fn logship(
    dir: &Path,
    bins: &Path,
    messages: &Messages,
    transport: Transport,
    stall: Duration,
) -> anyhow::Result<SyslogResult> {
    reset(dir)?;
    let layout = Layout::prepare(dir, bins)?;
    let collector_port = free_port()?;
    layout.setup(SocketAddr::from(([127, 0, 0, 1], collector_port)))?;
    let port = free_port()?;
    let agent_toml = layout.agent_dir().join("agent.toml");
    let scheme = format!("{transport:?}").to_lowercase();
    let text = fs::read_to_string(&agent_toml)?.replace(
        "heartbeat_interval_secs = 30",
        "heartbeat_interval_secs = 1",
    ) + &format!(
        "\n[[syslog]]\nname = \"network\"\nlisten = [\"{scheme}://127.0.0.1:{port}\"]\nmax_message_bytes = 65536\n"
    );
    fs::write(&agent_toml, text)?;
    let mut collector = layout.start_collector(collector_port)?;
    let mut agent = layout.start_agent(None)?;
    wait_socket(transport, port, &mut agent)?;
    let (mut sa, mut sc) = (Sampler::new(agent.pid()), Sampler::new(collector.pid()));
    let mut at_stored = Default::default();
    let status = layout.data_dir().join("status.json");
    let to = SocketAddr::from(([127, 0, 0, 1], port));
    let (start, start_unix) = (Instant::now(), std::time::SystemTime::now());
    let sent_in = send(messages, transport, to).context("sending to the logship agent")?;
    let (wall, stored) = wait_stored(
        transport,
        messages.framed.len() as u64,
        start,
        stall,
        || Ok(records_stored(&status)),
        |progressed| {
            let (a, c) = (sa.update(), sc.update());
            if progressed {
                at_stored = (a, c);
            }
            agent.ensure_running()?;
            collector.ensure_running()
        },
    )?;
    // The collector's own time of the last commit, not the 500 ms cadence of status.json.
    let wall = crate::logship::exact_since(&status, "records_last_stored_time", start_unix, wall);
    let kernel_drops = match transport {
        Transport::Udp => kernel_udp_drops(port),
        Transport::Tcp => 0,
    };
    // Two heartbeats, so the agent's drop counter in status.json is current.
    std::thread::sleep(Duration::from_millis(2500));
    let counted_drops = udp_dropped(&status);
    // CPU when the last message was stored (the fields may still be catching up after it).
    let (a, c): (ProcSample, ProcSample) = at_stored;
    let peak = sa.update();
    tracing::info!(
        ?transport,
        agent_cpu_s = a.cpu_s,
        collector_cpu_s = c.cpu_s,
        "logship CPU by process, when the last message was stored."
    );
    let observed = Observed {
        stored,
        kernel_drops,
        counted_drops,
        counted_includes_kernel: true,
        send: sent_in,
        wall,
        // The receiving side is agent + collector: CPU summed, RSS of the agent.
        receiver: ProcSample {
            cpu_s: a.cpu_s + c.cpu_s,
            ..peak
        },
    };
    for (name, child) in [("agent", &mut agent), ("collector", &mut collector)] {
        if !child.stop(STOP_DEADLINE)? {
            tracing::warn!(name, "Process did not stop within its SIGTERM deadline.");
        }
    }
    Ok(SyslogResult::new(
        "logship",
        transport,
        messages.framed.len() as u64,
        &observed,
    ))
}

fn reset(dir: &Path) -> anyhow::Result<()> {
    if fs::symlink_metadata(dir).is_ok() {
        fs::remove_dir_all(dir).with_context(|| format!("cannot clear {}", dir.display()))?;
    }
    fs::create_dir_all(dir)?;
    Ok(())
}

fn wait_socket(
    transport: Transport,
    port: u16,
    child: &mut crate::measure::ChildGuard,
) -> anyhow::Result<()> {
    match transport {
        Transport::Tcp => wait_listening(port, child, LISTEN_TIMEOUT),
        Transport::Udp => {
            let start = Instant::now();
            while !udp_bound(port) {
                child.ensure_running()?;
                if start.elapsed() > LISTEN_TIMEOUT {
                    bail!("nothing bound to udp 127.0.0.1:{port} after {LISTEN_TIMEOUT:?}");
                }
                std::thread::sleep(crate::measure::POLL_INTERVAL);
            }
            Ok(())
        }
    }
}

/// Sum of every `udp_dropped` number in `status.json` (wherever the collector files it).
fn udp_dropped(status: &Path) -> u64 {
    fn walk(v: &serde_json::Value) -> u64 {
        match v {
            serde_json::Value::Object(m) => m
                .iter()
                .map(|(k, v)| {
                    if k == "udp_dropped" {
                        v.as_u64().unwrap_or_else(|| walk(v))
                    } else {
                        walk(v)
                    }
                })
                .sum(),
            serde_json::Value::Array(a) => a.iter().map(walk).sum(),
            _ => 0,
        }
    }
    fs::read(status)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .map_or(0, |v| walk(&v))
}

/// One rsyslogd receiving on `port` with imudp or imtcp, writing `%rawmsg%` lines to `out`.
fn receiver_conf(work: &Path, transport: Transport, port: u16, out: &Path) -> String {
    let input = match transport {
        Transport::Udp => format!(
            "module(load=\"imudp\" threads=\"1\" batchSize=\"128\")\n\
             input(type=\"imudp\" address=\"127.0.0.1\" port=\"{port}\" rcvbufSize=\"{RCVBUF}\")"
        ),
        Transport::Tcp => format!(
            "module(load=\"imtcp\" maxSessions=\"16\")\n\
             input(type=\"imtcp\" address=\"127.0.0.1\" port=\"{port}\")"
        ),
    };
    format!(
        r#"# logship-bench syslog receiver
global(workDirectory="{work}" maxMessageSize="64k")
main_queue({QUEUE} queue.workerThreads="1")
{input}
template(name="bench_raw" type="string" string="%rawmsg%\n")
action(type="omfile" file="{out}" template="bench_raw" ioBufferSize="256k" flushOnTXEnd="on")
"#,
        work = work.display(),
        out = out.display(),
    )
}
