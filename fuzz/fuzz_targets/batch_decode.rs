//! Fuzzes the collector's batch decoder: zstd decompression with a cap, then the RecordList
//! protobuf. Raw protobuf (uncompressed) inputs are also fed through a zstd frame so the
//! decoder sees structured messages, not only zstd noise.
#![no_main]

use logship_proto::payload;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut scratch = Vec::new();
    let _ = payload::decode_payload(data, 1 << 20, &mut scratch);
    if let Ok(framed) = payload::compress(data, 1) {
        let _ = payload::decode_payload(&framed, 1 << 20, &mut scratch);
    }
});
