//! One Windows event as a logship record, the same shape whichever way the event was read
//! (an exported `.evtx` file, or the live Event Log input `crate::eventlog`):
//!
//! - `raw` = the event's XML, one `<Event>` element as rendered (an XML declaration before it is
//!   dropped, so every source gives the same bytes for the same event);
//! - attributes (see [`ATTRIBUTES`]) taken from the event's `<System>` element;
//! - `event_ns` = `System/TimeCreated/@SystemTime` in Unix nanoseconds.
//!
//! Invariants:
//! - Building never fails and never drops the event: XML that does not parse keeps its raw bytes
//!   and only the attributes the caller already knows ([`Known`]).
//! - Attribute values are the XML's text with entities resolved; an attribute the event lacks is
//!   left out (never an empty string).

use logship_tail::SourceId;

use crate::batcher::{Batcher, RecordExtra};

/// Attribute: the event log channel (`System/Channel`), e.g. `Security`.
pub const ATTR_CHANNEL: &str = "channel";
/// Attribute: the provider (`System/Provider/@Name`).
pub const ATTR_PROVIDER: &str = "provider";
/// Attribute: the event id (`System/EventID`, without qualifiers), e.g. `4625`.
pub const ATTR_EVENT_ID: &str = "event_id";
/// Attribute: the record id (`System/EventRecordID`).
pub const ATTR_RECORD_ID: &str = "record_id";
/// Attribute: the computer that logged the event (`System/Computer`).
pub const ATTR_COMPUTER: &str = "computer";
/// Attribute: the rendered message, when the reader has one (the live input).
pub const ATTR_MESSAGE: &str = "message";

/// Every attribute name an event record can carry, in the order they are written.
pub const ATTRIBUTES: [&str; 6] = [
    ATTR_CHANNEL,
    ATTR_PROVIDER,
    ATTR_EVENT_ID,
    ATTR_RECORD_ID,
    ATTR_COMPUTER,
    ATTR_MESSAGE,
];

/// What the reader knows about an event besides its XML; used when the XML lacks it.
#[derive(Debug, Default, Clone)]
pub struct Known {
    /// Record id from the file's record header (or the live API).
    pub record_id: Option<u64>,
    /// Event time in Unix nanoseconds from the record header.
    pub event_ns: Option<i64>,
    /// The rendered message (live input only).
    pub message: Option<String>,
}

/// An event ready for [`Batcher::push_event`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRecord {
    /// The `<Event>` XML.
    pub raw: String,
    /// Name/value attributes in [`ATTRIBUTES`] order.
    pub attributes: Vec<(&'static str, String)>,
    /// Event time in Unix nanoseconds, 0 when unknown.
    pub event_ns: i64,
}

// === impl EventRecord ===

impl EventRecord {
    /// Builds the record of one event from its rendered XML.
    pub fn from_xml(xml: &str, known: Known) -> EventRecord {
        let raw = strip_declaration(xml).to_owned();
        let mut system = match roxmltree::Document::parse(&raw) {
            Ok(doc) => System::of(&doc),
            Err(error) => {
                tracing::warn!(%error, record_id = ?known.record_id,
                    "Event XML does not parse; keeping it with the attributes known without it.");
                System::default()
            }
        };
        system.record_id = system
            .record_id
            .or(known.record_id.map(|id| id.to_string()));
        system.message = known.message;
        let event_ns = system
            .time
            .as_deref()
            .and_then(system_time_ns)
            .or(known.event_ns)
            .unwrap_or(0);
        EventRecord {
            raw,
            attributes: system.attributes(),
            event_ns,
        }
    }

    /// Appends this record for `source` to `batcher`.
    pub fn push(
        &self,
        batcher: &mut Batcher,
        source: SourceId,
    ) -> Result<(), logship_tail::SinkClosed> {
        let attributes: Vec<(&str, &str)> = self
            .attributes
            .iter()
            .map(|(k, v)| (*k, v.as_str()))
            .collect();
        let extra = RecordExtra {
            event_ns: self.event_ns,
            attributes: &attributes,
            original: None,
        };
        batcher.push_event(source, self.raw.as_bytes(), 0, &extra)
    }

    /// The value of attribute `name`, if present.
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The `<System>` values an event record carries.
#[derive(Debug, Default)]
struct System {
    channel: Option<String>,
    provider: Option<String>,
    event_id: Option<String>,
    record_id: Option<String>,
    computer: Option<String>,
    time: Option<String>,
    message: Option<String>,
}

impl System {
    fn of(doc: &roxmltree::Document<'_>) -> System {
        let mut s = System::default();
        let Some(system) = doc
            .root_element()
            .children()
            .find(|n| n.tag_name().name() == "System")
        else {
            return s;
        };
        for n in system.children().filter(roxmltree::Node::is_element) {
            let text = || {
                n.text()
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(str::to_owned)
            };
            match n.tag_name().name() {
                "Provider" => s.provider = n.attribute("Name").map(str::to_owned),
                "EventID" => s.event_id = text(),
                "EventRecordID" => s.record_id = text(),
                "Channel" => s.channel = text(),
                "Computer" => s.computer = text(),
                "TimeCreated" => s.time = n.attribute("SystemTime").map(str::to_owned),
                _ => {}
            }
        }
        s
    }

    fn attributes(self) -> Vec<(&'static str, String)> {
        [
            (ATTR_CHANNEL, self.channel),
            (ATTR_PROVIDER, self.provider),
            (ATTR_EVENT_ID, self.event_id),
            (ATTR_RECORD_ID, self.record_id),
            (ATTR_COMPUTER, self.computer),
            (ATTR_MESSAGE, self.message),
        ]
        .into_iter()
        .filter_map(|(k, v)| Some((k, v.filter(|v| !v.is_empty())?)))
        .collect()
    }
}

/// `xml` without a leading `<?xml ...?>` declaration and the whitespace around it.
fn strip_declaration(xml: &str) -> &str {
    let t = xml.trim_start();
    let t = match t.strip_prefix("<?xml") {
        Some(rest) => rest.find("?>").map_or(t, |end| &rest[end + 2..]),
        None => t,
    };
    t.trim()
}

/// `SystemTime` (RFC 3339, e.g. `2015-08-24T06:51:38.4062500Z`) in Unix nanoseconds.
fn system_time_ns(s: &str) -> Option<i64> {
    let ts: jiff::Timestamp = s.trim().parse().ok()?;
    i64::try_from(ts.as_nanosecond()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const XML: &str = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<Event xmlns=\"http://schemas.microsoft.com/win/2004/08/events/event\"><System><Provider Name=\"Microsoft-Windows-Security-Auditing\" Guid=\"{54849625-5478-4994-a5ba-3e3b0328c30d}\"/><EventID Qualifiers=\"0\">4625</EventID><TimeCreated SystemTime=\"2015-08-24T06:51:38.4062500Z\"/><EventRecordID>17</EventRecordID><Channel>Security</Channel><Computer>pc&amp;01</Computer></System><EventData><Data Name=\"TargetUserName\">bob</Data></EventData></Event>";

    #[test]
    fn system_fields_become_attributes() {
        let r = EventRecord::from_xml(XML, Known::default());
        assert!(r.raw.starts_with("<Event xmlns="), "{}", r.raw);
        assert!(r.raw.ends_with("</Event>"));
        assert_eq!(
            r.attributes,
            vec![
                (ATTR_CHANNEL, "Security".to_string()),
                (ATTR_PROVIDER, "Microsoft-Windows-Security-Auditing".into()),
                (ATTR_EVENT_ID, "4625".into()),
                (ATTR_RECORD_ID, "17".into()),
                (ATTR_COMPUTER, "pc&01".into()),
            ]
        );
        assert_eq!(r.event_ns, 1_440_399_098_406_250_000);
    }

    #[test]
    fn known_values_fill_what_the_xml_lacks() {
        let known = Known {
            record_id: Some(9),
            event_ns: Some(5),
            message: Some("An account failed to log on.".into()),
        };
        let r = EventRecord::from_xml(
            "<Event><System><EventID>1</EventID></System></Event>",
            known,
        );
        assert_eq!(r.attribute(ATTR_RECORD_ID), Some("9"));
        assert_eq!(
            r.attribute(ATTR_MESSAGE),
            Some("An account failed to log on.")
        );
        assert_eq!(r.attribute(ATTR_CHANNEL), None);
        assert_eq!(r.event_ns, 5);
    }

    #[test]
    fn xml_that_does_not_parse_is_kept() {
        let bad = "<Event><System><EventID>1</System>\u{1}";
        let known = Known {
            record_id: Some(3),
            event_ns: Some(7),
            message: None,
        };
        let r = EventRecord::from_xml(bad, known);
        assert_eq!(r.raw, bad.trim());
        assert_eq!(r.attributes, vec![(ATTR_RECORD_ID, "3".to_string())]);
        assert_eq!(r.event_ns, 7);
    }
}
