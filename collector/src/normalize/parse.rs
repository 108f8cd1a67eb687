//! The parsing half of the normalizer's work on one block, apart from any file: decompress the
//! payload, run every record through its stream's [`Normalizer`], and produce the block's
//! fields column ([`Parsed::column`]) and the values the field index wants of it
//! ([`Parsed::values`]). It reads and writes nothing on disk, so any number of parse workers
//! can run it at once ([`super::pool`]); what it produced is written by the one thread that
//! owns the sidecars and the index ([`super::Pipeline`]).
//!
//! Invariants:
//! - The caller hands in the normalizer of the block's (agent, stream) and gives the blocks of
//!   one stream to it one after the other in store order: [`Parser`] keeps no per-stream state
//!   of its own, so the stateful joins (postfix queue ids, auditd serials, sshd connections)
//!   come out exactly as with one thread.
//! - A parser that panics on a hostile record does not take its thread down:
//!   [`Parser::parse_guarded`] turns the panic into an unreadable block (fields computed at
//!   search time, counted) and gives back a fresh normalizer for the stream (its correlation
//!   state may be half updated).

use std::panic::{AssertUnwindSafe, catch_unwind};

use logship_normalize::Normalizer;
use logship_proto::payload::decode_payload;
use logship_store::CursorBlock;
use logship_store::fields::ColumnBuilder;

use super::column::fields_column;
use super::fieldindex::BlockValues;

/// What parsing one block produced.
#[derive(Debug, Default)]
pub(crate) struct Parsed {
    /// The block's fields column, as the sidecar stores it.
    pub(crate) column: Vec<u8>,
    /// The indexed fields' values of the block's records.
    pub(crate) values: BlockValues,
}

/// Reusable buffers of one parse thread.
pub(crate) struct Parser {
    cap: usize,
    scratch: Vec<u8>,
    builder: ColumnBuilder,
}

impl Parser {
    /// A parser; `cap` bounds a decompressed payload.
    pub(crate) fn new(cap: usize) -> Parser {
        Parser {
            cap,
            scratch: Vec::new(),
            builder: ColumnBuilder::new(),
        }
    }

    /// Parses `b` with the normalizer of its stream; `Err` says why the block is unreadable.
    pub(crate) fn parse(
        &mut self,
        b: &CursorBlock,
        normalizer: &mut Normalizer,
    ) -> Result<Parsed, String> {
        let list =
            decode_payload(&b.payload, self.cap, &mut self.scratch).map_err(|e| e.to_string())?;
        if list.records.len() != b.count as usize {
            return Err(format!(
                "{} records, header says {}",
                list.records.len(),
                b.count
            ));
        }
        let mut parsed = Parsed::default();
        let values = &mut parsed.values;
        fields_column(&list, normalizer, &mut self.builder, &mut |f| {
            values.record(f)
        });
        self.builder.finish(&mut parsed.column);
        Ok(parsed)
    }

    /// [`Parser::parse`], with a panic of a parser turned into an unreadable block; the
    /// normalizer is replaced by a fresh one then.
    pub(crate) fn parse_guarded(
        &mut self,
        b: &CursorBlock,
        normalizer: &mut Normalizer,
    ) -> Result<Parsed, String> {
        match catch_unwind(AssertUnwindSafe(|| self.parse(b, normalizer))) {
            Ok(parsed) => parsed,
            Err(panic) => {
                *normalizer = Normalizer::default();
                self.builder = ColumnBuilder::new();
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                Err(format!("a parser panicked: {what}"))
            }
        }
    }
}
