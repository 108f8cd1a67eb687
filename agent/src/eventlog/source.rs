//! The seam between the event log input and the Windows API: an [`EventSource`] subscribes to
//! one channel from a [`Start`] and hands out rendered events, each with the bookmark that
//! resumes right after it.
//!
//! Invariants an implementation keeps:
//! - Events come in the channel's order; the bookmark of an event resumes after that event and
//!   no other (`Start::AfterBookmark(e.bookmark)` yields the event after `e` first).
//! - An error never loses an event silently: after an error the input subscribes again from the
//!   last bookmark it spooled.

use std::time::Duration;

/// Where a subscription starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    /// The oldest event the channel holds.
    Beginning,
    /// Right after the event this bookmark (the Windows bookmark XML) points at.
    AfterBookmark(String),
}

/// One event as the source read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawEvent {
    /// The event rendered as XML (`EvtRenderEventXml`).
    pub xml: String,
    /// Bookmark XML that resumes after this event (`EvtRenderBookmark`).
    pub bookmark: String,
    /// The provider's rendered message, when its message file is available.
    pub message: Option<String>,
    /// Why the event could not be rendered (then `xml` is empty): the input stores a gap record
    /// for it and moves past it with its bookmark, so one bad event never blocks the channel.
    pub unreadable: Option<String>,
}

/// Why a source cannot read now; the text says what is wrong (shown in the heartbeat).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SourceError(pub String);

/// A subscription to one channel.
pub trait EventSource {
    /// Subscribes from `start`, replacing any current subscription. A missing channel, a
    /// channel the agent may not read, or a bad query is an error.
    fn subscribe(&mut self, start: &Start) -> Result<(), SourceError>;

    /// Up to `max` events of the current subscription, waiting at most `wait` for the first;
    /// empty when none came. An error ends the subscription.
    fn next_batch(&mut self, max: usize, wait: Duration) -> Result<Vec<RawEvent>, SourceError>;

    /// The bookmark of the newest event the channel (and query) holds now, with that event's
    /// record id; `None` when it holds none. Used once, for `start_at = "end"`.
    fn newest(&mut self) -> Result<Option<(String, u64)>, SourceError>;
}
