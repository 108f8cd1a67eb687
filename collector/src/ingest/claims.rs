//! What agents *claim* about themselves (issue 6 item 5). The agent identity is the verified
//! certificate name; the host name in a batch is only the agent's claim. The collector keeps,
//! per agent, the host name it last claimed and every change of it (status.json
//! `agent_claims`), and logs a change once, so an agent named ag1 claiming to be "dc01" is
//! visible to the operator instead of silently becoming a fact.
//!
//! Bounded: one entry per agent identity, at most [`MAX_CHANGES_KEPT`] recent changes each.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

/// Recent host-name changes kept per agent (the count keeps going).
const MAX_CHANGES_KEPT: usize = 8;

#[derive(Debug, Default)]
struct AgentClaims {
    host: String,
    changes: u64,
    recent: VecDeque<(i64, String, String)>,
}

/// The shared book of claims, per agent identity.
#[derive(Clone, Default)]
pub struct ClaimBook {
    inner: Arc<Mutex<HashMap<String, AgentClaims>>>,
}

// === impl ClaimBook ===

impl ClaimBook {
    /// Records that `agent` (certificate identity) claimed host name `host` in a stored batch.
    pub fn host_claimed(&self, agent: &str, host: &str) {
        let mut map = self
            .inner
            .lock()
            .expect("claim book lock is never poisoned: no code panics while holding it");
        let entry = match map.get_mut(agent) {
            Some(e) if e.host == host => return,
            Some(e) => e,
            None => {
                map.insert(
                    agent.to_string(),
                    AgentClaims {
                        host: host.to_string(),
                        ..AgentClaims::default()
                    },
                );
                return;
            }
        };
        let now = jiff::Timestamp::now().as_nanosecond() as i64;
        tracing::warn!(%agent, from = %entry.host, to = %host,
            "Agent's claimed host name changed; the agent is identified by its certificate.");
        let from = std::mem::replace(&mut entry.host, host.to_string());
        entry.changes += 1;
        if entry.recent.len() == MAX_CHANGES_KEPT {
            entry.recent.pop_front();
        }
        entry.recent.push_back((now, from, host.to_string()));
    }

    /// `agent_claims` for the status file.
    pub fn status(&self) -> Value {
        let map = self
            .inner
            .lock()
            .expect("claim book lock is never poisoned: no code panics while holding it");
        let out: serde_json::Map<String, Value> = map
            .iter()
            .map(|(agent, c)| {
                let recent: Vec<Value> = c
                    .recent
                    .iter()
                    .map(|(at, from, to)| json!({"at_unix_ns": at, "from": from, "to": to}))
                    .collect();
                let v = json!({
                    "claimed_host": c.host,
                    "host_changes": c.changes,
                    "recent_host_changes": recent,
                });
                (agent.clone(), v)
            })
            .collect();
        Value::Object(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_host_claim_is_recorded_with_its_history() {
        let book = ClaimBook::default();
        book.host_claimed("ag1", "box-a");
        book.host_claimed("ag1", "box-a");
        assert_eq!(book.status()["ag1"]["host_changes"], 0);
        book.host_claimed("ag1", "dc01");
        let s = book.status();
        assert_eq!(s["ag1"]["claimed_host"], "dc01");
        assert_eq!(s["ag1"]["host_changes"], 1);
        assert_eq!(s["ag1"]["recent_host_changes"][0]["from"], "box-a");
        for i in 0..20 {
            book.host_claimed("ag1", &format!("h{i}"));
        }
        let s = book.status();
        assert_eq!(s["ag1"]["host_changes"], 21);
        assert_eq!(
            s["ag1"]["recent_host_changes"].as_array().unwrap().len(),
            MAX_CHANGES_KEPT
        );
    }
}
