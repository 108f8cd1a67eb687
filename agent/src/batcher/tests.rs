use std::path::Path;
use std::time::Duration;

use logship_proto::payload::decode_payload;
use logship_proto::v1::RecordList;
use logship_spool::{Spool, SpoolConfig};
use logship_tail::LineSink;

use super::*;
use crate::spool_blocked::SpoolBlocked;

fn limits(max_records: u32) -> BatchLimits {
    BatchLimits {
        max_records,
        max_bytes: 1 << 20,
        max_wait: Duration::from_secs(60),
        zstd_level: 1,
    }
}

fn spool(dir: &Path) -> Spool {
    let config = SpoolConfig {
        dir: dir.to_path_buf(),
        fsync_interval_ms: 0,
        ..SpoolConfig::default()
    };
    Spool::open(config).unwrap().0
}

fn batches(spool: &Spool) -> Vec<(u64, RecordList)> {
    let mut out = Vec::new();
    let mut seq = 1;
    let mut scratch = Vec::new();
    while let Some(b) = spool.read_from(seq).unwrap() {
        let list = decode_payload(&b.payload, 1 << 24, &mut scratch).unwrap();
        assert_eq!(list.records.len(), b.count as usize);
        assert_eq!(b.uncompressed_len as usize, scratch.len());
        seq = b.first_seq + u64::from(b.count);
        out.push((b.first_seq, list));
    }
    out
}

#[test]
fn hand_encoded_batches_decode_with_prost() {
    let dir = tempfile::tempdir().unwrap();
    let spool = spool(dir.path());
    let mut b = Batcher::new(
        spool.clone(),
        limits(100),
        "in".into(),
        "host1".into(),
        "Asia/Tokyo".into(),
    )
    .unwrap();
    let a = b.open_source("k1", Path::new("/var/log/a.log")).unwrap();
    let c = b.open_source("k2", Path::new("/var/log/c.log")).unwrap();
    b.line(a, b"first", 0, 6).unwrap();
    b.line(c, &[0xff, 0xfe, b'x'], 0, 4).unwrap();
    b.line(a, b"cut", 70_000, 70_010).unwrap();
    b.gap(c, "lost 10 bytes", 20).unwrap();
    b.flush().unwrap();
    let got = batches(&spool);
    assert_eq!(got.len(), 1);
    let (first_seq, list) = &got[0];
    assert_eq!(*first_seq, 1);
    assert_eq!(list.host, "host1");
    assert_eq!(list.agent_tz, "Asia/Tokyo");
    let paths: Vec<_> = list
        .sources
        .iter()
        .map(|s| (s.input.as_str(), s.path.as_str()))
        .collect();
    assert_eq!(paths, [("in", "/var/log/a.log"), ("in", "/var/log/c.log")]);
    let r = &list.records;
    assert_eq!(
        (r[0].source, &r[0].raw[..], r[0].truncated_from, r[0].kind),
        (0, &b"first"[..], 0, 0)
    );
    assert_eq!((r[1].source, &r[1].raw[..]), (1, &[0xff, 0xfe, b'x'][..]));
    assert_eq!(
        (r[2].raw.as_ref(), r[2].truncated_from),
        (&b"cut"[..], 70_000)
    );
    assert_eq!((r[3].kind, r[3].raw.as_ref()), (1, &b"lost 10 bytes"[..]));
    assert!(
        r.iter()
            .all(|r| r.observed_unix_nanos > 1_700_000_000_000_000_000)
    );
}

#[test]
fn batches_close_at_max_records_and_carry_positions() {
    let dir = tempfile::tempdir().unwrap();
    let spool_handle = spool(dir.path());
    let mut b = Batcher::new(
        spool_handle.clone(),
        limits(3),
        "in".into(),
        "h".into(),
        "UTC".into(),
    )
    .unwrap();
    let a = b.open_source("k1", Path::new("/a")).unwrap();
    for i in 0..7u64 {
        b.line(a, format!("line {i}").as_bytes(), 0, (i + 1) * 7)
            .unwrap();
    }
    b.close_source(a).unwrap();
    b.flush().unwrap();
    let got = batches(&spool_handle);
    let sizes: Vec<_> = got.iter().map(|(seq, l)| (*seq, l.records.len())).collect();
    assert_eq!(sizes, [(1, 3), (4, 3), (7, 1)]);
    drop(b);
    spool_handle.close();
    drop(spool_handle);
    let (_, recovered) = Spool::open(SpoolConfig {
        dir: dir.path().to_path_buf(),
        ..SpoolConfig::default()
    })
    .unwrap();
    // The last batch closed the source: its position is forgotten.
    assert!(recovered.positions.is_empty(), "{:?}", recovered.positions);
}

#[test]
fn positions_are_namespaced_by_input_and_follow_renames() {
    let dir = tempfile::tempdir().unwrap();
    let spool_handle = spool(dir.path());
    let mut b = Batcher::new(
        spool_handle.clone(),
        limits(100),
        "web".into(),
        "h".into(),
        "UTC".into(),
    )
    .unwrap();
    let a = b.open_source("k1", Path::new("/x/app.log")).unwrap();
    b.line(a, b"one", 0, 4).unwrap();
    let renamed = b.open_source("k1", Path::new("/x/app.log.1")).unwrap();
    assert_eq!(a, renamed);
    b.line(a, b"two", 0, 8).unwrap();
    b.flush().unwrap();
    let got = batches(&spool_handle);
    // The rename closed the first batch so each batch's source table names the right path.
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].1.sources[0].path, "/x/app.log");
    assert_eq!(got[1].1.sources[0].path, "/x/app.log.1");
    spool_handle.close();
    drop((b, spool_handle));
    let (_, recovered) = Spool::open(SpoolConfig {
        dir: dir.path().to_path_buf(),
        ..SpoolConfig::default()
    })
    .unwrap();
    assert_eq!(recovered.positions.len(), 1);
    let p = &recovered.positions[0];
    assert_eq!(
        (p.key.as_str(), p.path.as_str(), p.offset),
        ("web|k1", "/x/app.log.1", 8)
    );
}

#[test]
fn an_old_batch_is_flushed_by_tick() {
    let dir = tempfile::tempdir().unwrap();
    let spool_handle = spool(dir.path());
    let mut limits = limits(100);
    limits.max_wait = Duration::from_millis(1);
    let mut b = Batcher::new(
        spool_handle.clone(),
        limits,
        "in".into(),
        "h".into(),
        "UTC".into(),
    )
    .unwrap();
    let a = b.open_source("k", Path::new("/a")).unwrap();
    b.line(a, b"x", 0, 2).unwrap();
    assert!(batches(&spool_handle).is_empty());
    std::thread::sleep(Duration::from_millis(5));
    b.tick().unwrap();
    assert_eq!(batches(&spool_handle).len(), 1);
}

#[test]
fn a_record_larger_than_a_batch_is_cut_and_closes_its_batch_alone() {
    let dir = tempfile::tempdir().unwrap();
    let spool_handle = spool(dir.path());
    let mut limits = limits(100);
    limits.max_bytes = 4096;
    let mut b = Batcher::new(
        spool_handle.clone(),
        limits,
        "in".into(),
        "h".into(),
        "UTC".into(),
    )
    .unwrap();
    let a = b.open_source("k", Path::new("/var/log/a.log")).unwrap();
    b.line(a, b"small", 0, 6).unwrap();
    b.line(a, &vec![b'x'; 10_000], 0, 10_007).unwrap();
    b.line(a, &vec![b'y'; 5_000], 70_000, 80_008).unwrap();
    b.line(a, b"after", 0, 80_014).unwrap();
    b.flush().unwrap();
    let got = batches(&spool_handle);
    let shape: Vec<Vec<u64>> = got
        .iter()
        .map(|(_, l)| l.records.iter().map(|r| r.truncated_from).collect())
        .collect();
    assert_eq!(shape, [vec![0], vec![10_000], vec![70_000], vec![0]]);
    let mut seq = 1;
    while let Some(stored) = spool_handle.read_from(seq).unwrap() {
        assert!(
            stored.uncompressed_len <= 4096,
            "{}",
            stored.uncompressed_len
        );
        seq = stored.first_seq + u64::from(stored.count);
    }
    let cut = &got[1].1.records[0].raw;
    assert!(
        cut.len() > 3500 && cut.iter().all(|&c| c == b'x'),
        "{}",
        cut.len()
    );
}

#[test]
fn a_failing_append_keeps_the_batch_and_retries_until_it_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let spool_dir = dir.path().join("spool");
    // A segment per append, so each append creates a file in the spool directory.
    let spool_handle = Spool::open(SpoolConfig {
        dir: spool_dir.clone(),
        segment_max_bytes: 1,
        fsync_interval_ms: 0,
        ..SpoolConfig::default()
    })
    .unwrap()
    .0;
    let blocked = SpoolBlocked::default();
    let mut b = Batcher::new(
        spool_handle.clone(),
        limits(100),
        "in".into(),
        "h".into(),
        "UTC".into(),
    )
    .unwrap()
    .report_to(&blocked);
    let a = b.open_source("k", Path::new("/a")).unwrap();
    b.line(a, b"one", 0, 4).unwrap();
    b.flush().unwrap();
    // The next segment cannot be created: the append fails until the directory is back.
    std::fs::remove_dir_all(&spool_dir).unwrap();
    let input = std::thread::spawn(move || {
        b.line(a, b"two", 0, 8).unwrap();
        b.flush().unwrap();
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while blocked.reason().is_empty() {
        assert!(std::time::Instant::now() < deadline, "never blocked");
        std::thread::sleep(Duration::from_millis(10));
    }
    let reason = blocked.reason();
    assert!(
        reason
            .starts_with("no such file or directory (os error 2) during spool create segment on ")
            && reason.contains("(input in, since "),
        "{reason}"
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(!input.is_finished(), "the input gave up");
    std::fs::create_dir(&spool_dir).unwrap();
    input.join().unwrap();
    assert_eq!(blocked.reason(), "");
    let raws: Vec<_> = batches(&spool_handle)
        .into_iter()
        .map(|(_, l)| l.records[0].raw.clone())
        .collect();
    assert_eq!(raws, [&b"one"[..], &b"two"[..]]);
}

#[test]
fn events_carry_time_attributes_original_bytes_and_a_resume_token() {
    let dir = tempfile::tempdir().unwrap();
    let spool_handle = spool(dir.path());
    let mut b = Batcher::new(
        spool_handle.clone(),
        limits(100),
        "journal".into(),
        "h".into(),
        "UTC".into(),
    )
    .unwrap();
    let j = b.open_source("cursor", Path::new("journal")).unwrap();
    let attrs = [("_SYSTEMD_UNIT", "ssh.service"), ("_PID", "42")];
    let extra = RecordExtra {
        event_ns: 1_700_000_000_123_456_789,
        attributes: &attrs,
        original: Some(&[0x83, 0x8d, 0x83, 0x4f]),
    };
    b.push_event(j, "ログ".as_bytes(), 0, &extra).unwrap();
    b.set_position(j, Some("s=abc;i=1f".into()), 31);
    b.push_event(j, b"plain", 0, &RecordExtra::default())
        .unwrap();
    b.flush().unwrap();
    let got = batches(&spool_handle);
    let r = &got[0].1.records;
    assert_eq!(r[0].event_unix_nanos, 1_700_000_000_123_456_789);
    assert_eq!(r[0].attributes["_SYSTEMD_UNIT"], "ssh.service");
    assert_eq!(r[0].attributes["_PID"], "42");
    assert_eq!(&r[0].original[..], &[0x83, 0x8d, 0x83, 0x4f]);
    assert_eq!(r[0].raw.as_ref(), "ログ".as_bytes());
    assert_eq!((r[1].event_unix_nanos, r[1].attributes.len()), (0, 0));
    assert!(r[1].original.is_empty());
    drop(b);
    spool_handle.close();
    drop(spool_handle);
    let (_, recovered) = Spool::open(SpoolConfig {
        dir: dir.path().to_path_buf(),
        ..SpoolConfig::default()
    })
    .unwrap();
    let p = &recovered.positions[0];
    assert_eq!(
        (p.key.as_str(), p.path.as_str(), p.offset),
        ("journal|cursor", "s=abc;i=1f", 31)
    );
}

#[test]
fn an_event_too_large_for_a_batch_is_cut_and_loses_only_its_original_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let spool_handle = spool(dir.path());
    let mut small = limits(100);
    small.max_bytes = 4096;
    let mut b = Batcher::new(
        spool_handle.clone(),
        small,
        "in".into(),
        "h".into(),
        "UTC".into(),
    )
    .unwrap();
    let s = b.open_source("k", Path::new("/f")).unwrap();
    let text = vec![b'a'; 3000];
    let original = vec![b'b'; 3000];
    let attrs = [("sender", "192.0.2.1:514")];
    let extra = RecordExtra {
        event_ns: 0,
        attributes: &attrs,
        original: Some(&original),
    };
    b.push_event(s, &text, 0, &extra).unwrap();
    b.flush().unwrap();
    let got = batches(&spool_handle);
    let r = &got[0].1.records[0];
    assert!(r.original.is_empty());
    assert_eq!(r.raw.len(), 3000, "the text alone fits");
    assert_eq!(
        r.truncated_from, 3000,
        "the dropped original bytes are flagged"
    );
    assert_eq!(r.attributes["sender"], "192.0.2.1:514");
    let (_, list) = &got[0];
    assert!(prost::Message::encoded_len(list) <= 4096);
}

#[test]
fn pre_encoded_attributes_give_the_records_push_event_gives() {
    // The same messages through push_event and push_with_attributes, including a sender
    // change, a cut message and a record too large for the batch: the same records (observed
    // times aside: two batchers read the clock).
    let senders = [("192.0.2.1:514", "udp"), ("[2001:db8::7]:40000", "tcp")];
    let mut small = limits(100);
    small.max_bytes = 4096;
    let run = |pre_encoded: bool| {
        let dir = tempfile::tempdir().unwrap();
        let spool_handle = spool(dir.path());
        let mut b = Batcher::new(
            spool_handle.clone(),
            small,
            "net".into(),
            "h".into(),
            "UTC".into(),
        )
        .unwrap();
        let s = b
            .open_source("udp://0.0.0.0:514", Path::new("udp://"))
            .unwrap();
        let mut encoded = EncodedAttributes::default();
        let messages: [(&[u8], u64, usize); 5] = [
            (b"<13>one", 0, 0),
            (b"<13>two", 0, 0),
            (b"<13>cut by the listener", 90_000, 1),
            (&[b'x'; 5000], 0, 1),
            (b"<13>after", 0, 0),
        ];
        for (raw, truncated_from, who) in messages {
            let attrs = [("sender", senders[who].0), ("transport", senders[who].1)];
            if pre_encoded {
                encoded.set(&attrs);
                b.push_with_attributes(s, raw, truncated_from, &encoded)
                    .unwrap();
            } else {
                let extra = RecordExtra {
                    attributes: &attrs,
                    ..RecordExtra::default()
                };
                b.push_event(s, raw, truncated_from, &extra).unwrap();
            }
        }
        b.flush().unwrap();
        let mut got = batches(&spool_handle);
        for (_, list) in &mut got {
            list.observed_unix_nanos = 0;
            for r in &mut list.records {
                r.observed_unix_nanos = 0;
            }
        }
        got
    };
    let plain = run(false);
    let encoded = run(true);
    assert_eq!(plain, encoded);
    let records: Vec<_> = plain.iter().flat_map(|(_, l)| &l.records).collect();
    assert_eq!(records.len(), 5);
    assert_eq!(records[3].truncated_from, 5000, "cut to fit the batch");
    assert_eq!(records[2].truncated_from, 90_000);
    assert_eq!(records[2].attributes["sender"], "[2001:db8::7]:40000");
    assert_eq!(records[4].attributes["transport"], "udp");
}
