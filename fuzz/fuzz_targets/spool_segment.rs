//! Fuzzes the agent spool's segment reader and recovery.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    logship_spool::fuzz_segment(data);
});
