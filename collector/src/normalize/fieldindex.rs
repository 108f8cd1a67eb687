//! Feeds the store's field index ([`logship_store::FieldIndexBuilder`]) from the normalizer: the
//! values of a block's records ([`BlockValues`], collected by whichever parse worker parsed it),
//! then "block done" once its column is on disk, both by the one thread that writes the columns,
//! in store order.
//!
//! Invariants:
//! - Values are handed over exactly as search compares them (`FieldFilter`'s `=`): a text as
//!   its bytes, each element of an array on its own, anything else (number, bool, null,
//!   object) as "not text", so the index never rules out a block a search would match.
//! - A block is marked done only after its fields column was written, and indexes are written
//!   ([`BlockIndexer::flush`]) only after the sidecars were fsync'd, so the index covers
//!   exactly the blocks whose fields search reads from the column the index was built from.
//! - An index that cannot be written is logged and left out: search then reads the segment.

use std::collections::HashSet;

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

    /// Adds the values of one block's records to the block at `at`.
    pub(crate) fn add(&mut self, at: CursorPos, values: &BlockValues) {
        for (f, texts) in values.texts.iter().enumerate() {
            for text in texts {
                self.builder.add_nth(at.segment, at.offset, f, text);
            }
        }
        for (field, other) in logship_store::INDEXED_FIELDS.iter().zip(values.other) {
            if other {
                self.builder.add_other(at.segment, at.offset, field);
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

/// The distinct values of the indexed fields ([`logship_store::INDEXED_FIELDS`]) over the
/// records of one block, collected where the block is parsed and handed to [`BlockIndexer::add`]
/// by the thread that writes its column. Each text is kept once (the index only asks whether a
/// block holds a value), so it is at most as large as the block's distinct values.
#[derive(Debug, Default)]
pub(crate) struct BlockValues {
    /// Per indexed field (same order), the distinct texts.
    texts: [HashSet<String>; logship_store::INDEXED_FIELDS.len()],
    /// Per indexed field, whether some record has a value that is not text.
    other: [bool; logship_store::INDEXED_FIELDS.len()],
}

impl BlockValues {
    /// Adds one record's fields.
    pub(crate) fn record(&mut self, fields: &Fields) {
        for (i, field) in logship_store::INDEXED_FIELDS.iter().enumerate() {
            match fields.get(field) {
                None => {}
                Some(FieldRef::Str(s) | FieldRef::List(s)) if !self.texts[i].contains(s) => {
                    self.texts[i].insert(s.to_owned());
                }
                Some(FieldRef::Str(_) | FieldRef::List(_)) => {}
                Some(FieldRef::U64(_)) => self.other[i] = true,
            }
        }
    }
}
