//! `logship-collector search`: streams matching records from the store, as a table on a terminal
//! or JSON lines ([`print`] has both shapes).
//!
//! Invariants:
//! - Records are printed as they are found, in store order; nothing is held back but the output
//!   buffer, so a search of any size runs in bounded memory.
//! - `--limit 0` prints no record (and `--count` prints 0).
//! - Ctrl-C stops the scan at a record boundary: what was printed stays, a summary goes to
//!   stderr and the command exits 130 ([`Outcome::interrupted`]).
//! - A `--where` on a field no parser produces is an error listing the known fields.
//! - `--where field=text` filters are also handed to the store as field probes, so sealed
//!   segments' field indexes skip blocks that hold none of the values; what is printed is
//!   decided by the filters alone and never depends on whether an index exists.

mod print;

use std::io::{IsTerminal, Write};

use anyhow::{Context, Result, bail};
use logship_normalize::FieldFilter;
use logship_store::{FieldProbe, Query, RecordView};

use crate::cli::SearchArgs;
use crate::output::progress::{Interrupt, Spinner, describe};
use crate::output::{Format, table};
use crate::timearg::parse_time;

pub use print::record_json;

/// What a search did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// Records printed (or counted).
    pub matched: u64,
    /// Ctrl-C stopped the scan before the end.
    pub interrupted: bool,
}

/// The record filters applied here rather than by the store.
struct Filters {
    fields: Vec<FieldFilter>,
    /// Lower-cased `--contains` text when `-i` was given.
    folded: Option<String>,
}

/// Runs a search and writes its output to `out` in `format`.
pub fn run(
    args: &SearchArgs,
    format: Format,
    out: &mut dyn Write,
    interrupt: &Interrupt,
) -> Result<Outcome> {
    let filters = Filters::parse(args)?;
    let query = query(args, &filters)?;
    let dir = crate::serve::store_dir(&args.data_dir);
    if !dir.try_exists()? {
        bail!(
            "{} holds no store (run the collector first)",
            args.data_dir.display()
        );
    }
    if args.limit == Some(0) {
        if args.count {
            writeln!(out, "0")?;
        }
        return Ok(Outcome {
            matched: 0,
            interrupted: false,
        });
    }
    let mut printer = print::Printer::new(format, args.count, out);
    let (outcome, progress) = scan(args, &dir, &query, &filters, &mut printer, interrupt)?;
    printer.finish(outcome.matched)?;
    summary(outcome, &progress);
    Ok(outcome)
}

/// The store query: time range, identities, input, and `--contains` unless it is folded.
fn query(args: &SearchArgs, filters: &Filters) -> Result<Query> {
    let now = jiff::Timestamp::now();
    let time = |t: &Option<String>, flag: &str| {
        t.as_deref()
            .map(|t| parse_time(t, now).with_context(|| format!("{flag} {t:?}")))
            .transpose()
    };
    // With filters applied here the store cannot count matches for us: the limit is ours.
    let ours = !filters.fields.is_empty() || filters.folded.is_some();
    Ok(Query {
        since_ns: time(&args.since, "--since")?,
        until_ns: time(&args.until, "--until")?,
        host: args.host.clone(),
        input: args.input.clone(),
        agent: args.agent.clone(),
        contains: args.contains.clone().filter(|_| !args.ignore_case),
        limit: if ours { None } else { args.limit },
        field_probes: filters.probes(),
    })
}

/// Walks the store, printing each match, with progress on a terminal and Ctrl-C handling.
fn scan(
    args: &SearchArgs,
    dir: &std::path::Path,
    query: &Query,
    filters: &Filters,
    printer: &mut print::Printer<'_>,
    interrupt: &Interrupt,
) -> Result<(Outcome, logship_store::Progress)> {
    let limit = args.limit.unwrap_or(usize::MAX) as u64;
    let mut lookup = crate::normalize::FieldsLookup::new();
    let spinner = Spinner::new("scanned");
    let mut matched = 0u64;
    let mut failure = None;
    let mut last = logship_store::Progress::default();
    let mut emit = |r: &RecordView<'_>| {
        if interrupt.raised() {
            return false;
        }
        // Fields filters run on the sidecar's columns when it has the record; a map is built
        // only for the records printed.
        if !filters.matches_text(r) || !lookup.matches(r, &filters.fields) {
            return true;
        }
        let fields = if args.count { None } else { lookup.fields(r) };
        matched += 1;
        let written = if spinner.visible() {
            spinner.suspend(|| printer.record(r, fields).and_then(|()| printer.flush()))
        } else {
            printer.record(r, fields)
        };
        match written {
            Ok(()) => matched < limit,
            Err(e) => {
                failure = Some(e);
                false
            }
        }
    };
    let mut watch = |p: &logship_store::Progress| {
        spinner.update(p);
        last = *p;
        !interrupt.raised()
    };
    let cap = logship_store::DEFAULT_MAX_DECOMPRESSED_BYTES;
    let stats = logship_store::search_watched(dir, query, cap, &mut emit, &mut watch)
        .context("searching the store")?;
    spinner.finish();
    tracing::debug!(
        blocks_scanned = stats.blocks_scanned,
        blocks_skipped = stats.blocks_skipped,
        blocks_skipped_by_field_index = stats.blocks_skipped_by_field_index,
        blocks_rejected_by_fields = stats.blocks_rejected_by_fields,
        field_index_bytes = stats.field_index_bytes,
        index_ms = stats.index_time.as_millis(),
        frame_ms = stats.frame_time.as_millis(),
        column_ms = stats.column_time.as_millis(),
        payload_ms = stats.payload_time.as_millis(),
        emit_ms = stats.emit_time.as_millis(),
        probes = query.field_probes.len(),
        "Search walked the store."
    );
    if let Some(e) = failure {
        return Err(e.context("writing search output"));
    }
    for c in &stats.corrupt {
        tracing::error!(segment = %c.segment.display(), offset = c.offset, reason = %c.reason,
            "Skipped a corrupt store block.");
    }
    let outcome = Outcome {
        matched,
        interrupted: interrupt.raised(),
    };
    Ok((outcome, last))
}

/// One line on stderr saying what was scanned: always after Ctrl-C, else only on a terminal.
fn summary(outcome: Outcome, p: &logship_store::Progress) {
    if !outcome.interrupted && !std::io::stderr().is_terminal() {
        return;
    }
    let head = if outcome.interrupted {
        "interrupted: "
    } else {
        ""
    };
    let scanned = if p.blocks > 0 {
        format!("; {}", describe(p, "scanned"))
    } else {
        String::new()
    };
    eprintln!("{head}{} matched{scanned}", outcome.matched);
}

// === impl Filters ===

impl Filters {
    fn parse(args: &SearchArgs) -> Result<Filters> {
        let fields = args
            .filters
            .iter()
            .map(|f| {
                FieldFilter::parse(f).with_context(|| {
                    format!(
                        "--where {f:?} (`logship-collector fields` lists the fields with examples)"
                    )
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let folded = args
            .contains
            .as_ref()
            .filter(|_| args.ignore_case)
            .map(|c| c.to_lowercase());
        Ok(Filters { fields, folded })
    }

    /// The `field=text` filters, as hints for the store's field index (it skips blocks that
    /// hold none of the values; the filters still decide every record).
    fn probes(&self) -> Vec<FieldProbe> {
        self.fields
            .iter()
            .filter_map(FieldFilter::exact_text)
            .map(|(field, value)| FieldProbe {
                field: field.to_owned(),
                value: value.to_owned(),
            })
            .collect()
    }

    /// The `--contains -i` test (the store tests `--contains` itself).
    fn matches_text(&self, r: &RecordView<'_>) -> bool {
        self.folded.as_ref().is_none_or(|needle| {
            String::from_utf8_lossy(r.raw)
                .to_lowercase()
                .contains(needle.as_str())
        })
    }
}

/// Width of the terminal for table output.
pub(crate) fn width() -> usize {
    table::terminal_width()
}
