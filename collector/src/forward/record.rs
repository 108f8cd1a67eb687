//! The record as a forwarder sees it: the raw bytes and where they came from, plus the
//! normalized fields. Encoders turn it into their wire format.

use serde_json::{Map, Value};

/// One stored record on its way to a destination.
#[derive(Debug, Clone, Copy)]
pub struct ForwardRecord<'a> {
    /// Stable id (same on every resend): [`logship_store::event_id`].
    pub event_id: &'a str,
    /// Agent identity that stored it (client certificate name).
    pub agent: &'a str,
    /// Host name the agent claims.
    pub host: &'a str,
    /// Agent input name.
    pub input: &'a str,
    /// Seq in its agent stream.
    pub seq: u64,
    /// Event time (Unix ns) if known, else the observed time.
    pub time_ns: i64,
    /// The raw text, byte for byte.
    pub raw: &'a [u8],
    /// Normalized fields (ECS names).
    pub fields: &'a Map<String, Value>,
}
