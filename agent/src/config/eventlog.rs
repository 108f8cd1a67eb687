//! `[[eventlog]]`: one Windows Event Log input as written in agent.toml, and its validated form.
//!
//! Invariants: a valid input has a non-empty name and channel, a query that is either absent or
//! non-empty, and a `max_message_bytes` that fits one batch. Whether the platform can run it
//! (Windows only) is checked by the caller, so these rules are tested everywhere.

use serde::Deserialize;

/// `[[eventlog]]`: subscribe to one Windows Event Log channel.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEventlog {
    /// Input name, attached to every record.
    pub name: String,
    /// Channel: `Security`, `System`, `Application`, `Microsoft-Windows-Sysmon/Operational`...
    pub channel: String,
    /// Optional XPath filter, e.g. `*[System[(EventID=4624 or EventID=4625)]]`.
    #[serde(default)]
    pub query: Option<String>,
    /// With no stored bookmark: "beginning" (every event the channel still holds) or "end"
    /// (events logged after the input's first start).
    #[serde(default)]
    pub start_at: EventlogStart,
    /// Longer events (XML) and rendered messages are cut; the record keeps the original length.
    #[serde(default = "default_max_message_bytes")]
    pub max_message_bytes: usize,
}

/// Where an input with no stored bookmark starts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventlogStart {
    /// The oldest event the channel still holds.
    #[default]
    Beginning,
    /// After the newest event at the input's first start.
    End,
}

/// A validated event log input.
#[derive(Debug, Clone)]
pub struct EventlogInput {
    /// Input name.
    pub name: String,
    /// Channel path.
    pub channel: String,
    /// XPath query; `None` = every event of the channel.
    pub query: Option<String>,
    /// Where to start without a bookmark.
    pub start_at: EventlogStart,
    /// Cap on one event's XML and on its rendered message.
    pub max_message_bytes: usize,
}

const fn default_max_message_bytes() -> usize {
    64 * 1024
}

// === impl RawEventlog ===

impl RawEventlog {
    /// Checks this input; `max_batch` bounds events.
    pub(super) fn build(self, max_batch: usize, p: &mut Vec<String>) -> Option<EventlogInput> {
        let before = p.len();
        let who = format!("eventlog {:?}", self.name);
        if self.name.is_empty() {
            p.push("eventlog.name must not be empty".into());
        }
        if self.channel.trim().is_empty() || self.channel.chars().any(char::is_control) {
            p.push(format!(
                "{who}: channel must name a channel (e.g. \"Security\")"
            ));
        }
        if self.query.as_deref().is_some_and(|q| q.trim().is_empty()) {
            p.push(format!(
                "{who}: query must not be empty (leave it out to read every event)"
            ));
        }
        if !(256..=max_batch).contains(&self.max_message_bytes) {
            p.push(format!(
                "{who}: max_message_bytes must be between 256 and batch.max_bytes ({max_batch}): \
                 an event must fit in one batch"
            ));
        }
        if p.len() > before {
            return None;
        }
        Some(EventlogInput {
            name: self.name,
            channel: self.channel,
            query: self.query,
            start_at: self.start_at,
            max_message_bytes: self.max_message_bytes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(toml_text: &str) -> RawEventlog {
        toml::from_str(toml_text).expect("parses")
    }

    #[test]
    fn the_contract_example_is_valid() {
        let mut p = Vec::new();
        let e = raw("name = \"security\"\nchannel = \"Security\"\n\
                     query = \"*[System[(EventID=4624 or EventID=4625)]]\"\n\
                     start_at = \"end\"")
        .build(1 << 20, &mut p)
        .expect("valid");
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(e.channel, "Security");
        assert_eq!(
            e.query.as_deref(),
            Some("*[System[(EventID=4624 or EventID=4625)]]")
        );
        assert_eq!(e.start_at, EventlogStart::End);
        assert_eq!(e.max_message_bytes, 64 * 1024);
    }

    #[test]
    fn defaults_start_at_the_beginning() {
        let mut p = Vec::new();
        let e = raw("name = \"sysmon\"\nchannel = \"Microsoft-Windows-Sysmon/Operational\"")
            .build(1 << 20, &mut p)
            .expect("valid");
        assert_eq!(e.start_at, EventlogStart::Beginning);
        assert!(e.query.is_none());
    }

    #[test]
    fn bad_values_are_all_reported() {
        let mut p = Vec::new();
        let e = raw("name = \"\"\nchannel = \" \"\nquery = \"\"\nmax_message_bytes = 2")
            .build(1 << 20, &mut p);
        assert!(e.is_none());
        assert_eq!(p.len(), 4, "{p:?}");
    }

    #[test]
    fn unknown_keys_and_start_points_are_refused() {
        assert!(
            toml::from_str::<RawEventlog>("name = \"e\"\nchannel = \"S\"\nxpath = \"*\"").is_err()
        );
        assert!(
            toml::from_str::<RawEventlog>("name = \"e\"\nchannel = \"S\"\nstart_at = \"now\"")
                .is_err()
        );
        assert!(toml::from_str::<RawEventlog>("name = \"e\"").is_err());
    }
}
