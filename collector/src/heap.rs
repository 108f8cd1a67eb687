//! The process's heap, tuned for a collector that handles multi-MiB buffers block after block.
//!
//! The normalizer (and search) decompress each stored block (about 3–4 MiB of records), decode
//! it and build its fields column, then free all of it before the next block. With glibc's
//! defaults the heap top is trimmed back to the kernel after such a free and grown again for
//! the next block, so every block faults its buffers in afresh: on the benchmark's mix,
//! 93,000 page faults for 128 MiB of log in `normalize_bench` against 14,000 with a 64 MiB
//! pad (docs/BENCHMARKS.md, "A heap pad: the blocks' buffers stop faulting").
//!
//! Invariant: only a hint. [`keep_heap_pad`] asks glibc (`mallopt(M_TOP_PAD)`) to keep
//! [`TOP_PAD`] bytes at the top of each heap when it grows or trims; a refusal or another C
//! library leaves the defaults, with no other effect. The cost is resident memory: up to
//! [`TOP_PAD`] per heap stays mapped after a peak instead of going back to the kernel.

/// Bytes kept at the top of a heap when it grows or is trimmed.
pub const TOP_PAD: usize = 64 << 20;

/// Keeps [`TOP_PAD`] at the top of the heap (glibc on Linux); a no-op elsewhere. Call before
/// the first threads start.
#[allow(unsafe_code)]
pub fn keep_heap_pad() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let pad = libc::c_int::try_from(TOP_PAD).unwrap_or(libc::c_int::MAX);
        // SAFETY: mallopt takes two integers and only changes allocator parameters. It runs
        // before logging is set up, and a refusal (0) just leaves the defaults.
        let _accepted = unsafe { libc::mallopt(libc::M_TOP_PAD, pad) };
    }
}
