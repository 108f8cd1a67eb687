//! Fuzzes the collector store's block reader, verify, search and recovery.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    logship_store::fuzz_segment(data);
});
