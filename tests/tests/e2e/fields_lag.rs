//! Issue 13 end to end, ingest first: the fields lag in `status.json` (`fields_lag_records`,
//! `fields_lag_seconds`) and the `[normalize] enabled` switch.
//!
//! A burst is stored with normalization off (search still finds the records by field, computing
//! the fields itself; the lag is `null`); the collector restarted with it on starts with the
//! whole store as its lag and catches up to 0; a second burst with it on is caught up too. No
//! timing is asserted: only what the lag must say before and after catching up.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use logship_e2e::{Agent, AgentOpts, Collector, CollectorOpts, FileInput, run_test, wait_until};
use serde_json::Value;

const ARRIVAL: Duration = Duration::from_secs(120);

/// `n` sshd lines from `first` on (users `user<i>`), and alice's three failures after them.
fn burst(first: u64, n: u64) -> String {
    let mut text = String::new();
    for i in first..first + n {
        text.push_str(&format!(
            "Feb 12 14:10:21 gw sshd[{}]: Failed password for user{i} from 10.0.{}.{} port 22 ssh2\n",
            i % 30000,
            i % 250,
            i % 200
        ));
    }
    for port in [40001, 40002, 40003] {
        text.push_str(&format!(
            "Feb 12 14:11:00 gw sshd[811]: Failed password for alice from 203.0.113.7 port {port} ssh2\n"
        ));
    }
    text
}

fn set_normalize(collector: &Collector, config: &str, enabled: bool) -> Result<()> {
    let toml = collector.data_dir().join("collector.toml");
    std::fs::write(
        &toml,
        format!("{config}\n[normalize]\nenabled = {enabled}\n"),
    )?;
    Ok(())
}

fn status(collector: &Collector) -> Result<Value> {
    collector.status()?.context("no status.json yet")
}

/// Checks one observation of the lag against its definition; returns the records lagging.
fn check_lag(s: &Value) -> Result<Option<u64>> {
    let (records, seconds) = (&s["fields_lag_records"], &s["fields_lag_seconds"]);
    if records.is_null() {
        ensure!(seconds.is_null(), "lag seconds without records: {s}");
        return Ok(None);
    }
    let records = records.as_u64().context("fields_lag_records is a number")?;
    let seconds = seconds.as_f64().context("fields_lag_seconds is a number")?;
    let stored = s["records_stored"].as_u64().context("records_stored")?;
    ensure!(records <= stored, "lag {records} > stored {stored}");
    ensure!(seconds >= 0.0, "negative lag age: {s}");
    ensure!(
        records > 0 || seconds == 0.0,
        "no lagging record but an age of {seconds} s"
    );
    Ok(Some(records))
}

/// Polls status.json until the lag is 0 with `want` records stored; returns the largest lag seen.
fn wait_caught_up(collector: &Collector, want: u64) -> Result<u64> {
    let mut most = 0;
    wait_until(ARRIVAL, "fields lag 0 with every record stored", || {
        let s = status(collector)?;
        let lag = check_lag(&s)?;
        most = most.max(lag.unwrap_or(0));
        Ok(lag == Some(0) && s["records_stored"].as_u64().is_some_and(|n| n >= want))
    })?;
    Ok(most)
}

/// alice's `want` sshd failures from 203.0.113.7, found by their fields.
fn alice_failures(collector: &Collector, want: usize) -> Result<()> {
    let hits = collector.store().search(&[
        "--where",
        "user.name=alice",
        "--where",
        "event.outcome=failure",
    ])?;
    ensure!(hits.len() == want, "alice's failures: {hits:?}");
    for h in &hits {
        ensure!(
            h["fields"]["source.ip"] == "203.0.113.7" && h["fields"]["event.dataset"] == "sshd",
            "{h}"
        );
    }
    Ok(())
}

#[test]
fn fields_lag_reaches_zero_after_a_burst_and_search_works_with_normalization_off() {
    run_test(|sb| {
        let mut collector = Collector::init(sb, "collector", &CollectorOpts::default())?;
        let config = std::fs::read_to_string(collector.data_dir().join("collector.toml"))?;
        set_normalize(&collector, &config, false)?;
        collector.start()?;
        const N: u64 = 40_000;
        let log = sb.path().join("auth.log");
        std::fs::write(&log, burst(0, N))?;
        let opts = AgentOpts::new(&collector, vec![FileInput::new("auth", &log)]);
        let mut agent = Agent::enroll(sb, &collector, "gw", &opts)?;
        agent.start()?;
        let first = N + 3;
        wait_until(ARRIVAL, "the first burst stored", || {
            Ok(status(&collector)?["records_stored"].as_u64() >= Some(first))
        })?;

        // Off: no worker, no lag figures, no sidecars; search computes the fields itself.
        let s = status(&collector)?;
        ensure!(s["normalize_enabled"] == false, "{s}");
        ensure!(
            check_lag(&s)?.is_none(),
            "lag shown with normalization off: {s}"
        );
        ensure!(s["normalized_records"] == 0, "{s}");
        ensure!(
            crate::fields::sidecars(collector.data_dir())?.is_empty(),
            "sidecars written with normalization off"
        );
        alice_failures(&collector, 3).context("with normalization off")?;
        let one = collector
            .store()
            .count(&["--where", "user.name=user39999"])?;
        ensure!(one == 1, "user39999 with normalization off: {one}");

        // On after a restart: the whole store is the lag at the start, and it reaches 0.
        agent.stop()?;
        collector.stop()?;
        set_normalize(&collector, &config, true)?;
        collector.start()?;
        let most = wait_caught_up(&collector, first)?;
        let s = status(&collector)?;
        ensure!(s["normalize_enabled"] == true, "{s}");
        ensure!(s["fields_lag_seconds"].as_f64() == Some(0.0), "{s}");
        let stored = s["records_stored"].as_u64().context("records_stored")?;
        ensure!(
            s["normalize_deferred_total"].as_u64() >= Some(first),
            "the backlog at the start was not the whole store: {s}"
        );
        // (`records_stored` at open leaves out the store's own checkpoint records, which the
        // normalizer passes too.)
        ensure!(
            s["normalized_records"].as_u64() >= Some(first),
            "every stored record normalized: {s}"
        );
        println!("restart backlog caught up: largest fields lag seen {most} of {stored}");

        // A second burst with normalization on: stored, then caught up again.
        let mut file = std::fs::OpenOptions::new().append(true).open(&log)?;
        std::io::Write::write_all(&mut file, burst(N, N).as_bytes())?;
        drop(file);
        agent.start()?;
        let most = wait_caught_up(&collector, 2 * first)?;
        println!("live burst caught up: largest fields lag seen {most}");
        ensure!(
            !crate::fields::sidecars(collector.data_dir())?.is_empty(),
            "no sidecars with normalization on"
        );
        alice_failures(&collector, 6)?;
        let one = collector
            .store()
            .count(&["--where", "user.name=user79999"])?;
        ensure!(one == 1, "user79999: {one}");
        agent.stop()?;
        collector.stop()
    });
}
