//! `ledger.json`: the stream id, `acked_through` and the merged positions of deleted batches.
//!
//! ```text
//! {"version":1,"stream_id":"<32 lowercase hex>","acked_through":N,
//!  "positions":[{"key":"..","path":"..","offset":N}, ..]}
//! ```
//!
//! Written as tmp file → fsync → rename → fsync dir, so a crash leaves the old or the new ledger.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::io::sync_renamed;
use crate::state::Positions;
use crate::{Position, SpoolError};

const LEDGER_FILE: &str = "ledger.json";
const LEDGER_TMP: &str = "ledger.json.tmp";
const LEDGER_VERSION: u32 = 1;

/// The persisted ledger.
#[derive(Clone, Debug)]
pub(crate) struct Ledger {
    pub(crate) stream_id: String,
    pub(crate) acked_through: u64,
    pub(crate) positions: Positions,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LedgerFile {
    version: u32,
    stream_id: String,
    acked_through: u64,
    positions: Vec<LedgerPosition>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LedgerPosition {
    key: String,
    path: String,
    offset: u64,
}

/// Why an existing ledger could not be used.
pub(crate) enum LoadError {
    Io(SpoolError),
    /// Unreadable content: the caller quarantines it.
    Damaged(String),
}

pub(crate) fn ledger_path(dir: &Path) -> PathBuf {
    dir.join(LEDGER_FILE)
}

/// A fresh ledger with a random stream id.
pub(crate) fn fresh() -> Ledger {
    Ledger {
        stream_id: hex::encode(rand::random::<[u8; 16]>()),
        acked_through: 0,
        positions: Positions::default(),
    }
}

/// Loads `dir/ledger.json`; `Ok(None)` when there is none.
pub(crate) fn load(dir: &Path) -> Result<Option<Ledger>, LoadError> {
    let path = ledger_path(dir);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(LoadError::Io(SpoolError::io("ledger read", &path)(e))),
    };
    let file: LedgerFile = serde_json::from_slice(&bytes)
        .map_err(|e| LoadError::Damaged(format!("ledger json: {e}")))?;
    if file.version != LEDGER_VERSION {
        return Err(LoadError::Damaged(format!(
            "unsupported ledger version {}",
            file.version
        )));
    }
    let valid_id = file.stream_id.len() == 32
        && file
            .stream_id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !valid_id {
        return Err(LoadError::Damaged("invalid stream id".into()));
    }
    let mut positions = Positions::default();
    let list: Vec<Position> = file
        .positions
        .into_iter()
        .map(|p| Position {
            key: p.key,
            path: p.path,
            offset: p.offset,
        })
        .collect();
    positions.apply(&list);
    Ok(Some(Ledger {
        stream_id: file.stream_id,
        acked_through: file.acked_through,
        positions,
    }))
}

/// Atomically replaces `dir/ledger.json`.
pub(crate) fn store(dir: &Path, ledger: &Ledger) -> Result<(), SpoolError> {
    let file = LedgerFile {
        version: LEDGER_VERSION,
        stream_id: ledger.stream_id.clone(),
        acked_through: ledger.acked_through,
        positions: ledger
            .positions
            .to_vec()
            .into_iter()
            .map(|p| LedgerPosition {
                key: p.key,
                path: p.path,
                offset: p.offset,
            })
            .collect(),
    };
    let bytes = serde_json::to_vec(&file).map_err(SpoolError::LedgerEncode)?;
    let tmp = dir.join(LEDGER_TMP);
    let mut f = File::create(&tmp).map_err(SpoolError::io("ledger create", &tmp))?;
    f.write_all(&bytes)
        .map_err(SpoolError::io("ledger write", &tmp))?;
    f.sync_all().map_err(SpoolError::io("ledger fsync", &tmp))?;
    drop(f);
    let path = ledger_path(dir);
    fs::rename(&tmp, &path).map_err(SpoolError::io("ledger rename", &path))?;
    sync_renamed(dir, &path)
}
