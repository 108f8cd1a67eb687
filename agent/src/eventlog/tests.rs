//! The event log input on recorded events: real Sysmon and Security events (exported from real
//! machines, `tests/fixtures/evtx/SOURCES.md`) replayed by [`Recorded`], a channel in memory
//! that behaves like a Windows subscription (bookmarks in the Windows bookmark XML, a missing
//! bookmark resumes at the oldest event, channels that are missing or forbidden), through a real
//! batcher and spool that is closed and reopened for restarts.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use logship_proto::payload::decode_payload;
use logship_proto::v1::Record;
use logship_spool::{Spool, SpoolConfig};

use super::input::{EventlogReader, Stored, stored};
use super::source::{EventSource, RawEvent, SourceError, Start};
use crate::batcher::Batcher;
use crate::config::{BatchLimits, EventlogInput, EventlogStart};
use crate::input_errors::InputErrors;

const SYSMON: &str = include_str!("../../../tests/fixtures/evtx/evtxrs-sysmon.xml");
const NEW_USER: &str = include_str!("../../../tests/fixtures/evtx/evtxrs-new-user-security.xml");
const SYSMON_CHANNEL: &str = "Microsoft-Windows-Sysmon/Operational";
/// Record kind of a gap record (proto `RECORD_KIND_GAP`).
const KIND_GAP: i32 = 1;

fn lines(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect()
}

fn record_id(xml: &str) -> u64 {
    let start = xml.find("<EventRecordID>").expect("record id") + "<EventRecordID>".len();
    let end = start + xml[start..].find('<').expect("end tag");
    xml[start..end].parse().expect("number")
}

/// A channel as the recorded source sees it; shared with the test, which changes it while
/// the input runs.
#[derive(Default)]
struct Log {
    events: Vec<String>,
    /// Messages by record id (the provider's rendered message).
    messages: Vec<(u64, String)>,
    missing: bool,
    denied: bool,
    /// The next `next_batch` fails once (a broken subscription).
    break_once: bool,
    /// Record ids delivered as events that cannot be rendered.
    unreadable: Vec<u64>,
    subscriptions: Vec<Start>,
    delivered: usize,
}

/// A recorded [`EventSource`] over a shared [`Log`].
struct Recorded {
    channel: String,
    log: Arc<Mutex<Log>>,
    next: Option<usize>,
}

fn bookmark(channel: &str, id: u64) -> String {
    format!(
        "<BookmarkList>\r\n  <Bookmark Channel='{channel}' RecordId='{id}' IsCurrent='true'/>\r\n</BookmarkList>"
    )
}

fn bookmark_id(b: &str) -> u64 {
    let start = b.find("RecordId='").expect("RecordId") + "RecordId='".len();
    let end = start + b[start..].find('\'').expect("quote");
    b[start..end].parse().expect("number")
}

impl EventSource for Recorded {
    fn subscribe(&mut self, start: &Start) -> Result<(), SourceError> {
        let mut log = self.log.lock().unwrap();
        log.subscriptions.push(start.clone());
        if log.missing {
            return Err(SourceError(format!(
                "channel {:?} was not found (15007)",
                self.channel
            )));
        }
        if log.denied {
            return Err(SourceError(format!(
                "access to channel {:?} is denied (5)",
                self.channel
            )));
        }
        self.next = Some(match start {
            Start::Beginning => 0,
            // As Windows without EvtSubscribeStrict: after the bookmarked event, or from the
            // oldest event when that event is gone.
            Start::AfterBookmark(b) => {
                let id = bookmark_id(b);
                log.events
                    .iter()
                    .position(|e| record_id(e) == id)
                    .map_or(0, |i| i + 1)
            }
        });
        Ok(())
    }

    fn next_batch(&mut self, max: usize, wait: Duration) -> Result<Vec<RawEvent>, SourceError> {
        let mut log = self.log.lock().unwrap();
        if log.break_once {
            log.break_once = false;
            self.next = None;
            return Err(SourceError("the subscription ended (1726)".into()));
        }
        let next = self.next.expect("subscribed before reading");
        let end = log.events.len().min(next + max);
        if next == end {
            drop(log);
            std::thread::sleep(wait.min(Duration::from_millis(5)));
            return Ok(Vec::new());
        }
        let out: Vec<RawEvent> = log.events[next..end]
            .iter()
            .map(|xml| {
                let id = record_id(xml);
                if log.unreadable.contains(&id) {
                    return RawEvent {
                        xml: String::new(),
                        bookmark: bookmark(&self.channel, id),
                        message: None,
                        unreadable: Some("rendering failed (122)".into()),
                    };
                }
                RawEvent {
                    xml: xml.clone(),
                    bookmark: bookmark(&self.channel, id),
                    unreadable: None,
                    message: log
                        .messages
                        .iter()
                        .find(|(i, _)| *i == id)
                        .map(|(_, m)| m.clone()),
                }
            })
            .collect();
        log.delivered += out.len();
        self.next = Some(end);
        Ok(out)
    }

    fn newest(&mut self) -> Result<Option<(String, u64)>, SourceError> {
        let log = self.log.lock().unwrap();
        if log.missing {
            return Err(SourceError("channel not found".into()));
        }
        Ok(log
            .events
            .last()
            .map(|e| (bookmark(&self.channel, record_id(e)), record_id(e))))
    }
}

/// A spool directory, reopened for each run of the input as the agent does at start-up.
struct Bench {
    dir: tempfile::TempDir,
    log: Arc<Mutex<Log>>,
    errors: InputErrors,
    config: EventlogInput,
    max_records: u32,
}

impl Bench {
    fn new(channel: &str, events: Vec<String>) -> Bench {
        Bench {
            dir: tempfile::tempdir().unwrap(),
            log: Arc::new(Mutex::new(Log {
                events,
                ..Log::default()
            })),
            errors: InputErrors::default(),
            config: EventlogInput {
                name: "ev".into(),
                channel: channel.into(),
                query: None,
                start_at: EventlogStart::Beginning,
                max_message_bytes: 64 * 1024,
            },
            max_records: 1000,
        }
    }

    fn spool(&self) -> (Spool, Option<Stored>) {
        let (spool, recovered) = Spool::open(SpoolConfig {
            dir: self.dir.path().to_path_buf(),
            fsync_interval_ms: 0,
            ..SpoolConfig::default()
        })
        .unwrap();
        let checkpoints: Vec<_> = recovered
            .positions
            .iter()
            .filter_map(|p| {
                Some(logship_tail::Checkpoint {
                    key: p.key.strip_prefix("ev|")?.to_string(),
                    path: p.path.clone(),
                    offset: p.offset,
                })
            })
            .collect();
        (spool, stored(&checkpoints))
    }

    /// Runs the input until `done(log)` holds (deadline 20 s), then stops it; `clean` = flush
    /// its last batch as on a stop, otherwise drop it unflushed as a kill -9 would.
    fn run_until(&self, clean: bool, done: impl Fn(&Log, &InputErrors) -> bool) {
        let (spool, stored) = self.spool();
        let batcher = Batcher::new(
            spool.clone(),
            BatchLimits {
                max_records: self.max_records,
                max_bytes: 1 << 20,
                max_wait: Duration::from_secs(600),
                zstd_level: 1,
            },
            "ev".into(),
            "pc1".into(),
            "UTC".into(),
        )
        .unwrap();
        let source = Recorded {
            channel: self.config.channel.clone(),
            log: self.log.clone(),
            next: None,
        };
        let mut reader = EventlogReader::new(
            self.config.clone(),
            source,
            stored,
            batcher,
            self.errors.clone(),
        )
        .unwrap();
        let stop = AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| reader.run(&stop));
            let deadline = Instant::now() + Duration::from_secs(20);
            while !done(&self.log.lock().unwrap(), &self.errors) {
                assert!(Instant::now() < deadline, "the input did not get there");
                std::thread::sleep(Duration::from_millis(5));
            }
            stop.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        if clean {
            reader.finish();
        }
        drop(reader);
        spool.close();
    }

    /// Every record on the spool, in order.
    fn records(&self) -> Vec<Record> {
        let (spool, _) = self.spool();
        let mut out = Vec::new();
        let mut seq = 1;
        let mut scratch = Vec::new();
        while let Some(b) = spool.read_from(seq).unwrap() {
            let list = decode_payload(&b.payload, 1 << 24, &mut scratch).unwrap();
            seq = b.first_seq + u64::from(b.count);
            out.extend(list.records);
        }
        spool.close();
        out
    }
}

fn events_of(records: &[Record]) -> Vec<&Record> {
    records.iter().filter(|r| r.kind != KIND_GAP).collect()
}

fn ids_of(records: &[Record]) -> Vec<u64> {
    events_of(records)
        .iter()
        .map(|r| r.attributes["record_id"].parse().unwrap())
        .collect()
}

#[test]
fn sysmon_events_become_records_with_their_attributes_and_message() {
    let events = lines(SYSMON);
    assert_eq!(events.len(), 41);
    let bench = Bench::new(SYSMON_CHANNEL, events.clone());
    bench.log.lock().unwrap().messages = vec![(
        1742,
        "Process Create:\r\nUtcTime: 2017-12-26 13:10:29.134\r\nImage: C:\\Windows\\SysWOW64\\PING.EXE"
            .into(),
    )];
    bench.run_until(true, |l, _| l.delivered == 41);
    let records = bench.records();
    assert_eq!(records.len(), 41);
    for (r, xml) in records.iter().zip(&events) {
        assert_eq!(r.raw.as_ref(), xml.as_bytes());
        assert_eq!(r.attributes["channel"], SYSMON_CHANNEL);
        assert_eq!(r.attributes["provider"], "Microsoft-Windows-Sysmon");
        assert_eq!(r.attributes["computer"], "DESKTOP-2KGM189");
        assert_eq!(r.attributes["record_id"], record_id(xml).to_string());
    }
    let first = &records[0];
    assert_eq!(first.attributes["event_id"], "1");
    assert!(first.attributes["message"].starts_with("Process Create:\r\nUtcTime:"));
    assert!(!records[1].attributes.contains_key("message"));
    let (_, stored) = bench.spool();
    assert_eq!(
        stored,
        Some(Stored {
            bookmark: bookmark(SYSMON_CHANNEL, 1782),
            record_id: 1782
        })
    );
}

#[test]
fn a_real_jump_in_security_record_ids_becomes_a_gap_with_the_missing_range() {
    let events = lines(NEW_USER);
    let bench = Bench::new("Security", events);
    bench.run_until(true, |l, _| l.delivered == 4);
    let records = bench.records();
    assert_eq!(records.len(), 5, "4 events and one gap");
    assert_eq!(ids_of(&records), [111, 112, 113, 116]);
    let gap = &records[3];
    assert_eq!(gap.kind, KIND_GAP);
    let text = String::from_utf8_lossy(&gap.raw);
    assert!(
        text.contains("records 114 to 115 (2 events) were not read"),
        "{text}"
    );
    assert_eq!(records[0].attributes["event_id"], "4728");
    assert_eq!(records[1].attributes["event_id"], "4720", "a new account");
}

#[test]
fn with_a_query_skipped_ids_are_no_gap() {
    let mut bench = Bench::new("Security", lines(NEW_USER));
    bench.config.query = Some("*[System[(EventID=4720 or EventID=4728 or EventID=4732)]]".into());
    bench.run_until(true, |l, _| l.delivered == 4);
    let records = bench.records();
    assert_eq!(records.len(), 4);
    assert!(records.iter().all(|r| r.kind != KIND_GAP));
}

#[test]
fn a_restart_resumes_after_the_last_spooled_event() {
    let events = lines(SYSMON);
    let bench = Bench::new(SYSMON_CHANNEL, events[..20].to_vec());
    bench.run_until(true, |l, _| l.delivered == 20);
    bench.log.lock().unwrap().events = events.clone();
    bench.run_until(true, |l, _| l.delivered == 41);
    let records = bench.records();
    let ids: Vec<u64> = events.iter().map(|e| record_id(e)).collect();
    assert_eq!(ids_of(&records), ids, "every event once, in order");
    let subs = bench.log.lock().unwrap().subscriptions.clone();
    assert_eq!(
        subs,
        [
            Start::Beginning,
            Start::AfterBookmark(bookmark(SYSMON_CHANNEL, 1761))
        ]
    );
}

#[test]
fn a_kill_loses_only_unspooled_events_which_are_read_again() {
    let events = lines(SYSMON);
    let mut bench = Bench::new(SYSMON_CHANNEL, events.clone());
    // Batches of 7 events: 35 events spooled when all 41 are read, 6 in the open batch.
    bench.max_records = 7;
    bench.run_until(false, |l, _| l.delivered == 41);
    assert_eq!(bench.records().len(), 35);
    bench.max_records = 1000;
    bench.run_until(true, |l, _| l.delivered == 41 + 6);
    let ids: Vec<u64> = events.iter().map(|e| record_id(e)).collect();
    assert_eq!(ids_of(&bench.records()), ids, "no loss, no duplicate");
}

#[test]
fn start_at_end_reads_only_newer_events_and_decides_once() {
    let events = lines(SYSMON);
    let mut bench = Bench::new(SYSMON_CHANNEL, events[..30].to_vec());
    bench.config.start_at = EventlogStart::End;
    bench.run_until(false, |l, _| !l.subscriptions.is_empty());
    // Killed before any event: the decision was spooled, so events logged meanwhile are read.
    bench.log.lock().unwrap().events = events[..35].to_vec();
    bench.run_until(true, |l, _| l.delivered == 5);
    bench.log.lock().unwrap().events = events.clone();
    bench.run_until(true, |l, _| l.delivered == 11);
    let ids: Vec<u64> = events[30..].iter().map(|e| record_id(e)).collect();
    assert_eq!(ids_of(&bench.records()), ids);
    assert!(bench.records().iter().all(|r| r.kind != KIND_GAP));
}

#[test]
fn start_at_end_on_an_empty_channel_reads_from_the_beginning_after_a_restart() {
    let events = lines(NEW_USER);
    let mut bench = Bench::new("Security", Vec::new());
    bench.config.start_at = EventlogStart::End;
    bench.run_until(true, |l, _| !l.subscriptions.is_empty());
    bench.log.lock().unwrap().events = events;
    bench.run_until(true, |l, _| l.delivered == 4);
    assert_eq!(ids_of(&bench.records()), [111, 112, 113, 116]);
}

#[test]
fn a_missing_then_forbidden_channel_is_reported_and_retried_until_it_can_be_read() {
    let bench = Bench::new(SYSMON_CHANNEL, lines(SYSMON));
    bench.log.lock().unwrap().missing = true;
    bench.run_until(true, |l, e| {
        l.subscriptions.len() >= 2 && e.snapshot().get("ev").is_some_and(|m| m.contains("15007"))
    });
    {
        let mut log = bench.log.lock().unwrap();
        log.missing = false;
        log.denied = true;
    }
    bench.run_until(true, |_, e| {
        e.snapshot().get("ev").is_some_and(|m| m.contains("denied"))
    });
    assert!(bench.records().is_empty());
    bench.log.lock().unwrap().denied = false;
    bench.run_until(true, |l, e| l.delivered == 41 && e.snapshot().is_empty());
    assert_eq!(bench.records().len(), 41);
}

#[test]
fn a_broken_subscription_resumes_after_the_last_event_read() {
    let events = lines(SYSMON);
    let bench = Bench::new(SYSMON_CHANNEL, events[..10].to_vec());
    bench.run_until(true, |l, _| l.delivered == 10);
    {
        let mut log = bench.log.lock().unwrap();
        log.break_once = true;
        log.events = events.clone();
    }
    bench.run_until(true, |l, _| l.delivered == 41);
    let ids: Vec<u64> = events.iter().map(|e| record_id(e)).collect();
    assert_eq!(ids_of(&bench.records()), ids);
    let subs = bench.log.lock().unwrap().subscriptions.clone();
    assert_eq!(subs.len(), 3, "{subs:?}");
    assert_eq!(
        subs[2],
        Start::AfterBookmark(bookmark(SYSMON_CHANNEL, 1751))
    );
}

#[test]
fn a_cleared_log_becomes_a_gap_and_reading_goes_on_from_its_oldest_event() {
    let events = lines(SYSMON);
    let bench = Bench::new(SYSMON_CHANNEL, events[..12].to_vec());
    bench.run_until(true, |l, _| l.delivered == 12);
    // Cleared: the bookmarked event is gone and the ids start again (here, at 111).
    bench.log.lock().unwrap().events = lines(NEW_USER)[..2].to_vec();
    bench.run_until(true, |l, _| l.delivered == 14);
    let records = bench.records();
    assert_eq!(records.len(), 15);
    let gap = &records[12];
    assert_eq!(gap.kind, KIND_GAP);
    let text = String::from_utf8_lossy(&gap.raw);
    assert!(text.contains("went back from 1753 to 111"), "{text}");
    assert_eq!(ids_of(&records)[12..], [111, 112]);
}

#[test]
fn ids_that_skip_while_the_agent_was_stopped_become_a_gap_after_the_restart() {
    let events = lines(SYSMON);
    let bench = Bench::new(SYSMON_CHANNEL, events[..5].to_vec());
    bench.run_until(true, |l, _| l.delivered == 5);
    // The channel wrapped while the agent was stopped: 1747..=1759 were overwritten.
    bench.log.lock().unwrap().events = events[18..].to_vec();
    bench.run_until(true, |l, _| l.delivered == 5 + 23);
    let records = bench.records();
    let gap = &records[5];
    assert_eq!(gap.kind, KIND_GAP);
    let text = String::from_utf8_lossy(&gap.raw);
    assert!(
        text.contains("records 1747 to 1759 (13 events) were not read"),
        "{text}"
    );
    assert_eq!(events_of(&records).len(), 28);
}

#[test]
fn an_event_longer_than_max_message_bytes_is_cut_with_its_length_kept() {
    let events = lines(SYSMON);
    let mut bench = Bench::new(SYSMON_CHANNEL, events[..1].to_vec());
    bench.config.max_message_bytes = 300;
    bench.log.lock().unwrap().messages = vec![(1742, "é".repeat(400))];
    bench.run_until(true, |l, _| l.delivered == 1);
    let records = bench.records();
    let r = &records[0];
    assert_eq!(r.raw.len(), 300);
    assert_eq!(r.truncated_from, events[0].len() as u64);
    assert_eq!(
        r.attributes["record_id"], "1742",
        "attributes come from the whole event"
    );
    assert_eq!(r.attributes["message"].len(), 300);
}

#[test]
fn bookmarks_stored_on_the_spool_are_found_among_the_inputs_checkpoints() {
    let checkpoints = [
        logship_tail::Checkpoint {
            key: "eventlog".into(),
            path: bookmark("Security", 9),
            offset: 9,
        },
        logship_tail::Checkpoint {
            key: "other".into(),
            path: "x".into(),
            offset: 1,
        },
    ];
    assert_eq!(
        stored(&checkpoints),
        Some(Stored {
            bookmark: bookmark("Security", 9),
            record_id: 9
        })
    );
    assert_eq!(stored(&checkpoints[1..]), None);
}

/// `xml` quoted as `EvtRender` writes it (attribute values in single quotes, empty elements
/// self-closed) instead of python-evtx's double quotes and end tags.
fn as_evtrender_writes_it(xml: &str) -> String {
    assert!(
        !xml.contains('\''),
        "the transform needs events without single quotes"
    );
    let mut in_tag = false;
    let mut out: String = xml
        .chars()
        .map(|c| {
            match c {
                '<' => in_tag = true,
                '>' => in_tag = false,
                _ => {}
            }
            if in_tag && c == '"' { '\'' } else { c }
        })
        .collect();
    for tag in [
        "Provider",
        "TimeCreated",
        "Correlation",
        "Execution",
        "Security",
    ] {
        let open = format!("<{tag} ");
        let close = format!("></{tag}>");
        let mut from = 0;
        while let Some(at) = out[from..].find(&open).map(|i| i + from) {
            let Some(end) = out[at..].find('>').map(|i| i + at) else {
                break;
            };
            if out[end..].starts_with(&close) {
                out.replace_range(end..end + close.len(), "/>");
            }
            from = end;
        }
    }
    out
}

#[test]
fn live_events_normalize_to_the_same_fields_as_their_export() {
    use logship_normalize::{Context, Normalizer};
    let ctx = Context {
        host: "pc1",
        input: "ev",
        path: "Security",
        agent_tz: "UTC",
        observed_unix_nanos: 1_700_000_000_000_000_000,
    };
    for (channel, text, dataset) in [
        ("Security", NEW_USER, "windows.security"),
        (SYSMON_CHANNEL, SYSMON, "windows.sysmon"),
    ] {
        let exported = lines(text);
        let live: Vec<String> = exported.iter().map(|x| as_evtrender_writes_it(x)).collect();
        assert!(live[0].contains("<Provider Name='"), "{}", live[0]);
        let bench = Bench::new(channel, live.clone());
        bench.run_until(true, |l, _| l.delivered == live.len());
        let records = events_of(&bench.records())
            .into_iter()
            .cloned()
            .collect::<Vec<_>>();
        assert_eq!(records.len(), exported.len());
        let (mut a, mut b) = (Normalizer::new(), Normalizer::new());
        for (r, export) in records.iter().zip(&exported) {
            let ours = a.normalize(&r.raw, &ctx);
            let theirs = b.normalize(export.as_bytes(), &ctx);
            assert_eq!(ours.dataset, dataset, "{}", String::from_utf8_lossy(&r.raw));
            assert_eq!(ours.fields, theirs.fields, "{export}");
        }
    }
}

#[test]
fn a_bookmark_of_another_channel_is_not_used_after_the_config_changed() {
    let sysmon = lines(SYSMON);
    let mut bench = Bench::new(SYSMON_CHANNEL, sysmon[..3].to_vec());
    bench.run_until(true, |l, _| l.delivered == 3);
    // The same input now reads Security: the Sysmon bookmark (and its record id 1744) must not
    // steer it, nor make a gap out of Security's ids.
    bench.config.channel = "Security".into();
    bench.log.lock().unwrap().events = lines(NEW_USER);
    bench.run_until(true, |l, _| l.delivered == 3 + 4);
    let records = bench.records();
    assert_eq!(ids_of(&records), [1742, 1743, 1744, 111, 112, 113, 116]);
    assert_eq!(
        records.iter().filter(|r| r.kind == KIND_GAP).count(),
        1,
        "only 113 -> 116"
    );
    let subs = bench.log.lock().unwrap().subscriptions.clone();
    assert_eq!(subs[1], Start::Beginning);
}

#[test]
fn an_event_that_cannot_be_rendered_becomes_a_gap_and_reading_goes_on() {
    let events = lines(SYSMON);
    let bench = Bench::new(SYSMON_CHANNEL, events[..10].to_vec());
    bench.log.lock().unwrap().unreadable = vec![1745];
    bench.run_until(true, |l, _| l.delivered == 10);
    let records = bench.records();
    assert_eq!(records.len(), 10);
    assert_eq!(records[3].kind, KIND_GAP);
    let text = String::from_utf8_lossy(&records[3].raw);
    assert!(
        text.contains("record 1745 could not be read: rendering failed"),
        "{text}"
    );
    // 1746 follows the unreadable 1745: no second gap for the id it skipped.
    assert_eq!(
        ids_of(&records),
        [1742, 1743, 1744, 1746, 1747, 1748, 1749, 1750, 1751]
    );
    assert_eq!(records.iter().filter(|r| r.kind == KIND_GAP).count(), 1);
}
