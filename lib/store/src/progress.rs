//! Progress of a long walk over the store (search, verify), for a person watching, and the way
//! to stop one early.
//!
//! Invariant: a watcher is called after every block looked at (read, or skipped by its header or
//! its segment's index); returning `false` stops the walk at that block boundary. Everything
//! emitted before stays valid, and the walk's result says it was interrupted.

/// How far a walk has got.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// Segments in the store when the walk started.
    pub segments_total: u64,
    /// Segments finished.
    pub segments_done: u64,
    /// Blocks looked at (read or skipped).
    pub blocks: u64,
    /// Records in those blocks (from their headers; skipped segments count their blocks only).
    pub records: u64,
    /// Oldest observed time in the blocks looked at (Unix ns).
    pub oldest_ns: Option<i64>,
    /// Newest observed time in the blocks looked at (Unix ns).
    pub newest_ns: Option<i64>,
}

/// Called with the progress after each block; `false` stops the walk.
pub type Watch<'a> = &'a mut dyn FnMut(&Progress) -> bool;

// === impl Progress ===

impl Progress {
    /// Counts one block of `count` records observed between `min_ns` and `max_ns`.
    pub(crate) fn block(&mut self, count: u32, min_ns: i64, max_ns: i64) {
        self.blocks += 1;
        self.records += u64::from(count);
        self.oldest_ns = Some(self.oldest_ns.map_or(min_ns, |o| o.min(min_ns)));
        self.newest_ns = Some(self.newest_ns.map_or(max_ns, |n| n.max(max_ns)));
    }
}
