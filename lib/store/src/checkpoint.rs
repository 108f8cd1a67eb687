//! Signed checkpoints: the witness that lets `verify` see what the data alone cannot (whole
//! blocks cut from the end of the store, or a store rewritten with a recomputed chain).
//!
//! A checkpoint states "store `store` held `blocks` blocks and the chain head after the last of
//! them was `head`", signed with the collector's Ed25519 witness key. The collector stores each
//! checkpoint as a record of its own (agent [`COLLECTOR_IDENTITY`], stream
//! [`checkpoint_stream`]), so every consumer of the store (forwarders to the SOC) carries it off
//! the box like any other record. Whoever holds those copies can later prove the store still
//! contains everything up to each checkpoint, unchanged.
//!
//! # Text form
//!
//! ```text
//! LOGSHIP-CHECKPOINT v1 <base64url(payload)>.<base64url(signature)>
//! payload   = JSON {"v":1,"store":..,"blocks":..,"head":..,"time_ns":..,"key":..,"reason":..}
//! signature = Ed25519 over "logship checkpoint v1\n" ‖ payload
//! ```
//!
//! # Invariants
//!
//! - The text uses only `A-Z a-z 0-9 - _ .` and spaces after its prefix: nothing a syslog
//!   structured-data, CEF or JSON encoder escapes, so it reaches the SOC byte for byte and
//!   [`find_checkpoints`] finds it in whatever file the SOC kept (one per line or embedded in
//!   JSON, CEF or RFC 5424 lines).
//! - `blocks` counts blocks from the very first block of the store (block 1), so it stays
//!   meaningful when retention later removes old segments (see the crate docs).
//! - The signature covers the exact payload bytes; a payload is only trusted (parsed) after its
//!   signature checks out against the expected key.
//! - [`COLLECTOR_IDENTITY`] contains `@`, which no agent name may contain (agent names are
//!   certificate CNs restricted to `A-Z a-z 0-9 - _ .`), and [`crate::Store::append`] refuses
//!   it: only [`crate::Store::append_checkpoint`] writes under it.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::{self, Ed25519KeyPair, KeyPair};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The agent identity of records the collector writes itself. No certificate can carry it.
pub const COLLECTOR_IDENTITY: &str = "@collector";
/// Prefix of the stream of the collector's checkpoint records; see [`checkpoint_stream`].
pub const CHECKPOINT_STREAM_PREFIX: &str = "checkpoint-";
/// Input name of the collector's checkpoint records.
pub const CHECKPOINT_INPUT: &str = "integrity";
/// Prefix of every checkpoint text.
pub const CHECKPOINT_PREFIX: &str = "LOGSHIP-CHECKPOINT v1 ";
/// Prefix of a public key file's line.
const PUBLIC_KEY_PREFIX: &str = "logship-witness-ed25519 ";
/// Domain separation: what is signed is this followed by the payload.
const SIGNING_CONTEXT: &[u8] = b"logship checkpoint v1\n";
/// Longest encoded payload accepted when scanning text (a real one is ~250 characters).
const MAX_PAYLOAD_CHARS: usize = 4096;
/// Longest piece of a line held in memory while scanning a checkpoint file.
pub const MAX_LINE_BYTES: usize = 4 << 20;

/// What a checkpoint states.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Format version (1).
    pub v: u32,
    /// Id of the store (its `store-id` file).
    pub store: String,
    /// Blocks in the store when signed, counted from the first block ever written.
    pub blocks: u64,
    /// Hash of block number `blocks` (lowercase hex; 64 zeros when `blocks` is 0).
    pub head: String,
    /// When it was signed, Unix nanoseconds.
    pub time_ns: i64,
    /// Id of the signing key ([`PublicKey::id`]).
    pub key: String,
    /// Why it was made: "periodic", "shutdown" or "export".
    pub reason: String,
}

/// A checkpoint text found in some input, not yet checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundCheckpoint {
    /// The whole text, `LOGSHIP-CHECKPOINT v1 ...`.
    pub text: String,
    /// 1-based line of the input it was found on.
    pub line: u64,
}

/// The collector's signing key.
#[derive(Debug)]
pub struct WitnessKey {
    pair: Ed25519KeyPair,
}

/// An Ed25519 public key of a witness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(pub [u8; 32]);

/// Why a key or a checkpoint was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    /// The key bytes are not an Ed25519 PKCS#8 key.
    #[error("not an Ed25519 PKCS#8 key: {0}")]
    BadKey(String),
    /// The public key text is malformed.
    #[error("not a logship witness public key (expected \"{PUBLIC_KEY_PREFIX}<base64url>\")")]
    BadPublicKey,
    /// The system random source failed.
    #[error("the system random source failed")]
    Random,
    /// The checkpoint text is malformed.
    #[error("malformed checkpoint: {0}")]
    Malformed(&'static str),
    /// The signature does not check out with the key.
    #[error("signature does not verify with witness key {0} (forged, altered or another key)")]
    BadSignature(String),
}

// === impl WitnessKey ===

impl WitnessKey {
    /// Makes a new key; returns its PKCS#8 (v2) document, to be kept secret.
    pub fn generate_pkcs8() -> Result<Vec<u8>, CheckpointError> {
        let rng = ring::rand::SystemRandom::new();
        Ed25519KeyPair::generate_pkcs8(&rng)
            .map(|doc| doc.as_ref().to_vec())
            .map_err(|_| CheckpointError::Random)
    }

    /// Loads a key from its PKCS#8 document.
    pub fn from_pkcs8(der: &[u8]) -> Result<WitnessKey, CheckpointError> {
        Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
            .map(|pair| WitnessKey { pair })
            .map_err(|e| CheckpointError::BadKey(e.to_string()))
    }

    /// The public half.
    pub fn public_key(&self) -> PublicKey {
        let bytes = self.pair.public_key().as_ref();
        PublicKey(bytes.try_into().expect("Ed25519 public keys are 32 bytes"))
    }

    /// Signs `checkpoint` (whose `key` should be this key's id) and returns its text.
    pub fn sign(&self, checkpoint: &Checkpoint) -> String {
        let payload = serde_json::to_vec(checkpoint).expect("a checkpoint serializes");
        let mut message = SIGNING_CONTEXT.to_vec();
        message.extend_from_slice(&payload);
        let sig = self.pair.sign(&message);
        format!(
            "{CHECKPOINT_PREFIX}{}.{}",
            URL_SAFE_NO_PAD.encode(&payload),
            URL_SAFE_NO_PAD.encode(sig.as_ref())
        )
    }
}

// === impl PublicKey ===

impl PublicKey {
    /// Short id: lowercase hex of the first 8 bytes of SHA-256(key).
    pub fn id(&self) -> String {
        hex::encode(&Sha256::digest(self.0)[..8])
    }

    /// The one-line text of a public key file.
    pub fn to_text(&self) -> String {
        format!("{PUBLIC_KEY_PREFIX}{}\n", URL_SAFE_NO_PAD.encode(self.0))
    }

    /// Parses the text of a public key file (the first non-empty line).
    pub fn from_text(text: &str) -> Result<PublicKey, CheckpointError> {
        let line = text.lines().map(str::trim).find(|l| !l.is_empty());
        let b64 = line
            .and_then(|l| l.strip_prefix(PUBLIC_KEY_PREFIX))
            .ok_or(CheckpointError::BadPublicKey)?;
        let bytes = URL_SAFE_NO_PAD
            .decode(b64.trim())
            .map_err(|_| CheckpointError::BadPublicKey)?;
        Ok(PublicKey(
            bytes
                .try_into()
                .map_err(|_| CheckpointError::BadPublicKey)?,
        ))
    }

    /// Checks the signature of a checkpoint text and decodes what it states.
    pub fn open(&self, text: &str) -> Result<Checkpoint, CheckpointError> {
        let body = text
            .strip_prefix(CHECKPOINT_PREFIX)
            .ok_or(CheckpointError::Malformed("missing prefix"))?;
        let (payload, sig) = body
            .split_once('.')
            .ok_or(CheckpointError::Malformed("no signature part"))?;
        let payload = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| CheckpointError::Malformed("payload is not base64url"))?;
        let sig = URL_SAFE_NO_PAD
            .decode(sig)
            .map_err(|_| CheckpointError::Malformed("signature is not base64url"))?;
        let mut message = SIGNING_CONTEXT.to_vec();
        message.extend_from_slice(&payload);
        signature::UnparsedPublicKey::new(&signature::ED25519, self.0)
            .verify(&message, &sig)
            .map_err(|_| CheckpointError::BadSignature(self.id()))?;
        let cp: Checkpoint = serde_json::from_slice(&payload)
            .map_err(|_| CheckpointError::Malformed("signed payload is not a checkpoint"))?;
        if cp.v != 1 {
            return Err(CheckpointError::Malformed("unknown checkpoint version"));
        }
        Ok(cp)
    }
}

/// Every checkpoint text in `input` (a SOC's syslog, CEF or JSON file, or one text per line),
/// each once, in order of first appearance.
pub fn find_checkpoints(input: &str) -> Vec<FoundCheckpoint> {
    find_checkpoints_in(input.as_bytes()).expect("reading from memory cannot fail")
}

/// [`find_checkpoints`] over a reader, line by line, so a SOC's multi-gigabyte output file can
/// be given as it is. Memory: [`MAX_LINE_BYTES`] and the checkpoints found; a longer line is
/// scanned in pieces of that size (a checkpoint across a piece boundary is not found).
pub fn find_checkpoints_in(
    mut input: impl std::io::BufRead,
) -> std::io::Result<Vec<FoundCheckpoint>> {
    use std::io::{BufRead, Read};
    let mut found: Vec<FoundCheckpoint> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut buf = Vec::new();
    let mut line_no = 1u64;
    loop {
        buf.clear();
        let n = (&mut input)
            .take(MAX_LINE_BYTES as u64)
            .read_until(b'\n', &mut buf)?;
        if n == 0 {
            return Ok(found);
        }
        let this_line = line_no;
        if buf.ends_with(b"\n") {
            line_no += 1;
        }
        if memchr::memmem::find(&buf, CHECKPOINT_PREFIX.as_bytes()).is_none() {
            continue;
        }
        let line = String::from_utf8_lossy(&buf);
        let mut rest: &str = &line;
        while let Some(at) = rest.find(CHECKPOINT_PREFIX) {
            let after = &rest[at + CHECKPOINT_PREFIX.len()..];
            let len = after
                .bytes()
                .take(2 * MAX_PAYLOAD_CHARS)
                .take_while(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
                .count();
            let text = format!("{CHECKPOINT_PREFIX}{}", &after[..len]);
            if len > 0 && seen.insert(text.clone()) {
                found.push(FoundCheckpoint {
                    text,
                    line: this_line,
                });
            }
            rest = &after[len..];
        }
    }
}

/// The stream of the checkpoint records of the store with id `store_id`. Named per store so
/// their event ids (a hash of agent, stream and seq) never collide with another collector's at
/// a SOC that de-duplicates on them.
pub fn checkpoint_stream(store_id: &str) -> String {
    format!("{CHECKPOINT_STREAM_PREFIX}{store_id}")
}

/// File holding the store's id, inside the store directory.
pub(crate) const STORE_ID_FILE: &str = "store-id";

/// The id of the store in `dir` (None when it has none yet: made by the first [`crate::Store::open`]).
pub fn store_id(dir: &std::path::Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join(STORE_ID_FILE)).ok()?;
    let id = text.trim();
    (!id.is_empty()).then(|| id.to_string())
}

/// Reads the store's id, or makes one (16 random bytes, hex) and writes it durably.
pub(crate) fn ensure_store_id(dir: &std::path::Path) -> Result<String, crate::StoreError> {
    use ring::rand::SecureRandom;
    if let Some(id) = store_id(dir) {
        return Ok(id);
    }
    let mut bytes = [0u8; 16];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| crate::StoreError::InvalidBlock("the system random source failed"))?;
    let id = hex::encode(bytes);
    let path = dir.join(STORE_ID_FILE);
    let tmp = dir.join(format!("{STORE_ID_FILE}.tmp"));
    std::fs::write(&tmp, format!("{id}\n"))
        .and_then(|()| std::fs::File::open(&tmp)?.sync_all())
        .and_then(|()| std::fs::rename(&tmp, &path))
        .map_err(crate::StoreError::io(&path))?;
    crate::writer::sync_dir(dir)?;
    Ok(id)
}

/// The block holding one checkpoint record: agent [`COLLECTOR_IDENTITY`], stream
/// `stream_id`, input `input` ([`CHECKPOINT_INPUT`] for checkpoints), the text as the raw line.
pub(crate) fn record_block(
    text: &str,
    stream_id: &str,
    host: &str,
    time_ns: i64,
    seq: u64,
    input: &str,
) -> crate::BlockInput {
    use logship_proto::v1::{Record, RecordList, Source};
    use prost::Message;
    let list = RecordList {
        host: host.into(),
        sources: vec![Source {
            input: input.into(),
            path: String::new(),
        }],
        records: vec![Record {
            source: 0,
            observed_unix_nanos: time_ns,
            event_unix_nanos: time_ns,
            raw: bytes::Bytes::copy_from_slice(text.as_bytes()),
            ..Default::default()
        }],
        agent_tz: "UTC".into(),
        observed_unix_nanos: 0,
    };
    let payload = logship_proto::payload::compress(&list.encode_to_vec(), 3)
        .expect("compressing a small buffer in memory cannot fail");
    crate::BlockInput {
        agent: COLLECTOR_IDENTITY.into(),
        stream_id: stream_id.into(),
        first_seq: seq,
        count: 1,
        host: host.into(),
        min_time_ns: time_ns,
        max_time_ns: time_ns,
        inputs: vec![input.into()],
        payload: bytes::Bytes::from(payload),
        fields: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> WitnessKey {
        WitnessKey::from_pkcs8(&WitnessKey::generate_pkcs8().unwrap()).unwrap()
    }

    fn sample(k: &WitnessKey) -> Checkpoint {
        Checkpoint {
            v: 1,
            store: "s1".into(),
            blocks: 42,
            head: "ab".repeat(32),
            time_ns: 1_700_000_000_000_000_000,
            key: k.public_key().id(),
            reason: "periodic".into(),
        }
    }

    #[test]
    fn signed_text_opens_with_its_key_only() {
        let k = key();
        let text = k.sign(&sample(&k));
        assert_eq!(k.public_key().open(&text).unwrap(), sample(&k));
        let other = key();
        assert!(matches!(
            other.public_key().open(&text),
            Err(CheckpointError::BadSignature(_))
        ));
    }

    #[test]
    fn any_changed_character_is_refused() {
        let k = key();
        let text = k.sign(&sample(&k));
        let pk = k.public_key();
        let dot = text.rfind('.').unwrap();
        // The last character of each base64 part may only carry padding bits: skip those.
        let skip = [dot - 1, dot, text.len() - 1];
        for i in (CHECKPOINT_PREFIX.len()..text.len()).filter(|i| !skip.contains(i)) {
            let mut bytes = text.clone().into_bytes();
            bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
            let bad = String::from_utf8(bytes).unwrap();
            assert!(pk.open(&bad).is_err(), "change at {i} accepted");
        }
    }

    #[test]
    fn texts_survive_syslog_cef_and_json_wrapping() {
        let k = key();
        let a = k.sign(&sample(&k));
        let mut later = sample(&k);
        later.blocks = 50;
        let b = k.sign(&later);
        let soc_file = format!(
            "<14>1 2026-11-29T22:00:00Z host logship - - [logship@32473 agent=\"@collector\"] {a}\n\
             CEF:0|logship|collector|1|checkpoint|checkpoint|1|msg={b} suser=@collector\n\
             {{\"raw\":\"{a}\",\"agent\":\"@collector\"}}\n\
             {b}\n"
        );
        let found = find_checkpoints(&soc_file);
        assert_eq!(
            found.iter().map(|f| f.text.as_str()).collect::<Vec<_>>(),
            vec![a.as_str(), b.as_str()]
        );
        assert_eq!(found[1].line, 2);
        for f in &found {
            k.public_key().open(&f.text).unwrap();
        }
        assert!(
            a[CHECKPOINT_PREFIX.len()..]
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(&c))
        );
    }

    #[test]
    fn a_huge_line_is_scanned_in_bounded_pieces() {
        let k = key();
        let a = k.sign(&sample(&k));
        let mut input = vec![b'x'; 3 * MAX_LINE_BYTES + 7];
        input.extend_from_slice(format!(" {a}\nnext {a}x\n").as_bytes());
        let found = find_checkpoints_in(&input[..]).unwrap();
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!((found[0].line, found[1].line), (1, 2));
    }

    #[test]
    fn public_key_text_round_trips() {
        let pk = key().public_key();
        assert_eq!(PublicKey::from_text(&pk.to_text()).unwrap(), pk);
        assert!(PublicKey::from_text("ssh-ed25519 AAAA").is_err());
    }
}
