//! Store tests on real files in temp dirs, and the helpers they share.

mod archive;
mod concurrent;
mod corruption;
mod cursor;
mod recovery;
mod retention;
mod roundtrip;
mod verify;
mod witness;

use std::path::Path;

use bytes::Bytes;
use logship_proto::payload;
use logship_proto::v1::{Record, RecordList, Source};
use prost::Message;

use crate::{BlockInput, Query, SearchStats, Store, StoreConfig, search};

/// Observed time of the first record of every test block: 2024-05-01T00:00:00Z.
pub(crate) const T0: i64 = 1_714_521_600_000_000_000;

/// A record as seen by a test: (agent, stream_id, seq, raw, fields as JSON text).
pub(crate) type Hit = (String, String, u64, Vec<u8>, Option<String>);

pub(crate) fn config(dir: &Path) -> StoreConfig {
    StoreConfig {
        dir: dir.to_path_buf(),
        ..StoreConfig::default()
    }
}

pub(crate) fn open(dir: &Path) -> Store {
    Store::open(config(dir)).expect("open store").0
}

/// Raw line of record `seq` of (agent, stream).
pub(crate) fn line(agent: &str, stream: &str, seq: u64) -> Vec<u8> {
    format!("{agent} {stream} seq={seq} message").into_bytes()
}

/// A block of `count` records starting at `first_seq`; record i is observed at
/// `t0 + i` ns, from input `input` (record 0 from input "other" when `mixed`).
pub(crate) struct Spec<'a> {
    pub(crate) agent: &'a str,
    pub(crate) stream: &'a str,
    pub(crate) host: &'a str,
    pub(crate) input: &'a str,
    pub(crate) first_seq: u64,
    pub(crate) count: u32,
    pub(crate) t0: i64,
    pub(crate) fields: bool,
}

impl Default for Spec<'_> {
    fn default() -> Self {
        Spec {
            agent: "agent-1",
            stream: "stream-a",
            host: "host-1",
            input: "varlog",
            first_seq: 1,
            count: 4,
            t0: T0,
            fields: false,
        }
    }
}

pub(crate) fn block(spec: &Spec<'_>) -> BlockInput {
    let records = (0..spec.count)
        .map(|i| Record {
            source: 0,
            observed_unix_nanos: spec.t0 + i64::from(i),
            raw: Bytes::from(line(spec.agent, spec.stream, spec.first_seq + u64::from(i))),
            ..Default::default()
        })
        .collect();
    let list = RecordList {
        host: spec.host.into(),
        sources: vec![Source {
            input: spec.input.into(),
            path: "/var/log/app.log".into(),
        }],
        records,
        agent_tz: "UTC".into(),
        observed_unix_nanos: 0,
    };
    let payload = payload::compress(&list.encode_to_vec(), 1).expect("compress");
    let fields = spec.fields.then(|| {
        let text: String = (0..spec.count)
            .map(|i| {
                let seq = spec.first_seq + u64::from(i);
                if seq.is_multiple_of(2) {
                    format!("{{\"seq\":{seq}}}\n")
                } else {
                    "{}\n".to_string()
                }
            })
            .collect();
        Bytes::from(payload::compress(text.as_bytes(), 1).expect("compress"))
    });
    BlockInput {
        agent: spec.agent.into(),
        stream_id: spec.stream.into(),
        first_seq: spec.first_seq,
        count: spec.count,
        host: spec.host.into(),
        min_time_ns: spec.t0,
        max_time_ns: spec.t0 + i64::from(spec.count) - 1,
        inputs: vec![spec.input.into()],
        payload: Bytes::from(payload),
        fields,
    }
}

/// Runs a search and collects every hit, checking each view's invariants on the way.
pub(crate) fn collect(dir: &Path, query: &Query) -> (Vec<Hit>, SearchStats) {
    let mut hits = Vec::new();
    let stats = search(dir, query, &mut |r| {
        assert_eq!(r.event_id, crate::event_id(r.agent, r.stream_id, r.seq));
        assert_eq!(
            r.raw,
            line(r.agent, r.stream_id, r.seq),
            "raw bytes belong to their seq"
        );
        let fields = r.fields.map(|m| serde_json::to_string(m).expect("json"));
        hits.push((
            r.agent.to_string(),
            r.stream_id.to_string(),
            r.seq,
            r.raw.to_vec(),
            fields,
        ));
        true
    })
    .expect("search");
    (hits, stats)
}

/// Seqs of the hits, in order.
pub(crate) fn seqs(hits: &[Hit]) -> Vec<u64> {
    hits.iter().map(|h| h.2).collect()
}

/// Flips one bit of the byte at `offset` in `path`.
pub(crate) fn flip(path: &Path, offset: u64) {
    let mut bytes = std::fs::read(path).expect("read");
    bytes[offset as usize] ^= 0x10;
    std::fs::write(path, bytes).expect("write");
}
