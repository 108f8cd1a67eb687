//! What an input knows about a record besides its text: for journald, the fields the journal
//! stored with the message (program, pid, host, time), which a syslog line carries in its header.
//!
//! Invariant: a record with an [`Origin`] is parsed exactly like the syslog line
//! `TIME HOST PROGRAM[PID]: MESSAGE` would be (same dispatch, same parsers, same fields), so an
//! sshd entry from journald gets the same ECS fields as the same line from `auth.log`.

use std::collections::HashMap;

/// The syslog-header facts of a record, told by its input rather than by its text.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Origin<'a> {
    /// Program name (syslog tag), e.g. `sshd`.
    pub program: &'a str,
    /// Process id, digits, or empty.
    pub pid: &'a str,
    /// Host name, or empty.
    pub host: &'a str,
    /// Event time in Unix nanoseconds; 0 = unknown.
    pub event_unix_nanos: i64,
}

// === impl Origin ===

impl<'a> Origin<'a> {
    /// The origin journald attributes tell (`SYSLOG_IDENTIFIER`, else `_COMM`; `_PID`, else
    /// `SYSLOG_PID`; `_HOSTNAME`), or `None` when the record carries none of them (a file line,
    /// a syslog record).
    pub fn from_journal(
        attributes: &'a HashMap<String, String>,
        event_unix_nanos: i64,
    ) -> Option<Self> {
        // File lines carry no attributes: skip the five hashed lookups for them.
        if attributes.is_empty() {
            return None;
        }
        let get = |k: &str| attributes.get(k).map(String::as_str);
        let program = get("SYSLOG_IDENTIFIER").or_else(|| get("_COMM"));
        let pid = get("_PID").or_else(|| get("SYSLOG_PID"));
        let host = get("_HOSTNAME");
        if program.is_none() && pid.is_none() && host.is_none() {
            return None;
        }
        Some(Origin {
            program: program.unwrap_or(""),
            pid: pid.unwrap_or(""),
            host: host.unwrap_or(""),
            event_unix_nanos,
        })
    }
}
