//! Issue 9 item 5 end to end: the fleet view. One collector with `[agents] stale_after = "10s"`
//! (ten heartbeat intervals of the test agents, so a busy machine does not make a running agent
//! stale),
//! three agents with their own certificates (each with its own expiry) and spools, all
//! shipping; one is stopped. `logship-collector agents` then lists the two running agents with
//! host facts, IP addresses, certificate expiry and per-input lag, and the stopped one as stale;
//! the collector logs the stale agent exactly once, and once more when it is heard again. A
//! hostile heartbeat (thousands of inputs, junk addresses, a host name with a newline) stays
//! bounded in status.json and cannot forge a row or what the collector itself saw.

use std::io::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use logship_e2e::raw;
use logship_e2e::{
    Agent, AgentOpts, Collector, CollectorOpts, FileInput, Sandbox, bin, run_test, wait_until,
};
use logship_proto::v1::{HeartbeatRequest, HostFacts, InputPosition};
use serde_json::Value;

use crate::support::{append_numbered, rfc3339_in};

/// The three agents and the end of each one's certificate validity.
const AGENTS: [(&str, &str); 3] = [
    ("fleet-a", "2031-01-02T03:04:05Z"),
    ("fleet-b", "2032-02-03T04:05:06Z"),
    ("fleet-c", "2033-03-04T05:06:07Z"),
];

/// A last line without its newline, which fleet-b holds back (its idle flush is an hour), so
/// fleet-b's input stays exactly this many bytes behind its file.
const PARTIAL: &str = "a line still being written";

/// The stale time of the collector and of the listing.
const STALE: &str = "10s";

const WAIT: Duration = Duration::from_secs(60);

/// `agents --data-dir DIR ARGS`, piped (JSON unless `--format table`).
fn agents(collector: &Collector, args: &[&str]) -> Result<String> {
    let out = Command::new(bin("logship-collector"))
        .arg("agents")
        .arg("--data-dir")
        .arg(collector.data_dir())
        .args(args)
        .env("COLUMNS", "200")
        .output()?;
    ensure!(
        out.status.success(),
        "agents {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?)
}

/// `agents --format json` as objects by agent name.
fn agents_json(collector: &Collector) -> Result<serde_json::Map<String, Value>> {
    let text = agents(collector, &["--stale", STALE, "--format", "json"])?;
    text.lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).with_context(|| format!("JSON line: {l}"))?;
            Ok((v["agent"].as_str().context("agent name")?.to_owned(), v))
        })
        .collect()
}

/// Lines of the collector's log saying `what` about `agent`.
fn logged(sb: &Sandbox, what: &str, agent: &str) -> Result<usize> {
    let text = std::fs::read_to_string(sb.log_path("collector"))?;
    let field = format!("agent={agent} ");
    Ok(text
        .lines()
        .filter(|l| l.contains(what) && l.contains(&field))
        .count())
}

/// An agent named `name` whose certificate ends at `not_after`, tailing its own `logs/*.log`
/// with `lines` complete lines (plus an unterminated one when `partial`).
fn fleet_agent(
    sb: &Sandbox,
    collector: &Collector,
    name: &str,
    not_after: &str,
    lines: u64,
    partial: bool,
) -> Result<Agent> {
    let dir = sb.path().join(name);
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs)?;
    let file = logs.join("app.log");
    append_numbered(&file, 0, lines, 40)?;
    if partial {
        let mut f = std::fs::OpenOptions::new().append(true).open(&file)?;
        f.write_all(PARTIAL.as_bytes())?;
    }
    let not_before = rfc3339_in(-3600)?;
    collector.issue_agent_cert(
        name,
        &dir,
        &["--not-before", &not_before, "--not-after", not_after],
    )?;
    let mut input = FileInput::new("app", &logs.join("*.log"));
    if partial {
        input.idle_flush_ms = 3_600_000;
    }
    Agent::with_certs(sb, name, &dir, &AgentOpts::new(collector, vec![input]))
}

fn file_size(path: &Path) -> Result<u64> {
    Ok(std::fs::metadata(path)?.len())
}

#[test]
fn agents_lists_running_agents_and_marks_a_stopped_one_stale() {
    run_test(|sb| {
        let mut collector = Collector::init(sb, "collector", &CollectorOpts::default())?;
        let config = collector.data_dir().join("collector.toml");
        let mut toml = std::fs::read_to_string(&config)?;
        toml.push_str(&format!("\n[agents]\nstale_after = \"{STALE}\"\n"));
        std::fs::write(&config, toml)?;
        collector.start()?;
        let mut fleet = Vec::new();
        for (i, (name, not_after)) in AGENTS.iter().enumerate() {
            let lines = 50 * (i as u64 + 1);
            let mut agent =
                fleet_agent(sb, &collector, name, not_after, lines, *name == "fleet-b")?;
            agent.start()?;
            fleet.push(agent);
        }
        let app_log = |name: &str| sb.path().join(name).join("logs").join("app.log");

        // Every agent shipped everything and reported its position at the end of its file
        // (fleet-b: up to its unterminated last line).
        wait_until(WAIT, "all three agents caught up in status.json", || {
            let Some(status) = collector.status()? else {
                return Ok(false);
            };
            for (name, _) in AGENTS {
                let size = file_size(&app_log(name))?;
                let behind = if name == "fleet-b" {
                    PARTIAL.len() as u64
                } else {
                    0
                };
                let p = &status["agents"][name]["positions"][0];
                if p["size"].as_u64() != Some(size) || p["lag_bytes"].as_u64() != Some(behind) {
                    return Ok(false);
                }
            }
            Ok(true)
        })?;
        wait_until(WAIT, "50 + 100 + 150 records stored", || {
            Ok(collector.count()? == 300)
        })?;

        fleet[2].stop()?;
        wait_until(WAIT, "fleet-c marked stale in status.json", || {
            Ok(collector
                .status()?
                .is_some_and(|s| s["agents"]["fleet-c"]["stale"] == true))
        })?;
        // Let the status writer (twice a second) pass over the stale agent several more times:
        // it must not log it again.
        let marked = collector.status()?.context("status.json")?;
        let marked_at: jiff::Timestamp = marked["written_at"]
            .as_str()
            .context("written_at")?
            .parse()?;
        wait_until(WAIT, "status.json rewritten for 2 s more", || {
            let Some(s) = collector.status()? else {
                return Ok(false);
            };
            let at: jiff::Timestamp = s["written_at"].as_str().context("written_at")?.parse()?;
            Ok(at.duration_since(marked_at).as_secs() >= 2)
        })?;
        let status = collector.status()?.context("status.json")?;
        ensure!(status["agents_stale_after_secs"] == 10, "{status}");
        for name in ["fleet-a", "fleet-b"] {
            ensure!(status["agents"][name]["stale"] == false, "{name}: {status}");
        }

        let rows = agents_json(&collector)?;
        ensure!(rows.len() == 3, "three agents: {rows:?}");
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")?;
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")?;
        for (name, not_after) in AGENTS {
            let r = &rows[name];
            ensure!(
                r["cert_not_after"] == not_after,
                "{name} certificate expiry: {r}"
            );
            ensure!(r["host"] == host.trim(), "{name} host: {r}");
            ensure!(r["kernel_version"] == kernel.trim(), "{name} kernel: {r}");
            ensure!(
                r["os_name"].as_str().is_some_and(|s| !s.is_empty()),
                "{name} OS: {r}"
            );
            ensure!(
                r["agent_version"].as_str().is_some_and(|s| !s.is_empty()),
                "{r}"
            );
            let peer = r["peer_addr"].as_str().context("peer_addr")?;
            let peer: std::net::SocketAddr = peer.parse()?;
            let ips: Vec<std::net::IpAddr> = r["ip_addresses"]
                .as_array()
                .context("ip_addresses")?
                .iter()
                .map(|v| Ok(v.as_str().context("an address")?.parse()?))
                .collect::<Result<_>>()?;
            ensure!(
                ips.contains(&peer.ip()),
                "{name}: the address it came from is its own: {r}"
            );
            let size = file_size(&app_log(name))?;
            let p = &r["positions"][0];
            ensure!(
                p["input"] == "app" && p["size"] == size,
                "{name} position: {r}"
            );
            ensure!(
                p["offset"]
                    .as_u64()
                    .zip(p["lag_bytes"].as_u64())
                    .map(|(o, l)| o + l)
                    == Some(size),
                "{name}: offset + lag = size: {r}"
            );
            let want_lag = if name == "fleet-b" { PARTIAL.len() } else { 0 };
            ensure!(
                r["lag_bytes"] == want_lag && r["input_lag"]["app"]["lag_bytes"] == want_lag,
                "{name} lag: {r}"
            );
            ensure!(r["drops"] == 0 && r["gaps"] == 0, "{name}: {r}");
            let stale = name == "fleet-c";
            ensure!(r["stale"] == stale, "{name} stale should be {stale}: {r}");
            let online = r["online"].as_bool().context("online")?;
            ensure!(online != stale, "{name}: {r}");
            ensure!(r["spool_records"].as_u64().is_some(), "{name}: {r}");
        }
        ensure!(
            rows["fleet-c"]["silent_secs"].as_i64() >= Some(10),
            "{:?}",
            rows["fleet-c"]
        );

        ensure!(
            logged(sb, "Agent stale", "fleet-c")? == 1,
            "stale logged once"
        );
        for name in ["fleet-a", "fleet-b"] {
            ensure!(
                logged(sb, "Agent stale", name)? == 0,
                "{name} was never stale"
            );
        }

        let table = agents(&collector, &["--stale", STALE, "--format", "table"])?;
        let lines: Vec<&str> = table.lines().collect();
        ensure!(lines.len() == 4 && lines[0].starts_with("AGENT"), "{table}");
        for (name, _) in AGENTS {
            let line = lines.iter().find(|l| l.starts_with(name)).context(name)?;
            let stale = line.contains("STALE");
            ensure!(stale == (name == "fleet-c"), "{name}: {table}");
            ensure!(line.chars().count() <= 200, "{table}");
        }
        ensure!(
            table.contains(&format!("app {} B", PARTIAL.len())),
            "fleet-b's lag shown: {table}"
        );
        ensure!(
            table.contains("2031-01-02"),
            "certificate expiry shown: {table}"
        );
        // The listing's own stale time overrides the collector's.
        let long = agents(&collector, &["--stale", "1h", "--format", "table"])?;
        ensure!(!long.contains("STALE"), "{long}");

        // Heard again: no longer stale, logged once.
        fleet[2].start()?;
        wait_until(WAIT, "fleet-c heard again", || {
            Ok(collector
                .status()?
                .is_some_and(|s| s["agents"]["fleet-c"]["stale"] == false))
        })?;
        wait_until(WAIT, "the collector logged fleet-c back", || {
            Ok(logged(sb, "Agent heard again", "fleet-c")? == 1)
        })?;
        ensure!(
            logged(sb, "Agent stale", "fleet-c")? == 1,
            "still logged once"
        );
        for agent in &mut fleet {
            agent.stop()?;
        }
        collector.stop()?;
        Ok(())
    });
}

/// Sends one heartbeat as the agent whose certificate is in `dir`.
fn send_heartbeat(endpoint: &str, dir: &Path, beat: HeartbeatRequest) -> Result<()> {
    let tls = raw::agent_tls(dir)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut client = raw::connect(endpoint, tls).await?;
        client.heartbeat(beat).await?;
        Ok(())
    })
}

#[test]
fn a_hostile_heartbeat_cannot_bloat_or_forge_the_fleet_view() {
    run_test(|sb| {
        let mut collector = Collector::init(sb, "collector", &CollectorOpts::default())?;
        collector.start()?;
        let dir = sb.path().join("liar");
        let not_before = rfc3339_in(-3600)?;
        let not_after = "2030-06-07T08:09:10Z";
        collector.issue_agent_cert(
            "liar",
            &dir,
            &["--not-before", &not_before, "--not-after", not_after],
        )?;
        // 20,000 inputs, two of them claiming u64::MAX bytes behind; junk and 1,000 real
        // addresses; a host name that tries to start a table row of its own.
        let mut positions: Vec<InputPosition> = (0..20_000)
            .map(|i| InputPosition {
                input: format!("in{i}"),
                path: format!("/var/log/{i}.log"),
                offset: 1,
                size: Some(2),
                lag_bytes: Some(1),
                lag_entries: None,
            })
            .collect();
        for p in positions.iter_mut().take(2) {
            p.input = "huge".into();
            p.lag_bytes = Some(u64::MAX);
        }
        let mut ips = vec!["not-an-ip".to_owned(), "\u{1b}[31m10.9.9.9".to_owned()];
        ips.extend((0..1000).map(|i| format!("10.0.{}.{}", i / 250, i % 250 + 1)));
        let beat = HeartbeatRequest {
            agent_version: "0.1.0".into(),
            host: Some(HostFacts {
                host_name: "evil\nfleet-z  online".into(),
                ip_addresses: ips,
                ..Default::default()
            }),
            positions,
            ..Default::default()
        };
        send_heartbeat(&collector.endpoint(), &dir, beat)?;
        wait_until(WAIT, "the heartbeat in status.json", || {
            Ok(collector
                .status()?
                .is_some_and(|s| s["agents"]["liar"].is_object()))
        })?;
        let status = collector.status()?.context("status.json")?;
        let liar = &status["agents"]["liar"];
        let lag = liar["input_lag"].as_object().context("input_lag")?;
        ensure!(
            lag.len() == 65,
            "64 inputs by name and one for the rest: {}",
            lag.len()
        );
        ensure!(
            lag["huge"]["lag_bytes"] == u64::MAX,
            "saturated, not wrapped: {:?}",
            lag["huge"]
        );
        let listed: u64 = lag.values().filter_map(|v| v["files"].as_u64()).sum();
        ensure!(listed == 20_000, "every position counted: {listed}");
        ensure!(
            liar["positions"].as_array().map(Vec::len) == Some(64),
            "{liar}"
        );
        let ips = liar["ip_addresses"].as_array().context("ip_addresses")?;
        ensure!(ips.len() == 32, "at most 32 addresses: {}", ips.len());
        for ip in ips {
            let text = ip.as_str().context("an address")?;
            ensure!(
                text.parse::<std::net::IpAddr>().is_ok(),
                "only addresses kept: {text:?}"
            );
        }
        // What the collector saw cannot be claimed away.
        ensure!(liar["cert_not_after"] == not_after, "{liar}");
        let peer: std::net::SocketAddr =
            liar["peer_addr"].as_str().context("peer_addr")?.parse()?;
        ensure!(peer.ip().is_loopback(), "{peer}");

        let rows = agents_json(&collector)?;
        ensure!(rows["liar"]["lag_bytes"] == u64::MAX, "{:?}", rows["liar"]);
        let table = agents(&collector, &["--format", "table"])?;
        ensure!(table.lines().count() == 2, "one agent, one row: {table}");
        ensure!(!table.contains('\u{1b}'), "{table}");
        collector.stop()?;
        Ok(())
    });
}
