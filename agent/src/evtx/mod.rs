//! Windows event logs: exported `.evtx` files imported with `logship-agent import-evtx`
//! ([`import`]), read with the `evtx` crate ([`file`]), each event built into the same record shape
//! as the live Event Log input's ([`record`], shared with [`crate::eventlog`]).
//!
//! Invariants:
//! - An event's position is its file's identity (SHA-256 of the content) and its record id,
//!   persisted on the spool with the event, so an interrupted and repeated import stores every
//!   event exactly once.
//! - Every part of a file that cannot be read becomes a gap record; nothing is skipped silently.

pub mod file;
pub mod import;
pub mod record;
pub mod watch;

pub use import::{IMPORT_INPUT, Outcome, import};
pub use record::{EventRecord, Known};
