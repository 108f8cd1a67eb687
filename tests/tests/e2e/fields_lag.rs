//! Issue 13 end to end, ingest first: the fields lag in `status.json` (`fields_lag_records`,
//! `fields_lag_seconds`) and the `[normalize] enabled` switch.
//!
//! A burst is stored with normalization off (search still finds the records by field, computing
//! the fields itself; the lag is `null`); the collector restarted with it on starts with the
//! whole store as its lag and catches up to 0; a second burst with it on is caught up too. No
//! timing is asserted: only what the lag must say before and after catching up.
//!
//! With several parse workers (`[normalize] workers = 3`), two agents' streams are caught up
//! from the cursor, the collector is killed with SIGKILL in the middle and restarted: every
//! record ends with exactly one fields column, the lag reaches exactly 0, and `--where` prints
//! the same records and fields as a search that computes every record's fields itself.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use logship_e2e::{
    Agent, AgentOpts, Collector, CollectorOpts, FileInput, KILL_POLL, poll_until, run_test,
    wait_until,
};
use serde_json::Value;

const ARRIVAL: Duration = Duration::from_secs(120);
/// Deadline for a catch-up of a whole store (debug binaries on a busy machine, at nice 10).
const CATCH_UP: Duration = Duration::from_secs(600);

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
    set_workers(collector, config, enabled, 1)
}

fn set_workers(collector: &Collector, config: &str, enabled: bool, workers: u32) -> Result<()> {
    let toml = collector.data_dir().join("collector.toml");
    std::fs::write(
        &toml,
        format!("{config}\n[normalize]\nenabled = {enabled}\nworkers = {workers}\n"),
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
    wait_caught_up_within(collector, want, ARRIVAL)
}

fn wait_caught_up_within(collector: &Collector, want: u64, deadline: Duration) -> Result<u64> {
    let mut most = 0;
    let mut last = Value::Null;
    wait_until(deadline, "fields lag 0 with every record stored", || {
        let s = status(collector)?;
        let lag = check_lag(&s)?;
        most = most.max(lag.unwrap_or(0));
        let done = lag == Some(0) && s["records_stored"].as_u64().is_some_and(|n| n >= want);
        last = s;
        Ok(done)
    })
    .with_context(|| format!("status.json last seen: {last}"))?;
    check_times(&last)?;
    Ok(most)
}

/// With the lag at 0 and records stored by this process, the normalizer's last advance
/// (`fields_last_ready_time`) is no earlier than the commit that stored the last records
/// (`records_last_stored_time`), and neither is later than the file itself (`written_at`).
fn check_times(s: &Value) -> Result<()> {
    let time = |key: &str| -> Result<Option<jiff::Timestamp>> {
        match &s[key] {
            Value::Null => Ok(None),
            v => {
                let text = v.as_str().with_context(|| format!("{key} is text: {s}"))?;
                Ok(Some(
                    text.parse().with_context(|| format!("{key}: {text}"))?,
                ))
            }
        }
    };
    let written = time("written_at")?.context("written_at")?;
    let (stored, ready) = (
        time("records_last_stored_time")?,
        time("fields_last_ready_time")?,
    );
    if let Some(stored) = stored {
        ensure!(stored <= written, "stored after the file was written: {s}");
        let ready = ready.with_context(|| format!("caught up without a ready time: {s}"))?;
        ensure!(
            ready >= stored,
            "fields ready before their records were stored: {s}"
        );
        ensure!(ready <= written, "ready after the file was written: {s}");
    }
    Ok(())
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
            s["records_last_stored_time"].is_string() && s["fields_last_ready_time"].is_null(),
            "the burst's commit time, and no normalizer time with it off: {s}"
        );
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

/// (agent, first seq, count, columns) of every agent block: how many fields columns its
/// segment's sidecar holds for it.
fn columns(collector: &Collector) -> Result<Vec<(String, u64, u32, u32)>> {
    Ok(
        logship_store::fields::coverage(&collector.data_dir().join("store"))?
            .into_iter()
            .filter(|b| b.agent != logship_store::COLLECTOR_IDENTITY)
            .map(|b| (b.agent, b.first_seq, b.count, b.columns))
            .collect(),
    )
}

/// Moves every file of the store ending in `.{ext}` to `.{ext}.aside`, or back.
fn move_aside(collector: &Collector, ext: &str, back: bool) -> Result<usize> {
    let (from, to) = if back {
        (format!("{ext}.aside"), ext.to_string())
    } else {
        (ext.to_string(), format!("{ext}.aside"))
    };
    let mut n = 0;
    for day in std::fs::read_dir(collector.data_dir().join("store/segments"))? {
        for f in std::fs::read_dir(day?.path())? {
            let p = f?.path();
            let name = p.to_string_lossy().to_string();
            if let Some(stem) = name.strip_suffix(&format!(".{from}")) {
                std::fs::rename(&p, format!("{stem}.{to}"))?;
                n += 1;
            }
        }
    }
    Ok(n)
}

#[test]
fn several_workers_killed_mid_catch_up_leave_every_record_with_its_fields() {
    run_test(|sb| {
        let mut collector = Collector::init(sb, "collector", &CollectorOpts::default())?;
        let config = std::fs::read_to_string(collector.data_dir().join("collector.toml"))?;
        set_normalize(&collector, &config, false)?;
        collector.start()?;
        // Two agents: two streams the workers can parse side by side.
        const N: u64 = 50_000;
        let mut agents = Vec::new();
        for (name, first) in [("gw", 0), ("gw2", N)] {
            let log = sb.path().join(format!("{name}-auth.log"));
            std::fs::write(&log, burst(first, N))?;
            // Blocks of 100 records: 1,000 blocks, so the normalizer's first cursor commit
            // (after 256 blocks) comes a quarter of the way through, however fast it parses.
            let opts = AgentOpts {
                batch_max_records: 100,
                ..AgentOpts::new(&collector, vec![FileInput::new("auth", &log)])
            };
            let mut agent = Agent::enroll(sb, &collector, name, &opts)?;
            agent.start()?;
            agents.push(agent);
        }
        let total = 2 * (N + 3);
        wait_until(ARRIVAL, "both agents' records stored", || {
            Ok(status(&collector)?["records_stored"].as_u64() >= Some(total))
        })?;
        for a in &mut agents {
            a.stop()?;
        }
        collector.stop()?;

        // Normalization on with three workers: killed within moments of its first commit.
        set_workers(&collector, &config, true, 3)?;
        collector.start()?;
        let cursor = collector.data_dir().join("store/cursors/normalizer.cur");
        poll_until(ARRIVAL, KILL_POLL, "a first cursor commit", || {
            cursor.try_exists().map_err(Into::into)
        })?;
        collector.kill9()?;
        let done: u64 = columns(&collector)?
            .iter()
            .map(|c| u64::from(c.2) * u64::from(c.3))
            .sum();
        ensure!(
            done < total,
            "the normalizer caught up before it could be killed ({done})"
        );
        let at_kill = std::fs::read_to_string(&cursor)?;
        ensure!(at_kill.starts_with("logship-cursor 1 "), "{at_kill}");

        // Restarted (still three workers): resumes from the cursor, lag exactly 0 at the end.
        collector.start()?;
        let most = wait_caught_up_within(&collector, total, CATCH_UP)?;
        let s = status(&collector)?;
        ensure!(s["fields_lag_seconds"].as_f64() == Some(0.0), "{s}");
        let log_text = std::fs::read_to_string(sb.log_path("collector"))?;
        ensure!(
            log_text.contains("workers=3"),
            "the collector did not start three parse workers"
        );
        let resumed = log_text
            .lines()
            .rfind(|l| l.contains("Normalizer resumes from its cursor"))
            .context("no resume line in the collector's log")?
            .to_string();
        let backlog: u64 = resumed
            .rsplit_once("records=")
            .and_then(|(_, n)| n.trim().parse().ok())
            .context("records= in the resume line")?;
        ensure!(
            backlog < total,
            "the restart did not resume from the cursor: {resumed}"
        );
        println!(
            "killed with {done} of {total} records normalized, cursor {at_kill}; \
             resumed with {backlog}, largest lag after restart {most}"
        );
        collector.stop()?;

        // Every record of both agents has exactly one fields column: none skipped, none twice.
        let mut seen: std::collections::BTreeMap<String, Vec<u32>> = Default::default();
        for (agent, seq, count, cols) in columns(&collector)? {
            let per = seen.entry(agent).or_insert_with(|| vec![0; N as usize + 4]);
            for s in seq..seq + u64::from(count) {
                *per.get_mut(s as usize).context("seq past the log")? += cols;
            }
        }
        ensure!(seen.len() == 2, "agents in the store: {:?}", seen.keys());
        for (agent, per) in &seen {
            let missing = (1..=N + 3).filter(|s| per[*s as usize] == 0).count();
            let twice = (1..=N + 3).filter(|s| per[*s as usize] > 1).count();
            ensure!(
                missing == 0 && twice == 0,
                "agent {agent}: {missing} records without fields, {twice} twice"
            );
        }

        // `--where` on the columns (and the index) prints exactly what a search that computes
        // every record's fields itself prints: each record's fields were right.
        let queries: [&[&str]; 3] = [
            &["--where", "event.dataset=sshd"],
            &[
                "--where",
                "user.name=alice",
                "--where",
                "event.outcome=failure",
            ],
            &[
                "--where",
                "source.ip=10.0.7.0/24",
                "--where",
                "user.name!=user7",
            ],
        ];
        let run = || -> Result<Vec<Vec<Value>>> {
            queries
                .iter()
                .map(|q| collector.store().search(q))
                .collect()
        };
        let with_columns = run()?;
        ensure!(
            with_columns[0].len() as u64 == total,
            "every record by its fields: {} of {total}",
            with_columns[0].len()
        );
        ensure!(with_columns[1].len() == 6, "alice: {:?}", with_columns[1]);
        ensure!(
            move_aside(&collector, "fld", false)? > 0,
            "no fields sidecars"
        );
        let fidx = move_aside(&collector, "fidx", false)?;
        let computed = run()?;
        for (q, (a, b)) in queries.iter().zip(with_columns.iter().zip(&computed)) {
            ensure!(a == b, "{q:?}: precomputed and computed results differ");
        }
        move_aside(&collector, "fld", true)?;
        move_aside(&collector, "fidx", true)?;
        alice_failures(&collector, 6)?;
        println!(
            "{} records, {fidx} field indexes: same results computed",
            total
        );
        Ok(())
    });
}
