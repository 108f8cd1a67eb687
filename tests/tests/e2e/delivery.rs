//! Basic delivery: fields in search output, non-UTF-8 bytes (text with U+FFFD plus the original
//! bytes), long lines, a last line without newline.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use base64::Engine;
use logship_e2e::{FileInput, run_test, wait_until};
use serde_json::Value;

use crate::support::pair;

const ARRIVAL: Duration = Duration::from_secs(60);

#[test]
fn lines_arrive_with_their_fields() {
    run_test(|sb| {
        let log = sb.path().join("app.log");
        std::fs::write(&log, "alpha one\nbeta two\ngamma three\n")?;
        let (collector, _agent) = pair(sb, FileInput::new("app", &log))?;
        wait_until(ARRIVAL, "3 records", || Ok(collector.count()? == 3))?;
        let records = collector.store().search(&[])?;
        let raws: Vec<&str> = records
            .iter()
            .map(|r| r["raw"].as_str().unwrap_or(""))
            .collect();
        ensure!(
            raws == ["alpha one", "beta two", "gamma three"],
            "raw lines {raws:?}"
        );
        for r in &records {
            check_fields(r, &log.display().to_string())?;
        }
        let ids: std::collections::HashSet<&str> = records
            .iter()
            .filter_map(|r| r["event_id"].as_str())
            .collect();
        ensure!(ids.len() == 3, "event ids are not distinct: {records:?}");
        let beta = collector.store().search(&["--contains", "beta"])?;
        ensure!(
            beta.len() == 1 && beta[0]["raw"] == "beta two",
            "contains filter: {beta:?}"
        );
        ensure!(
            collector.store().count(&["--input", "nope"])? == 0,
            "input filter"
        );
        ensure!(
            collector.store().count(&["--since", "-1h"])? == 3,
            "relative since"
        );
        // The agent's heartbeat reports host facts and where it has read up to.
        let path = log.display().to_string();
        let size = std::fs::metadata(&log)?.len();
        wait_until(ARRIVAL, "heartbeat with the file's read position", || {
            let Some(status) = collector.status()? else {
                return Ok(false);
            };
            let agent = &status["agents"]["agent1"];
            let read_to_end = agent["positions"].as_array().is_some_and(|ps| {
                ps.iter()
                    .any(|p| p["path"] == path.as_str() && p["offset"] == size)
            });
            Ok(read_to_end && agent["host"].as_str().is_some_and(|h| !h.is_empty()))
        })?;
        Ok(())
    });
}

fn check_fields(r: &Value, path: &str) -> Result<()> {
    ensure!(r["agent"] == "agent1", "agent field: {r}");
    ensure!(r["input"] == "app", "input field: {r}");
    ensure!(r["path"] == path, "path field: {r}");
    ensure!(
        r["host"].as_str().is_some_and(|h| !h.is_empty()),
        "host field: {r}"
    );
    ensure!(
        r["event_id"].as_str().is_some_and(|h| !h.is_empty()),
        "event_id: {r}"
    );
    let t = r["observed_time"].as_str().context("observed_time")?;
    ensure!(
        t.len() >= 20 && t.contains('T'),
        "observed_time is not RFC 3339: {r}"
    );
    ensure!(
        r.get("truncated_from").is_none() && r.get("kind").is_none(),
        "plain line: {r}"
    );
    Ok(())
}

#[test]
fn non_utf8_bytes_survive() {
    run_test(|sb| {
        let log = sb.path().join("bin.log");
        let line: &[u8] = b"caf\xe9 \xff\xfe\x00 end";
        std::fs::write(&log, [line, b"\nplain\n"].concat())?;
        let (collector, _agent) = pair(sb, FileInput::new("bin", &log))?;
        wait_until(ARRIVAL, "2 records", || Ok(collector.count()? == 2))?;
        let records = collector.store().search(&[])?;
        // The text has U+FFFD for each invalid sequence; the bytes as read stay with it.
        ensure!(
            records[0]["raw"] == "caf\u{FFFD} \u{FFFD}\u{FFFD}\u{0} end",
            "text: {}",
            records[0]
        );
        let b64 = records[0]["original_b64"]
            .as_str()
            .context("original_b64 on a non-UTF-8 line")?;
        let decoded = base64::engine::general_purpose::STANDARD.decode(b64)?;
        ensure!(decoded == line, "bytes changed: {decoded:?}");
        ensure!(
            records[1]["raw"] == "plain" && records[1].get("original_b64").is_none(),
            "second line: {}",
            records[1]
        );
        Ok(())
    });
}

#[test]
fn long_line_is_cut_and_says_so() {
    run_test(|sb| {
        let log = sb.path().join("long.log");
        let long = "x".repeat(5000);
        std::fs::write(&log, format!("{long}\nshort\n"))?;
        let mut input = FileInput::new("long", &log);
        input.max_line_bytes = 1024;
        let (collector, _agent) = pair(sb, input)?;
        wait_until(ARRIVAL, "2 records", || Ok(collector.count()? == 2))?;
        let records = collector.store().search(&[])?;
        let cut = records[0]["raw"].as_str().context("raw")?;
        ensure!(
            cut.len() == 1024 && cut.bytes().all(|b| b == b'x'),
            "cut line {}",
            cut.len()
        );
        ensure!(
            records[0]["truncated_from"] == 5000,
            "truncated_from: {}",
            records[0]
        );
        ensure!(
            records[1]["raw"] == "short",
            "line after the long one: {}",
            records[1]
        );
        Ok(())
    });
}

#[test]
fn last_line_without_newline_arrives_after_idle_flush() {
    run_test(|sb| {
        let log = sb.path().join("partial.log");
        std::fs::write(&log, "first\nlast without newline")?;
        let (collector, _agent) = pair(sb, FileInput::new("partial", &log))?;
        wait_until(ARRIVAL, "2 records", || Ok(collector.count()? == 2))?;
        let records = collector.store().search(&[])?;
        ensure!(
            records[1]["raw"] == "last without newline",
            "{}",
            records[1]
        );
        Ok(())
    });
}

#[test]
fn agent_fails_over_past_a_dead_endpoint() {
    run_test(|sb| {
        let log = sb.path().join("app.log");
        std::fs::write(&log, "one\ntwo\n")?;
        let mut collector =
            logship_e2e::Collector::init(sb, "collector", &logship_e2e::CollectorOpts::default())?;
        collector.start()?;
        let mut opts = logship_e2e::AgentOpts::new(&collector, vec![FileInput::new("app", &log)]);
        // Nothing listens on the first endpoint: the agent must move on to the second.
        let dead = format!("127.0.0.1:{}", logship_e2e::free_port());
        opts.endpoints = vec![dead, collector.endpoint()];
        let mut agent = logship_e2e::Agent::enroll(sb, &collector, "agent1", &opts)?;
        agent.start()?;
        wait_until(ARRIVAL, "2 records via the second endpoint", || {
            Ok(collector.count()? == 2)
        })?;
        let log_text = agent.log_text()?;
        ensure!(
            log_text.contains("Connection to the collector failed"),
            "the dead endpoint was never tried:\n{log_text}"
        );
        Ok(())
    });
}

#[test]
fn normalize_command_prints_fields_for_raw_lines() {
    run_test(|sb| {
        let file = sb.path().join("auth.log");
        std::fs::write(
            &file,
            "Feb 12 14:10:21 sd-126005 sshd[16378]: Invalid user pascal from 35.188.49.176 port 53502\n\
             not a log line at all\n",
        )?;
        let out = std::process::Command::new(logship_e2e::bin("logship-collector"))
            .args(["normalize", "--tz", "Asia/Tokyo"])
            .arg(&file)
            .output()?;
        ensure!(
            out.status.success(),
            "normalize failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let rows: Vec<Value> = out
            .stdout
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(serde_json::from_slice)
            .collect::<Result<_, _>>()?;
        ensure!(rows.len() == 2, "{rows:?}");
        ensure!(
            rows[0]["dataset"] == "sshd" && rows[0]["fields"]["user.name"] == "pascal",
            "{}",
            rows[0]
        );
        // Feb 12 14:10:21 in Tokyo is 05:10:21 UTC.
        let ts = rows[0]["fields"]["@timestamp"].as_str().unwrap_or("");
        ensure!(
            ts.ends_with("-02-12T05:10:21Z"),
            "time zone not applied: {ts}"
        );
        ensure!(
            rows[1]["dataset"] == "unparsed" && rows[1]["raw"] == "not a log line at all",
            "{}",
            rows[1]
        );
        let forced = std::process::Command::new(logship_e2e::bin("logship-collector"))
            .args(["normalize", "--dataset", "squid"])
            .arg(&file)
            .output()?;
        let text = String::from_utf8_lossy(&forced.stdout);
        ensure!(
            text.lines().all(|l| l.contains("\"unparsed\"")),
            "squid claimed sshd lines: {text}"
        );
        Ok(())
    });
}
