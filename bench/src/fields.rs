//! Fields ready (issue 13): once logship has stored every line, how long until the collector's
//! normalizer has the fields of the last one on disk, read from `status.json`.
//!
//! ```text
//! status.json {"records_stored": N, "fields_lag_records": L, …}   ready: L = 0 and N ≥ lines
//! older collectors (no fields_lag_records): normalized_records + normalize_skipped_records ≥ lines
//! ```
//!
//! Invariant: [`fields_progress`] never reports `lines` (done) before the fields of every line
//! are ready, and it grows as the normalizer advances (so a stalled normalizer is detected).

use std::fs;
use std::path::Path;

use serde_json::Value;

/// Records of the file whose fields are ready, capped at `lines`, which means all of them.
/// 0 while the status file is missing or unreadable.
pub(crate) fn fields_progress(path: &Path, lines: u64) -> u64 {
    fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .map_or(0, |s| progress(&s, lines))
}

fn progress(s: &Value, lines: u64) -> u64 {
    let almost = lines.saturating_sub(1);
    let count = |key: &str| s[key].as_u64().unwrap_or(0);
    let stored = count("records_stored");
    match s.get("fields_lag_records").map(Value::as_u64) {
        Some(Some(0)) if stored >= lines => lines,
        Some(Some(lag)) => stored.saturating_sub(lag).min(almost),
        // `null`: not measured yet (or normalization off).
        Some(None) => 0,
        None => {
            let done = count("normalized_records") + count("normalize_skipped_records");
            if done >= lines { lines } else { done }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(json: &str) -> Value {
        serde_json::from_str(json).expect("status")
    }

    #[test]
    fn ready_only_when_the_lag_is_zero_with_every_line_stored() {
        let p = |j| progress(&status(j), 100);
        assert_eq!(
            p(r#"{"records_stored": 100, "fields_lag_records": 0}"#),
            100
        );
        // Caught up, but not every line stored yet.
        assert_eq!(p(r#"{"records_stored": 90, "fields_lag_records": 0}"#), 90);
        // Checkpoint records make the store larger than the file: still not done while lagging.
        assert_eq!(p(r#"{"records_stored": 120, "fields_lag_records": 1}"#), 99);
        assert_eq!(
            p(r#"{"records_stored": 100, "fields_lag_records": 60}"#),
            40
        );
        assert_eq!(
            p(r#"{"records_stored": 100, "fields_lag_records": null}"#),
            0
        );
        // A collector from before the lag figures.
        assert_eq!(
            p(r#"{"records_stored": 100, "normalized_records": 60}"#),
            60
        );
        assert_eq!(
            p(
                r#"{"records_stored": 100, "normalized_records": 98, "normalize_skipped_records": 2}"#
            ),
            100
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("status.json");
        assert_eq!(fields_progress(&path, 100), 0);
        fs::write(&path, r#"{"records_stored": 100, "fields_lag_records": 0}"#).expect("write");
        assert_eq!(fields_progress(&path, 100), 100);
    }
}
