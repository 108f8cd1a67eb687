//! `logship-collector agents`: every agent that has sent a heartbeat, from `status.json` (which
//! keeps agents across collector restarts), with whether it is stale: silent for longer than
//! `--stale`.
//!
//! Names: `agent` is the certificate identity (authenticated); `host` is the host name the
//! agent claims in its heartbeat.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use serde_json::{Value, json};

use super::{cell, read_status};
use crate::output::{Format, table};
use crate::timearg::{human_age, parse_age};

/// `--stale` default: ten minutes.
pub const DEFAULT_STALE_NS: i64 = 600 * 1_000_000_000;

/// Prints the agents.
pub fn run(data_dir: &Path, stale: &str, format: Format, out: &mut dyn Write) -> Result<()> {
    let stale_ns = parse_age(stale).with_context(|| format!("--stale {stale:?}"))?;
    let doc = read_status(data_dir)?;
    let now = jiff::Timestamp::now().as_nanosecond() as i64;
    match format {
        Format::Json => {
            for line in rows(&doc, now, stale_ns) {
                serde_json::to_writer(&mut *out, &line)?;
                out.write_all(b"\n")?;
            }
        }
        Format::Table => table(&doc, now, stale_ns).write(out, table::terminal_width())?,
    }
    out.flush()?;
    Ok(())
}

/// One JSON object per agent, sorted by name.
pub fn rows(doc: &Value, now_ns: i64, stale_ns: i64) -> Vec<Value> {
    let Some(agents) = doc["agents"].as_object() else {
        return Vec::new();
    };
    let online_ns = crate::status::ONLINE_WITHIN.as_nanos() as i64;
    agents
        .iter()
        .map(|(name, a)| {
            let last = a["last_heartbeat_unix_ns"].as_i64().unwrap_or(0);
            let silent_ns = now_ns.saturating_sub(last).max(0);
            let drops = a["drops"].as_object();
            // `decode_errors` counts replaced byte sequences whose original bytes were kept:
            // not a loss, so not in DROPS (status.json has it).
            let count = |want_gaps: bool| -> u64 {
                drops.map_or(0, |d| {
                    d.iter()
                        .filter(|(k, _)| k.as_str() != "decode_errors")
                        .filter(|(k, _)| (k.as_str() == "gaps") == want_gaps)
                        .filter_map(|(_, v)| v.as_u64())
                        .sum()
                })
            };
            json!({
                "agent": name,
                "host": a["host"],
                "os_name": a["os_name"],
                "os_version": a["os_version"],
                "agent_version": a["agent_version"],
                "last_heartbeat": crate::timearg::format_ns(last),
                "silent_secs": silent_ns / 1_000_000_000,
                // The file may be old (collector stopped): a heartbeat must also be recent.
                "online": a["online"].as_bool().unwrap_or(false) && silent_ns < online_ns,
                "stale": silent_ns > stale_ns,
                "spool_records": a["spool_records"],
                "spool_bytes": a["spool_bytes"],
                "drops": count(false),
                "gaps": count(true),
                "positions": a["positions"],
            })
        })
        .collect()
}

/// The agents as a table.
pub fn table(doc: &Value, now_ns: i64, stale_ns: i64) -> table::Table {
    let mut t = table::Table::new(&[
        "AGENT",
        "HOST",
        "OS",
        "VERSION",
        "LAST SEEN",
        "STATE",
        "SPOOL",
        "DROPS",
        "GAPS",
        "POSITIONS",
    ]);
    for r in rows(doc, now_ns, stale_ns) {
        let silent = r["silent_secs"].as_i64().unwrap_or(0) * 1_000_000_000;
        let state = match (r["stale"].as_bool(), r["online"].as_bool()) {
            (Some(true), _) => "STALE",
            (_, Some(true)) => "online",
            _ => "quiet",
        };
        let os = format!("{} {}", cell(&r["os_name"]), cell(&r["os_version"]));
        let spool = format!(
            "{} rec / {} B",
            cell(&r["spool_records"]),
            cell(&r["spool_bytes"])
        );
        t.row(vec![
            cell(&r["agent"]),
            cell(&r["host"]),
            os,
            cell(&r["agent_version"]),
            format!("{} ago", human_age(silent)),
            state.to_owned(),
            spool,
            cell(&r["drops"]),
            cell(&r["gaps"]),
            positions(&r["positions"]),
        ]);
    }
    t
}

/// "input:path@offset, ..." of an agent's read positions.
fn positions(v: &Value) -> String {
    let Some(list) = v.as_array() else {
        return "-".to_owned();
    };
    let parts: Vec<String> = list
        .iter()
        .map(|p| {
            format!(
                "{}:{}@{}",
                cell(&p["input"]),
                cell(&p["path"]),
                cell(&p["offset"])
            )
        })
        .collect();
    if parts.is_empty() {
        "-".to_owned()
    } else {
        parts.join(", ")
    }
}
