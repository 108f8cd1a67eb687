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

use std::cell::RefCell;

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
        for (f, text) in values.texts() {
            self.builder.add_nth(at.segment, at.offset, f, text);
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

/// The values of the indexed fields ([`logship_store::INDEXED_FIELDS`]) over the records of
/// one block, collected where the block is parsed and handed to [`BlockIndexer::add`] by the
/// thread that writes its column. They are kept flat, in record order, in one text arena (no
/// allocation or hashing per record): a value equal to the same field's previous one is not
/// kept again, and the index builder, which hashes each value once, drops the other repeats.
/// So it is at most as large as the indexed fields' text of the block.
#[derive(Debug)]
pub(crate) struct BlockValues {
    /// The kept texts, end to end.
    text: String,
    /// Per kept text: its field's position in `INDEXED_FIELDS` and its range in `text`.
    spans: Vec<(u8, u32, u32)>,
    /// Per indexed field, the range of its last kept text.
    last: [Option<(u32, u32)>; logship_store::INDEXED_FIELDS.len()],
    /// Per indexed field, whether some record has a value that is not text.
    other: [bool; logship_store::INDEXED_FIELDS.len()],
}

/// Spare buffers of [`BlockValues`] per thread: a block's values are dropped by the thread
/// that writes the columns, which also parses (its blocks take them back), so the arena is
/// not allocated and faulted in again for every block.
const SPARE_CAP: usize = 4;
/// A buffer larger than this is freed rather than kept.
const SPARE_MAX_BYTES: usize = 16 << 20;

type Spare = (String, Vec<(u8, u32, u32)>);

thread_local! {
    static SPARE: RefCell<Vec<Spare>> = const { RefCell::new(Vec::new()) };
}

impl Default for BlockValues {
    fn default() -> Self {
        let (text, spans) = SPARE.with(|s| s.borrow_mut().pop()).unwrap_or_default();
        BlockValues {
            text,
            spans,
            last: Default::default(),
            other: Default::default(),
        }
    }
}

impl Drop for BlockValues {
    fn drop(&mut self) {
        if self.text.capacity() > SPARE_MAX_BYTES || self.spans.capacity() == 0 {
            return;
        }
        let (mut text, mut spans) = (
            std::mem::take(&mut self.text),
            std::mem::take(&mut self.spans),
        );
        text.clear();
        spans.clear();
        // Err: the thread's locals are gone; the buffers are simply freed.
        SPARE
            .try_with(|s| match s.try_borrow_mut() {
                Ok(mut spare) if spare.len() < SPARE_CAP => spare.push((text, spans)),
                _ => {}
            })
            .unwrap_or_default();
    }
}

impl BlockValues {
    /// Adds one record's fields.
    pub(crate) fn record(&mut self, fields: &Fields) {
        for (key, value) in fields.iter() {
            let Some(i) = indexed(key) else {
                continue;
            };
            match value {
                FieldRef::Str(s) | FieldRef::List(s) => self.text_value(i, s),
                FieldRef::U64(_) => self.other[i] = true,
            }
        }
    }

    /// The kept values, as (position in `INDEXED_FIELDS`, text).
    fn texts(&self) -> impl Iterator<Item = (usize, &str)> {
        self.spans
            .iter()
            .map(|&(f, a, b)| (usize::from(f), &self.text[a as usize..b as usize]))
    }

    /// Holds no value (no record had an indexed field).
    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.spans.is_empty() && !self.other.iter().any(|o| *o)
    }

    fn text_value(&mut self, i: usize, s: &str) {
        if let Some((a, b)) = self.last[i]
            && &self.text[a as usize..b as usize] == s
        {
            return;
        }
        let a = self.text.len();
        self.text.push_str(s);
        let span = (a as u32, self.text.len() as u32);
        self.spans.push((i as u8, span.0, span.1));
        self.last[i] = Some(span);
    }
}

/// The position of `key` in [`logship_store::INDEXED_FIELDS`] (a field of a record appears
/// once, so walking the record's fields once sees each indexed one once).
fn indexed(key: &str) -> Option<usize> {
    // Most keys are not indexed: their length alone says so.
    if !matches!(key.len(), 9 | 10 | 13 | 14 | 18) {
        return None;
    }
    logship_store::INDEXED_FIELDS.iter().position(|f| *f == key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_indexed_name_has_a_length_the_shortcut_lets_through() {
        for f in logship_store::INDEXED_FIELDS {
            assert_eq!(
                indexed(f).map(|i| logship_store::INDEXED_FIELDS[i]),
                Some(f),
                "{f}"
            );
        }
        assert_eq!(indexed("source.port"), None);
        assert_eq!(indexed("user.nam"), None);
    }

    /// The values handed to the index are every indexed text of the records (repeats of a
    /// field's previous value left out), and a reused buffer starts empty.
    #[test]
    fn values_are_kept_in_record_order_and_buffers_come_back_empty() {
        let mut n = logship_normalize::Normalizer::new();
        let ctx = logship_normalize::Context {
            host: "h",
            input: "t",
            path: "t",
            agent_tz: "UTC",
            observed_unix_nanos: 1_735_689_600_000_000_000,
        };
        let lines = [
            "Mar  5 00:00:01 web02 sshd[1]: Failed password for root from 192.0.2.1 port 22 ssh2",
            "Mar  5 00:00:02 web02 sshd[2]: Failed password for root from 192.0.2.1 port 22 ssh2",
            "Mar  5 00:00:03 web02 sshd[3]: Failed password for alice from 192.0.2.2 port 22 ssh2",
        ];
        let mut v = BlockValues::default();
        let mut f = Fields::new();
        for l in lines {
            n.normalize_into(l.as_bytes(), &ctx, None, &mut f);
            v.record(&f);
        }
        let got: Vec<(&str, &str)> = v
            .texts()
            .map(|(i, t)| (logship_store::INDEXED_FIELDS[i], t))
            .collect();
        for want in [
            ("user.name", "root"),
            ("user.name", "alice"),
            ("source.ip", "192.0.2.1"),
            ("source.ip", "192.0.2.2"),
            ("host.name", "web02"),
            ("event.dataset", "sshd"),
            ("event.outcome", "failure"),
        ] {
            assert_eq!(
                got.iter().filter(|g| **g == want).count(),
                1,
                "{want:?} in {got:?}"
            );
        }
        assert_eq!(got.len(), 7, "{got:?}");
        drop(v);
        assert!(BlockValues::default().is_empty());
    }
}
