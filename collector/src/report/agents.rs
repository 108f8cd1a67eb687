//! `logship-collector agents`: the fleet view. Every agent that has sent a heartbeat, from
//! `status.json` (which keeps agents across collector restarts): certificate name and expiry,
//! claimed host facts (name, OS, kernel, IP addresses), the address the collector saw, agent
//! version, last heartbeat, spool depth, drops, gaps, how far each input is behind, and whether
//! it is stale: silent for longer than `--stale` (default: the collector's `[agents]
//! stale_after`, as recorded in status.json, else 10m).
//!
//! Names: `agent` is the certificate identity (authenticated); `host` and `ip_addresses` are
//! what the agent claims in its heartbeat; `peer_addr` is where its connection came from.
//!
//! Revoked agents (`DATA_DIR/revoked.json`) are marked `REVOKED` (JSON: `revoked`,
//! `revoked_at`, `revoked_reason`), also those that never sent a heartbeat.
//!
//! Invariants: JSON has one object per agent with every field; the table never hides an agent,
//! fits the terminal by leaving out its least important columns (and says which), and marks
//! stale agents `STALE` by the same rule as the running collector ([`crate::fleet::is_stale`]).

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use serde_json::{Value, json};

use super::{cell, read_status};
use crate::fleet::is_stale;
use crate::output::{Format, table};
use crate::timearg::{human_age, parse_age};

/// `--stale` default when status.json does not say: ten minutes.
pub const DEFAULT_STALE_NS: i64 = 600 * 1_000_000_000;

/// A table column is never narrower than this when it is the last one (the lag summary).
const LAST_COLUMN_MIN: usize = 16;

/// Prints the agents. `stale` overrides the stale time recorded in status.json.
pub fn run(
    data_dir: &Path,
    stale: Option<&str>,
    format: Format,
    out: &mut dyn Write,
) -> Result<()> {
    let mut doc = read_status(data_dir)?;
    crate::enroll::revocations::mark_revoked(data_dir, &mut doc)?;
    let stale_ns = match stale {
        Some(text) => parse_age(text).with_context(|| format!("--stale {text:?}"))?,
        None => recorded_stale_ns(&doc),
    };
    let now = jiff::Timestamp::now().as_nanosecond() as i64;
    match format {
        Format::Json => {
            for line in rows(&doc, now, stale_ns) {
                serde_json::to_writer(&mut *out, &line)?;
                out.write_all(b"\n")?;
            }
        }
        Format::Table => write_table(&doc, now, stale_ns, table::terminal_width(), out)?,
    }
    out.flush()?;
    Ok(())
}

/// The collector's stale time as recorded in status.json, else [`DEFAULT_STALE_NS`].
pub fn recorded_stale_ns(doc: &Value) -> i64 {
    doc["agents_stale_after_secs"]
        .as_i64()
        .filter(|s| *s > 0)
        .map_or(DEFAULT_STALE_NS, |s| s.saturating_mul(1_000_000_000))
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
            let (lag_bytes, lag_entries) = lag_totals(&a["input_lag"]);
            let stale = is_stale(last, now_ns, stale_ns);
            json!({
                "agent": name,
                "cert_not_after": a["cert_not_after"],
                "revoked": a["revoked"].as_bool().unwrap_or(false),
                "revoked_at": a["revoked_at"],
                "revoked_reason": a["revoked_reason"],
                "cert_expires_in_days": a["cert_not_after_unix"].as_i64()
                    .map(|s| s.saturating_sub(now_ns / 1_000_000_000).div_euclid(86_400)),
                "host": a["host"],
                "os_name": a["os_name"],
                "os_version": a["os_version"],
                "kernel_version": a["kernel_version"],
                "agent_version": a["agent_version"],
                "ip_addresses": a["ip_addresses"],
                "peer_addr": a["peer_addr"],
                // Null for an agent never heard from (listed because it was revoked).
                "last_heartbeat": (last > 0).then(|| crate::timearg::format_ns(last)),
                "silent_secs": silent_ns / 1_000_000_000,
                // The file may be old (collector stopped): a heartbeat must also be recent,
                // and a stale agent is not online whatever the stale time.
                "online": a["online"].as_bool().unwrap_or(false) && silent_ns < online_ns
                    && !stale,
                "stale": stale,
                "stale_after_secs": stale_ns / 1_000_000_000,
                "spool_records": a["spool_records"],
                "spool_bytes": a["spool_bytes"],
                "spool_blocked_reason": a["spool_blocked_reason"],
                "drops": count(false),
                "gaps": count(true),
                "drops_by_reason": a["drops"],
                "lag_bytes": lag_bytes,
                "lag_entries": lag_entries,
                "input_lag": a["input_lag"],
                "positions": a["positions"],
                "input_errors": a["input_errors"],
            })
        })
        .collect()
}

/// Total bytes and entries behind over an agent's inputs (`input_lag` of status.json); `None`
/// when no input reported that kind of lag.
fn lag_totals(input_lag: &Value) -> (Option<u64>, Option<u64>) {
    let Some(inputs) = input_lag.as_object() else {
        return (None, None);
    };
    let sum = |key: &str| {
        inputs
            .values()
            .filter_map(|i| i[key].as_u64())
            .reduce(u64::saturating_add)
    };
    (sum("lag_bytes"), sum("lag_entries"))
}

/// One table column: its header and how willingly it is left out on a narrow terminal (lower
/// goes first; `None` never).
struct Column {
    header: &'static str,
    drop_rank: Option<u8>,
}

const COLUMNS: &[Column] = &[
    Column {
        header: "AGENT",
        drop_rank: None,
    },
    Column {
        header: "STATE",
        drop_rank: None,
    },
    Column {
        header: "LAST SEEN",
        drop_rank: None,
    },
    Column {
        header: "HOST",
        drop_rank: Some(8),
    },
    Column {
        header: "IP",
        drop_rank: Some(6),
    },
    Column {
        header: "OS",
        drop_rank: Some(0),
    },
    Column {
        header: "VERSION",
        drop_rank: Some(1),
    },
    Column {
        header: "CERT EXPIRES",
        drop_rank: Some(2),
    },
    Column {
        header: "SPOOL",
        drop_rank: Some(5),
    },
    Column {
        header: "DROPS",
        drop_rank: Some(4),
    },
    Column {
        header: "GAPS",
        drop_rank: Some(3),
    },
    Column {
        header: "LAG",
        drop_rank: Some(7),
    },
];

/// The cells of one agent's row, in [`COLUMNS`] order.
fn row_cells(r: &Value) -> Vec<String> {
    let silent = r["silent_secs"].as_i64().unwrap_or(0) * 1_000_000_000;
    let state = match (r["stale"].as_bool(), r["online"].as_bool()) {
        _ if r["revoked"] == true => "REVOKED",
        (Some(true), _) => "STALE",
        (_, Some(true)) => "online",
        _ => "quiet",
    };
    let os = format!("{} {}", cell(&r["os_name"]), cell(&r["os_version"]));
    let spool = format!(
        "{} rec {}",
        cell(&r["spool_records"]),
        r["spool_bytes"]
            .as_u64()
            .map_or("-".to_owned(), human_bytes)
    );
    let cert = r["cert_not_after"]
        .as_str()
        .and_then(|t| t.get(..10))
        .map_or("-".to_owned(), str::to_owned);
    vec![
        cell(&r["agent"]),
        state.to_owned(),
        if r["last_heartbeat"].is_null() {
            "never".to_owned()
        } else {
            format!("{} ago", human_age(silent))
        },
        cell(&r["host"]),
        addresses(r),
        os,
        cell(&r["agent_version"]),
        cert,
        spool,
        cell(&r["drops"]),
        cell(&r["gaps"]),
        lag_summary(&r["input_lag"]),
    ]
}

/// The agents as a table fitting `width`: the natural width of every column, then columns
/// left out by [`Column::drop_rank`] until the rest fits (the last column takes what is left,
/// at least [`LAST_COLUMN_MIN`]), with a line naming what was left out.
pub fn write_table(
    doc: &Value,
    now_ns: i64,
    stale_ns: i64,
    width: usize,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let rows: Vec<Vec<String>> = rows(doc, now_ns, stale_ns).iter().map(row_cells).collect();
    let natural: Vec<usize> = (0..COLUMNS.len())
        .map(|i| {
            rows.iter()
                .map(|r| table::clean(&r[i]).chars().count())
                .chain([COLUMNS[i].header.len()])
                .max()
                .unwrap_or(0)
                .min(40)
        })
        .collect();
    let mut keep: Vec<usize> = (0..COLUMNS.len()).collect();
    let fits = |keep: &[usize]| {
        let (last, rest) = keep.split_last().expect("AGENT is never left out");
        let rest: usize = rest.iter().map(|i| natural[*i] + 2).sum();
        rest + natural[*last].min(LAST_COLUMN_MIN) <= width
    };
    let mut left_out = Vec::new();
    while !fits(&keep) {
        let Some(pos) = (0..keep.len())
            .filter(|p| COLUMNS[keep[*p]].drop_rank.is_some())
            .min_by_key(|p| COLUMNS[keep[*p]].drop_rank)
        else {
            break;
        };
        left_out.push(COLUMNS[keep.remove(pos)].header);
    }
    let headers: Vec<&str> = keep.iter().map(|i| COLUMNS[*i].header).collect();
    let mut t = table::Table::new(&headers);
    for r in &rows {
        t.row(keep.iter().map(|i| r[*i].clone()).collect());
    }
    t.write(out, width)?;
    if !left_out.is_empty() {
        let note = format!(
            "(left out to fit {width} columns: {}; --format json has every field)",
            left_out.join(", ")
        );
        writeln!(out, "{}", table::cut(&note, width))?;
    }
    Ok(())
}

/// The address the collector saw, then the first other address the agent claims and how many
/// more (loopback and link-local left out): `192.0.2.10 / 198.51.100.7 +1`.
fn addresses(r: &Value) -> String {
    use std::net::IpAddr;
    let peer = r["peer_addr"]
        .as_str()
        .and_then(|a| a.parse::<std::net::SocketAddr>().ok())
        .map(|a| a.ip());
    let others: Vec<IpAddr> = r["ip_addresses"]
        .as_array()
        .map(|l| l.iter().filter_map(|v| v.as_str()?.parse().ok()).collect())
        .unwrap_or_default();
    let others: Vec<IpAddr> = others
        .into_iter()
        .filter(|ip| {
            let link_local = match ip {
                IpAddr::V4(v4) => v4.is_link_local(),
                IpAddr::V6(v6) => v6.is_unicast_link_local(),
            };
            !ip.is_loopback() && !link_local && Some(*ip) != peer
        })
        .collect();
    let mut text = peer.map_or("-".to_owned(), |ip| ip.to_string());
    if let Some(first) = others.first() {
        text.push_str(&format!(" / {first}"));
        if others.len() > 1 {
            text.push_str(&format!(" +{}", others.len() - 1));
        }
    }
    text
}

/// Per input, how far it is behind: `app 1.2 KiB, journal 7 entries`; positions whose lag is
/// unknown show as `+1?` beside the known figure, or `?` alone.
fn lag_summary(input_lag: &Value) -> String {
    let Some(inputs) = input_lag.as_object() else {
        return "-".to_owned();
    };
    let parts: Vec<String> = inputs
        .iter()
        .map(|(name, i)| {
            let mut s = name.clone();
            if let Some(b) = i["lag_bytes"].as_u64() {
                s.push(' ');
                s.push_str(&human_bytes(b));
            }
            if let Some(e) = i["lag_entries"].as_u64() {
                s.push_str(&format!(" {e} entries"));
            }
            let known = !(i["lag_bytes"].is_null() && i["lag_entries"].is_null());
            match i["unknown"].as_u64() {
                Some(0) | None => {}
                Some(_) if !known => s.push_str(" ?"),
                Some(n) => s.push_str(&format!(" +{n}?")),
            }
            s
        })
        .collect();
    if parts.is_empty() {
        "-".to_owned()
    } else {
        parts.join(", ")
    }
}

/// Bytes for people: `512 B`, `1.5 KiB`, `3.2 GiB`.
fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;
    const NOW: i64 = 1_800_000_000 * S;

    fn status() -> Value {
        json!({"agents_stale_after_secs": 3, "agents": {
            "pc-1": {
                "last_heartbeat_unix_ns": NOW - S, "online": true, "host": "plc-gw",
                "os_name": "Debian GNU/Linux", "os_version": "12", "agent_version": "0.1.0",
                "cert_not_after": "2027-12-01T00:00:00Z",
                "cert_not_after_unix": NOW / S + 10 * 86_400 + 5,
                "ip_addresses": ["192.0.2.10", "127.0.0.1", "fe80::1"],
                "peer_addr": "192.0.2.10:50000",
                "spool_records": 12, "spool_bytes": 3 << 20,
                "drops": {"gaps": 2, "spool_corruption": 1, "udp_dropped": 4},
                "input_lag": {
                    "app": {"files": 2, "lag_bytes": 1536, "unknown": 1},
                    "journal": {"files": 1, "lag_entries": 7, "unknown": 0},
                },
                "positions": [{"input": "app", "path": "/var/log/app.log", "offset": 10,
                    "size": 1546, "lag_bytes": 1536}],
            },
            "pc-2": {"last_heartbeat_unix_ns": NOW - 3 * S - 1, "online": true},
            "pc-3": {"last_heartbeat_unix_ns": NOW - 3 * S, "online": true},
        }})
    }

    #[test]
    fn rows_carry_every_field_with_lag_totals_and_stale_past_the_boundary() {
        let rows = rows(&status(), NOW, 3 * S);
        assert_eq!(rows.len(), 3);
        let r = &rows[0];
        assert_eq!(r["agent"], "pc-1");
        assert_eq!(r["stale"], false);
        assert_eq!(r["online"], true);
        assert_eq!(r["cert_expires_in_days"], 10);
        assert_eq!(r["lag_bytes"], 1536);
        assert_eq!(r["lag_entries"], 7);
        assert_eq!(r["drops"], 5, "every reason but gaps");
        assert_eq!(r["gaps"], 2);
        assert_eq!(r["drops_by_reason"]["udp_dropped"], 4);
        assert_eq!(r["peer_addr"], "192.0.2.10:50000");
        assert_eq!(r["positions"][0]["lag_bytes"], 1536);
        assert_eq!(rows[1]["stale"], true, "silent 3 s + 1 ns");
        assert_eq!(rows[1]["online"], false, "stale is never online");
        assert_eq!(rows[2]["stale"], false, "silent exactly 3 s");
        assert_eq!(
            rows[1]["lag_bytes"],
            Value::Null,
            "no lag reported is not 0"
        );
        assert_eq!(rows[1]["cert_expires_in_days"], Value::Null);
    }

    #[test]
    fn table_cells_summarize_addresses_lag_and_state() {
        let rows = rows(&status(), NOW, 3 * S);
        let cells = row_cells(&rows[0]);
        assert_eq!(cells[1], "online");
        assert_eq!(
            cells[4], "192.0.2.10",
            "peer first; loopback and link-local left out"
        );
        let more = json!({"peer_addr": "127.0.0.1:1", "ip_addresses":
            ["192.0.2.2", "fd00::2", "fe80::fc:ff:fe00:1", "127.0.0.1", "::1"]});
        assert_eq!(addresses(&more), "127.0.0.1 / 192.0.2.2 +1");
        assert_eq!(addresses(&json!({})), "-");
        assert_eq!(cells[7], "2027-12-01");
        assert_eq!(cells[8], "12 rec 3.0 MiB");
        assert_eq!(cells[11], "app 1.5 KiB +1?, journal 7 entries");
        assert_eq!(row_cells(&rows[1])[1], "STALE");
        assert_eq!(row_cells(&rows[1])[11], "-");
    }

    #[test]
    fn a_narrow_terminal_leaves_out_columns_never_agents() {
        for width in [200, 120, 80, 40] {
            let mut out = Vec::new();
            write_table(&status(), NOW, 3 * S, width, &mut out).unwrap();
            let text = String::from_utf8(out).unwrap();
            assert!(
                text.lines().all(|l| l.chars().count() <= width),
                "{width}:\n{text}"
            );
            for name in ["pc-1", "pc-2", "pc-3", "STALE"] {
                assert!(text.contains(name), "{width}: {name} missing:\n{text}");
            }
            let header = text.lines().next().unwrap();
            assert!(
                header.starts_with("AGENT") && header.contains("LAST SEEN"),
                "{header}"
            );
            let noted = text.contains("left out to fit");
            let has_os = header.split("  ").any(|h| h.trim() == "OS");
            assert_eq!(noted, !has_os, "{width}:\n{text}");
        }
        let mut out = Vec::new();
        write_table(&status(), NOW, 3 * S, 200, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("LAG") && text.contains("app 1.5 KiB"),
            "{text}"
        );
    }

    #[test]
    fn bytes_for_people() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1024), "1.0 KiB");
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
        assert_eq!(human_bytes(u64::MAX), "16384.0 PiB");
    }
}
