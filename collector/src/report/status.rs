//! `logship-collector status`: `DATA_DIR/status.json` for people — every counter with what it
//! counts (all time, since the collector started, since the agent started), then the agents.

use std::io::Write;
use std::path::Path;

use anyhow::Result;
use serde_json::Value;

use super::{cell, read_status};
use crate::output::{Format, table};

/// Prints the status file.
pub fn run(data_dir: &Path, format: Format, out: &mut dyn Write) -> Result<()> {
    let doc = read_status(data_dir)?;
    match format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut *out, &doc)?;
            out.write_all(b"\n")?;
        }
        Format::Table => {
            let width = table::terminal_width();
            counters(&doc).write(out, width)?;
            out.write_all(b"\n")?;
            let now = jiff::Timestamp::now().as_nanosecond() as i64;
            let stale = super::agents::recorded_stale_ns(&doc);
            super::agents::write_table(&doc, now, stale, width, out)?;
        }
    }
    out.flush()?;
    Ok(())
}

/// Rows of the counters: name, value, scope.
fn counters(doc: &Value) -> table::Table {
    let mut t = table::Table::new(&["COUNTER", "VALUE", "COUNTS"]);
    for key in ["started_at", "written_at"] {
        t.row(vec![key.to_owned(), cell(&doc[key]), "time".to_owned()]);
    }
    let Some(obj) = doc.as_object() else {
        return t;
    };
    for (key, value) in obj {
        if !value.is_number() {
            continue;
        }
        let lists = |scope: &str| {
            doc["counter_scope"][scope]
                .as_array()
                .is_some_and(|l| l.iter().any(|k| k.as_str() == Some(key)))
        };
        let scope = if lists("all_time") {
            "all time (whole store)"
        } else if lists("since_start") {
            "since the collector started"
        } else {
            "-"
        };
        t.row(vec![key.clone(), cell(value), scope.to_owned()]);
    }
    t
}
