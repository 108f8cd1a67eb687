//! Revoked agents: `agents revoke` writes `DATA_DIR/revoked.json`; the running collector polls it
//! every [`POLL`], refuses revoked names at the handshake from then on, and closes their open
//! connections (their reads end, so the `Ship` stream stops and the agent keeps its unacked
//! records in its spool).
//!
//! Invariants:
//! - Fail closed: `serve` does not start when the file exists but cannot be read; while running,
//!   a damaged file keeps the revocations already known (and says so in the log), never fewer.
//! - Revocation is by agent name (the certificate CN, the only identity the collector knows):
//!   every certificate for that name is refused, also ones issued later. A revoked name cannot be
//!   enrolled again; the machine enrolls under a new name.
//! - The file is replaced atomically under an exclusive lock on `revoked.lock`.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use tokio_util::sync::{CancellationToken, DropGuard};

/// The revocation file in the data directory.
pub const REVOKED_FILE: &str = "revoked.json";
const LOCK_FILE: &str = "revoked.lock";
/// How often the running collector reads the file.
pub const POLL: Duration = Duration::from_secs(1);

/// One revocation.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Revocation {
    /// When, Unix seconds.
    pub revoked_unix: i64,
    /// `--reason`.
    pub reason: String,
}

/// Revoked agent names.
pub type RevokedMap = BTreeMap<String, Revocation>;

#[derive(Debug, Default, Serialize, Deserialize)]
struct RevokedFile {
    agents: RevokedMap,
}

/// Reads the revocations of data directory `dir` (none when the file does not exist).
pub fn load(dir: &Path) -> Result<RevokedMap> {
    let path = dir.join(REVOKED_FILE);
    match fs::read(&path) {
        Ok(bytes) => Ok(serde_json::from_slice::<RevokedFile>(&bytes)
            .with_context(|| format!("{} is damaged", path.display()))?
            .agents),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(RevokedMap::new()),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Marks the revoked agents of status document `doc` (`revoked`, `revoked_at`,
/// `revoked_reason`), adding revoked agents that never sent a heartbeat, for `agents`.
pub fn mark_revoked(dir: &Path, doc: &mut serde_json::Value) -> Result<()> {
    let revoked = load(dir)?;
    if revoked.is_empty() {
        return Ok(());
    }
    if !doc["agents"].is_object() {
        doc["agents"] = serde_json::json!({});
    }
    let agents = doc["agents"]
        .as_object_mut()
        .expect("agents was just made an object");
    for (name, r) in revoked {
        let entry = agents.entry(name).or_insert_with(|| serde_json::json!({}));
        entry["revoked"] = serde_json::json!(true);
        entry["revoked_at"] = serde_json::json!(super::tokens::date(r.revoked_unix));
        entry["revoked_reason"] = serde_json::json!(r.reason);
    }
    Ok(())
}

/// Records the revocation of `name` (a second revocation keeps the first's time and reason).
pub fn revoke(dir: &Path, name: &str, reason: &str, now: i64) -> Result<Revocation> {
    let lock_path = dir.join(LOCK_FILE);
    let lock = super::tokens::open_lock(&lock_path)
        .with_context(|| format!("opening {}", lock_path.display()))?;
    lock.lock()
        .with_context(|| format!("locking {}", lock_path.display()))?;
    let mut agents = load(dir)?;
    let entry = agents
        .entry(name.to_string())
        .or_insert_with(|| Revocation {
            revoked_unix: now,
            reason: reason.to_string(),
        })
        .clone();
    let path = dir.join(REVOKED_FILE);
    let tmp = path.with_extension("json.new");
    let bytes = serde_json::to_vec_pretty(&RevokedFile { agents }).expect("revocations serialize");
    let mut f = fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(&bytes)?;
    f.sync_all()?;
    fs::rename(&tmp, &path).with_context(|| format!("replacing {}", path.display()))?;
    Ok(entry)
}

/// The running collector's view: the revoked names and the open connection of each agent.
#[derive(Clone)]
pub struct Revocations {
    dir: PathBuf,
    revoked: Arc<RwLock<RevokedMap>>,
    open: Arc<Mutex<BTreeMap<String, Vec<CancellationToken>>>>,
    shutdown: CancellationToken,
}

/// Held by a connection: ends it (its token is cancelled) when dropped.
pub struct ConnectionGuard {
    _guard: DropGuard,
}

// === impl Revocations ===

impl Revocations {
    /// Loads the revocations of `dir`; fails when the file exists but cannot be read.
    pub fn load(dir: &Path, shutdown: CancellationToken) -> Result<Self> {
        let revoked = load(dir)?;
        if !revoked.is_empty() {
            tracing::info!(revoked = revoked.len(), "Revoked agents loaded.");
        }
        Ok(Revocations {
            dir: dir.to_path_buf(),
            revoked: Arc::new(RwLock::new(revoked)),
            open: Arc::default(),
            shutdown,
        })
    }

    /// The revocation of `agent`, if revoked.
    pub fn revoked(&self, agent: &str) -> Option<Revocation> {
        self.revoked
            .read()
            .expect("revocation lock is never poisoned")
            .get(agent)
            .cloned()
    }

    /// Number of revoked agents.
    pub fn count(&self) -> usize {
        self.revoked
            .read()
            .expect("revocation lock is never poisoned")
            .len()
    }

    /// Registers a connection of `agent`: the token is cancelled when the collector stops, when
    /// the agent is revoked, or when the guard is dropped (the connection ended).
    pub fn register(&self, agent: &str) -> (CancellationToken, ConnectionGuard) {
        let token = self.shutdown.child_token();
        let mut open = self.open.lock().expect("connection book is never poisoned");
        let list = open.entry(agent.to_string()).or_default();
        list.retain(|t| !t.is_cancelled());
        list.push(token.clone());
        let guard = ConnectionGuard {
            _guard: token.clone().drop_guard(),
        };
        (token, guard)
    }

    /// Reads the file every [`POLL`] until shutdown; closes newly revoked agents' connections.
    pub async fn watch(self) {
        let mut tick = tokio::time::interval(POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut damaged = false;
        loop {
            tokio::select! {
                _ = self.shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            let dir = self.dir.clone();
            let loaded = match tokio::task::spawn_blocking(move || load(&dir)).await {
                Ok(r) => r,
                Err(e) => Err(anyhow::anyhow!("reading revocations: {e}")),
            };
            match loaded {
                Ok(now) => {
                    damaged = false;
                    self.apply(now);
                }
                Err(error) if !damaged => {
                    damaged = true;
                    tracing::error!(error = %format!("{error:#}"),
                        "Cannot read the revocation file; the revocations already known stay in force.");
                }
                Err(_) => {}
            }
        }
    }

    /// Adds the revocations of `now` (never removes one) and closes the connections of agents
    /// newly revoked.
    fn apply(&self, now: RevokedMap) {
        let mut revoked = self
            .revoked
            .write()
            .expect("revocation lock is never poisoned");
        for (name, r) in now {
            if revoked.contains_key(&name) {
                continue;
            }
            let closed = self
                .open
                .lock()
                .expect("connection book is never poisoned")
                .remove(&name)
                .unwrap_or_default();
            let connections = closed.iter().filter(|t| !t.is_cancelled()).count();
            for t in &closed {
                t.cancel();
            }
            tracing::warn!(agent = %name, reason = %r.reason, connections,
                "Agent revoked: its connections are closed and it is refused from now on.");
            revoked.insert(name, r);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revoking_closes_open_connections_and_persists() {
        let dir = tempfile::tempdir().unwrap();
        let book = Revocations::load(dir.path(), CancellationToken::new()).unwrap();
        let (token, _guard) = book.register("pc-1");
        let (other, _g2) = book.register("pc-2");
        revoke(dir.path(), "pc-1", "stolen", 10).unwrap();
        book.apply(load(dir.path()).unwrap());
        assert!(token.is_cancelled());
        assert!(!other.is_cancelled());
        assert_eq!(book.revoked("pc-1").unwrap().reason, "stolen");
        let again = Revocations::load(dir.path(), CancellationToken::new()).unwrap();
        assert!(again.revoked("pc-1").is_some() && again.revoked("pc-2").is_none());
        fs::write(dir.path().join(REVOKED_FILE), b"{damaged").unwrap();
        assert!(Revocations::load(dir.path(), CancellationToken::new()).is_err());
    }
}
