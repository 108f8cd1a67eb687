//! Fuzzes the collector's batch decoders: the bounded walk ingest uses before anything is
//! stored (`scan_payload`: one-shot decompression within an allowance, records counted while
//! read) and the full decoder the readers use (`decode_payload`). Raw bytes are also fed inside
//! a zstd frame so the walk sees structured protobuf, not only zstd noise. The first byte picks
//! the record count the walk is told to expect.
#![no_main]

use logship_proto::{payload, scan};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&expected, body)) = data.split_first() else {
        return;
    };
    let mut scratch = Vec::new();
    let framed = payload::compress(body, 1).ok();
    for bytes in [Some(body), framed.as_deref()].into_iter().flatten() {
        if let Ok(summary) = scan::scan_payload(bytes, 1 << 20, u32::from(expected)) {
            // What the walk accepts, the full decoder must read the same way.
            let list = payload::decode_payload(bytes, 1 << 20, &mut scratch)
                .expect("a scanned payload decodes");
            assert_eq!(list.records.len(), usize::from(expected), "{summary:?}");
        } else {
            drop(payload::decode_payload(bytes, 1 << 20, &mut scratch));
        }
    }
});
