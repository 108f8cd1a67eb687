//! The journald input (`[[journald]]`): follows the systemd journal, or a journal directory,
//! through the system's own reader, `journalctl -o export --follow` ([`reader`]), whose output
//! is parsed by a bounded reader ([`export`]) and turned into records ([`input`]).
//!
//! Invariants:
//! - Exactly once across restarts and kill -9: the cursor of each entry is set as the input's
//!   position right after the entry is pushed, so it is persisted in the same spool append as
//!   the entry (position key `"{input}|journal"`, cursor in the position's path, entries read
//!   in the offset). A restart resumes with `--after-cursor` of the last spooled entry.
//! - A missing journal, a missing or failing journalctl are reported (log once per change,
//!   heartbeat `input_errors`) and retried with backoff; never fatal to the agent.
//! - `MESSAGE` is the record's raw bytes, binary values verbatim; other fields travel as
//!   attributes, `__REALTIME_TIMESTAMP` as the event time.

pub mod export;
pub mod input;
pub mod reader;

pub use input::spawn;
