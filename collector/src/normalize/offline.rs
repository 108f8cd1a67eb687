//! The `normalize` and `parser-accuracy` commands, for people checking the parsers on their own
//! logs before they deploy.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use logship_normalize::{Context, Normalizer};

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
