//! The seam between forwarding and wire formats: an [`Encoder`] appends one framed record to
//! a batch buffer. Formats (syslog, cef, json, hec) plug in here without touching
//! the cursor, batching, retry or transport code.

use super::record::ForwardRecord;

/// Appends one record, fully framed, to a batch.
pub trait Encoder: Send {
    /// Appends `r` to `out`. Never fails: every record has an encoding (the raw bytes are
    /// carried, escaped or length-framed as the format requires).
    fn encode(&self, r: &ForwardRecord<'_>, out: &mut Vec<u8>);
}
