//! Append / search round trips, filters, watermarks and the writer lock.

use super::*;
use crate::{StoreError, event_id, verify};

/// Two agents, two hosts, two inputs, fields on some blocks.
fn populated() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    let specs = [
        Spec {
            fields: true,
            ..Spec::default()
        },
        Spec {
            agent: "agent-2",
            host: "host-2",
            input: "journald",
            t0: T0 + 100,
            ..Spec::default()
        },
        Spec {
            first_seq: 5,
            t0: T0 + 200,
            input: "auth",
            ..Spec::default()
        },
    ];
    for spec in &specs {
        store.append(block(spec)).unwrap();
    }
    store.sync().unwrap();
    dir
}

#[test]
fn event_id_matches_the_documented_formula() {
    // python3: hashlib.sha256(b"agent-1\nstream-a\n42").hexdigest()[:32]
    assert_eq!(event_id("agent-1", "stream-a", 42), EXPECTED_EVENT_ID);
    assert_ne!(event_id("agent-1", "stream-a", 43), EXPECTED_EVENT_ID);
}

const EXPECTED_EVENT_ID: &str = "644ee56090c600a6d37333ecbdcbe239";

#[test]
fn round_trip_returns_every_record_in_store_order() {
    let dir = populated();
    let (hits, stats) = collect(dir.path(), &Query::default());
    assert_eq!(hits.len(), 12);
    assert_eq!(seqs(&hits), vec![1, 2, 3, 4, 1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(hits[4].0, "agent-2");
    assert_eq!(stats.blocks_scanned, 3);
    assert_eq!(stats.records_matched, 12);
    assert!(stats.corrupt.is_empty());
    // Fields: only the first block has a column; `{}` objects come back as None.
    let fields: Vec<_> = hits.iter().map(|h| h.4.as_deref()).collect();
    assert_eq!(
        &fields[..5],
        &[None, Some(r#"{"seq":2}"#), None, Some(r#"{"seq":4}"#), None]
    );
    assert!(verify(dir.path()).unwrap().is_ok());
}

#[test]
fn every_filter_narrows_the_result() {
    let dir = populated();
    let q = |f: fn(&mut Query)| {
        let mut query = Query::default();
        f(&mut query);
        collect(dir.path(), &query)
    };
    let (hits, stats) = q(|q| q.host = Some("host-2".into()));
    assert!(hits.iter().all(|h| h.0 == "agent-2") && hits.len() == 4);
    assert_eq!(stats.blocks_skipped, 2, "other hosts are skipped by header");
    let (hits, _) = q(|q| q.agent = Some("agent-1".into()));
    assert_eq!(seqs(&hits), vec![1, 2, 3, 4, 5, 6, 7, 8]);
    let (hits, _) = q(|q| q.input = Some("auth".into()));
    assert_eq!(seqs(&hits), vec![5, 6, 7, 8]);
    let (hits, _) = q(|q| q.since_ns = Some(T0 + 2));
    assert_eq!(seqs(&hits), vec![3, 4, 1, 2, 3, 4, 5, 6, 7, 8]);
    let (hits, _) = q(|q| q.until_ns = Some(T0 + 101));
    assert_eq!(seqs(&hits), vec![1, 2, 3, 4, 1]);
    let (hits, _) = q(|q| q.contains = Some("seq=7 ".into()));
    assert_eq!(hits.len(), 1);
    assert_eq!((hits[0].0.as_str(), hits[0].2), ("agent-1", 7));
    let (hits, stats) = q(|q| q.limit = Some(3));
    assert_eq!((hits.len(), stats.records_matched), (3, 3));
    let (hits, stats) = q(|q| q.host = Some("nobody".into()));
    assert!(hits.is_empty());
    assert_eq!((stats.blocks_scanned, stats.blocks_skipped), (0, 3));
}

#[test]
fn emit_returning_false_stops_the_search() {
    let dir = populated();
    let mut seen = 0;
    let stats = crate::search(dir.path(), &Query::default(), &mut |_| {
        seen += 1;
        seen < 2
    })
    .unwrap();
    assert_eq!((seen, stats.records_matched), (2, 2));
}

#[test]
fn append_rejects_seqs_at_or_below_the_watermark() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    assert_eq!(store.watermark("agent-1", "stream-a"), 0);
    let r = store.append(block(&Spec::default())).unwrap();
    assert_eq!(r.last_seq, 4);
    assert_eq!(store.watermark("agent-1", "stream-a"), 4);
    assert_eq!(store.watermark("agent-1", "stream-b"), 0);
    for first_seq in [1, 4] {
        let err = store
            .append(block(&Spec {
                first_seq,
                ..Spec::default()
            }))
            .unwrap_err();
        assert!(
            matches!(err, StoreError::SeqNotAboveWatermark { watermark: 4, .. }),
            "{err}"
        );
    }
    let err = store
        .append(block(&Spec {
            first_seq: 5,
            count: 0,
            ..Spec::default()
        }))
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidBlock(_)));
    store
        .append(block(&Spec {
            first_seq: 5,
            ..Spec::default()
        }))
        .unwrap();
    store.sync().unwrap();
    let stats = store.stats();
    assert_eq!((stats.blocks, stats.records, stats.segments), (2, 8, 1));
    assert_eq!(stats.chain_head.len(), 64);
}

#[test]
fn a_second_writer_is_refused_until_the_first_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let err = Store::open(config(dir.path())).unwrap_err();
    assert!(matches!(err, StoreError::Locked { .. }), "{err}");
    drop(store);
    Store::open(config(dir.path())).unwrap();
}

#[test]
fn search_of_an_empty_or_missing_store_is_empty() {
    let dir = tempfile::tempdir().unwrap();
    let (hits, _) = collect(&dir.path().join("missing"), &Query::default());
    assert!(hits.is_empty());
    drop(open(dir.path()));
    let (hits, _) = collect(dir.path(), &Query::default());
    assert!(hits.is_empty());
    let report = verify(dir.path()).unwrap();
    assert!(report.is_ok());
    assert_eq!(report.chain_head, "0".repeat(64));
}

#[test]
fn a_block_is_read_back_by_its_ref_and_a_stale_ref_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    let first = block(&Spec::default());
    let payload = first.payload.clone();
    let at = store.append(first).unwrap();
    let second = store
        .append(block(&Spec {
            first_seq: 5,
            ..Spec::default()
        }))
        .unwrap();
    store.sync().unwrap();
    assert_eq!(crate::read_block_payload(&at).unwrap(), payload);
    assert!(crate::read_block_payload(&second).is_ok());
    let wrong = crate::BlockRef {
        last_seq: 99,
        ..at.clone()
    };
    assert!(crate::read_block_payload(&wrong).is_err());
    flip(&at.segment, at.offset + at.len / 2);
    assert!(
        crate::read_block_payload(&at).is_err(),
        "a damaged block is refused"
    );
}
