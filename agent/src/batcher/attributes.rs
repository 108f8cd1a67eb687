//! Record attributes encoded once and copied into many records.
//!
//! Invariants:
//! - [`EncodedAttributes`] holds exactly the bytes [`put_attributes`] writes for the same
//!   name/value pairs (proto `Record.attributes` map entries, field 7, in the order given),
//!   so a record pushed with them is byte for byte the record `push_event` would encode.
//! - Its buffer is reused: re-encoding for the next sender allocates only when the new
//!   attributes are longer than any before.

use super::wire::{field_len, put_bytes, put_key_len};

/// Name/value attributes encoded once as `Record.attributes` entries, for records that share
/// them (a syslog peer's run of datagrams).
#[derive(Debug, Default, Clone)]
pub struct EncodedAttributes {
    bytes: Vec<u8>,
}

impl EncodedAttributes {
    /// Replaces the encoded attributes with `attributes`, in the order given.
    pub fn set(&mut self, attributes: &[(&str, &str)]) {
        self.bytes.clear();
        put_attributes(&mut self.bytes, attributes);
    }

    /// The encoded map entries.
    pub(super) fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// Appends `attributes` as `Record.attributes` map entries (field 7: key 1, value 2).
pub(super) fn put_attributes(buf: &mut Vec<u8>, attributes: &[(&str, &str)]) {
    for (k, v) in attributes {
        put_key_len(buf, 7, field_len(k.len()) + field_len(v.len()));
        put_bytes(buf, 1, k.as_bytes());
        put_bytes(buf, 2, v.as_bytes());
    }
}
