//! The event log input thread: subscribes an [`EventSource`] from the right start point, turns
//! each event into a record with its bookmark as the position, reports record-id jumps as gaps,
//! and subscribes again with backoff when the channel cannot be read.
//!
//! Invariants:
//! - An event's bookmark is set as the position only after the event was pushed, so positions
//!   never run ahead of spooled events; every (re)subscription starts after the last pushed
//!   bookmark, so no event is read twice or skipped.
//! - A stored bookmark of another channel (the input's `channel` was changed) is not used: the
//!   input starts as if it had none.
//! - With no stored position, `start_at` decides once: "beginning", or "end" = after the newest
//!   event at that moment; the decision is spooled at once (an empty bookmark means "from the
//!   beginning"), so a restart never decides again.
//! - The position's offset is the record id of the last spooled event (0 = none yet), so a
//!   jump is seen across restarts too. Ids that skip forward are a gap only without a `query`
//!   (a query skips ids on purpose); ids that go back (the log was cleared) are always one.
//! - Backoff between subscriptions: [`FIRST_RETRY`] doubling to [`MAX_RETRY`], reset once a
//!   subscription has delivered events or lived [`HEALTHY_AFTER`]. The input's error is set
//!   while it cannot read and cleared when a subscription succeeds.
//! - An event the source could not render becomes a gap record naming the record before it, and
//!   the input moves past it with its bookmark (one bad event never blocks a channel).
//! - An event's XML longer than `max_message_bytes` is cut (record `truncated_from` = its
//!   length); its attributes are taken before the cut. A longer rendered message is cut too.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use logship_tail::{LineSink, SinkClosed, SourceId};

use super::source::{EventSource, RawEvent, Start};
use crate::batcher::{Batcher, RecordExtra};
use crate::config::{EventlogInput, EventlogStart};
use crate::evtx::record::ATTR_RECORD_ID;
use crate::evtx::{EventRecord, Known};
use crate::input_errors::InputErrors;

/// Key of the input's one position (after the `"{input}|"` namespace).
pub const POSITION_KEY: &str = "eventlog";
/// First wait before subscribing again.
pub const FIRST_RETRY: Duration = Duration::from_millis(500);
/// Longest wait between two subscriptions.
pub const MAX_RETRY: Duration = Duration::from_secs(30);
/// A subscription that has lived this long without an error counts as healthy.
pub const HEALTHY_AFTER: Duration = Duration::from_secs(2);
/// Events asked for per call to the source.
pub const EVENTS_PER_CALL: usize = 64;
/// How often the batcher's clock and age flush run, and the stop flag is looked at.
const TICK: Duration = Duration::from_millis(100);

/// The stored position of an event log input: the last spooled bookmark and record id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// Bookmark after which to resume; empty = from the beginning (start_at decided).
    pub bookmark: String,
    /// Record id of the last spooled event; 0 = none known.
    pub record_id: u64,
}

/// The stored position among an input's checkpoints (input prefix already removed).
pub fn stored(checkpoints: &[logship_tail::Checkpoint]) -> Option<Stored> {
    checkpoints
        .iter()
        .rfind(|c| c.key == POSITION_KEY)
        .map(|c| Stored {
            bookmark: c.path.clone(),
            record_id: c.offset,
        })
}

/// Starts the input thread reading `source`.
pub fn spawn<S: EventSource + Send + 'static>(
    config: EventlogInput,
    source: S,
    stored: Option<Stored>,
    batcher: Batcher,
    errors: InputErrors,
    stop: Arc<AtomicBool>,
) -> std::io::Result<JoinHandle<()>> {
    let name = config.name.clone();
    std::thread::Builder::new()
        .name(format!("input-{name}"))
        .spawn(move || {
            let mut input = match EventlogReader::new(config, source, stored, batcher, errors) {
                Ok(i) => i,
                Err(SinkClosed) => return,
            };
            input.run(&stop);
            input.finish();
        })
}

/// One event log input: its source, its batcher and where it stands.
pub struct EventlogReader<S> {
    config: EventlogInput,
    events: S,
    batcher: Batcher,
    source: SourceId,
    /// Where the next subscription starts; `None` = start_at not decided yet.
    start: Option<Start>,
    /// Record id of the last event pushed (or of the newest event when start_at = end).
    last_id: Option<u64>,
    errors: InputErrors,
}

// === impl EventlogReader ===

impl<S: EventSource> EventlogReader<S> {
    /// An input reading `events` for `config`, resuming from `stored`.
    pub fn new(
        config: EventlogInput,
        events: S,
        stored: Option<Stored>,
        mut batcher: Batcher,
        errors: InputErrors,
    ) -> Result<Self, SinkClosed> {
        let label = std::path::PathBuf::from(&config.channel);
        let source = batcher.open_source(POSITION_KEY, &label)?;
        let stored = stored.filter(|s| {
            let theirs = bookmark_channel(&s.bookmark);
            let same = theirs.is_none_or(|c| c.eq_ignore_ascii_case(&config.channel));
            if !same {
                tracing::warn!(input = %config.name, channel = %config.channel,
                    stored_channel = theirs.unwrap_or_default(),
                    "The stored bookmark is of another channel (the config changed); starting \
                     as start_at says.");
            }
            same
        });
        let (start, last_id) = match stored {
            Some(s) => {
                let last = (s.record_id > 0).then_some(s.record_id);
                if s.bookmark.is_empty() {
                    (Some(Start::Beginning), last)
                } else {
                    (Some(Start::AfterBookmark(s.bookmark)), last)
                }
            }
            None if config.start_at == EventlogStart::Beginning => (Some(Start::Beginning), None),
            None => (None, None),
        };
        Ok(EventlogReader {
            config,
            events,
            batcher,
            source,
            start,
            last_id,
            errors,
        })
    }

    /// Reads until `stop` is set or the spool is closed.
    pub fn run(&mut self, stop: &AtomicBool) {
        let name = self.config.name.clone();
        let mut subscribed: Option<Instant> = None;
        let mut retry_at = Instant::now();
        let mut delay = FIRST_RETRY;
        let mut last_tick = Instant::now();
        while !stop.load(Ordering::SeqCst) {
            if last_tick.elapsed() >= TICK {
                last_tick = Instant::now();
                if self.batcher.tick().is_err() {
                    return;
                }
            }
            let Some(since) = subscribed else {
                let now = Instant::now();
                if now < retry_at {
                    std::thread::sleep((retry_at - now).min(TICK));
                    continue;
                }
                match self.subscribe() {
                    Ok(()) => {
                        self.errors.clear(&name);
                        subscribed = Some(Instant::now());
                    }
                    Err(message) => {
                        self.errors.set(&name, &message);
                        retry_at = Instant::now() + delay;
                        delay = (delay * 2).min(MAX_RETRY);
                    }
                }
                continue;
            };
            match self.events.next_batch(EVENTS_PER_CALL, TICK) {
                Ok(events) => {
                    if !events.is_empty() || since.elapsed() >= HEALTHY_AFTER {
                        delay = FIRST_RETRY;
                    }
                    for event in events {
                        if self.push(event).is_err() {
                            return;
                        }
                    }
                }
                Err(error) => {
                    self.errors.set(
                        &name,
                        &format!("{error}; subscribing again after the last event read"),
                    );
                    subscribed = None;
                    retry_at = Instant::now() + delay;
                    delay = (delay * 2).min(MAX_RETRY);
                }
            }
        }
    }

    /// Decides the start point if needed, then subscribes.
    fn subscribe(&mut self) -> Result<(), String> {
        let start = match &self.start {
            Some(s) => s.clone(),
            None => {
                let (start, token, id) = match self.events.newest().map_err(|e| e.to_string())? {
                    Some((bookmark, id)) => {
                        (Start::AfterBookmark(bookmark.clone()), bookmark, Some(id))
                    }
                    None => (Start::Beginning, String::new(), None),
                };
                self.batcher
                    .set_position(self.source, Some(token), id.unwrap_or(0));
                self.batcher
                    .flush()
                    .map_err(|e| format!("spooling the starting point: {e}"))?;
                self.start = Some(start.clone());
                self.last_id = id;
                start
            }
        };
        let from = match &start {
            Start::Beginning => "the oldest event",
            Start::AfterBookmark(_) => "the last event read",
        };
        self.events.subscribe(&start).map_err(|e| e.to_string())?;
        tracing::info!(input = %self.config.name, channel = %self.config.channel, from,
            "Subscribed to the event log channel.");
        Ok(())
    }

    /// One event → (a gap record if ids jumped) a record, then its bookmark as the position.
    fn push(&mut self, event: RawEvent) -> Result<(), SinkClosed> {
        if let Some(error) = &event.unreadable {
            // The bookmark names the event's record id (`RecordId='N'`).
            let id = bookmark_attr(&event.bookmark, "RecordId").and_then(|v| v.parse().ok());
            let which = match (id, self.last_id) {
                (Some(id), _) => format!("record {id}"),
                (None, Some(last)) => format!("the event after record {last}"),
                (None, None) => "an event".to_string(),
            };
            let message = format!(
                "event log channel {:?}: {which} could not be read: {error}",
                self.config.channel
            );
            if let Some(id) = id {
                self.report_jump(id)?;
                self.last_id = Some(id);
            }
            tracing::warn!(input = %self.config.name, %error,
                "An event could not be rendered; gap record written.");
            self.batcher.push_gap(self.source, &message)?;
            self.batcher.set_position(
                self.source,
                Some(event.bookmark.clone()),
                self.last_id.unwrap_or(0),
            );
            self.start = Some(Start::AfterBookmark(event.bookmark));
            return Ok(());
        }
        let max = self.config.max_message_bytes;
        let known = Known {
            message: event.message.map(|m| cut(&m, max).to_owned()),
            ..Known::default()
        };
        let record = EventRecord::from_xml(&event.xml, known);
        let id = record
            .attribute(ATTR_RECORD_ID)
            .and_then(|v| v.parse::<u64>().ok());
        if let Some(id) = id {
            self.report_jump(id)?;
        }
        let raw = cut(&record.raw, max);
        let truncated_from = if raw.len() < record.raw.len() {
            record.raw.len() as u64
        } else {
            0
        };
        let attributes: Vec<(&str, &str)> = record
            .attributes
            .iter()
            .map(|(k, v)| (*k, v.as_str()))
            .collect();
        let extra = RecordExtra {
            event_ns: record.event_ns,
            attributes: &attributes,
            original: None,
        };
        self.batcher
            .push_event(self.source, raw.as_bytes(), truncated_from, &extra)?;
        if id.is_some() {
            self.last_id = id;
        }
        self.batcher.set_position(
            self.source,
            Some(event.bookmark.clone()),
            self.last_id.unwrap_or(0),
        );
        self.start = Some(Start::AfterBookmark(event.bookmark));
        Ok(())
    }

    /// A gap record when `id` does not follow the last record id.
    fn report_jump(&mut self, id: u64) -> Result<(), SinkClosed> {
        let Some(last) = self.last_id else {
            return Ok(());
        };
        let channel = &self.config.channel;
        let message = if id > last.saturating_add(1) {
            if self.config.query.is_some() {
                return Ok(());
            }
            format!(
                "event log channel {channel:?}: records {} to {} ({} events) were not read: the \
                 log was cleared or overwrote them before the agent read them",
                last + 1,
                id - 1,
                id - 1 - last
            )
        } else if id <= last {
            format!(
                "event log channel {channel:?}: record ids went back from {last} to {id}: the log \
                 was cleared; events logged after record {last} and before the clear, if any, \
                 were not read"
            )
        } else {
            return Ok(());
        };
        tracing::warn!(input = %self.config.name, channel = %channel, last, next = id,
            "Event log record ids jumped; gap record written.");
        self.batcher.push_gap(self.source, &message)
    }

    /// Spools the last batch (its bookmark with it).
    pub fn finish(&mut self) {
        if let Err(error) = self.batcher.flush() {
            tracing::warn!(input = %self.config.name, %error,
                "Last batch not spooled; its events will be read again.");
        }
    }
}

/// The channel a bookmark XML points into (`<Bookmark Channel='...'`), if it names one.
fn bookmark_channel(bookmark: &str) -> Option<&str> {
    bookmark_attr(bookmark, "Channel")
}

/// Attribute `name` of a bookmark XML's `<Bookmark>` element, in either quotes.
fn bookmark_attr<'a>(bookmark: &'a str, name: &str) -> Option<&'a str> {
    let key = format!(" {name}=");
    let at = bookmark.find(&key)? + key.len();
    let quote = bookmark[at..]
        .chars()
        .next()
        .filter(|&q| q == '\'' || q == '"')?;
    let rest = &bookmark[at + 1..];
    rest.find(quote).map(|end| &rest[..end])
}

/// `s` cut to at most `max` bytes at a character boundary.
fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
