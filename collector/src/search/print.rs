//! The two shapes of search output.
//!
//! JSON lines, one object per record: `event_id`, `agent`, `host`, `input`, `path`,
//! `observed_time` (RFC 3339), `seq`, and `raw` when the bytes are UTF-8, else `raw_b64`
//! (standard base64, lossless); plus `truncated_from` for cut lines, `kind: "gap"` for gap
//! records, `event_time` when the input knew it, `attributes` (sorted by name) from inputs that
//! carry them (journald fields, the syslog sender), `original_b64` with the bytes as read when
//! `raw` is a re-encoding of them (a Shift_JIS file), and `fields` when normalized.
//!
//! Table, one line per record, never wider than the terminal: time (UTC, to the second), host,
//! input, dataset, a few key fields, and the raw line cut to what is left of the width. The
//! header is printed before the first record, so a search that finds nothing prints only it.

use std::io::Write;

use anyhow::Result;
use base64::Engine;
use logship_store::RecordView;
use serde_json::{Map, Value, json};

use crate::output::progress::short_time;
use crate::output::{Format, table};
use crate::timearg::format_ns;

/// Widths of the columns before the raw line (which takes the rest): time, host, input,
/// dataset, key fields. The key fields column is left out when the raw line would get fewer
/// than [`MIN_RAW`] characters with it.
const WIDTHS: [usize; 5] = [20, 10, 8, 14, 28];
const HEADER: [&str; 6] = ["TIME", "HOST", "INPUT", "DATASET", "KEY FIELDS", "RAW"];
const MIN_RAW: usize = 30;

/// Fields shown in the table's key column when present, in this order, with their labels.
const KEY_FIELDS: &[(&str, &str)] = &[
    ("user.name", "user"),
    ("source.ip", "src"),
    ("destination.ip", "dst"),
    ("http.response.status_code", "status"),
    ("event.outcome", "outcome"),
    ("event.action", "action"),
];

/// Writes records in one format.
pub(super) struct Printer<'o> {
    format: Format,
    count_only: bool,
    out: &'o mut dyn Write,
    width: usize,
    /// Whether the key fields column fits.
    keys: bool,
    header_done: bool,
}

// === impl Printer ===

impl<'o> Printer<'o> {
    pub(super) fn new(format: Format, count_only: bool, out: &'o mut dyn Write) -> Printer<'o> {
        let width = super::width();
        let used: usize = WIDTHS.iter().map(|w| w + 2).sum();
        Printer {
            format,
            count_only,
            out,
            width,
            keys: width >= used + MIN_RAW,
            header_done: false,
        }
    }

    /// Prints one matching record (nothing when counting).
    pub(super) fn record(
        &mut self,
        r: &RecordView<'_>,
        fields: Option<&Map<String, Value>>,
    ) -> Result<()> {
        if self.count_only {
            return Ok(());
        }
        match self.format {
            Format::Json => {
                serde_json::to_writer(&mut *self.out, &record_json(r, fields))?;
                self.out.write_all(b"\n")?;
            }
            Format::Table => {
                self.header()?;
                let (cells, widths) = (self.pick(row(r, fields)), self.widths());
                table::write_line(self.out, &cells, &widths, self.width)?;
            }
        }
        Ok(())
    }

    /// Pushes what was printed so far to stdout.
    pub(super) fn flush(&mut self) -> Result<()> {
        self.out.flush()?;
        Ok(())
    }

    /// Ends the output: the count, or the table header when no record came.
    pub(super) fn finish(&mut self, matched: u64) -> Result<()> {
        if self.count_only {
            writeln!(self.out, "{matched}")?;
        } else if self.format == Format::Table {
            self.header()?;
        }
        self.out.flush()?;
        Ok(())
    }

    fn header(&mut self) -> std::io::Result<()> {
        if !self.header_done {
            self.header_done = true;
            let cells = self.pick(HEADER.iter().map(|h| (*h).to_owned()).collect());
            let widths = self.widths();
            table::write_line(self.out, &cells, &widths, self.width)?;
        }
        Ok(())
    }

    /// The column widths in use (the last entry stands for the raw line).
    fn widths(&self) -> Vec<usize> {
        let n = if self.keys { 5 } else { 4 };
        WIDTHS[..n].iter().copied().chain([0]).collect()
    }

    /// Drops the key fields cell when that column does not fit.
    fn pick(&self, mut cells: Vec<String>) -> Vec<String> {
        if !self.keys {
            cells.remove(4);
        }
        cells
    }
}

/// The table cells of one record.
fn row(r: &RecordView<'_>, fields: Option<&Map<String, Value>>) -> Vec<String> {
    let get = |k: &str| fields.and_then(|f| f.get(k));
    let dataset = if r.kind == 1 {
        "gap".to_owned()
    } else {
        get("event.dataset")
            .and_then(Value::as_str)
            .unwrap_or("-")
            .to_owned()
    };
    let keys: Vec<String> = KEY_FIELDS
        .iter()
        .filter_map(|(k, label)| {
            let v = get(k)?;
            let text = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
            Some(format!("{label}={text}"))
        })
        .collect();
    vec![
        short_time(r.observed_ns),
        r.host.to_owned(),
        r.input.to_owned(),
        dataset,
        keys.join(" "),
        String::from_utf8_lossy(r.raw).into_owned(),
    ]
}

/// The JSON object of one record.
pub fn record_json(r: &RecordView<'_>, fields: Option<&Map<String, Value>>) -> Value {
    let mut m = Map::new();
    m.insert("event_id".into(), json!(r.event_id));
    m.insert("agent".into(), json!(r.agent));
    m.insert("host".into(), json!(r.host));
    m.insert("input".into(), json!(r.input));
    m.insert("path".into(), json!(r.path));
    m.insert("observed_time".into(), json!(format_ns(r.observed_ns)));
    m.insert("seq".into(), json!(r.seq));
    match std::str::from_utf8(r.raw) {
        Ok(text) => m.insert("raw".into(), json!(text)),
        Err(_) => m.insert(
            "raw_b64".into(),
            json!(base64::engine::general_purpose::STANDARD.encode(r.raw)),
        ),
    };
    if r.truncated_from > 0 {
        m.insert("truncated_from".into(), json!(r.truncated_from));
    }
    if r.kind == 1 {
        m.insert("kind".into(), json!("gap"));
    }
    if r.event_ns != 0 {
        m.insert("event_time".into(), json!(format_ns(r.event_ns)));
    }
    if !r.attributes.is_empty() {
        let sorted: std::collections::BTreeMap<_, _> = r.attributes.iter().collect();
        m.insert("attributes".into(), json!(sorted));
    }
    if !r.original.is_empty() {
        m.insert(
            "original_b64".into(),
            json!(base64::engine::general_purpose::STANDARD.encode(r.original)),
        );
    }
    if let Some(fields) = fields {
        m.insert("fields".into(), Value::Object(fields.clone()));
    }
    Value::Object(m)
}
