//! The sidecar column of a block handed out by a [`crate::Cursor`], for consumers that walk the
//! store in commit order (the forwarders): [`BlockColumns`].
//!
//! # Invariants
//!
//! - **A column or nothing**: a block gets the column of its own segment's sidecar only through
//!   [`SidecarIndex::column`] (offset, tag, record count and CRCs checked, see the module
//!   invariants of [`super`]); anything else — no sidecar yet, the normalizer behind the
//!   consumer, a damaged entry — is `None`, and the consumer computes the fields itself.
//! - **Bounded**: one segment's index is open at a time; a block the open index lacks reopens
//!   it only when the sidecar file has grown since it was read (the normalizer appended), so a
//!   consumer ahead of the normalizer costs one `stat` per block, not a rescan.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::{Column, SidecarIndex, TAG_LEN, sidecar_path};
use crate::CursorBlock;
use crate::segment;

/// Reads the sidecar columns of cursor blocks; see the module doc.
#[derive(Debug)]
pub struct BlockColumns {
    store_dir: PathBuf,
    segments: HashMap<u64, PathBuf>,
    /// Segment number, its sidecar index (if readable), and the sidecar's length when read.
    open: Option<(u64, Option<SidecarIndex>, u64)>,
}

impl BlockColumns {
    /// A reader of the sidecars of the store in `store_dir`.
    pub fn new(store_dir: &Path) -> BlockColumns {
        BlockColumns {
            store_dir: store_dir.to_path_buf(),
            segments: HashMap::new(),
            open: None,
        }
    }

    /// The column of `b` (row `i` = record `i`), or `None` when its segment's sidecar does not
    /// hold one that checks; `cap` bounds the decompressed column.
    pub fn column(&mut self, b: &CursorBlock, cap: usize) -> Option<Column> {
        let tag = tag_of(&b.hash)?;
        let n = b.at.segment;
        let seg = self.segment_path(n)?;
        if self.open.as_ref().is_none_or(|(m, _, _)| *m != n) {
            self.open = Some(read_index(n, &seg));
        }
        if let Some(c) = self.cached(b, &tag, cap) {
            return Some(c);
        }
        let grown = self
            .open
            .as_ref()
            .is_some_and(|(_, _, len)| sidecar_len(&seg) != *len);
        if !grown {
            return None;
        }
        self.open = Some(read_index(n, &seg));
        self.cached(b, &tag, cap)
    }

    fn cached(&mut self, b: &CursorBlock, tag: &[u8; TAG_LEN], cap: usize) -> Option<Column> {
        let (_, index, _) = self.open.as_mut()?;
        index.as_mut()?.column(b.at.offset, tag, b.count, cap)
    }

    fn segment_path(&mut self, n: u64) -> Option<PathBuf> {
        if !self.segments.contains_key(&n) {
            self.segments = segment::list_segments(&self.store_dir)
                .ok()?
                .into_iter()
                .map(|s| (s.n, s.path))
                .collect();
        }
        self.segments.get(&n).cloned()
    }
}

fn sidecar_len(seg: &Path) -> u64 {
    std::fs::metadata(sidecar_path(seg)).map_or(0, |m| m.len())
}

/// The sidecar index of segment `n` (if readable) with the sidecar's length before reading it.
fn read_index(n: u64, seg: &Path) -> (u64, Option<SidecarIndex>, u64) {
    let len = sidecar_len(seg);
    (n, SidecarIndex::open(seg), len)
}

/// The first [`TAG_LEN`] bytes of a hex block hash.
fn tag_of(hash_hex: &str) -> Option<[u8; TAG_LEN]> {
    let mut tag = [0u8; TAG_LEN];
    hex::decode_to_slice(hash_hex.get(..TAG_LEN * 2)?, &mut tag).ok()?;
    Some(tag)
}
