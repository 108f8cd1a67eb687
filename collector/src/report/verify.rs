//! `logship-collector verify`: walks the whole store (`logship_store::verify_watched`) with
//! progress on a terminal, and prints the report as a table or one JSON document.
//!
//! JSON keys (programs and the quick start read them): `ok`, `segments`, `blocks`, `records`,
//! `chain_head`, `problems` (`segment`, `offset`, `reason`), `incomplete_tail`,
//! `recorded_gaps` (seqs the agent itself declared lost in gap records: explained, not
//! problems; same shape as `problems`) and `interrupted` (Ctrl-C stopped the walk: the counts
//! cover what was checked).

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
    format: Format,
    out: &mut dyn Write,
    interrupt: &Interrupt,
) -> Result<VerifyReport> {
    let spinner = Spinner::new("verified");
    let mut last = logship_store::Progress::default();
    let report = logship_store::verify_watched(&crate::serve::store_dir(data_dir), &mut |p| {
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
    })
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
    let tail = report.incomplete_tail.as_ref();
    t.row(vec![
        "incomplete tail".into(),
        tail.map_or("none".into(), |t| t.reason.clone()),
    ]);
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
