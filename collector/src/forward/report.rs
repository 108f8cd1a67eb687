//! `logship-collector forwarders`: each forwarder's state, last delivered event, lag and
//! errors, and `forwarders replay NAME --since T`, which moves a forwarder's cursor back.
//!
//! Where the figures come from: the lag (records and seconds) from the forwarder's cursor in
//! the store and the blocks after it (exact, works with the collector stopped); the counters,
//! last delivered event and last error from the running (or last) collector's status.json.
//! A forwarder no longer in the config still shows while its cursor file exists.
//! `lost_to_retention` (column LOST): records the size cap of `[retention]` removed before this
//! forwarder delivered them, summed from the retention records in the store.
//!
//! Replay refuses while a collector holds the store's writer lock: the running forwarder keeps
//! its place in memory and its next commit would overwrite the moved cursor. Stop the
//! collector, replay, start it: the forwarder then resends everything from the first block
//! holding a record observed at or after T (at least once; the SIEM de-duplicates on
//! `event_id`).

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result, bail};
use serde_json::{Map, Value, json};

use crate::output::{Format, table};
use crate::report::cell;
use crate::serve::store_dir;

/// Prints every forwarder.
pub fn run(data_dir: &Path, format: Format, out: &mut dyn Write) -> Result<()> {
    let rows = collect(data_dir)?;
    match format {
        Format::Json => {
            for row in &rows {
                serde_json::to_writer(&mut *out, row)?;
                out.write_all(b"\n")?;
            }
        }
        Format::Table => {
            let mut t = table::Table::new(&[
                "NAME",
                "STATE",
                "DELIVERED",
                "LAG",
                "LAG_S",
                "ERRORS",
                "LOST",
                "LAST_EVENT",
                "LAST_EVENT_TIME",
                "LAST_ERROR",
            ]);
            for r in &rows {
                let mut r = r.clone();
                if r["last_error"].is_null() {
                    r["last_error"] = r["cursor_error"].clone();
                }
                t.row(
                    [
                        "name",
                        "state",
                        "delivered",
                        "lag_records",
                        "lag_seconds",
                        "errors",
                        "lost_to_retention",
                        "last_event_id",
                        "last_event_time",
                        "last_error",
                    ]
                    .iter()
                    .map(|k| table::clean(&cell(&r[*k])))
                    .collect(),
                );
            }
            t.write(out, table::terminal_width())?;
        }
    }
    out.flush()?;
    Ok(())
}

/// One JSON object per forwarder (sorted by name).
pub fn collect(data_dir: &Path) -> Result<Vec<Value>> {
    let store = store_dir(data_dir);
    let running = collector_running(&store)?;
    let status = crate::report::read_status(data_dir).ok();
    let live = status
        .as_ref()
        .and_then(|s| s["forwarders"].as_object().cloned())
        .unwrap_or_default();
    let mut names: Vec<String> = live.keys().cloned().collect();
    if let Ok(dir) = std::fs::read_dir(store.join(logship_store::CURSORS_DIR)) {
        for entry in dir.flatten() {
            let file = entry.file_name();
            let file = file.to_string_lossy();
            if let Some(name) = file
                .strip_suffix(".cur")
                .and_then(|f| f.strip_prefix("forward."))
                && !names.iter().any(|n| n == name)
            {
                names.push(name.to_string());
            }
        }
    }
    names.sort();
    let lost = crate::retention::recorded_losses(&store);
    let now = jiff::Timestamp::now().as_nanosecond() as i64;
    let mut rows = Vec::new();
    for name in names {
        let mut row: Map<String, Value> = live
            .get(&name)
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        row.insert("name".into(), json!(name));
        let cursor_name = super::cursor_name(&name);
        row.insert(
            "lost_to_retention".into(),
            json!(lost.get(&cursor_name).copied().unwrap_or(0)),
        );
        let cursor = match logship_store::load_cursor(&store, &super::cursor_name(&name)) {
            Ok(c) => c,
            Err(e) => {
                // Shown, not fatal: the forwarder sets a damaged file aside at its next start.
                row.insert("cursor_error".into(), json!(e.to_string()));
                None
            }
        };
        let pos = match &cursor {
            Some(c) => c.pos,
            None => logship_store::CursorPos::default(),
        };
        let backlog = logship_store::backlog(&store, pos)?;
        row.insert("lag_records".into(), json!(backlog.records));
        let lag_s = match (backlog.records, backlog.oldest_ns) {
            (0, _) | (_, None) => 0.0,
            (_, Some(t)) => ((now - t).max(0) as f64 / 1e8).round() / 10.0,
        };
        row.insert("lag_seconds".into(), json!(lag_s));
        row.insert(
            "cursor".into(),
            json!(cursor.as_ref().map(|c| json!({
                "segment": c.pos.segment,
                "offset": c.pos.offset,
                "committed_at": crate::timearg::format_ns(c.updated_ns),
            }))),
        );
        if !running {
            row.insert("state".into(), json!("stopped"));
        }
        rows.push(Value::Object(row));
    }
    Ok(rows)
}

/// Moves forwarder `name`'s cursor back to the first block holding a record observed at or
/// after `since_ns`. Refuses while a collector runs on this data directory.
pub fn replay(data_dir: &Path, name: &str, since_ns: i64, out: &mut dyn Write) -> Result<()> {
    let store = store_dir(data_dir);
    if collector_running(&store)? {
        bail!(
            "a collector is running on {} (it holds the store lock): its forwarder {name:?} keeps \
             its place in memory and would overwrite the replay. Stop the collector, run \
             `forwarders replay` again, then start it",
            data_dir.display()
        );
    }
    let cursor_name = super::cursor_name(name);
    // A damaged cursor file is simply replaced.
    let before = logship_store::load_cursor(&store, &cursor_name).unwrap_or(None);
    let has_file = logship_store::cursor_path(&store, &cursor_name)
        .try_exists()
        .unwrap_or(false);
    if !has_file && !known_in_status(data_dir, name) {
        bail!(
            "no forwarder named {name:?} has run on {}",
            data_dir.display()
        );
    }
    let pos = logship_store::position_since(&store, since_ns)?;
    logship_store::save_cursor(&store, &cursor_name, pos)
        .with_context(|| format!("saving the cursor of forwarder {name:?}"))?;
    let backlog = logship_store::backlog(&store, pos)?;
    writeln!(
        out,
        "forwarder {name}: cursor moved to segment {} offset {} (was {}); {} records will be \
         sent again when the collector starts",
        pos.segment,
        pos.offset,
        before.map_or("never committed".to_string(), |b| format!(
            "segment {} offset {}",
            b.pos.segment, b.pos.offset
        )),
        backlog.records
    )?;
    out.flush()?;
    Ok(())
}

fn known_in_status(data_dir: &Path, name: &str) -> bool {
    crate::report::read_status(data_dir)
        .ok()
        .is_some_and(|s| s["forwarders"].get(name).is_some())
}

/// Whether a collector holds the store's writer lock.
fn collector_running(store: &Path) -> Result<bool> {
    let path = store.join("LOCK");
    let file = match std::fs::OpenOptions::new().write(true).open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e).with_context(|| format!("opening {}", path.display())),
    };
    match file.try_lock() {
        Ok(()) => Ok(false),
        Err(std::fs::TryLockError::WouldBlock) => Ok(true),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("checking the lock {}", path.display()))
        }
    }
}
