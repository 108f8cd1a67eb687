//! Retention (issue 10, item 3) with the real collector and agent: a collector with 1 MiB
//! segments, `[retention] max_age_days` and `max_bytes`, and a forwarder to a dead address.
//! The dead forwarder holds back removal by age (its segments are kept though old enough);
//! the size cap then forces removal, and the records the forwarder never delivered are
//! recorded in the store, shown in status.json and by `forwarders`, each forwarder counting only
//! what its filter would have sent: `dead` (no filter) and `dead_app` (agents, inputs and a
//! `where` every line passes) lose every removed record; `dead_own` (an input no agent has) and
//! `dead_sshd` (`where` on a dataset none of the lines has, so decided on the normalized
//! fields) only the collector's own records (checkpoints, retention records), which pass every
//! filter.
//! Afterwards `verify
//! --data-dir` and `verify --checkpoint` (the checkpoints as the SOC would hold them: the
//! collector's own records, read out while it ran) report no problem; search still returns
//! every remaining line exactly once (across a kill -9 of the collector right after the
//! removal); and a segment then deleted by hand is a problem.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use logship_e2e::{
    Agent, AgentOpts, Collector, CollectorOpts, FileInput, Sandbox, bin, free_port, line_number,
    run_test, wait_until,
};
use logship_store::{COLLECTOR_IDENTITY, RetentionRecord, parse_retention_record, tamper};
use serde_json::Value;

use crate::support::append_numbered;

const ARRIVAL: Duration = Duration::from_secs(180);
const SEGMENT: u64 = 1 << 20;
/// `[retention] max_bytes`: five segments.
const MAX_BYTES: u64 = 5 * SEGMENT;
/// `[retention] max_age_days`: about 4.3 seconds.
const MAX_AGE_DAYS: f64 = 0.00005;
/// Lines of about 80 compressed bytes each: phases 1 and 2 stay under the cap, phase 3 crosses it.
const PHASE_1: u64 = 30_000;
const PHASE_2: u64 = 12_000;
const PHASE_3: u64 = 80_000;

fn collector_cmd(args: &[&str]) -> Result<Output> {
    Command::new(bin("logship-collector"))
        .args(args)
        .output()
        .with_context(|| format!("running logship-collector {args:?}"))
}

/// (segment number, bytes) of every segment file, oldest first.
fn segments(data_dir: &Path) -> Result<Vec<(u64, u64)>> {
    let mut out = Vec::new();
    for path in tamper::segment_files(&data_dir.join("store")) {
        let name = path
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let n = name
            .rsplit('-')
            .next()
            .and_then(|n| n.parse().ok())
            .with_context(|| format!("segment name {name}"))?;
        out.push((n, std::fs::metadata(&path)?.len()));
    }
    Ok(out)
}

fn retention_status(collector: &Collector) -> Result<Value> {
    Ok(collector
        .status()?
        .map(|s| s["retention"].clone())
        .unwrap_or(Value::Null))
}

/// The retention records in the store (`search --agent @collector --input retention`).
fn retention_records(collector: &Collector) -> Result<Vec<RetentionRecord>> {
    let found =
        collector
            .store()
            .search(&["--agent", COLLECTOR_IDENTITY, "--input", "retention"])?;
    found
        .iter()
        .map(|r| {
            let raw = r["raw"].as_str().unwrap_or_default();
            parse_retention_record(raw.as_bytes()).with_context(|| format!("not a record: {raw}"))
        })
        .collect()
}

/// The collector's own records as JSON lines, as a SOC would hold them.
fn checkpoints_now(data_dir: &Path) -> Result<String> {
    let out = collector_cmd(&[
        "search",
        "--data-dir",
        &data_dir.display().to_string(),
        "--agent",
        COLLECTOR_IDENTITY,
        "--json",
    ])?;
    ensure!(
        out.status.success(),
        "search: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?)
}

fn verify(data_dir: &Path, soc: Option<&Path>) -> Result<(bool, Value)> {
    let dir = data_dir.display().to_string();
    let mut args = vec!["verify", "--data-dir", &dir, "--format", "json"];
    let soc = soc.map(|s| s.display().to_string());
    if let Some(s) = &soc {
        args.extend(["--checkpoint", s]);
    }
    let out = collector_cmd(&args)?;
    let doc: Value = serde_json::from_slice(&out.stdout)
        .with_context(|| format!("verify output: {}", String::from_utf8_lossy(&out.stderr)))?;
    ensure!(doc["ok"].as_bool() == Some(out.status.success()), "{doc}");
    Ok((out.status.success(), doc))
}

/// `forwarders --format json`, by name.
fn forwarders(data_dir: &Path) -> Result<BTreeMap<String, Value>> {
    let out = collector_cmd(&[
        "forwarders",
        "--data-dir",
        &data_dir.display().to_string(),
        "--format",
        "json",
    ])?;
    ensure!(
        out.status.success(),
        "forwarders: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut m = BTreeMap::new();
    for line in String::from_utf8(out.stdout)?.lines() {
        let v: Value = serde_json::from_str(line)?;
        m.insert(v["name"].as_str().unwrap_or_default().to_string(), v);
    }
    Ok(m)
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

#[test]
fn retention_held_back_by_a_dead_forwarder_until_the_size_cap_then_recorded_and_verified() {
    run_test(|sb: &Sandbox| {
        let app = sb.path().join("app.log");
        let copts = CollectorOpts {
            store_segment_max_bytes: SEGMENT,
            ..CollectorOpts::default()
        };
        let mut collector = Collector::init(sb, "collector", &copts)?;
        let data_dir = collector.data_dir().to_path_buf();
        let config = data_dir.join("collector.toml");
        let mut text = std::fs::read_to_string(&config)?;
        let dead = free_port();
        text.push_str(&format!(
            "\n[integrity]\ncheckpoint_every_secs = 1\n\n[retention]\nmax_age_days = {MAX_AGE_DAYS}\n\
             max_bytes = {MAX_BYTES}\n\n[[forward]]\nname = \"dead\"\nformat = \"syslog\"\n\
             url = \"tcp://127.0.0.1:{dead}\"\n\n[[forward]]\nname = \"dead_app\"\n\
             format = \"syslog\"\nurl = \"tcp://127.0.0.1:{dead}\"\nagents = [\"agent1\"]\n\
             inputs = [\"app\"]\nwhere = [\"event.dataset!=sshd\"]\n\n[[forward]]\n\
             name = \"dead_own\"\nformat = \"syslog\"\nurl = \"tcp://127.0.0.1:{dead}\"\n\
             inputs = [\"no-such-input\"]\n\n[[forward]]\nname = \"dead_sshd\"\n\
             format = \"syslog\"\nurl = \"tcp://127.0.0.1:{dead}\"\n\
             where = [\"event.dataset=sshd\"]\n"
        ));
        std::fs::write(&config, text)?;
        collector.start()?;
        let opts = AgentOpts::new(&collector, vec![FileInput::new("app", &app)]);
        let mut agent = Agent::enroll(sb, &collector, "agent1", &opts)?;
        agent.start()?;
        let store = collector.store();

        // Phase 1 and 2: old enough sealed segments, under the size cap, held back by the
        // dead forwarder.
        append_numbered(&app, 0, PHASE_1, 80)?;
        wait_until(ARRIVAL, "phase 1 stored", || {
            agent.check_alive()?;
            Ok(store.count(&["--input", "app"])? == PHASE_1)
        })?;
        std::thread::sleep(Duration::from_secs_f64(MAX_AGE_DAYS * 86_400.0 + 1.0));
        let aged = now_ns();
        append_numbered(&app, PHASE_1, PHASE_1 + PHASE_2, 80)?;
        wait_until(
            ARRIVAL,
            "phase 2 stored and a retention round after the age passed",
            || {
                agent.check_alive()?;
                let r = retention_status(&collector)?;
                Ok(store.count(&["--input", "app"])? == PHASE_1 + PHASE_2
                    && r["last_run_unix_ns"].as_i64() > Some(aged))
            },
        )?;
        let segs = segments(&data_dir)?;
        let total: u64 = segs.iter().map(|s| s.1).sum();
        ensure!(
            total < MAX_BYTES,
            "phase 1+2 already exceed the cap ({total} bytes): {segs:?}"
        );
        ensure!(
            segs.len() >= 3,
            "expected several sealed segments: {segs:?}"
        );
        ensure!(
            segs[0].0 == 0,
            "a segment went while the forwarder held it: {segs:?}"
        );
        let r = retention_status(&collector)?;
        ensure!(r["segments_removed"].as_u64() == Some(0), "{r}");
        ensure!(
            retention_records(&collector)?.is_empty(),
            "a retention record already"
        );
        let mut soc = checkpoints_now(&data_dir)?;

        // Phase 3: the size cap forces removal of what the forwarder never delivered.
        let all = PHASE_1 + PHASE_2 + PHASE_3;
        append_numbered(&app, PHASE_1 + PHASE_2, all, 80)?;
        wait_until(ARRIVAL, "phase 3 stored and segments removed", || {
            agent.check_alive()?;
            let r = retention_status(&collector)?;
            let newest = store.count(&[
                "--input",
                "app",
                "--contains",
                &format!("line={:09}", all - 1),
            ])?;
            Ok(newest == 1 && r["segments_removed"].as_u64() > Some(0))
        })?;
        // Killed right after removing: the restarted collector finds its chain base in the
        // retention record and carries on (checked by verify and the exactly-once suffix below).
        collector.kill9()?;
        collector.start()?;
        // One more checkpoint after the removal, then the SOC's view of them all.
        wait_until(ARRIVAL, "a checkpoint after the removal", || {
            Ok(checkpoints_now(&data_dir)?.len() > soc.len())
        })?;
        agent.stop()?;
        let segs = segments(&data_dir)?;
        ensure!(segs[0].0 > 0, "nothing removed: {segs:?}");
        let total: u64 = segs.iter().map(|s| s.1).sum();
        ensure!(
            total <= MAX_BYTES + SEGMENT,
            "the cap does not hold: {total} bytes {segs:?}"
        );

        // The loss: recorded in the store, in status.json and by `forwarders`.
        let records = retention_records(&collector)?;
        ensure!(!records.is_empty());
        let removed: Vec<u64> = records
            .iter()
            .flat_map(|r| r.removed.iter().map(|s| s.n))
            .collect();
        let first_kept = segs[0].0;
        ensure!(
            removed == (0..first_kept).collect::<Vec<_>>(),
            "removed {removed:?}, kept from {first_kept}"
        );
        let removed_records: u64 = records
            .iter()
            .flat_map(|r| &r.removed)
            .map(|s| s.records)
            .sum();
        let lost: u64 = records
            .iter()
            .filter_map(|r| r.undelivered.get("forward.dead"))
            .sum();
        ensure!(
            lost == removed_records && lost > 0,
            "the dead forwarder lost {lost}, {removed_records} records were removed"
        );
        ensure!(
            records.iter().all(|r| r.reason == "max_bytes"),
            "{records:?}"
        );
        wait_until(ARRIVAL, "status.json shows the loss", || {
            let s = collector.status()?.unwrap_or(Value::Null);
            Ok(
                s["forwarders"]["dead"]["lost_to_retention"].as_u64() == Some(lost)
                    && s["retention"]["undelivered"]["forward.dead"].as_u64() == Some(lost),
            )
        })?;
        let shown = forwarders(&data_dir)?;
        ensure!(
            shown["dead"]["lost_to_retention"].as_u64() == Some(lost),
            "forwarders: {:?}",
            shown.get("dead")
        );
        let log = std::fs::read_to_string(sb.log_path("collector")).unwrap_or_default();
        ensure!(
            log.contains("had not read") && log.contains("forward.dead"),
            "the loss is not in the collector's log"
        );

        // Search still works: the remaining lines are a suffix, each exactly once.
        let mut seen = Vec::new();
        store.search_each(&["--input", "app"], |r| {
            let raw = r["raw"].as_str().unwrap_or_default();
            seen.push(line_number(raw).with_context(|| format!("line {raw}"))?);
            Ok(())
        })?;
        seen.sort_unstable();
        let first = *seen.first().context("no line left")?;
        ensure!(first > 0, "no line was removed");
        ensure!(
            seen == (first..all).collect::<Vec<_>>(),
            "{} lines left from {first}, not exactly {first}..{all}",
            seen.len()
        );

        collector.stop()?;
        // Filtered forwarders lose only what they would have sent: `dead_app` passes every
        // line (so everything, counted by decoding the removed blocks), `dead_own` and
        // `dead_sshd` none of them (only the collector's own records, which pass every filter).
        // Read with the collector stopped, so no retention round is in flight.
        let records = retention_records(&collector)?;
        let removed_records: u64 = records
            .iter()
            .flat_map(|r| &r.removed)
            .map(|s| s.records)
            .sum();
        let mut first = u64::MAX;
        store.search_each(&["--input", "app"], |r| {
            let raw = r["raw"].as_str().unwrap_or_default();
            first = first.min(line_number(raw).with_context(|| format!("line {raw}"))?);
            Ok(())
        })?;
        let lost_by = |name: &str| -> u64 {
            records
                .iter()
                .filter_map(|r| r.undelivered.get(&format!("forward.{name}")))
                .sum()
        };
        let own_removed = removed_records - first;
        ensure!(
            lost_by("dead_app") == removed_records && lost_by("dead") == removed_records,
            "dead_app lost {}, dead {}, {removed_records} removed",
            lost_by("dead_app"),
            lost_by("dead")
        );
        ensure!(
            own_removed > 0,
            "no record of the collector's own was removed"
        );
        for name in ["dead_own", "dead_sshd"] {
            ensure!(
                lost_by(name) == own_removed,
                "{name} lost {}, of {removed_records} removed records {first} were the agent's",
                lost_by(name)
            );
        }
        let shown = forwarders(&data_dir)?;
        let status = collector.status()?.context("status.json")?;
        for (name, want) in [
            ("dead_app", removed_records),
            ("dead_own", own_removed),
            ("dead_sshd", own_removed),
        ] {
            ensure!(
                shown[name]["lost_to_retention"].as_u64() == Some(want),
                "forwarders: {name} {:?}, want {want}",
                shown.get(name)
            );
            ensure!(
                status["forwarders"][name]["lost_to_retention"].as_u64() == Some(want),
                "status.json: {name} {}, want {want}",
                status["forwarders"][name]
            );
        }

        soc.push_str(&checkpoints_now(&data_dir)?);
        let soc_file = sb.path().join("soc-received.jsonl");
        std::fs::write(&soc_file, &soc)?;

        // verify: clean, with and without the SOC's checkpoints.
        let (ok, doc) = verify(&data_dir, None)?;
        ensure!(ok, "verify after retention: {doc}");
        ensure!(
            doc["removed_by_retention"]["segments"].as_u64() == Some(first_kept),
            "{doc}"
        );
        let (ok, doc) = verify(&data_dir, Some(&soc_file))?;
        ensure!(ok, "verify --checkpoint after retention: {doc}");
        let cps = doc["checkpoints"].as_array().context("checkpoints")?;
        let removed_blocks = doc["removed_by_retention"]["blocks"]
            .as_u64()
            .context("blocks")?;
        for c in cps {
            let covers = c["blocks"].as_u64().context("checkpoint blocks")?;
            let note = c["note"].as_str();
            ensure!(c["ok"] == true, "checkpoint {c}");
            ensure!(
                (covers < removed_blocks) == (note == Some("covered blocks removed by retention")),
                "checkpoint {c} with {removed_blocks} blocks removed"
            );
        }
        let gone = cps.iter().filter(|c| c["note"].is_string()).count();
        ensure!(
            gone >= 1 && gone < cps.len(),
            "want checkpoints both over removed and over kept blocks: {cps:?}"
        );

        // A restart keeps counting all-time: records_stored still counts the removed records
        // (the agent's only, not the collector's own).
        let before = collector.status()?.context("status.json")?["started_at"].clone();
        collector.start()?;
        wait_until(ARRIVAL, "status of the restarted collector", || {
            Ok(collector.status()?.is_some_and(|s| {
                s["started_at"] != before && s["retention"]["runs"].as_u64() >= Some(1)
            }))
        })?;
        let status = collector.status()?.context("status.json")?;
        ensure!(
            status["records_stored"].as_u64() == Some(all),
            "records_stored after a restart: {}",
            status["records_stored"]
        );
        collector.stop()?;

        // A segment deleted by hand (no record) is still a problem.
        let copy: PathBuf = sb.path().join("tampered");
        let status = Command::new("cp")
            .arg("-a")
            .arg(&data_dir)
            .arg(&copy)
            .status()?;
        ensure!(status.success());
        let oldest = tamper::segment_files(&copy.join("store"))[0].clone();
        std::fs::remove_file(&oldest)?;
        let (ok, doc) = verify(&copy, None)?;
        ensure!(
            !ok && doc["problems"]
                .to_string()
                .contains("without a retention record"),
            "verify after a hand deletion: {doc}"
        );
        Ok(())
    });
}

#[test]
fn without_forwarders_old_segments_go_by_age_and_the_store_still_verifies() {
    run_test(|sb: &Sandbox| {
        let app = sb.path().join("app.log");
        let copts = CollectorOpts {
            store_segment_max_bytes: SEGMENT,
            ..CollectorOpts::default()
        };
        let mut collector = Collector::init(sb, "collector", &copts)?;
        let data_dir = collector.data_dir().to_path_buf();
        let config = data_dir.join("collector.toml");
        let mut text = std::fs::read_to_string(&config)?;
        // Only the age limit: the size cap is far away.
        text.push_str(&format!("\n[retention]\nmax_age_days = {MAX_AGE_DAYS}\n"));
        std::fs::write(&config, text)?;
        collector.start()?;
        let opts = AgentOpts::new(&collector, vec![FileInput::new("app", &app)]);
        let mut agent = Agent::enroll(sb, &collector, "agent1", &opts)?;
        agent.start()?;
        let store = collector.store();
        append_numbered(&app, 0, PHASE_1, 80)?;
        wait_until(ARRIVAL, "phase 1 stored", || {
            agent.check_alive()?;
            Ok(store.count(&["--input", "app"])? == PHASE_1)
        })?;
        ensure!(segments(&data_dir)?.len() >= 2, "no sealed segment yet");
        // The normalizer gives the first segment a fields sidecar before it is removed.
        let first_fields =
            logship_store::fields::sidecar_path(&tamper::segment_files(&data_dir.join("store"))[0]);
        wait_until(ARRIVAL, "fields of the first segment", || {
            Ok(first_fields.try_exists()?)
        })?;
        std::thread::sleep(Duration::from_secs_f64(MAX_AGE_DAYS * 86_400.0 + 1.0));
        // More lines seal another segment, which runs a round.
        let all = PHASE_1 + PHASE_2;
        append_numbered(&app, PHASE_1, all, 80)?;
        wait_until(ARRIVAL, "old segments removed by age", || {
            agent.check_alive()?;
            let r = retention_status(&collector)?;
            Ok(store.count(&[
                "--input",
                "app",
                "--contains",
                &format!("line={:09}", all - 1),
            ])? == 1
                && r["segments_removed"].as_u64() > Some(0))
        })?;
        agent.stop()?;
        collector.stop()?;
        let records = retention_records(&collector)?;
        ensure!(
            !records.is_empty()
                && records
                    .iter()
                    .all(|r| r.reason == "max_age_days" && r.undelivered.is_empty()),
            "{records:?}"
        );
        let segs = segments(&data_dir)?;
        ensure!(segs[0].0 > 0, "{segs:?}");
        // A removed segment's fields sidecar went with it; none is left without its segment.
        ensure!(
            !first_fields.try_exists()?,
            "{} left behind",
            first_fields.display()
        );
        for day in std::fs::read_dir(data_dir.join("store/segments"))? {
            for f in std::fs::read_dir(day?.path())? {
                let p = f?.path();
                if p.extension().is_some_and(|e| e == "fld") {
                    ensure!(
                        p.with_extension("seg").try_exists()?,
                        "orphan {}",
                        p.display()
                    );
                }
            }
        }
        let (ok, doc) = verify(&data_dir, None)?;
        ensure!(ok, "verify after retention by age: {doc}");
        // What remains is a suffix of the lines, each once.
        let mut seen = Vec::new();
        store.search_each(&["--input", "app"], |r| {
            seen.push(line_number(r["raw"].as_str().unwrap_or_default()).context("line")?);
            Ok(())
        })?;
        seen.sort_unstable();
        let first = *seen.first().context("no line left")?;
        ensure!(
            first > 0 && seen == (first..all).collect::<Vec<_>>(),
            "{} lines from {first}",
            seen.len()
        );
        Ok(())
    });
}
