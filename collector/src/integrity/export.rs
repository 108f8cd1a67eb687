//! `logship-collector export`: selects records (time range, `--where`) with the same search as
//! `search`, then has `logship_store::export` write the archive of the blocks holding them.
//!
//! What `--where` means for an archive: a block is selected when at least one of its records
//! is in the time range and matches every `--where`; the archive holds the run of the chain
//! from the first selected block to the first checkpoint at or after the last one, whole
//! blocks, selected or not, so every link can be checked. `matching_blocks` in the manifest
//! names the selected ones. The collector's own checkpoint records are never "selected".

use std::collections::HashMap;
use std::io::Write;

use anyhow::{Context, Result, bail};
use logship_normalize::FieldFilter;
use logship_store::{BlockSummary, COLLECTOR_IDENTITY, ExportRequest, Query};
use serde_json::json;

use crate::cli::ExportArgs;
use crate::timearg::parse_time;

/// (agent, stream) -> merged seq ranges of the selected records.
type Selected = HashMap<(String, String), Vec<(u64, u64)>>;

/// The archive's README (the manifest's figures are appended by the store).
const README: &str = "\
logship evidence archive
========================

This directory is a self-verifying copy of part of a logship collector's hash-chained store.

Files
  blocks.lsb       the stored blocks, byte for byte, in chain order: each block's prev_hash is
                   the SHA-256 chain hash of the block before it (the first one's is the
                   manifest's prev_hash, the link into the rest of the store)
  checkpoints.txt  checkpoints signed with the collector's Ed25519 witness key, each stating
                   the chain hash after a given block; the last block of the archive is covered
  witness.pub      the collector's witness public key
  manifest.json    store id, first and last block, prev_hash, which blocks hold a selected
                   record (matching_blocks), and the SHA-256 and size of every other file

How to verify (on any machine, no collector data needed)
  logship-collector verify --archive THIS_DIRECTORY
  Add --public-key FILE with the collector's witness.pub as you received it independently
  (for example from the SOC at setup), and --checkpoint FILE with the checkpoint records the
  SOC received (its syslog, CEF or JSON output file as it is): then not even someone holding
  the collector's key can have rewritten what those checkpoints cover.
  It checks every SHA-256 sum, every block checksum and recomputed hash, every chain link, the
  block count, and every checkpoint against the recomputed chain. Exit status 0 means intact.

What was selected
  Blocks holding at least one record in the time range that matches every --where condition.
  Blocks are exported whole (a block's hash covers all of it), together with every block
  between the first and the last selected one and up to the next checkpoint, so the chain
  links can be checked: the archive can hold records that were not selected.
";

/// Runs `export` and prints a summary.
pub fn run(args: &ExportArgs, out: &mut dyn Write) -> Result<()> {
    let now = jiff::Timestamp::now();
    let since =
        parse_time(&args.since, now).with_context(|| format!("--since {:?}", args.since))?;
    let until =
        parse_time(&args.until, now).with_context(|| format!("--until {:?}", args.until))?;
    if until <= since {
        bail!("--until must be later than --since");
    }
    let filters = args
        .filters
        .iter()
        .map(|f| FieldFilter::parse(f).with_context(|| format!("--where {f:?}")))
        .collect::<Result<Vec<_>>>()?;
    let dir = crate::serve::store_dir(&args.data_dir);
    if !dir.try_exists()? {
        bail!("{} holds no store", args.data_dir.display());
    }
    let key = super::key::load(&args.data_dir)?;
    let matches = matching_ranges(&dir, since, until, &filters)?;
    let mut select = |b: &BlockSummary<'_>| {
        let last = b.first_seq + u64::from(b.count) - 1;
        matches
            .get(&(b.agent.to_string(), b.stream_id.to_string()))
            .is_some_and(|ranges| ranges.iter().any(|&(a, z)| a <= last && z >= b.first_seq))
    };
    let report = logship_store::export(
        &dir,
        ExportRequest {
            out: &args.out,
            select: &mut select,
            key: &key,
            selection: json!({
                "since": args.since,
                "until": args.until,
                "since_ns": since,
                "until_ns": until,
                "where": args.filters,
            }),
            readme: README,
        },
    )
    .context("exporting")?;
    let m = &report.manifest;
    writeln!(
        out,
        "exported blocks {}..={} ({} records, {} blocks holding a selected record) and {} \
         checkpoint(s){} to {}",
        m.first_block,
        m.last_block,
        m.records,
        m.matching_blocks.len(),
        report.checkpoints,
        if report.signed_at_export {
            " (the last one signed now: no stored checkpoint covered the end yet)"
        } else {
            ""
        },
        args.out.display()
    )?;
    writeln!(
        out,
        "verify with: logship-collector verify --archive {}",
        args.out.display()
    )?;
    out.flush()?;
    Ok(())
}

/// (agent, stream) -> seq ranges of the records selected, merged.
fn matching_ranges(
    store: &std::path::Path,
    since: i64,
    until: i64,
    filters: &[FieldFilter],
) -> Result<Selected> {
    let query = Query {
        since_ns: Some(since),
        until_ns: Some(until),
        ..Query::default()
    };
    let mut lookup = crate::normalize::FieldsLookup::new();
    let mut ranges = Selected::new();
    let stats = logship_store::search(store, &query, &mut |r| {
        if r.agent == COLLECTOR_IDENTITY {
            return true;
        }
        if !lookup.matches(r, filters) {
            return true;
        }
        let list = ranges
            .entry((r.agent.to_string(), r.stream_id.to_string()))
            .or_default();
        match list.last_mut() {
            Some((_, z)) if *z + 1 == r.seq => *z = r.seq,
            _ => list.push((r.seq, r.seq)),
        }
        true
    })
    .context("searching the store")?;
    if let Some(c) = stats.corrupt.first() {
        bail!(
            "the store is damaged ({} at {}: {}); run verify first",
            c.segment.display(),
            c.offset,
            c.reason
        );
    }
    Ok(ranges)
}
