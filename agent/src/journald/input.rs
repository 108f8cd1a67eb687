//! The journald input thread: runs a [`Follower`], turns each entry into a record with its
//! cursor as the position, restarts journalctl with backoff when it ends, and keeps the batch
//! moving (age flush) while the journal is quiet.
//!
//! Invariants:
//! - An entry's cursor is set as the position only after the entry was pushed, so positions
//!   never run ahead of spooled entries; journalctl restarts (in this run or the next) start
//!   after the last pushed cursor, so no entry is read twice or skipped.
//! - With no stored position, `start_at` decides once: "beginning", or "end" = after the newest
//!   entry at that moment; the decision is spooled at once (an empty token means "from the
//!   beginning"), so a restart never decides again.
//! - Backoff between journalctl starts: [`FIRST_RETRY`] doubling to [`MAX_RETRY`]; reset once a
//!   start has run for [`HEALTHY_AFTER`]. From then on, every [`LOOK_EVERY`], the input's error
//!   is cleared, or set to "no journal files" when there are none (journalctl then waits
//!   silently for journald to write some).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use logship_tail::{LineSink, SinkClosed, SourceId};

use super::export::Entry;
use super::reader::{Event, Follower, Start, newest_cursor};
use crate::batcher::{Batcher, RecordExtra};
use crate::config::{JournalStart, JournaldInput};
use crate::input_errors::InputErrors;

/// Key of the input's one position (after the `"{input}|"` namespace).
pub const POSITION_KEY: &str = "journal";
/// First wait before restarting journalctl.
pub const FIRST_RETRY: Duration = Duration::from_millis(500);
/// Longest wait between two starts.
pub const MAX_RETRY: Duration = Duration::from_secs(10);
/// A start that has run this long without ending counts as healthy.
pub const HEALTHY_AFTER: Duration = Duration::from_secs(2);
/// How often a running input looks whether any journal file exists.
const LOOK_EVERY: Duration = Duration::from_secs(5);
/// How often the batcher's clock and age flush run, and the stop flag is looked at.
const TICK: Duration = Duration::from_millis(100);
/// Cap on an attribute value (the journal's own values for these fields are short).
const MAX_ATTRIBUTE: usize = 4096;

/// Journal fields that travel as record attributes, in this order.
pub const ATTRIBUTES: [&str; 7] = [
    "_SYSTEMD_UNIT",
    "_PID",
    "_UID",
    "_HOSTNAME",
    "SYSLOG_IDENTIFIER",
    "PRIORITY",
    "_COMM",
];

/// The stored position of a journald input: the last spooled cursor and entries read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// Cursor after which to resume; empty = from the beginning (start_at decided).
    pub cursor: String,
    /// Entries read by this input so far.
    pub entries: u64,
}

/// The stored position among an input's checkpoints (input prefix already removed).
pub fn stored(checkpoints: &[logship_tail::Checkpoint]) -> Option<Stored> {
    checkpoints
        .iter()
        .rfind(|c| c.key == POSITION_KEY)
        .map(|c| Stored {
            cursor: c.path.clone(),
            entries: c.offset,
        })
}

/// Starts the input thread.
pub fn spawn(
    config: JournaldInput,
    stored: Option<Stored>,
    batcher: Batcher,
    errors: InputErrors,
    stop: Arc<AtomicBool>,
) -> std::io::Result<JoinHandle<()>> {
    let name = config.name.clone();
    std::thread::Builder::new()
        .name(format!("input-{name}"))
        .spawn(move || {
            let mut input = match JournalInput::new(config, stored, batcher, errors) {
                Ok(i) => i,
                Err(SinkClosed) => return,
            };
            input.run(&stop);
            input.finish();
        })
}

/// Which fields the export reader keeps, and their caps.
fn keep(max_message: usize) -> impl Fn(&str) -> Option<usize> {
    move |name| match name {
        "MESSAGE" => Some(max_message),
        "__CURSOR" | "__REALTIME_TIMESTAMP" => Some(MAX_ATTRIBUTE),
        n if ATTRIBUTES.contains(&n) => Some(MAX_ATTRIBUTE),
        _ => None,
    }
}

struct JournalInput {
    config: JournaldInput,
    batcher: Batcher,
    source: SourceId,
    /// Where the next journalctl starts; `None` = start_at not decided yet.
    start: Option<Start>,
    entries: u64,
    errors: InputErrors,
}

impl JournalInput {
    fn new(
        config: JournaldInput,
        stored: Option<Stored>,
        mut batcher: Batcher,
        errors: InputErrors,
    ) -> Result<Self, SinkClosed> {
        let label = config
            .directory
            .as_deref()
            .unwrap_or(Path::new("journal"))
            .to_path_buf();
        let source = batcher.open_source(POSITION_KEY, &label)?;
        let (start, entries) = match stored {
            Some(s) if s.cursor.is_empty() => (Some(Start::Beginning), s.entries),
            Some(s) => (Some(Start::AfterCursor(s.cursor)), s.entries),
            None if config.start_at == JournalStart::Beginning => (Some(Start::Beginning), 0),
            None => (None, 0),
        };
        Ok(JournalInput {
            config,
            batcher,
            source,
            start,
            entries,
            errors,
        })
    }

    fn run(&mut self, stop: &AtomicBool) {
        let name = self.config.name.clone();
        let mut follower: Option<(Follower, Instant)> = None;
        let mut retry_at = Instant::now();
        let mut delay = FIRST_RETRY;
        let mut last_tick = Instant::now();
        let mut last_look: Option<Instant> = None;
        let mut starts = 0u64;
        while !stop.load(Ordering::SeqCst) {
            if last_tick.elapsed() >= TICK {
                last_tick = Instant::now();
                if self.batcher.tick().is_err() {
                    return;
                }
            }
            let Some((f, started)) = &follower else {
                let now = Instant::now();
                if now < retry_at {
                    std::thread::sleep((retry_at - now).min(TICK));
                    continue;
                }
                match self.start_follower() {
                    Ok(f) => {
                        let from = match &self.start {
                            Some(Start::AfterCursor(c)) => c.as_str(),
                            _ => "the beginning",
                        };
                        // Restarts are told by the error state (`InputErrors`), once per change.
                        if starts == 0 {
                            tracing::info!(input = %name, from, "Following the journal.");
                        } else {
                            tracing::debug!(input = %name, from, "Following the journal again.");
                        }
                        starts += 1;
                        follower = Some((f, Instant::now()));
                    }
                    Err(message) => {
                        self.errors.set(&name, &message);
                        retry_at = Instant::now() + delay;
                        delay = (delay * 2).min(MAX_RETRY);
                    }
                }
                continue;
            };
            if started.elapsed() >= HEALTHY_AFTER
                && last_look.is_none_or(|t| t.elapsed() >= LOOK_EVERY)
            {
                // journalctl runs; it waits quietly where there is no journal at all, so say so.
                last_look = Some(Instant::now());
                delay = FIRST_RETRY;
                match super::reader::missing_journal(&self.config) {
                    Some(message) => self.errors.set(&name, &message),
                    None => self.errors.clear(&name),
                }
            }
            match f.next(TICK) {
                Some(Event::Entry(entry)) if self.push(&entry).is_err() => return,
                Some(Event::Entry(_)) => {}
                Some(Event::Ended(error)) => {
                    let (f, _) = follower.take().expect("matched above");
                    let how = f.finish();
                    let message = match error {
                        Some(e) => format!("{e}; {how}; restarting after the last entry read"),
                        None => format!("{how}; restarting after the last entry read"),
                    };
                    self.errors.set(&name, &message);
                    retry_at = Instant::now() + delay;
                    delay = (delay * 2).min(MAX_RETRY);
                }
                None => {}
            }
        }
        // Dropping the follower kills and reaps journalctl; unread entries are read again.
        drop(follower);
    }

    /// Decides the start point if needed, then starts journalctl.
    fn start_follower(&mut self) -> Result<Follower, String> {
        let start = match &self.start {
            Some(s) => s.clone(),
            None => {
                let start = match newest_cursor(&self.config)? {
                    Some(c) => Start::AfterCursor(c),
                    None => Start::Beginning,
                };
                let token = match &start {
                    Start::AfterCursor(c) => c.clone(),
                    Start::Beginning => String::new(),
                };
                self.batcher
                    .set_position(self.source, Some(token), self.entries);
                self.batcher
                    .flush()
                    .map_err(|e| format!("spooling the starting point: {e}"))?;
                self.start = Some(start.clone());
                start
            }
        };
        let max = self.config.max_message_bytes;
        Follower::spawn(&self.config, &start, Box::new(keep(max)))
            .map_err(|e| format!("{} could not start: {e}", super::reader::JOURNALCTL))
    }

    /// One entry → one record, then its cursor as the position.
    fn push(&mut self, entry: &Entry) -> Result<(), SinkClosed> {
        let (raw, truncated_from) = match entry.get("MESSAGE") {
            Some(m) if m.len > m.value.len() as u64 => (m.value.as_slice(), m.len),
            Some(m) => (m.value.as_slice(), 0),
            None => (&[][..], 0),
        };
        let event_ns = entry
            .text("__REALTIME_TIMESTAMP")
            .and_then(|t| t.parse::<i64>().ok())
            .and_then(|us| us.checked_mul(1000))
            .unwrap_or(0);
        let values: Vec<(&str, std::borrow::Cow<'_, str>)> = ATTRIBUTES
            .iter()
            .filter_map(|&n| Some((n, entry.text(n)?)))
            .collect();
        let attributes: Vec<(&str, &str)> = values.iter().map(|(n, v)| (*n, v.as_ref())).collect();
        let extra = RecordExtra {
            event_ns,
            attributes: &attributes,
            original: None,
        };
        self.batcher
            .push_event(self.source, raw, truncated_from, &extra)?;
        self.entries += 1;
        match entry.text("__CURSOR") {
            Some(cursor) => {
                let cursor = cursor.into_owned();
                self.batcher
                    .set_position(self.source, Some(cursor.clone()), self.entries);
                self.start = Some(Start::AfterCursor(cursor));
            }
            None => tracing::warn!(input = %self.config.name, "A journal entry had no cursor."),
        }
        Ok(())
    }

    fn finish(&mut self) {
        if let Err(error) = self.batcher.flush() {
            tracing::warn!(input = %self.config.name, %error,
                "Last batch not spooled; its entries will be read again.");
        }
    }
}
