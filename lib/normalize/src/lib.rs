//! Normalization of security logs into Elastic Common Schema (ECS) fields.
//!
//! [`Normalizer`] strips syslog framing ([`syslog`]), picks a parser by program name or content
//! ([`dispatch`]) and returns an [`Event`] whose `fields` map holds ECS dotted names. It never panics
//! and never drops a record: unknown input comes back as dataset `"unparsed"`.
//!
//! Two ways out, same fields: [`Normalizer::normalize_into`] fills a reused flat [`Fields`]
//! buffer (no allocation per record once warm: what the collector's normalizer and column
//! writer use), and [`Normalizer::normalize`] / [`Normalizer::normalize_from`] /
//! [`Normalizer::normalize_as`] return an [`Event`] with a `serde_json` map (built from the
//! same [`Fields`] by [`Fields::to_map`]) for callers that want JSON.
//!
//! Field conventions (all parsers):
//! - `@timestamp`: RFC 3339 UTC string; from the record when it has one, else arrival time.
//! - `event.category` and `event.type` are always JSON **arrays** of strings (ECS allows both; arrays
//!   keep one shape for consumers). `event.outcome` is `"success"`, `"failure"` or absent.
//! - ports and status codes are JSON numbers; IPs are strings as written in the log.
//! - `host.name` is the host the record names (syslog host, Windows `Computer`), else `Context::host`.

mod catalog;
mod dispatch;
mod fields;
mod filter;
mod kv;
mod needle;
mod origin;
mod parsers;
mod syslog;
mod time;

pub mod accuracy;

pub use catalog::{FieldInfo, is_known_field, known_fields};
pub use fields::{FieldRef, Fields};
pub use filter::{FieldFilter, FilterError, Scalar};
pub use origin::Origin;

use serde_json::{Map, Value};

/// What the collector knows about a record besides its raw bytes.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// Agent host name.
    pub host: &'a str,
    /// Agent input name.
    pub input: &'a str,
    /// File path / source.
    pub path: &'a str,
    /// IANA zone or "+09:00"/"UTC": used for timestamps without a zone (e.g. BSD syslog).
    pub agent_tz: &'a str,
    /// Arrival time; also gives the year for year-less syslog stamps.
    pub observed_unix_nanos: i64,
}

/// Normalized output: the parser that produced it and ECS fields.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Dataset name of the parser (one of [`datasets()`] or `"unparsed"`).
    pub dataset: &'static str,
    /// ECS dotted names → JSON values.
    pub fields: Map<String, Value>,
}

/// A dataset name that no parser has.
#[derive(Debug, thiserror::Error)]
#[error("unknown dataset {0:?}")]
pub struct UnknownDataset(pub String);

/// Stateful normalizer for one stream of lines.
///
/// State: postfix queue id → envelope sender (joined onto later `to=` lines), auditd serial →
/// SYSCALL/EXECVE summary (carried onto later records of the same event), OpenSMTPD session id
/// → client IP (joined onto later lines of the session), strongSwan IKE_SA id → peer address
/// and identity, and sshd host+pid → client address (`Connection from`). Each map holds at most
/// [`STATE_CAP`] entries; when full the oldest entry is evicted (FIFO).
#[derive(Debug, Default)]
pub struct Normalizer {
    pub(crate) state: parsers::State,
    tz_cache: time::TzCache,
}

/// Bound on each correlation map kept by a [`Normalizer`].
pub const STATE_CAP: usize = 4096;

/// Dataset name of records no parser recognized.
pub const UNPARSED: &str = "unparsed";

// === impl Event ===

impl Event {
    /// Field value by ECS name.
    pub fn get(&self, field: &str) -> Option<&Value> {
        self.fields.get(field)
    }
}

// === impl Normalizer ===

impl Normalizer {
    /// A normalizer with empty correlation state.
    pub fn new() -> Self {
        Self::default()
    }

    /// Auto-detects the format. Unknown → dataset "unparsed" with @timestamp (arrival) and host.name.
    pub fn normalize(&mut self, raw: &[u8], ctx: &Context<'_>) -> Event {
        self.normalize_from(raw, ctx, None)
    }

    /// Like [`Normalizer::normalize`], for a record whose input told its [`Origin`] (journald):
    /// parsed as the syslog line with that header would be. `None` = [`Normalizer::normalize`].
    pub fn normalize_from(
        &mut self,
        raw: &[u8],
        ctx: &Context<'_>,
        origin: Option<&Origin<'_>>,
    ) -> Event {
        let mut fields = Fields::new();
        let dataset = self.normalize_into(raw, ctx, origin, &mut fields);
        Event {
            dataset,
            fields: fields.to_map(),
        }
    }

    /// Like [`Normalizer::normalize_from`], into `out` (its earlier fields are replaced, its
    /// buffers reused); returns the dataset.
    pub fn normalize_into(
        &mut self,
        raw: &[u8],
        ctx: &Context<'_>,
        origin: Option<&Origin<'_>>,
        out: &mut Fields,
    ) -> &'static str {
        let tz = self.tz_cache.get(ctx.agent_tz);
        dispatch::run(&mut self.state, tz, raw, ctx, None, origin, out)
    }

    /// Forces one parser by dataset name; a line it does not recognize → "unparsed".
    pub fn normalize_as(
        &mut self,
        dataset: &str,
        raw: &[u8],
        ctx: &Context<'_>,
    ) -> Result<Event, UnknownDataset> {
        let Some(name) = DATASETS.iter().find(|d| **d == dataset) else {
            return Err(UnknownDataset(dataset.to_owned()));
        };
        let tz = self.tz_cache.get(ctx.agent_tz);
        let mut fields = Fields::new();
        let dataset = dispatch::run(&mut self.state, tz, raw, ctx, Some(name), None, &mut fields);
        Ok(Event {
            dataset,
            fields: fields.to_map(),
        })
    }
}

const DATASETS: &[&str] = &[
    "sshd",
    "pam",
    "sudo",
    "su",
    "windows.security",
    "windows.sysmon",
    "auditd",
    "postfix",
    "squid",
    "web.access",
    "netfilter",
    "fortigate",
    "cisco.asa",
    "openvpn",
    "opensmtpd",
    "filterlog",
    "dovecot",
    "mikrotik",
    "strongswan",
    "linux.account",
    "paloalto",
    "exchange",
    "samba",
    "pulse_secure",
    "softether",
];

/// Dataset names of all parsers.
pub fn datasets() -> &'static [&'static str] {
    DATASETS
}

/// Fuzzing entry point: runs the dispatcher on arbitrary bytes (several lines share one state).
/// Each line also goes through the framing layer behind a `<PRI>`, a relay header, an rsyslog
/// `message repeated N times: [` wrapper, the `filterlog` / `dovecot` program headers and SoftEther's
/// syslog and file stamps, so the nested-header, repeat and program-dispatched paths see arbitrary
/// payloads.
pub fn fuzz_dispatch(data: &[u8]) {
    let ctx = Context {
        host: "fuzz",
        input: "fuzz",
        path: "fuzz",
        agent_tz: "Asia/Tokyo",
        observed_unix_nanos: 1_700_000_000_000_000_000,
    };
    let mut n = Normalizer::new();
    let mut buf = Vec::new();
    for line in data.split(|b| *b == b'\n') {
        for prefix in [
            &b""[..],
            b"<13>",
            b"<13>Mar  1 10:00:00 relay <38>",
            b"Mar  1 10:00:00 h sshd[1]: message repeated 2 times: [ ",
            b"<134>Jul  3 19:10:30 filterlog[1]: ",
            b"2023-03-18T20:35:05+01:00 h dovecot: ",
            b"@400000004c91b044077a9e94 imap-login: ",
            b"Nov 30 05:33:39 localhost  [vm/VPN/SITE] (2026-11-30 05:33:39.648) <SECURITY_LOG>: ",
            b"2026-11-30 05:33:39.648 ",
        ] {
            buf.clear();
            buf.extend_from_slice(prefix);
            buf.extend_from_slice(line);
            let ev = n.normalize(&buf, &ctx);
            debug_assert!(
                ev.get("@timestamp").is_some(),
                "every event has a timestamp"
            );
        }
    }
    for d in DATASETS {
        let _ev = n.normalize_as(d, data, &ctx);
    }
}
