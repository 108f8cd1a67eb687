//! `logship-agent import-evtx` (issue 8 items 4 and 5) on real exported Security logs
//! (`tests/fixtures/evtx`, see SOURCES.md there): every event stored once with the fields of the
//! same event read from its XML export, nothing new on a rerun, and exactly once across a stop
//! signal, a SIGKILL while the import is blocked on a full spool, and SIGKILLs while shipping.
//!
//! Expected counts come from the files themselves (the `evtx` crate and the XML export), never
//! from numbers written here.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use logship_e2e::{
    Agent, AgentOpts, Collector, CollectorOpts, Proc, Sandbox, bin, run_test, wait_until,
};
use logship_normalize::{Context as NormContext, Normalizer};
use rand::Rng;
use serde_json::Value;

/// The 636-event file with an XML export of the same events.
const BIG: &str = "evtxrs-Security_with_size_t";
/// A 7-event file.
const SHORT: &str = "evtxrs-Security_short_selected";
/// How long one import may take to finish.
const IMPORT_DEADLINE: Duration = Duration::from_secs(180);
/// `import-evtx` exit status when stopped before everything was acked.
const EXIT_UNFINISHED: i32 = 75;

fn fixture(name: &str, ext: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/evtx")
        .join(format!("{name}.{ext}"))
}

/// Record ids (`System/EventRecordID`, what the `record_id` attribute carries) of an .evtx file,
/// read with the `evtx` crate.
fn record_ids(path: &Path) -> Result<Vec<u64>> {
    let mut parser = ::evtx::EvtxParser::from_path(path)?;
    parser
        .records()
        .map(|r| {
            let xml = r?.data;
            let id = xml
                .split("<EventRecordID>")
                .nth(1)
                .and_then(|r| r.split('<').next())
                .context("an event without EventRecordID")?;
            Ok(id.parse()?)
        })
        .collect()
}

/// Events of an .evtx file with event id `code`, read with the `evtx` crate.
fn with_code(path: &Path, code: u32) -> Result<usize> {
    let mut parser = ::evtx::EvtxParser::from_path(path)?;
    let mut n = 0;
    for r in parser.records() {
        n += usize::from(r?.data.contains(&format!(">{code}</EventID>")));
    }
    Ok(n)
}

/// The XML export: record id → `<Event>` line.
fn xml_export(name: &str) -> Result<HashMap<u64, String>> {
    let text = std::fs::read_to_string(fixture(name, "xml"))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let id = l
                .split("<EventRecordID>")
                .nth(1)
                .and_then(|r| r.split('<').next())
                .context("an exported event without EventRecordID")?;
            Ok((id.parse()?, l.to_string()))
        })
        .collect()
}

/// A running collector and an enrolled agent with no inputs; `tiny_spool` gives a 128 KiB spool
/// and one event per batch, so an import blocks on the full spool while the collector is down.
fn setup(sb: &Sandbox, tiny_spool: bool) -> Result<(Collector, Agent)> {
    let collector = Collector::init(sb, "collector", &CollectorOpts::default())?;
    let mut opts = AgentOpts::new(&collector, Vec::new());
    if tiny_spool {
        opts.spool_max_bytes = 128 << 10;
        opts.spool_segment_max_bytes = 64 << 10;
    }
    let agent = Agent::enroll(sb, &collector, "pc1", &opts)?;
    if tiny_spool {
        let path = agent.config_path();
        let text = std::fs::read_to_string(&path)?;
        let small = text
            .replace("max_records = 5000", "max_records = 1")
            .replace("max_bytes = 1048576", "max_bytes = 65536");
        ensure!(small != text, "agent.toml batch settings not found");
        std::fs::write(&path, small)?;
    }
    Ok((collector, agent))
}

/// Starts `import-evtx` for `files`; its output goes to the log named `name`.
fn start_import(sb: &Sandbox, agent: &Agent, name: &str, files: &[PathBuf]) -> Result<Proc> {
    let mut cmd = Command::new(bin("logship-agent"));
    cmd.args(["--log-level", "debug", "import-evtx", "--config"])
        .arg(agent.config_path())
        .args(files);
    Proc::spawn(name, cmd, &sb.log_path(name))
}

fn wait_exit(p: &mut Proc) -> Result<ExitStatus> {
    let mut status = None;
    wait_until(IMPORT_DEADLINE, "import-evtx to exit", || {
        status = p.exited()?;
        Ok(status.is_some())
    })?;
    Ok(status.expect("waited for it"))
}

/// Runs `import-evtx` to its end; returns the exit status and what it printed.
fn import(sb: &Sandbox, agent: &Agent, name: &str, files: &[PathBuf]) -> Result<(i32, String)> {
    let mut p = start_import(sb, agent, name, files)?;
    let status = wait_exit(&mut p)?;
    let out = std::fs::read_to_string(sb.log_path(name))?;
    Ok((status.code().unwrap_or(-1), out))
}

/// `(imported, already)` from the summary line of `file` in an import's output.
fn summary(out: &str, file: &Path) -> Result<(u64, u64)> {
    let prefix = format!("{}: ", file.display());
    let line = out
        .lines()
        .find(|l| l.starts_with(&prefix) && l.contains("events imported"))
        .with_context(|| format!("no summary line for {}", file.display()))?;
    let nums: Vec<u64> = line[prefix.len()..]
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect();
    ensure!(nums.len() >= 2, "summary line {line:?}");
    Ok((nums[0], nums[1]))
}

/// Stored records of `file`, by record id (attribute `record_id`); fails on a duplicate.
fn stored(collector: &Collector, file: &Path) -> Result<BTreeMap<u64, Value>> {
    let mut out = BTreeMap::new();
    for r in collector.store().search(&["--input", "import-evtx"])? {
        if r["path"] != file.display().to_string().as_str() {
            continue;
        }
        let id: u64 = r["attributes"]["record_id"]
            .as_str()
            .with_context(|| format!("no record_id attribute: {r}"))?
            .parse()?;
        if out.insert(id, r).is_some() {
            bail!("record id {id} of {} stored twice", file.display());
        }
    }
    Ok(out)
}

/// Fails unless every record id of `file` is stored exactly once (and nothing else).
fn check_exactly_once(collector: &Collector, file: &Path, ids: &[u64]) -> Result<()> {
    let got: Vec<u64> = stored(collector, file)?.into_keys().collect();
    let mut want = ids.to_vec();
    want.sort_unstable();
    ensure!(
        got == want,
        "{}: stored {} record ids, the file has {}; missing {:?}",
        file.display(),
        got.len(),
        want.len(),
        want.iter()
            .filter(|i| !got.contains(i))
            .take(10)
            .collect::<Vec<_>>()
    );
    Ok(())
}

#[test]
fn import_evtx_stores_every_event_once_with_the_fields_of_its_xml() {
    run_test(|sb| {
        let (mut collector, agent) = setup(sb, false)?;
        collector.start()?;
        let (big, short) = (fixture(BIG, "evtx"), fixture(SHORT, "evtx"));
        let (big_ids, short_ids) = (record_ids(&big)?, record_ids(&short)?);
        let export = xml_export(BIG)?;
        ensure!(
            big_ids.len() == export.len(),
            "the XML export has other events"
        );

        let (code, out) = import(sb, &agent, "import-1", &[big.clone(), short.clone()])?;
        ensure!(code == 0, "import-evtx exited {code}: {out}");
        ensure!(summary(&out, &big)? == (big_ids.len() as u64, 0), "{out}");
        let total = (big_ids.len() + short_ids.len()) as u64;
        // Exit 0 means the collector acked (stored) every event: no waiting here.
        ensure!(collector.store().count(&["--input", "import-evtx"])? == total);
        check_exactly_once(&collector, &big, &big_ids)?;
        check_exactly_once(&collector, &short, &short_ids)?;

        // Fields equal those of the same event read from the XML export.
        let ctx = NormContext {
            host: "pc1",
            input: "import-evtx",
            path: "export.xml",
            agent_tz: "UTC",
            observed_unix_nanos: 0,
        };
        let mut normalizer = Normalizer::new();
        for (id, r) in stored(&collector, &big)? {
            let mut ours = r["fields"].as_object().context("no fields")?.clone();
            let want = normalizer.normalize(export[&id].as_bytes(), &ctx);
            let mut theirs = want.fields;
            ensure!(
                ours["event.dataset"] == "windows.security",
                "record {id}: {r}"
            );
            // The collector adds the agent's name to every stored record.
            ensure!(
                ours.remove("agent.name") == Some("pc1".into()),
                "record {id}: {r}"
            );
            // python-evtx rounds the FILETIME through a float to microseconds; the evtx crate
            // renders the exact 100 ns value: the times may differ by a few microseconds.
            let (a, b) = (
                ns(&ours.remove("@timestamp"))?,
                ns(&theirs.remove("@timestamp"))?,
            );
            ensure!((a - b).abs() <= 5_000, "record {id}: @timestamp {a} vs {b}");
            ensure!(
                ours == theirs,
                "record {id}: fields {ours:?}\nXML: {theirs:?}"
            );
            // The record's own shape: attributes and event time from the event.
            let attrs = &r["attributes"];
            ensure!(attrs["channel"] == "Security", "record {id}: {attrs}");
            ensure!(
                attrs["event_id"] == ours["event.code"],
                "record {id}: {attrs}"
            );
            ensure!(
                attrs["computer"] == ours["host.name"],
                "record {id}: {attrs}"
            );
            ensure!(
                attrs["provider"] == ours["event.provider"],
                "record {id}: {attrs}"
            );
            ensure!(
                ns(&Some(r["event_time"].clone()))? == a,
                "record {id}: event_time"
            );
            ensure!(
                r["raw"].as_str().is_some_and(|x| x.starts_with("<Event ")),
                "record {id}: raw {}",
                r["raw"]
            );
        }

        // Searchable like any record.
        let failures = export
            .values()
            .filter(|l| l.contains(">4625</EventID>"))
            .count();
        ensure!(failures > 0, "the fixture has failed logons");
        ensure!(
            failures == with_code(&big, 4625)?,
            "4625s in the .evtx and the XML"
        );
        let want = (failures + with_code(&short, 4625)?) as u64;
        let found = collector.store().count(&["--where", "event.code=4625"])?;
        ensure!(found == want, "event.code=4625: {found} of {want}");

        // Twice: nothing new.
        let (code, out) = import(sb, &agent, "import-2", &[big.clone(), short.clone()])?;
        ensure!(code == 0, "second import-evtx exited {code}: {out}");
        ensure!(summary(&out, &big)? == (0, big_ids.len() as u64), "{out}");
        ensure!(
            summary(&out, &short)? == (0, short_ids.len() as u64),
            "{out}"
        );
        ensure!(collector.store().count(&["--input", "import-evtx"])? == total);

        // A copy under another name is the same file.
        let copy = sb.path().join("copy of security.evtx");
        std::fs::copy(&big, &copy)?;
        let (code, out) = import(sb, &agent, "import-3", std::slice::from_ref(&copy))?;
        ensure!(
            code == 0 && summary(&out, &copy)?.0 == 0,
            "copy imported again: {out}"
        );
        ensure!(collector.store().count(&["--input", "import-evtx"])? == total);
        Ok(())
    });
}

#[test]
fn import_evtx_interrupted_and_killed_then_rerun_stores_the_rest_exactly_once() {
    run_test(|sb| {
        // The collector is down at first: the import fills the tiny spool and blocks.
        let (mut collector, agent) = setup(sb, true)?;
        let big = fixture(BIG, "evtx");
        let ids = record_ids(&big)?;
        let blocked = |name: &str| -> Result<bool> {
            let log = std::fs::read_to_string(sb.log_path(name)).unwrap_or_default();
            Ok(log.contains("Spool full; append waiting for acks."))
        };

        // A stop signal while blocked: exit 75, and a message saying to run it again.
        let mut p = start_import(sb, &agent, "import-term", std::slice::from_ref(&big))?;
        wait_until(
            IMPORT_DEADLINE,
            "the import blocked on a full spool",
            || blocked("import-term"),
        )?;
        let status = Command::new("kill")
            .args(["-TERM", &p.pid().to_string()])
            .status()?;
        ensure!(status.success(), "kill -TERM failed");
        let code = wait_exit(&mut p)?.code();
        let out = std::fs::read_to_string(sb.log_path("import-term"))?;
        ensure!(
            code == Some(EXIT_UNFINISHED),
            "after SIGTERM: {code:?}: {out}"
        );
        ensure!(out.contains("run the same command again"), "{out}");

        // SIGKILL while blocked in the middle of the file.
        let p = start_import(sb, &agent, "import-kill", std::slice::from_ref(&big))?;
        wait_until(
            IMPORT_DEADLINE,
            "the import blocked on a full spool",
            || blocked("import-kill"),
        )?;
        p.kill9()?;

        // With the collector up: a run SIGKILLed as soon as anything is stored, then runs
        // SIGKILLed at random moments...
        collector.start()?;
        let mut p = start_import(sb, &agent, "import-kill-2", std::slice::from_ref(&big))?;
        wait_until(
            IMPORT_DEADLINE,
            "some events stored or the import done",
            || Ok(collector.count()? > 0 || p.exited()?.is_some()),
        )?;
        p.kill9()?;
        let mut rng = rand::rng();
        for i in 0..3 {
            let name = format!("import-kill-random-{i}");
            let p = start_import(sb, &agent, &name, std::slice::from_ref(&big))?;
            std::thread::sleep(Duration::from_millis(rng.random_range(0..400)));
            p.kill9()?;
        }
        // ...then a run to the end stores the rest exactly once.
        let (code, out) = import(sb, &agent, "import-rest", std::slice::from_ref(&big))?;
        ensure!(code == 0, "import-evtx exited {code}: {out}");
        let (imported, already) = summary(&out, &big)?;
        ensure!(imported + already == ids.len() as u64, "{out}");
        eprintln!("last run: {imported} events imported, {already} spooled by the killed runs");
        check_exactly_once(&collector, &big, &ids)?;

        // The first runs really stopped midway: the spool held only part of the file.
        let killed = std::fs::read_to_string(sb.log_path("import-kill"))?;
        ensure!(
            !killed.contains("events imported"),
            "the killed run finished: {killed}"
        );
        Ok(())
    });
}

fn ns(v: &Option<Value>) -> Result<i128> {
    let s = v
        .as_ref()
        .and_then(Value::as_str)
        .context("a time that is not a string")?;
    let t: jiff::Timestamp = s.parse().with_context(|| format!("time {s:?}"))?;
    Ok(t.as_nanosecond())
}

/// A chunk whose header is destroyed: every other event is stored, the lost chunk is one gap
/// record naming the file, the exit status says so (65), and a rerun adds nothing.
#[test]
fn import_evtx_damaged_chunk_becomes_one_gap_and_the_rest_is_stored() {
    run_test(|sb| {
        let (mut collector, agent) = setup(sb, false)?;
        collector.start()?;
        let damaged = sb.path().join("damaged.evtx");
        let mut bytes = std::fs::read(fixture(BIG, "evtx"))?;
        // The third 64 KiB chunk after the 4 KiB file header loses its "ElfChnk" magic.
        let chunk = 4096 + 2 * 65536;
        ensure!(&bytes[chunk..chunk + 7] == b"ElfChnk", "fixture layout");
        bytes[chunk..chunk + 7].copy_from_slice(b"garbage");
        std::fs::write(&damaged, bytes)?;
        let mut parser = ::evtx::EvtxParser::from_path(&damaged)?;
        let (mut good, mut bad) = (0u64, 0u64);
        for r in parser.records() {
            match r {
                Ok(_) => good += 1,
                Err(_) => bad += 1,
            }
        }
        ensure!(
            bad > 0 && good > 0,
            "the damage must cost some events: {good} {bad}"
        );

        for run in ["import-damaged-1", "import-damaged-2"] {
            let (code, out) = import(sb, &agent, run, std::slice::from_ref(&damaged))?;
            ensure!(code == 65, "{run} exited {code}: {out}");
            ensure!(out.contains("could not be read"), "{out}");
            let all = collector.store().search(&["--input", "import-evtx"])?;
            let gaps: Vec<&Value> = all.iter().filter(|r| r["kind"] == "gap").collect();
            let events = all.len() - gaps.len();
            ensure!(
                events as u64 == good,
                "{run}: {events} events stored, {good} readable"
            );
            ensure!(
                gaps.len() as u64 == bad,
                "{run}: {} gap records",
                gaps.len()
            );
            ensure!(
                gaps.iter().all(|g| g["raw"]
                    .as_str()
                    .is_some_and(|t| t.contains("damaged.evtx") && t.contains("unreadable"))),
                "gap records: {gaps:?}"
            );
        }

        // Not an .evtx file, and no file at all: clear errors, exit 65, the other file still read.
        let text = sb.path().join("notes.txt");
        std::fs::write(&text, "not an event log\n")?;
        let missing = sb.path().join("missing.evtx");
        let short = fixture(SHORT, "evtx");
        let (code, out) = import(sb, &agent, "import-bad", &[text, missing, short.clone()])?;
        eprintln!("{out}");
        ensure!(code == 65, "import of bad files exited {code}: {out}");
        ensure!(
            out.contains("notes.txt is not a readable .evtx file"),
            "{out}"
        );
        ensure!(out.contains("missing.evtx"), "{out}");
        check_exactly_once(&collector, &short, &record_ids(&short)?)?;
        Ok(())
    });
}

/// Record ids stored by input `input` for the file at `path` (each must be stored once).
fn stored_ids(collector: &Collector, input: &str, path: &Path) -> Result<Vec<u64>> {
    let mut ids = Vec::new();
    for r in collector.store().search(&["--input", input])? {
        if r["path"] != path.display().to_string().as_str() {
            continue;
        }
        ids.push(
            r["attributes"]["record_id"]
                .as_str()
                .with_context(|| format!("no record_id attribute: {r}"))?
                .parse()?,
        );
    }
    ids.sort_unstable();
    Ok(ids)
}

/// The `[[evtx]]` input: .evtx files put in a watched folder are imported once each. A kill
/// while the import is blocked on a full spool (collector down) and a restart store the rest
/// exactly once; a copy of a file under another name stores nothing; a restart stores nothing.
#[test]
fn evtx_folder_input_imports_each_file_once_across_a_kill_copies_and_restarts() {
    run_test(|sb| {
        let (mut collector, mut agent) = setup(sb, true)?;
        let drop = agent.config_path().with_file_name("drop");
        std::fs::create_dir(&drop)?;
        let mut text = std::fs::read_to_string(agent.config_path())?;
        text.push_str(
            "\n[[evtx]]\nname = \"exports\"\nfolder = \"drop\"\nscan_interval_secs = 1\n",
        );
        std::fs::write(agent.config_path(), text)?;
        let big = drop.join("pc-0042-security.evtx");
        std::fs::copy(fixture(BIG, "evtx"), &big)?;
        let big_ids = record_ids(&big)?;

        // Collector down: the import fills the 128 KiB spool and blocks mid-file; killed there.
        agent.start()?;
        wait_until(IMPORT_DEADLINE, "the import to fill the spool", || {
            agent.check_alive()?;
            Ok(logship_e2e::dir_bytes(&agent.spool_dir())? >= 96 << 10)
        })?;
        agent.kill9()?;
        collector.start()?;
        agent.start()?;
        wait_until(IMPORT_DEADLINE, "every event of the file stored", || {
            agent.check_alive()?;
            Ok(stored_ids(&collector, "exports", &big)?.len() >= big_ids.len())
        })?;
        let mut want = big_ids.clone();
        want.sort_unstable();
        ensure!(
            stored_ids(&collector, "exports", &big)? == want,
            "not exactly once"
        );

        // Junk named .evtx, the same content under another name, and a new file.
        let junk: Vec<u8> = (0..70_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        std::fs::write(drop.join("junk.evtx"), junk)?;
        let copy = drop.join("copy-of-security.evtx");
        std::fs::copy(&big, &copy)?;
        let short = drop.join("short.evtx");
        std::fs::copy(fixture(SHORT, "evtx"), &short)?;
        let short_ids = record_ids(&short)?;
        wait_until(IMPORT_DEADLINE, "the new file stored", || {
            Ok(stored_ids(&collector, "exports", &short)?.len() >= short_ids.len())
        })?;
        // A few more scans: the copy must still add nothing.
        std::thread::sleep(Duration::from_secs(3));
        let total = collector.store().search(&["--input", "exports"])?.len();
        ensure!(
            total == big_ids.len() + short_ids.len(),
            "{total} records stored, want {} + {}",
            big_ids.len(),
            short_ids.len()
        );
        ensure!(stored_ids(&collector, "exports", &copy)?.is_empty());

        // A restart reads nothing again.
        agent.stop()?;
        agent.start()?;
        std::thread::sleep(Duration::from_secs(4));
        agent.check_alive()?;
        let again = collector.store().search(&["--input", "exports"])?.len();
        ensure!(
            again == total,
            "{again} records after a restart, {total} before"
        );
        let log = agent.log_text()?;
        ensure!(log.contains("Imported an .evtx file."), "{log}");
        ensure!(
            log.contains("Not an .evtx file the agent can read"),
            "the junk file was not reported:\n{log}"
        );
        Ok(())
    });
}
