//! `logship-collector verify`: walks the whole store (`logship_store::verify_watched`) with
//! progress on a terminal, and prints the report as a table or one JSON document.
//!
//! JSON keys (programs and the quick start read them): `ok`, `segments`, `blocks`, `records`,
//! `chain_head`, `problems` (`segment`, `offset`, `reason`), `incomplete_tail`,
//! `recorded_gaps` (seqs the agent itself declared lost in gap records: explained, not
//! problems; same shape as `problems`) and `interrupted` (Ctrl-C stopped the walk: the counts
//! cover what was checked), `checkpoints` (with `--checkpoint`: `line`, `blocks`, `time`,
//! `ok`, `failure`, `note` per signed checkpoint found in the files; `note` is "covered blocks
//! removed by retention" for a checkpoint whose blocks are all gone, which is not a problem),
//! `removed_by_retention` (`segments`, `blocks`: what the chain's retention record says was
//! removed before the oldest remaining block; numbering continues from there).
//!
//! `verify --archive DIR` checks an evidence archive instead ([`run_archive`]); JSON keys `ok`,
//! `archive`, `first_block`, `last_block`, `blocks`, `records`, `checkpoints`, `problems`
//! (strings).

use std::io::Write;
use std::path::Path;

use anyhow::Result;
use logship_store::VerifyReport;
use serde_json::{Value, json};

use crate::output::progress::{Interrupt, Spinner, describe};
use crate::output::{Format, table};

/// Verifies the store and prints the report; returns it.
pub fn run(
    data_dir: &Path,
    witness: Option<&logship_store::Witness>,
    format: Format,
    out: &mut dyn Write,
    interrupt: &Interrupt,
) -> Result<VerifyReport> {
    let spinner = Spinner::new("verified");
    let mut last = logship_store::Progress::default();
    let dir = crate::serve::store_dir(data_dir);
    let report = logship_store::verify_with_witness(&dir, witness, &mut |p| {
        spinner.update(p);
        last = *p;
        !interrupt.raised()
    })?;
    spinner.finish();
    match format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut *out, &document(&report))?;
            out.write_all(b"\n")?;
        }
        Format::Table => write_table(&report, out)?,
    }
    out.flush()?;
    if report.interrupted {
        eprintln!("interrupted: {}", describe(&last, "verified"));
    }
    Ok(report)
}

/// Located findings as JSON objects.
fn located(list: &[logship_store::CorruptBlock]) -> Vec<Value> {
    list.iter()
        .map(|p| {
            json!({
                "segment": p.segment.display().to_string(),
                "offset": p.offset,
                "reason": p.reason,
            })
        })
        .collect()
}

/// The JSON document of a report.
fn document(report: &VerifyReport) -> Value {
    let problems = located(&report.problems);
    json!({
        "ok": problems.is_empty(),
        "segments": report.segments,
        "blocks": report.blocks,
        "records": report.records,
        "chain_head": report.chain_head,
        "problems": problems,
        "incomplete_tail": report.incomplete_tail.as_ref().map(|t| t.reason.clone()),
        "recorded_gaps": located(&report.recorded_gaps),
        "interrupted": report.interrupted,
        "checkpoints": checkpoints(&report.checkpoints),
        "removed_by_retention": {
            "segments": report.removed_segments,
            "blocks": report.removed_blocks,
        },
    })
}

/// Checkpoint results as JSON objects.
fn checkpoints(list: &[logship_store::CheckpointResult]) -> Vec<Value> {
    list.iter()
        .map(|c| {
            json!({
                "line": c.line,
                "blocks": c.blocks,
                "time": c.time_ns.map(crate::timearg::format_ns),
                "ok": c.failure.is_none(),
                "failure": c.failure,
                "note": c.removed.then_some("covered blocks removed by retention"),
            })
        })
        .collect()
}

/// Verifies an evidence archive and prints the report; returns whether it is intact.
pub fn run_archive(
    dir: &Path,
    extra: &[logship_store::FoundCheckpoint],
    key: Option<logship_store::PublicKey>,
    format: Format,
    out: &mut dyn Write,
) -> Result<bool> {
    let report = logship_store::verify_archive(dir, extra, key);
    let ok = report.problems.is_empty();
    let m = report.manifest.as_ref();
    match format {
        Format::Json => {
            let doc = json!({
                "ok": ok,
                "archive": dir.display().to_string(),
                "store": m.map(|m| m.store.clone()),
                "first_block": m.map(|m| m.first_block),
                "last_block": m.map(|m| m.last_block),
                "blocks": report.blocks,
                "records": report.records,
                "checkpoints": checkpoints(&report.checkpoints),
                "problems": report.problems,
            });
            serde_json::to_writer_pretty(&mut *out, &doc)?;
            out.write_all(b"\n")?;
        }
        Format::Table => {
            let width = table::terminal_width();
            let verdict = if ok {
                "OK: every sum, block hash and chain link is intact and covered by a signed checkpoint"
            } else {
                "PROBLEMS FOUND"
            };
            let mut t = table::Table::new(&["CHECK", "RESULT"]);
            t.row(vec!["verdict".into(), verdict.into()]);
            t.row(vec!["archive".into(), dir.display().to_string()]);
            if let Some(m) = m {
                t.row(vec!["store".into(), m.store.clone()]);
                t.row(vec![
                    "blocks".into(),
                    format!("{} ({}..={})", report.blocks, m.first_block, m.last_block),
                ]);
            }
            t.row(vec!["records".into(), report.records.to_string()]);
            let good = report
                .checkpoints
                .iter()
                .filter(|c| c.failure.is_none())
                .count();
            t.row(vec![
                "checkpoints".into(),
                format!("{good} of {} hold", report.checkpoints.len()),
            ]);
            t.write(out, width)?;
            if !ok {
                out.write_all(b"\n")?;
                let mut p = table::Table::new(&["PROBLEM"]);
                for x in &report.problems {
                    p.row(vec![x.clone()]);
                }
                p.write(out, width)?;
            }
        }
    }
    out.flush()?;
    Ok(ok)
}

fn write_table(report: &VerifyReport, out: &mut dyn Write) -> std::io::Result<()> {
    let width = table::terminal_width();
    let verdict = match (report.problems.is_empty(), report.interrupted) {
        (true, false) => "OK: every block checksum, hash and chain link is intact",
        (true, true) => "no problem in the part checked (interrupted)",
        (false, _) => "PROBLEMS FOUND",
    };
    let mut t = table::Table::new(&["CHECK", "RESULT"]);
    t.row(vec!["verdict".into(), verdict.into()]);
    t.row(vec!["segments".into(), report.segments.to_string()]);
    t.row(vec!["blocks".into(), report.blocks.to_string()]);
    t.row(vec!["records".into(), report.records.to_string()]);
    t.row(vec!["chain head".into(), report.chain_head.clone()]);
    if report.removed_blocks > 0 {
        t.row(vec![
            "removed by retention".into(),
            format!(
                "segments 0 to {} ({} blocks), as recorded in the chain",
                report.removed_segments.saturating_sub(1),
                report.removed_blocks
            ),
        ]);
    }
    let tail = report.incomplete_tail.as_ref();
    t.row(vec![
        "incomplete tail".into(),
        tail.map_or("none".into(), |t| t.reason.clone()),
    ]);
    if !report.checkpoints.is_empty() {
        let good = report
            .checkpoints
            .iter()
            .filter(|c| c.failure.is_none() && !c.removed)
            .count();
        let removed = report.checkpoints.iter().filter(|c| c.removed).count();
        let note = match removed {
            0 => String::new(),
            n => format!("; {n} covered blocks removed by retention"),
        };
        t.row(vec![
            "checkpoints".into(),
            format!("{good} of {} hold{note}", report.checkpoints.len()),
        ]);
    }
    t.write(out, width)?;
    for (title, list) in [
        ("PROBLEM", &report.problems),
        ("GAP RECORDED BY THE AGENT", &report.recorded_gaps),
    ] {
        if list.is_empty() {
            continue;
        }
        out.write_all(b"\n")?;
        let mut p = table::Table::new(&["SEGMENT", "OFFSET", title]);
        for x in list {
            p.row(vec![
                x.segment.display().to_string(),
                x.offset.to_string(),
                x.reason.clone(),
            ]);
        }
        p.write(out, width)?;
    }
    Ok(())
}
