//! The Windows Event Log input (`[[eventlog]]`): one subscription per input to a channel (with
//! an optional XPath query), read in the pull model, each event rendered to XML and built into
//! the same record as an imported `.evtx` event ([`crate::evtx::record`]).
//!
//! The subscription sits behind the [`EventSource`] trait ([`source`]): the real one
//! (`windows.rs`, `wevtapi.dll`) exists on Windows only; the input logic ([`input`]) — start
//! point, bookmarks on the spool, gaps, errors and retries — is the same code on every platform
//! and is tested on Linux with recorded events.
//!
//! Invariants:
//! - Exactly once across restarts, kill -9 and reboots: the bookmark of each event is set as the
//!   input's position right after the event is pushed, so it is persisted in the same spool
//!   append as the event (position key `"{input}|eventlog"`, bookmark XML in the position's
//!   path, the event's record id in the offset). A restart subscribes after the last spooled
//!   bookmark.
//! - A missing or forbidden channel, or a subscription that breaks, is reported (heartbeat
//!   `input_errors`, logged once per change) and retried with backoff; never fatal.
//! - A jump in the channel's record ids (cleared, or overwritten before the agent read it)
//!   becomes a gap record with the missing range before the next event.

pub mod input;
pub mod source;
#[cfg(windows)]
pub mod windows;

pub use input::{POSITION_KEY, Stored, spawn, stored};
pub use source::{EventSource, RawEvent, SourceError, Start};

#[cfg(test)]
mod tests;
