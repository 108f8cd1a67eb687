//! The read-only commands for people: `status`, `agents`, `fields` and the printing side of
//! `verify`. Each prints a table on a terminal and JSON when piped (or with `--format json`),
//! always through [`crate::output::Out`], so `| head` ends them quietly.
//!
//! JSON shapes: `status` and `verify` print one pretty document; `agents` and `fields` print one
//! object per line.

pub mod agents;
pub mod fields;
pub mod status;
pub mod verify;

use std::path::Path;

use anyhow::{Context, Result};
use serde_json::Value;

/// Reads and parses `DATA_DIR/status.json`.
pub(crate) fn read_status(data_dir: &Path) -> Result<Value> {
    let path = data_dir.join("status.json");
    let bytes = std::fs::read(&path).with_context(|| {
        format!(
            "reading {} (is this a collector's data directory, and has it run?)",
            path.display()
        )
    })?;
    serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", path.display()))
}

/// Text of a JSON value for a table cell: strings bare, missing as "-".
pub(crate) fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".to_owned(),
        Value::String(s) if s.is_empty() => "-".to_owned(),
        Value::String(s) => s.clone(),
        v => v.to_string(),
    }
}
