//! Enrollment tokens: made by `token create`, redeemed by the enrollment endpoint, listed and
//! revoked from the command line while `serve` runs.
//!
//! Invariants:
//! - A token is 32 random bytes (64 hex characters) shown once; only its SHA-256 is stored, in
//!   `DATA_DIR/tokens.json`. Its id is the first 12 hex characters of that hash (safe to show).
//! - Every change (create, use, revoke) happens under an exclusive lock on `tokens.lock`, reading
//!   the file and replacing it atomically (write beside, fsync, rename): the running collector
//!   and the CLI never lose each other's updates, and a token's uses can never exceed its limit
//!   (the use is counted under the same lock as the check, see [`TokenBook::redeem`]).
//! - A token is refused when unknown, revoked, expired or used up, each with its own reason.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The token file in the data directory.
pub const TOKENS_FILE: &str = "tokens.json";
/// The lock file beside it.
const LOCK_FILE: &str = "tokens.lock";

/// Why a token was refused (the text is sent to the agent).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenRefusal {
    /// No token with this hash.
    #[error("enrollment token is not known to this collector")]
    Unknown,
    /// Revoked by `token revoke`.
    #[error("enrollment token {0} was revoked")]
    Revoked(String),
    /// Past its TTL.
    #[error("enrollment token {0} expired on {1}")]
    Expired(String, String),
    /// Every use spent.
    #[error("enrollment token {0} was already used {1} times (its limit)")]
    UsedUp(String, u32),
}

/// Errors of the token file.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Reading, writing or locking the file.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The file is not valid JSON of the expected shape.
    #[error("{path} is damaged: {source}")]
    Damaged {
        /// The file.
        path: PathBuf,
        /// The parse error.
        source: serde_json::Error,
    },
    /// `token revoke` with an id that matches no token.
    #[error("no token with id {0:?} (see `logship-collector token list`)")]
    NoSuchId(String),
}

/// One stored token (never the token itself).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TokenRecord {
    /// First 12 hex characters of the hash.
    pub id: String,
    /// Lowercase hex SHA-256 of the token text.
    pub sha256: String,
    /// Free text from `--label`.
    pub label: String,
    /// Creation, Unix seconds.
    pub created_unix: i64,
    /// End of validity, Unix seconds.
    pub expires_unix: i64,
    /// Allowed enrollments.
    pub max_uses: u32,
    /// Enrollments made.
    pub uses: u32,
    /// Enrolling a name that exists replaces it (`--replace`).
    pub replace: bool,
    /// Revocation time, Unix seconds, if revoked.
    pub revoked_unix: Option<i64>,
    /// Agent names enrolled with it.
    pub agents: Vec<String>,
}

/// What `token create` asks for.
#[derive(Debug, Clone)]
pub struct NewToken {
    /// Lifetime in seconds.
    pub ttl_secs: i64,
    /// Allowed uses.
    pub max_uses: u32,
    /// Label.
    pub label: String,
    /// May replace existing names.
    pub replace: bool,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct TokenFile {
    tokens: Vec<TokenRecord>,
}

/// The token file of one data directory.
#[derive(Debug, Clone)]
pub struct TokenBook {
    dir: PathBuf,
}

/// A held lock on the token file.
struct Locked {
    _lock: fs::File,
    path: PathBuf,
    file: TokenFile,
}

// === impl TokenBook ===

impl TokenBook {
    /// The tokens of data directory `dir`.
    pub fn new(dir: &Path) -> Self {
        TokenBook {
            dir: dir.to_path_buf(),
        }
    }

    /// Creates a token; returns its record and the token text (shown once, never stored).
    pub fn create(&self, new: &NewToken, now: i64) -> Result<(TokenRecord, String), TokenError> {
        let token = hex::encode(rand::random::<[u8; 32]>());
        let sha256 = hash(&token);
        let record = TokenRecord {
            id: sha256[..12].to_string(),
            sha256,
            label: new.label.clone(),
            created_unix: now,
            expires_unix: now.saturating_add(new.ttl_secs),
            max_uses: new.max_uses,
            uses: 0,
            replace: new.replace,
            revoked_unix: None,
            agents: Vec::new(),
        };
        let mut locked = self.lock()?;
        locked.file.tokens.push(record.clone());
        locked.save()?;
        Ok((record, token))
    }

    /// Every token, oldest first.
    pub fn list(&self) -> Result<Vec<TokenRecord>, TokenError> {
        Ok(self.lock()?.file.tokens)
    }

    /// Revokes the token with `id`; revoking twice is not an error.
    pub fn revoke(&self, id: &str, now: i64) -> Result<TokenRecord, TokenError> {
        let mut locked = self.lock()?;
        let record = locked
            .file
            .tokens
            .iter_mut()
            .find(|t| t.id == id)
            .ok_or_else(|| TokenError::NoSuchId(id.to_string()))?;
        record.revoked_unix.get_or_insert(now);
        let record = record.clone();
        locked.save()?;
        Ok(record)
    }

    /// Checks `token` and, when it is good, runs `enroll` under the lock and counts the use if
    /// `enroll` succeeds. Nothing of the request is looked at before the token passed.
    pub fn redeem<T, E>(
        &self,
        token: &str,
        now: i64,
        enroll: impl FnOnce(&TokenRecord) -> Result<(T, String), E>,
    ) -> Result<Result<T, E>, Redeem> {
        let sha256 = hash(token);
        let mut locked = self.lock().map_err(Redeem::Store)?;
        let Some(record) = locked
            .file
            .tokens
            .iter_mut()
            .find(|t| constant_time_eq(t.sha256.as_bytes(), sha256.as_bytes()))
        else {
            return Err(Redeem::Refused(TokenRefusal::Unknown));
        };
        check(record, now).map_err(Redeem::Refused)?;
        match enroll(record) {
            Ok((value, agent)) => {
                record.uses += 1;
                record.agents.push(agent);
                locked.save().map_err(Redeem::Store)?;
                Ok(Ok(value))
            }
            Err(e) => Ok(Err(e)),
        }
    }

    fn lock(&self) -> Result<Locked, TokenError> {
        let lock_path = self.dir.join(LOCK_FILE);
        let lock = open_lock(&lock_path).map_err(|source| TokenError::Io {
            what: "opening",
            path: lock_path.clone(),
            source,
        })?;
        lock.lock().map_err(|source| TokenError::Io {
            what: "locking",
            path: lock_path,
            source,
        })?;
        let path = self.dir.join(TOKENS_FILE);
        let file = match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| TokenError::Damaged {
                path: path.clone(),
                source,
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => TokenFile::default(),
            Err(source) => {
                return Err(TokenError::Io {
                    what: "reading",
                    path,
                    source,
                });
            }
        };
        Ok(Locked {
            _lock: lock,
            path,
            file,
        })
    }
}

/// Why [`TokenBook::redeem`] did not run the enrollment.
#[derive(Debug, thiserror::Error)]
pub enum Redeem {
    /// The token was refused.
    #[error(transparent)]
    Refused(TokenRefusal),
    /// The token file could not be used.
    #[error(transparent)]
    Store(TokenError),
}

/// Whether `record` can be used at `now`.
pub fn check(record: &TokenRecord, now: i64) -> Result<(), TokenRefusal> {
    if record.revoked_unix.is_some() {
        return Err(TokenRefusal::Revoked(record.id.clone()));
    }
    if now >= record.expires_unix {
        return Err(TokenRefusal::Expired(
            record.id.clone(),
            date(record.expires_unix),
        ));
    }
    if record.uses >= record.max_uses {
        return Err(TokenRefusal::UsedUp(record.id.clone(), record.max_uses));
    }
    Ok(())
}

/// A token's state in one word, for `token list`.
pub fn state(record: &TokenRecord, now: i64) -> &'static str {
    match check(record, now) {
        Ok(()) => "active",
        Err(TokenRefusal::Revoked(..)) => "revoked",
        Err(TokenRefusal::Expired(..)) => "expired",
        Err(TokenRefusal::UsedUp(..)) => "used-up",
        Err(TokenRefusal::Unknown) => "unknown",
    }
}

/// RFC 3339 of Unix seconds.
pub fn date(unix: i64) -> String {
    jiff::Timestamp::from_second(unix)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| unix.to_string())
}

/// Opens (creating) a lock file; read-only when another user made it (`flock` works on any
/// open file), so a lock file made by root does not lock the service user out.
pub(crate) fn open_lock(path: &Path) -> std::io::Result<fs::File> {
    match fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
    {
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => fs::File::open(path),
        other => other,
    }
}

fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.trim().as_bytes()))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

// === impl Locked ===

impl Locked {
    fn save(&mut self) -> Result<(), TokenError> {
        let tmp = self.path.with_extension("json.new");
        let io = |what, source| TokenError::Io {
            what,
            path: tmp.clone(),
            source,
        };
        let bytes = serde_json::to_vec_pretty(&self.file).expect("token records serialize");
        let mut f = fs::File::create(&tmp).map_err(|e| io("creating", e))?;
        f.write_all(&bytes).map_err(|e| io("writing", e))?;
        f.sync_all().map_err(|e| io("syncing", e))?;
        fs::rename(&tmp, &self.path).map_err(|e| io("renaming", e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(uses: u32, ttl: i64) -> NewToken {
        NewToken {
            ttl_secs: ttl,
            max_uses: uses,
            label: "test".into(),
            replace: false,
        }
    }

    fn ok(_: &TokenRecord) -> Result<((), String), ()> {
        Ok(((), "pc".into()))
    }

    #[test]
    fn a_token_is_stored_hashed_counts_uses_expires_and_can_be_revoked() {
        let dir = tempfile::tempdir().unwrap();
        let book = TokenBook::new(dir.path());
        let (record, token) = book.create(&new(2, 100), 1000).unwrap();
        let stored = fs::read_to_string(dir.path().join(TOKENS_FILE)).unwrap();
        assert!(!stored.contains(&token), "the token itself is stored");
        assert!(stored.contains(&record.sha256));
        book.redeem(&token, 1001, ok).unwrap().unwrap();
        book.redeem(&token, 1002, ok).unwrap().unwrap();
        assert!(matches!(
            book.redeem(&token, 1003, ok),
            Err(Redeem::Refused(TokenRefusal::UsedUp(_, 2)))
        ));
        let (_, other) = book.create(&new(5, 100), 1000).unwrap();
        assert!(matches!(
            book.redeem(&other, 1100, ok),
            Err(Redeem::Refused(TokenRefusal::Expired(..)))
        ));
        let (third, token3) = book.create(&new(5, 100), 1000).unwrap();
        book.revoke(&third.id, 1001).unwrap();
        assert!(matches!(
            book.redeem(&token3, 1002, ok),
            Err(Redeem::Refused(TokenRefusal::Revoked(_)))
        ));
        assert!(matches!(
            book.redeem("nope", 1002, ok),
            Err(Redeem::Refused(TokenRefusal::Unknown))
        ));
        // A failed enrollment does not spend a use.
        let (_, token4) = book.create(&new(1, 100), 1000).unwrap();
        let failed: Result<Result<(), &str>, _> = book.redeem(&token4, 1001, |_| Err("bad csr"));
        assert!(matches!(failed, Ok(Err("bad csr"))));
        book.redeem(&token4, 1001, ok).unwrap().unwrap();
        assert!(matches!(
            book.revoke("zzz", 1),
            Err(TokenError::NoSuchId(_))
        ));
    }
}
