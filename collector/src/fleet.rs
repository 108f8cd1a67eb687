//! The fleet of agents as the running collector sees it, beyond their records: which agents are
//! stale, and how far each input is behind its source. Used by the status writer
//! (`status.json`) and by `logship-collector agents`.
//!
//! Invariants:
//! - One rule for stale, everywhere: silent (no heartbeat) for *more* than the stale time
//!   ([`is_stale`]); exactly the stale time is not stale yet.
//! - [`StaleWatch`] logs once per crossing, each way: one warning when an agent becomes stale,
//!   one info line when it is heard again. The set of agents already reported is seeded from
//!   the previous status file, so a collector restart does not repeat the warning for an agent
//!   that was stale before it.
//! - A lag summary never invents a figure: positions whose lag is unknown (the file at the path
//!   is no longer the one read) are counted as `unknown`, not as 0 behind.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use logship_proto::v1::InputPosition;
use serde_json::{Map, Value, json};

/// True when an agent last heard at `last_ns` is stale at `now_ns` (all Unix nanoseconds).
pub fn is_stale(last_ns: i64, now_ns: i64, stale_after_ns: i64) -> bool {
    now_ns.saturating_sub(last_ns) > stale_after_ns
}

/// Marks stale agents in the status file and logs each crossing once.
#[derive(Debug)]
pub struct StaleWatch {
    after_ns: i64,
    /// Agents currently reported stale (logged when they became so).
    reported: HashSet<String>,
}

// === impl StaleWatch ===

impl StaleWatch {
    /// A watch for `after`, knowing which agents the previous status file marked stale.
    pub fn new(after: Duration, previous: &Map<String, Value>) -> StaleWatch {
        let reported = previous
            .iter()
            .filter(|(_, a)| a["stale"].as_bool() == Some(true))
            .map(|(name, _)| name.clone())
            .collect();
        StaleWatch {
            after_ns: i64::try_from(after.as_nanos()).unwrap_or(i64::MAX),
            reported,
        }
    }

    /// The stale time in whole seconds (for the status file).
    pub fn after_secs(&self) -> i64 {
        self.after_ns / 1_000_000_000
    }

    /// Sets `"stale"` on every agent of `agents` (status.json's `agents` object; a stale agent
    /// is never `"online"`, whatever the stale time) and logs the agents that crossed since the
    /// last call.
    pub fn mark(&mut self, agents: &mut Map<String, Value>, now_ns: i64) {
        for (name, agent) in agents.iter_mut() {
            let last = agent["last_heartbeat_unix_ns"].as_i64().unwrap_or(i64::MIN);
            let stale = is_stale(last, now_ns, self.after_ns);
            let last_seen = agent["last_heartbeat"].as_str().unwrap_or("").to_owned();
            let silent_secs = now_ns.saturating_sub(last) / 1_000_000_000;
            if stale && self.reported.insert(name.clone()) {
                tracing::warn!(agent = %name, %last_seen, silent_secs,
                    stale_after_secs = self.after_secs(), "Agent stale: no heartbeat.");
            } else if !stale && self.reported.remove(name) {
                tracing::info!(agent = %name, %last_seen, "Agent heard again after being stale.");
            }
            if let Some(obj) = agent.as_object_mut() {
                obj.insert("stale".into(), json!(stale));
                if stale {
                    obj.insert("online".into(), json!(false));
                }
            }
        }
    }
}

/// Inputs listed by name in a lag summary; the positions of any further inputs are summed
/// under [`MORE_INPUTS`], so a heartbeat naming thousands of inputs cannot bloat status.json.
pub const MAX_INPUTS: usize = 64;

/// The summary entry for inputs past [`MAX_INPUTS`] (not a valid input name).
pub const MORE_INPUTS: &str = "(more inputs)";

/// Per input: how many positions it reported and how far they are behind in total, as
/// `{"input": {"files": n, "lag_bytes": b, "lag_entries": e, "unknown": u}}`; `lag_bytes` and
/// `lag_entries` appear only when some position reported them. At most [`MAX_INPUTS`] names.
pub fn input_lag(positions: &[InputPosition]) -> Value {
    #[derive(Default)]
    struct Sum {
        files: u64,
        bytes: Option<u64>,
        entries: Option<u64>,
        unknown: u64,
    }
    let mut by_input: BTreeMap<&str, Sum> = BTreeMap::new();
    for p in positions {
        let name = if by_input.len() < MAX_INPUTS || by_input.contains_key(p.input.as_str()) {
            p.input.as_str()
        } else {
            MORE_INPUTS
        };
        let s = by_input.entry(name).or_default();
        s.files += 1;
        if let Some(b) = p.lag_bytes {
            s.bytes = Some(s.bytes.unwrap_or(0).saturating_add(b));
        }
        if let Some(e) = p.lag_entries {
            s.entries = Some(s.entries.unwrap_or(0).saturating_add(e));
        }
        if p.lag_bytes.is_none() && p.lag_entries.is_none() {
            s.unknown += 1;
        }
    }
    let map: Map<String, Value> = by_input
        .into_iter()
        .map(|(input, s)| {
            let mut v = json!({"files": s.files, "unknown": s.unknown});
            if let Some(b) = s.bytes {
                v["lag_bytes"] = json!(b);
            }
            if let Some(e) = s.entries {
                v["lag_entries"] = json!(e);
            }
            (input.to_owned(), v)
        })
        .collect();
    Value::Object(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    #[test]
    fn stale_only_past_the_stale_time() {
        assert!(!is_stale(100 * S, 100 * S, 3 * S));
        assert!(!is_stale(100 * S, 103 * S, 3 * S), "exactly the stale time");
        assert!(is_stale(100 * S, 103 * S + 1, 3 * S));
        assert!(
            !is_stale(100 * S, 90 * S, 3 * S),
            "a heartbeat from the future"
        );
        assert!(is_stale(i64::MIN, 0, 3 * S), "never heard");
    }

    #[test]
    fn each_crossing_is_marked_and_reported_once_each_way() {
        let mut agents = Map::new();
        agents.insert(
            "a".into(),
            json!({"last_heartbeat_unix_ns": 100 * S, "online": true}),
        );
        agents.insert("b".into(), json!({"last_heartbeat_unix_ns": 100 * S}));
        let mut previous = Map::new();
        previous.insert("b".into(), json!({"stale": true}));
        let mut watch = StaleWatch::new(Duration::from_secs(3), &previous);
        assert_eq!(watch.after_secs(), 3);
        watch.mark(&mut agents, 102 * S);
        assert_eq!(agents["a"]["stale"], false);
        assert_eq!(agents["b"]["stale"], false);
        assert!(
            watch.reported.is_empty(),
            "b was heard again: reported back"
        );
        watch.mark(&mut agents, 104 * S);
        assert_eq!(agents["a"]["stale"], true);
        assert_eq!(agents["a"]["online"], false, "stale is never online");
        assert!(watch.reported.contains("a"));
        watch.mark(&mut agents, 105 * S);
        assert_eq!(watch.reported.len(), 2);
        agents["a"]["last_heartbeat_unix_ns"] = json!(105 * S);
        watch.mark(&mut agents, 106 * S);
        assert_eq!(agents["a"]["stale"], false);
        assert_eq!(agents["b"]["stale"], true);
        assert!(!watch.reported.contains("a"));
    }

    fn pos(input: &str, bytes: Option<u64>, entries: Option<u64>) -> InputPosition {
        InputPosition {
            input: input.into(),
            lag_bytes: bytes,
            lag_entries: entries,
            ..Default::default()
        }
    }

    #[test]
    fn lag_is_summed_per_input_and_unknown_is_not_zero() {
        let lag = input_lag(&[
            pos("app", Some(10), None),
            pos("app", Some(5), None),
            pos("app", None, None),
            pos("journal", None, Some(7)),
            pos("idle", Some(0), None),
            pos("lost", None, None),
        ]);
        assert_eq!(
            lag,
            json!({
                "app": {"files": 3, "lag_bytes": 15, "unknown": 1},
                "journal": {"files": 1, "lag_entries": 7, "unknown": 0},
                "idle": {"files": 1, "lag_bytes": 0, "unknown": 0},
                "lost": {"files": 1, "unknown": 1},
            })
        );
        assert_eq!(input_lag(&[]), json!({}));
        let many: Vec<InputPosition> = (0..1000)
            .map(|i| pos(&format!("in{i}"), Some(1), None))
            .collect();
        let lag = input_lag(&many);
        let map = lag.as_object().unwrap();
        assert_eq!(map.len(), MAX_INPUTS + 1);
        assert_eq!(lag[MORE_INPUTS]["files"], 1000 - MAX_INPUTS as u64);
        let total: u64 = map.values().map(|v| v["lag_bytes"].as_u64().unwrap()).sum();
        assert_eq!(total, 1000, "every position still counted");
    }
}
