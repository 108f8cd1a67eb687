//! Feeds the store's field index ([`logship_store::FieldIndexBuilder`]) from the normalizer: each
//! record's fields of a block, then "block done" once its column is on disk.
//!
//! Invariants:
//! - Values are handed over exactly as search compares them (`FieldFilter`'s `=`): a text as
//!   its bytes, each element of an array on its own, anything else (number, bool, null,
//!   object) as "not text", so the index never rules out a block a search would match.
//! - A block is marked done only after its fields column was written, and indexes are written
//!   ([`BlockIndexer::flush`]) only after the sidecars were fsync'd, so the index covers
//!   exactly the blocks whose fields search reads from the column the index was built from.
//! - An index that cannot be written is logged and left out: search then reads the segment.

use logship_normalize::{FieldRef, Fields};
use logship_store::{CursorPos, FieldIndexBuilder, FieldIndexError};

/// The normalizer's side of the field index.
pub(crate) struct BlockIndexer {
    builder: FieldIndexBuilder,
}

impl BlockIndexer {
    /// An indexer for the store at `store_dir`.
    pub(crate) fn new(store_dir: &std::path::Path) -> Self {
        BlockIndexer {
            builder: FieldIndexBuilder::new(store_dir),
        }
    }

    /// Adds one record's fields to the block at `at`.
    pub(crate) fn record(&mut self, at: CursorPos, fields: &Fields) {
        for (f, field) in logship_store::INDEXED_FIELDS.into_iter().enumerate() {
            match fields.get(field) {
                None => {}
                Some(FieldRef::Str(s) | FieldRef::List(s)) => {
                    self.builder.add_nth(at.segment, at.offset, f, s);
                }
                Some(FieldRef::U64(_)) => self.builder.add_other(at.segment, at.offset, field),
            }
        }
    }

    /// Marks the block at `at` covered: all its records were added and its column is stored.
    pub(crate) fn done(&mut self, at: CursorPos) {
        self.builder.block_done(at.segment, at.offset);
    }

    /// Writes the indexes of the segments the normalizer has left; call after the sidecars
    /// were fsync'd.
    pub(crate) fn flush(&mut self) {
        if let Err(error) = self.builder.flush() {
            let error: FieldIndexError = error;
            tracing::warn!(%error, "Could not write a field index; searches read that segment whole.");
        }
    }
}
