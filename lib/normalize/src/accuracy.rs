//! Accuracy report over a table of real log lines with hand-checked expected fields.
//!
//! ```text
//! table = JSON lines, one row per line, run in file order through ONE Normalizer (so postfix
//! queue-id joins and auditd serial grouping work across rows):
//!   {"dataset": "sshd", "line": "<raw line>", "expect": {"user.name": "root", ...},
//!    "agent_tz": "UTC"?, "observed": "2025-01-01T00:00:00Z"?}
//! recall(parser)    = rows whose event.dataset equals "dataset" / rows of that dataset
//! precision(parser) = expected fields equal to the output / expected fields, over its rows
//! ```
//! Rows with `"dataset": "unparsed"` check that no parser claims the line.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::{Context, Normalizer};

/// Per-parser results.
#[derive(Debug, Default)]
pub struct Report {
    /// dataset → counts.
    pub rows: BTreeMap<String, Counts>,
    /// Human-readable mismatches (row number, field, expected, got).
    pub mismatches: Vec<String>,
}

/// Counts for one dataset.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counts {
    /// Rows in the table.
    pub lines: usize,
    /// Rows the expected parser claimed.
    pub recognized: usize,
    /// Expected fields.
    pub fields: usize,
    /// Expected fields with an equal value.
    pub correct: usize,
}

/// Why the table could not be run.
#[derive(Debug, thiserror::Error)]
pub enum AccuracyError {
    /// The table file could not be read.
    #[error("cannot read accuracy table: {0}")]
    Io(#[from] std::io::Error),
    /// A row is not valid JSON of the expected shape.
    #[error("bad row {row}: {source}")]
    Row {
        row: usize,
        source: serde_json::Error,
    },
    /// A row's `observed` is not an RFC 3339 time.
    #[error("bad observed time in row {0}")]
    Observed(usize),
}

#[derive(Deserialize)]
struct Row {
    dataset: String,
    line: String,
    #[serde(default)]
    expect: Map<String, Value>,
    agent_tz: Option<String>,
    observed: Option<String>,
}

const DEFAULT_OBSERVED: &str = "2025-01-01T00:00:00Z";

/// Runs every row of the table and returns per-parser recall and field precision.
pub fn run(table: &Path) -> Result<Report, AccuracyError> {
    let text = std::fs::read_to_string(table)?;
    let mut n = Normalizer::new();
    let mut rep = Report::default();
    for (i, l) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let row: Row = serde_json::from_str(l).map_err(|e| AccuracyError::Row {
            row: i + 1,
            source: e,
        })?;
        let obs: jiff::Timestamp = row
            .observed
            .as_deref()
            .unwrap_or(DEFAULT_OBSERVED)
            .parse()
            .map_err(|_| AccuracyError::Observed(i + 1))?;
        let ctx = Context {
            host: "agent-host",
            input: "accuracy",
            path: "accuracy",
            agent_tz: row.agent_tz.as_deref().unwrap_or("UTC"),
            observed_unix_nanos: obs.as_nanosecond() as i64,
        };
        let ev = n.normalize(row.line.as_bytes(), &ctx);
        rep.score(i + 1, &row, &ev);
    }
    Ok(rep)
}

// === impl Report ===

impl Report {
    fn score(&mut self, row: usize, r: &Row, ev: &crate::Event) {
        let c = self.rows.entry(r.dataset.clone()).or_default();
        c.lines += 1;
        if ev.dataset == r.dataset {
            c.recognized += 1;
        } else {
            self.mismatches.push(format!(
                "row {row}: dataset {:?}, got {:?}",
                r.dataset, ev.dataset
            ));
        }
        for (k, want) in &r.expect {
            c.fields += 1;
            let got = ev.get(k);
            if got == Some(want) {
                c.correct += 1;
            } else {
                self.mismatches
                    .push(format!("row {row}: {k} expected {want}, got {got:?}"));
            }
        }
    }

    /// Markdown table: dataset, lines, recall, fields, precision.
    pub fn render_table(&self) -> String {
        let mut s =
            String::from("| dataset | lines | recall | fields checked | field precision |\n");
        s.push_str("|---|---:|---:|---:|---:|\n");
        for (name, c) in &self.rows {
            s.push_str(&format!(
                "| {name} | {} | {:.1}% | {} | {:.1}% |\n",
                c.lines,
                100.0 * c.recall(),
                c.fields,
                100.0 * c.precision()
            ));
        }
        s
    }

    /// True when every dataset reaches both bounds (fractions, e.g. 0.99).
    pub fn meets(&self, min_recall: f64, min_precision: f64) -> bool {
        self.rows
            .values()
            .all(|c| c.recall() >= min_recall && c.precision() >= min_precision)
    }
}

// === impl Counts ===

impl Counts {
    /// Recognized / lines (1.0 for no lines).
    pub fn recall(&self) -> f64 {
        if self.lines == 0 {
            1.0
        } else {
            self.recognized as f64 / self.lines as f64
        }
    }

    /// Correct / fields (1.0 for no fields).
    pub fn precision(&self) -> f64 {
        if self.fields == 0 {
            1.0
        } else {
            self.correct as f64 / self.fields as f64
        }
    }
}
