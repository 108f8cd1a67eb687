//! Hand encoding of protobuf fields into the batch buffer (see the layout in `super`).

use prost::encoding::{encode_varint, encoded_len_varint};

pub(super) fn field_len(len: usize) -> usize {
    1 + encoded_len_varint(len as u64) + len
}

pub(super) fn put_key_len(buf: &mut Vec<u8>, field: u32, len: usize) {
    buf.push(((field << 3) | 2) as u8);
    encode_varint(len as u64, buf);
}

pub(super) fn put_bytes(buf: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    put_key_len(buf, field, bytes.len());
    buf.extend_from_slice(bytes);
}

pub(super) fn put_varint_field(buf: &mut Vec<u8>, field: u32, value: u64) {
    buf.push((field << 3) as u8);
    encode_varint(value, buf);
}
