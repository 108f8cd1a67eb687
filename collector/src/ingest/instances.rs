//! One running instance per agent identity (issue 6: a cloned machine or a copied agent folder
//! has the same certificate, and its records must never be acked and dropped as duplicates).
//!
//! Every batch names the agent process that sent it (`spool_instance_id`, new at each start);
//! the first batch of a Ship stream also names the instances that ran its spool before
//! (`previous_instance_ids`, kept for the stream's later batches). A batch from instance
//! X of agent A on stream S is accepted when:
//! 1. no *other* instance of A has a Ship stream open, unless X names it as a predecessor (a
//!    restart whose old connection has not timed out yet) — else "running twice";
//! 2. the last instance accepted on (A, S) is X or one of X's predecessors (X continues that
//!    spool) — else the spool was copied and the two copies diverged; their sequence numbers
//!    overlap, so accepting X would drop its records as duplicates.
//!
//! A refused batch gets FAILED_PRECONDITION, is counted per agent (status.json
//! `agents_running_twice`) and logged once per instance. Its records stay in that agent's spool.
//! Batches without an instance id (agents older than this check) skip it.
//!
//! The last instance per (agent, stream) is kept in `DATA_DIR/instances.json` (rewritten with the
//! status file when it changed), so a collector restart does not forget which copy is the
//! original. A lost last update is harmless: the stale id is still among the predecessors of
//! the instance that replaced it.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::prepare::IngestError;

/// An agent's refusals, for the status file.
#[derive(Debug, Clone, Default)]
struct Conflict {
    refused_batches: u64,
    last_refused_unix_ns: i64,
    problem: String,
}

#[derive(Default)]
struct Inner {
    /// Last accepted instance per (agent, stream): persisted.
    last: HashMap<(String, String), String>,
    /// Open Ship streams per (agent, instance).
    live: HashMap<String, HashMap<String, usize>>,
    conflicts: HashMap<String, Conflict>,
    /// Instances already logged as refused (logged once each).
    logged: HashSet<String>,
    dirty: bool,
}

/// The shared book of agent instances.
#[derive(Clone)]
pub struct InstanceBook {
    inner: Arc<Mutex<Inner>>,
    path: PathBuf,
}

/// What a batch says about its sender.
pub struct Claim<'a> {
    /// Agent identity (certificate CN).
    pub agent: &'a str,
    /// The batch's stream.
    pub stream_id: &'a str,
    /// The sending instance.
    pub instance: &'a str,
    /// Its predecessors.
    pub previous: &'a [String],
}

#[derive(Serialize, Deserialize)]
struct FileEntry {
    agent: String,
    stream_id: String,
    instance: String,
}

// === impl InstanceBook ===

impl InstanceBook {
    /// Loads `DATA_DIR/instances.json` (an unreadable file starts an empty book, logged).
    pub fn load(data_dir: &Path) -> Self {
        let path = data_dir.join("instances.json");
        let mut inner = Inner::default();
        match std::fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice::<Vec<FileEntry>>(&bytes) {
                Ok(entries) => {
                    for e in entries {
                        inner.last.insert((e.agent, e.stream_id), e.instance);
                    }
                }
                Err(error) => tracing::warn!(path = %path.display(), %error,
                    "Instance book is damaged; starting empty."),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => tracing::warn!(path = %path.display(), %error,
                "Instance book is unreadable; starting empty."),
        }
        InstanceBook {
            inner: Arc::new(Mutex::new(inner)),
            path,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .expect("instance book lock is never poisoned: no code panics while holding it")
    }

    /// Accepts or refuses a batch from `c` (see the module docs). `registered` tells whether
    /// this Ship stream already counts as open for `c.instance`; it is set on acceptance.
    pub fn check(&self, c: &Claim<'_>, registered: &mut bool) -> Result<(), IngestError> {
        if c.instance.is_empty() {
            return Ok(());
        }
        let mut inner = self.lock();
        let problem = inner.problem(c);
        if let Some(problem) = problem {
            let first = inner.logged.insert(c.instance.to_string());
            let entry = inner.conflicts.entry(c.agent.to_string()).or_default();
            entry.refused_batches += 1;
            entry.last_refused_unix_ns = jiff::Timestamp::now().as_nanosecond() as i64;
            entry.problem.clone_from(&problem);
            if first {
                tracing::warn!(agent = %c.agent, instance = %c.instance, stream_id = %c.stream_id,
                    %problem, "Agent is running twice; the second instance is refused.");
            }
            return Err(IngestError::RunningTwice(problem));
        }
        let key = (c.agent.to_string(), c.stream_id.to_string());
        if inner.last.get(&key).map(String::as_str) != Some(c.instance) {
            inner.last.insert(key, c.instance.to_string());
            inner.dirty = true;
        }
        if !*registered {
            *registered = true;
            let live = inner.live.entry(c.agent.to_string()).or_default();
            *live.entry(c.instance.to_string()).or_default() += 1;
        }
        Ok(())
    }

    /// A Ship stream of `instance` that was registered by [`InstanceBook::check`] ended.
    pub fn closed(&self, agent: &str, instance: &str) {
        let mut inner = self.lock();
        if let Some(live) = inner.live.get_mut(agent) {
            if let Some(n) = live.get_mut(instance) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    live.remove(instance);
                }
            }
            if live.is_empty() {
                inner.live.remove(agent);
            }
        }
    }

    /// Writes `instances.json` if it changed since the last call.
    pub fn persist_if_changed(&self) -> std::io::Result<()> {
        let entries: Vec<FileEntry> = {
            let mut inner = self.lock();
            if !inner.dirty {
                return Ok(());
            }
            inner.dirty = false;
            inner
                .last
                .iter()
                .map(|((agent, stream_id), instance)| FileEntry {
                    agent: agent.clone(),
                    stream_id: stream_id.clone(),
                    instance: instance.clone(),
                })
                .collect()
        };
        let tmp = self.path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec(&entries)?)?;
        std::fs::rename(&tmp, &self.path)
    }

    /// `agents_running_twice` for the status file.
    pub fn status(&self) -> Value {
        let inner = self.lock();
        let map: serde_json::Map<String, Value> = inner
            .conflicts
            .iter()
            .map(|(agent, c)| {
                let v = json!({
                    "refused_batches": c.refused_batches,
                    "last_refused_unix_ns": c.last_refused_unix_ns,
                    "problem": c.problem,
                });
                (agent.clone(), v)
            })
            .collect();
        Value::Object(map)
    }
}

// === impl Inner ===

impl Inner {
    /// Why a batch from `c` must be refused, if it must.
    fn problem(&self, c: &Claim<'_>) -> Option<String> {
        let succeeds = |other: &str| c.previous.iter().any(|p| p == other);
        let live = self.live.get(c.agent);
        if let Some(other) = live
            .into_iter()
            .flat_map(|m| m.keys())
            .find(|other| *other != c.instance && !succeeds(other))
        {
            return Some(format!(
                "agent {} is running twice: instance {} is connected and instance {} tried to \
                 ship too (a cloned machine or a copied agent folder?). Give the copy its own \
                 certificate with `logship-collector issue-agent-cert`",
                c.agent, other, c.instance
            ));
        }
        let key = (c.agent.to_string(), c.stream_id.to_string());
        match self.last.get(&key) {
            Some(last) if last != c.instance && !succeeds(last) => Some(format!(
                "agent {} is running twice: its spool {} was copied and the copies diverged \
                 (instance {} does not continue instance {}, the last one that shipped it). \
                 Give the copy its own certificate with `logship-collector issue-agent-cert`",
                c.agent, c.stream_id, c.instance, last
            )),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim<'a>(instance: &'a str, previous: &'a [String]) -> Claim<'a> {
        Claim {
            agent: "ag1",
            stream_id: "s1",
            instance,
            previous,
        }
    }

    #[test]
    fn a_restart_continues_and_a_copy_is_refused_even_after_the_original_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let book = InstanceBook::load(dir.path());
        let (mut a, mut b, mut c) = (false, false, false);
        book.check(&claim("base", &[]), &mut a).unwrap();
        book.closed("ag1", "base");
        // Two copies of the spool started from "base": the first one wins.
        let from_base = vec!["base".to_string()];
        book.check(&claim("orig", &from_base), &mut b).unwrap();
        let e = book.check(&claim("copy", &from_base), &mut c).unwrap_err();
        assert!(e.to_string().contains("agent ag1 is running twice"), "{e}");
        book.closed("ag1", "orig");
        let e = book.check(&claim("copy", &from_base), &mut c).unwrap_err();
        assert!(e.to_string().contains("copies diverged"), "{e}");
        // A restart of the original names it and is accepted, even before its old stream ends.
        let mut d = false;
        let from_orig = vec!["orig".to_string(), "base".to_string()];
        book.check(&claim("orig2", &from_orig), &mut d).unwrap();
        assert_eq!(book.status()["ag1"]["refused_batches"], 2);
        book.persist_if_changed().unwrap();
        let reloaded = InstanceBook::load(dir.path());
        let mut e2 = false;
        assert!(reloaded.check(&claim("copy", &from_base), &mut e2).is_err());
    }

    #[test]
    fn two_spools_of_one_identity_cannot_ship_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let book = InstanceBook::load(dir.path());
        let (mut a, mut b) = (false, false);
        book.check(&claim("one", &[]), &mut a).unwrap();
        let other = Claim {
            stream_id: "s2",
            ..claim("two", &[])
        };
        assert!(book.check(&other, &mut b).is_err());
        book.closed("ag1", "one");
        book.check(&other, &mut b).unwrap();
        // Batches without an instance id (older agents) are not checked.
        book.check(&claim("", &[]), &mut a).unwrap();
    }
}
