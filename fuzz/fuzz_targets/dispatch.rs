//! Fuzzes the format dispatcher and every forced parser.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    logship_normalize::fuzz_dispatch(data);
});
