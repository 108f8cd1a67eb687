//! Normalization at ingest and offline: runs the parsers of `logship-normalize` over a batch's
//! records and produces the block's fields column (DESIGN.md §5); and the `normalize` /
//! `parser-accuracy` commands for people checking parsers on their own logs.
//!
//! The fields column is zstd-compressed JSON lines, one object per record in record order (`{}`
//! for gap records). Raw bytes are never changed; a parser that does not recognize a record
//! leaves it `event.dataset = "unparsed"`.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use logship_normalize::{Context, Normalizer};
use logship_proto::v1::RecordList;

/// zstd level of the fields column.
const FIELDS_ZSTD_LEVEL: i32 = 1;

/// Builds the compressed fields column of a decoded batch.
pub fn fields_column(
    list: &RecordList,
    normalizer: &mut Normalizer,
    out: &mut Vec<u8>,
) -> Result<Vec<u8>> {
    out.clear();
    for r in &list.records {
        if r.kind == 1 {
            out.extend_from_slice(b"{}\n");
            continue;
        }
        let source = list.sources.get(r.source as usize);
        let ctx = Context {
            host: &list.host,
            input: source.map_or("", |s| s.input.as_str()),
            path: source.map_or("", |s| s.path.as_str()),
            agent_tz: if list.agent_tz.is_empty() {
                "UTC"
            } else {
                &list.agent_tz
            },
            observed_unix_nanos: r.observed_unix_nanos,
        };
        let event = normalizer.normalize(&r.raw, &ctx);
        serde_json::to_writer(&mut *out, &event.fields)?;
        out.push(b'\n');
    }
    Ok(zstd::bulk::compress(out, FIELDS_ZSTD_LEVEL)?)
}

/// `logship-collector normalize`: prints `{"dataset", "fields", "raw"}` per input line.
pub fn run_offline(
    files: &[PathBuf],
    dataset: &str,
    tz: &str,
    host: &str,
    out: &mut dyn Write,
) -> Result<()> {
    let now = jiff::Timestamp::now().as_nanosecond() as i64;
    for path in files {
        let mut normalizer = Normalizer::new();
        let file =
            std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let path_text = path.display().to_string();
        for line in BufReader::new(file).split(b'\n') {
            let mut line = line.with_context(|| format!("reading {}", path.display()))?;
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            let ctx = Context {
                host,
                input: "normalize",
                path: &path_text,
                agent_tz: tz,
                observed_unix_nanos: now,
            };
            let event = match dataset {
                "auto" => normalizer.normalize(&line, &ctx),
                name => normalizer.normalize_as(name, &line, &ctx)?,
            };
            let doc = serde_json::json!({
                "dataset": event.dataset,
                "fields": event.fields,
                "raw": String::from_utf8_lossy(&line),
            });
            serde_json::to_writer(&mut *out, &doc)?;
            out.write_all(b"\n")?;
        }
    }
    out.flush()?;
    Ok(())
}

/// `logship-collector parser-accuracy`: prints per-parser recall and precision; false when a
/// parser is under the bounds.
pub fn run_accuracy(
    table: &Path,
    min_recall: f64,
    min_precision: f64,
    out: &mut dyn Write,
) -> Result<bool> {
    let report = logship_normalize::accuracy::run(table)
        .with_context(|| format!("running the accuracy table {}", table.display()))?;
    writeln!(out, "{}", report.render_table())?;
    for m in &report.mismatches {
        writeln!(out, "mismatch: {m}")?;
    }
    let ok = report.meets(min_recall, min_precision);
    writeln!(
        out,
        "{}: recall >= {min_recall} and field precision >= {min_precision} for every parser",
        if ok { "PASS" } else { "FAIL" }
    )?;
    Ok(ok)
}
