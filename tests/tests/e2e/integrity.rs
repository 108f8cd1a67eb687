//! The witness and evidence export (issue 10, items 4 and 5), with the real collector and agent:
//! the collector signs checkpoints as records of its own (`@collector`), a store that survived
//! a kill -9 while agents shipped verifies against them, and `verify --checkpoint` catches each
//! of a flipped byte, a deleted block, two swapped blocks, whole blocks cut from the end and a
//! store rewritten with a recomputed chain (the last two pass the chain alone). An exported
//! archive verifies on its own, and the same tamperings applied to the archive are caught.
//!
//! The checkpoint file is what a SOC would hold: the collector's own records as JSON lines,
//! read out of the store before any tampering (the forwarders deliver the same raw text).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use logship_e2e::{
    Agent, AgentOpts, Collector, CollectorOpts, FileInput, Sandbox, bin, check_exactly_once,
    flip_bit_at, run_test, wait_until,
};
use logship_store::{BLOCKS_FILE, COLLECTOR_IDENTITY, read_manifest, tamper};
use serde_json::Value;

use crate::support::{append_numbered, rfc3339_in};

const ARRIVAL: Duration = Duration::from_secs(180);
/// Lines shipped before and after the collector is killed.
const HALF: u64 = 20_000;
/// One real sshd line (from the parser fixtures), the only record `--where event.dataset=sshd`
/// selects.
const SSHD_LINE: &str =
    "Nov 25 09:10:00 gw sshd[811]: Failed password for alice from 203.0.113.7 port 40001 ssh2\n";

/// A stopped collector whose store holds `2 * HALF` numbered lines and one sshd line shipped by
/// a real agent, with a kill -9 of the collector in the middle; and the SOC's checkpoint file.
fn shipped_store(sb: &Sandbox) -> Result<(Collector, PathBuf)> {
    let app = sb.path().join("app.log");
    let auth = sb.path().join("auth.log");
    let copts = CollectorOpts {
        store_segment_max_bytes: 1 << 20,
        ..CollectorOpts::default()
    };
    let mut collector = Collector::init(sb, "collector", &copts)?;
    let config = collector.data_dir().join("collector.toml");
    let mut text = std::fs::read_to_string(&config)?;
    text.push_str("\n[integrity]\ncheckpoint_every_secs = 1\n");
    std::fs::write(&config, text)?;
    collector.start()?;
    let opts = AgentOpts::new(
        &collector,
        vec![FileInput::new("app", &app), FileInput::new("auth", &auth)],
    );
    let mut agent = Agent::enroll(sb, &collector, "agent1", &opts)?;
    agent.start()?;
    let store = collector.store();
    append_numbered(&app, 0, HALF, 80)?;
    wait_until(ARRIVAL, "some lines and a checkpoint stored", || {
        agent.check_alive()?;
        Ok(store.count(&["--input", "app"])? >= HALF / 4
            && store.count(&["--agent", COLLECTOR_IDENTITY])? >= 1)
    })?;
    // Killed while the agent ships: recovery must leave a store every checkpoint still holds.
    collector.kill9()?;
    collector.start()?;
    append_numbered(&app, HALF, 2 * HALF, 80)?;
    std::fs::write(&auth, SSHD_LINE)?;
    wait_until(ARRIVAL, "every line stored", || {
        agent.check_alive()?;
        Ok(
            store.count(&["--input", "app"])? == 2 * HALF
                && store.count(&["--input", "auth"])? == 1,
        )
    })?;
    check_exactly_once(&store, "app", 2 * HALF)?;
    agent.stop()?;
    collector.stop()?; // Signs the shutdown checkpoint.
    let status = collector.status()?.context("status.json")?;
    ensure!(
        status["checkpoints_signed"].as_u64() >= Some(1)
            && status["checkpoint_failures"].as_u64() == Some(0)
            && status["last_checkpoint_time"].is_string()
            // Agents' records only, across the restart: checkpoints are not counted.
            && status["records_stored"].as_u64() == Some(2 * HALF + 1),
        "checkpoint counters in status.json: {status}"
    );
    // No agent certificate can carry the collector's own identity.
    let refused = collector_cmd(&[
        "issue-agent-cert",
        "--data-dir",
        &collector.data_dir().display().to_string(),
        "--name",
        COLLECTOR_IDENTITY,
        "--collector",
        "127.0.0.1:1",
        "--out",
        &sb.path().join("forged-cert").display().to_string(),
    ])?;
    ensure!(
        !refused.status.success() && stderr(&refused).contains("agent name"),
        "issue-agent-cert --name {COLLECTOR_IDENTITY}: {}",
        stderr(&refused)
    );
    let soc = sb.path().join("soc-received.jsonl");
    let out = collector_cmd(&[
        "search",
        "--data-dir",
        &collector.data_dir().display().to_string(),
        "--agent",
        COLLECTOR_IDENTITY,
        "--json",
    ])?;
    ensure!(out.status.success(), "search: {}", stderr(&out));
    std::fs::write(&soc, &out.stdout)?;
    let n = logship_store::find_checkpoints(&String::from_utf8_lossy(&out.stdout)).len();
    ensure!(n >= 2, "only {n} checkpoint(s) were signed");
    Ok((collector, soc))
}

fn collector_cmd(args: &[&str]) -> Result<Output> {
    Command::new(bin("logship-collector"))
        .args(args)
        .output()
        .with_context(|| format!("running logship-collector {args:?}"))
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `verify --data-dir DIR [--checkpoint SOC] --format json`: exit success and the document.
fn verify_store(data_dir: &Path, soc: Option<&Path>) -> Result<(bool, Value)> {
    let dir = data_dir.display().to_string();
    let mut args = vec!["verify", "--data-dir", &dir, "--format", "json"];
    let soc_text = soc.map(|s| s.display().to_string());
    if let Some(s) = &soc_text {
        args.extend(["--checkpoint", s]);
    }
    let out = collector_cmd(&args)?;
    let doc: Value = serde_json::from_slice(&out.stdout)
        .with_context(|| format!("verify output: {}", stderr(&out)))?;
    ensure!(
        doc["ok"].as_bool() == Some(out.status.success()),
        "exit status and ok disagree: {doc}"
    );
    Ok((out.status.success(), doc))
}

/// `verify --archive DIR --format json` with extra arguments.
fn verify_archive(dir: &Path, extra: &[&str]) -> Result<(bool, Value)> {
    let d = dir.display().to_string();
    let mut args = vec!["verify", "--archive", &d, "--format", "json"];
    args.extend_from_slice(extra);
    let out = collector_cmd(&args)?;
    let doc: Value = serde_json::from_slice(&out.stdout)
        .with_context(|| format!("verify --archive output: {}", stderr(&out)))?;
    ensure!(doc["ok"].as_bool() == Some(out.status.success()), "{doc}");
    Ok((out.status.success(), doc))
}

/// The problems of a verify document as one text, for matching.
fn problems(doc: &Value) -> String {
    doc["problems"].to_string()
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    let status = Command::new("cp").arg("-a").arg(from).arg(to).status()?;
    ensure!(
        status.success(),
        "cp -a {} {}",
        from.display(),
        to.display()
    );
    Ok(())
}

fn segments(data_dir: &Path) -> Vec<PathBuf> {
    tamper::segment_files(&data_dir.join("store"))
}

/// The segment with the most blocks (at least 3, so blocks can be removed and swapped).
fn busiest(data_dir: &Path) -> Result<PathBuf> {
    let seg = segments(data_dir)
        .into_iter()
        .max_by_key(|s| tamper::block_spans(s, 16).len())
        .context("no segment")?;
    let n = tamper::block_spans(&seg, 16).len();
    ensure!(n >= 3, "no segment has 3 blocks (most: {n})");
    Ok(seg)
}

/// Rewrites `path` with its frames reordered or removed: `pick` gets the frame spans.
fn refile(path: &Path, start: u64, pick: impl Fn(&[(u64, u64)]) -> Vec<(u64, u64)>) -> Result<()> {
    let bytes = std::fs::read(path)?;
    let spans = tamper::block_spans(path, start);
    let end = spans.last().map_or(start, |&(o, l)| o + l);
    let mut out = bytes[..start as usize].to_vec();
    for (o, l) in pick(&spans) {
        out.extend_from_slice(&bytes[o as usize..(o + l) as usize]);
    }
    out.extend_from_slice(&bytes[end as usize..]);
    std::fs::write(path, out)?;
    Ok(())
}

fn swap_1_2(s: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let mut v = s.to_vec();
    v.swap(1, 2);
    v
}

fn drop_1(s: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let mut v = s.to_vec();
    v.remove(1);
    v
}

#[test]
fn verify_holds_the_store_against_its_forwarded_checkpoints() {
    run_test(|sb| {
        let (collector, soc) = shipped_store(sb)?;
        let data = collector.data_dir().to_path_buf();
        ensure!(segments(&data).len() >= 3, "expected several segments");

        // Untouched after kill -9 recovery: every checkpoint holds.
        let (ok, doc) = verify_store(&data, Some(&soc))?;
        ensure!(ok, "untouched store: {doc}");
        let cps = doc["checkpoints"].as_array().context("checkpoints")?;
        ensure!(
            cps.len() >= 2 && cps.iter().all(|c| c["ok"] == true),
            "{doc}"
        );
        let blocks = doc["blocks"].as_u64().context("blocks")?;
        let covered = cps.iter().filter_map(|c| c["blocks"].as_u64()).max();
        ensure!(
            covered == Some(blocks - 1),
            "the shutdown checkpoint covers every block but itself: {covered:?} of {blocks}"
        );

        let case = |name: &str| -> Result<PathBuf> {
            let dir = sb.path().join(name);
            copy_dir(&data, &dir)?;
            Ok(dir)
        };

        // One flipped byte in the middle of a block of the first segment.
        let d = case("flipped")?;
        let seg = busiest(&d)?;
        let (o, l) = tamper::block_spans(&seg, 16)[1];
        flip_bit_at(&seg, o + l / 2)?;
        let (ok, doc) = verify_store(&d, Some(&soc))?;
        ensure!(
            !ok && problems(&doc).contains("mismatch"),
            "flipped byte: {doc}"
        );

        // A deleted block.
        let d = case("deleted")?;
        refile(&busiest(&d)?, 16, drop_1)?;
        let (ok, doc) = verify_store(&d, Some(&soc))?;
        ensure!(
            !ok && problems(&doc).contains("chain broken"),
            "deleted block: {doc}"
        );

        // Two swapped blocks.
        let d = case("swapped")?;
        refile(&busiest(&d)?, 16, swap_1_2)?;
        let (ok, doc) = verify_store(&d, Some(&soc))?;
        ensure!(
            !ok && problems(&doc).contains("chain broken"),
            "swapped blocks: {doc}"
        );

        // Whole blocks cut from the end: the chain alone cannot tell, the checkpoints can.
        let d = case("cut")?;
        let last = segments(&d).last().cloned().context("a segment")?;
        let spans = tamper::block_spans(&last, 16);
        ensure!(spans.len() >= 2, "last segment too short to cut");
        let (o, _) = spans[spans.len() - 2];
        std::fs::OpenOptions::new()
            .write(true)
            .open(&last)?
            .set_len(o)?;
        let (ok, doc) = verify_store(&d, None)?;
        ensure!(ok, "the chain alone sees no cut: {doc}");
        let (ok, doc) = verify_store(&d, Some(&soc))?;
        ensure!(
            !ok && problems(&doc).contains("cut from the end"),
            "cut: {doc}"
        );

        // A record rewritten and the chain recomputed after it.
        let d = case("rewritten")?;
        let n = tamper::rewrite_store_with_recomputed_chain(
            &d.join("store"),
            "line=000000123 ",
            "line=000000123 forged ",
        );
        ensure!(n == 1, "rewrote {n} records");
        let (ok, doc) = verify_store(&d, None)?;
        ensure!(ok, "the chain alone sees no rewrite: {doc}");
        let (ok, doc) = verify_store(&d, Some(&soc))?;
        ensure!(
            !ok && problems(&doc).contains("recomputed chain"),
            "rewrite: {doc}"
        );
        Ok(())
    });
}

#[test]
fn an_exported_archive_verifies_on_its_own_and_tampering_with_it_is_caught() {
    run_test(|sb| {
        let (collector, soc) = shipped_store(sb)?;
        let data = collector.data_dir().display().to_string();
        let until = rfc3339_in(3600)?;
        let archive = sb.path().join("archive");
        let a = archive.display().to_string();
        let out = collector_cmd(&[
            "export",
            "--data-dir",
            &data,
            "--since",
            "1h",
            "--until",
            &until,
            "--out",
            &a,
        ])?;
        ensure!(out.status.success(), "export: {}", stderr(&out));
        // Verified with nothing but the archive (the data directory moved away).
        let moved = sb.path().join("collector.moved");
        std::fs::rename(collector.data_dir(), &moved)?;
        let (ok, doc) = verify_archive(&archive, &[])?;
        ensure!(ok, "archive: {doc}");
        ensure!(doc["records"].as_u64() > Some(2 * HALF), "{doc}");
        // And against the SOC's checkpoints and the key kept apart.
        let soc_s = soc.display().to_string();
        let key = moved.join("witness.pub").display().to_string();
        let (ok, doc) = verify_archive(&archive, &["--checkpoint", &soc_s, "--public-key", &key])?;
        ensure!(ok, "archive with the SOC's checkpoints: {doc}");
        std::fs::rename(&moved, collector.data_dir())?;

        // --where: the blocks holding the sshd record, up to the next checkpoint.
        let sshd = sb.path().join("sshd-archive");
        let s = sshd.display().to_string();
        let out = collector_cmd(&[
            "export",
            "--data-dir",
            &data,
            "--since",
            "1h",
            "--until",
            &until,
            "--where",
            "event.dataset=sshd",
            "--out",
            &s,
        ])?;
        ensure!(out.status.success(), "export --where: {}", stderr(&out));
        let m = read_manifest(&sshd).map_err(anyhow::Error::msg)?;
        ensure!(m.matching_blocks.len() == 1, "{m:?}");
        ensure!(
            m.last_block - m.first_block + 1
                < read_manifest(&archive)
                    .map_err(anyhow::Error::msg)?
                    .last_block,
            "--where exported the whole store"
        );
        let (ok, doc) = verify_archive(&sshd, &[])?;
        ensure!(ok, "sshd archive: {doc}");

        let case = |name: &str| -> Result<PathBuf> {
            let dir = sb.path().join(name);
            copy_dir(&archive, &dir)?;
            Ok(dir)
        };
        let reseal = |dir: &Path| -> Result<()> {
            let mut m = read_manifest(dir).map_err(anyhow::Error::msg)?;
            tamper::reseal_archive(dir, &mut m);
            Ok(())
        };

        // One flipped byte (sums recomputed, as a forger would).
        let d = case("a-flipped")?;
        let blocks = d.join(BLOCKS_FILE);
        let (o, l) = tamper::block_spans(&blocks, 0)[1];
        flip_bit_at(&blocks, o + l / 2)?;
        let (ok, doc) = verify_archive(&d, &[])?;
        ensure!(
            !ok && problems(&doc).contains("SHA-256"),
            "flipped, sums kept: {doc}"
        );
        reseal(&d)?;
        let (ok, doc) = verify_archive(&d, &[])?;
        ensure!(!ok && problems(&doc).contains("mismatch"), "flipped: {doc}");

        // A deleted block.
        let d = case("a-deleted")?;
        refile(&d.join(BLOCKS_FILE), 0, drop_1)?;
        reseal(&d)?;
        let (ok, doc) = verify_archive(&d, &[])?;
        ensure!(
            !ok && problems(&doc).contains("chain broken"),
            "deleted: {doc}"
        );

        // Two swapped blocks.
        let d = case("a-swapped")?;
        refile(&d.join(BLOCKS_FILE), 0, swap_1_2)?;
        reseal(&d)?;
        let (ok, doc) = verify_archive(&d, &[])?;
        ensure!(
            !ok && problems(&doc).contains("chain broken"),
            "swapped: {doc}"
        );

        // Whole blocks cut from the end, manifest made to agree.
        let d = case("a-cut")?;
        let blocks = d.join(BLOCKS_FILE);
        let spans = tamper::block_spans(&blocks, 0);
        let (o, _) = spans[spans.len() - 3];
        std::fs::OpenOptions::new()
            .write(true)
            .open(&blocks)?
            .set_len(o)?;
        let mut m = read_manifest(&d).map_err(anyhow::Error::msg)?;
        m.last_block -= 3;
        tamper::reseal_archive(&d, &mut m);
        let (ok, doc) = verify_archive(&d, &[])?;
        ensure!(
            !ok && problems(&doc).contains("cut from the end"),
            "cut: {doc}"
        );

        // A record rewritten with a recomputed chain and fresh sums.
        let d = case("a-rewritten")?;
        let n = tamper::rewrite_archive_with_recomputed_chain(
            &d,
            "line=000000123 ",
            "line=000000123 forged ",
        );
        ensure!(n == 1, "rewrote {n} records");
        let (ok, doc) = verify_archive(&d, &[])?;
        ensure!(
            !ok && problems(&doc).contains("recomputed chain"),
            "rewrite: {doc}"
        );
        Ok(())
    });
}

#[test]
fn ingest_refuses_a_certificate_named_as_the_collector_even_when_signed_by_its_ca() {
    use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, Issuer, KeyPair};
    run_test(|sb| {
        let mut collector = Collector::init(sb, "collector", &CollectorOpts::default())?;
        collector.start()?;
        // What someone holding the CA key could make (issue-agent-cert refuses the name).
        let data = collector.data_dir();
        let ca_key = KeyPair::from_pem(&std::fs::read_to_string(data.join("ca.key"))?)?;
        let issuer =
            Issuer::from_ca_cert_pem(&std::fs::read_to_string(data.join("ca.pem"))?, ca_key)?;
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params
            .distinguished_name
            .push(DnType::CommonName, COLLECTOR_IDENTITY);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.signed_by(&key, &issuer)?;
        let dir = sb.path().join("forged");
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("agent.pem"), cert.pem())?;
        std::fs::write(dir.join("agent.key"), key.serialize_pem())?;
        let tls = logship_e2e::raw::tls_config(
            &data.join("ca.pem"),
            Some((&dir.join("agent.pem"), &dir.join("agent.key"))),
        )?;
        let batch =
            logship_e2e::raw::line_batch("s1", 1, "app", &["LOGSHIP-CHECKPOINT v1 forged"])?;
        let shipped = logship_e2e::raw::ship(&collector.endpoint(), tls, vec![batch]);
        ensure!(
            shipped.is_err(),
            "a @collector certificate shipped: {shipped:?}"
        );
        collector.stop()?;
        let stored =
            collector
                .store()
                .count(&["--agent", COLLECTOR_IDENTITY, "--contains", "forged"])?;
        ensure!(stored == 0, "{stored} forged records stored");
        let log = std::fs::read_to_string(sb.log_path("collector"))?;
        ensure!(
            log.lines()
                .any(|l| l.contains("agent name") && l.contains(COLLECTOR_IDENTITY)),
            "the refusal is not explained in the log"
        );
        Ok(())
    });
}
