use std::collections::HashMap;

use logship_normalize::{Context, Normalizer};

use super::*;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/evtx/");

/// Every event of the fixture, built as the import builds it, normalizes to the same fields
/// as the same event in the corpus's XML export (python-evtx), matched by record id.
#[test]
fn imported_events_normalize_like_their_xml_export() {
    let xml = std::fs::read_to_string(format!("{FIXTURES}evtxrs-Security_with_size_t.xml"))
        .expect("fixture");
    let by_id: HashMap<String, &str> = xml
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let id = l
                .split("<EventRecordID>")
                .nth(1)
                .and_then(|r| r.split('<').next());
            (id.expect("every event has a record id").to_string(), l)
        })
        .collect();
    let ctx = Context {
        host: "importer",
        input: "import-evtx",
        path: "x.evtx",
        agent_tz: "UTC",
        observed_unix_nanos: 1_700_000_000_000_000_000,
    };
    let mut parser = EvtxParser::from_path(format!("{FIXTURES}evtxrs-Security_with_size_t.evtx"))
        .expect("fixture parses")
        .with_configuration(settings());
    let mut n = 0;
    let (mut a, mut b) = (Normalizer::new(), Normalizer::new());
    for rec in parser.records() {
        let rec = rec.expect("the fixture has no damaged record");
        let built = EventRecord::from_xml(&rec.data, Known::default());
        let id = built
            .attribute(crate::evtx::record::ATTR_RECORD_ID)
            .expect("record id");
        assert_eq!(id, rec.event_record_id.to_string());
        let export = by_id
            .get(id)
            .unwrap_or_else(|| panic!("record {id} not in the XML"));
        let ours = a.normalize(built.raw.as_bytes(), &ctx);
        let theirs = b.normalize(export.as_bytes(), &ctx);
        assert_eq!(
            ours.dataset, "windows.security",
            "record {id}: {}",
            built.raw
        );
        let (ours, theirs) = (without_time(ours), without_time(theirs));
        if ours.0 != theirs.0 {
            eprintln!("DIFF record {id}:\n{:?}\n{:?}", ours.0, theirs.0);
        }
        assert_eq!(ours.0, theirs.0, "record {id}:\n{}\n{export}", built.raw);
        // python-evtx turns the FILETIME into a float and rounds it to microseconds, so its
        // times can be a few microseconds off the exact 100 ns value the evtx crate renders.
        let off = (ours.1 - theirs.1).abs();
        assert!(off <= 5_000, "record {id}: times {off} ns apart");
        n += 1;
    }
    assert_eq!(
        n,
        by_id.len(),
        "every event of the XML export is in the .evtx"
    );
}

fn without_time(mut e: logship_normalize::Event) -> (logship_normalize::Event, i128) {
    let t = e
        .fields
        .remove("@timestamp")
        .expect("every event has a time");
    let t: jiff::Timestamp = t.as_str().expect("a string").parse().expect("RFC 3339");
    (e, t.as_nanosecond())
}

/// The 636-event fixture with its chunks 1 and 2 swapped (so the 99 records of chunk 1 come
/// after higher ids: late records) and chunk 4's header destroyed (one unreadable part).
fn shuffled(dir: &Path) -> std::path::PathBuf {
    const CHUNK: usize = 65536;
    let mut b = std::fs::read(format!("{FIXTURES}evtxrs-Security_with_size_t.evtx")).unwrap();
    let at = |n: usize| 4096 + n * CHUNK;
    let one = b[at(1)..at(2)].to_vec();
    b.copy_within(at(2)..at(3), at(1));
    b[at(2)..at(3)].copy_from_slice(&one);
    b[at(4)..at(4) + 7].copy_from_slice(b"garbage");
    let path = dir.join("shuffled.evtx");
    std::fs::write(&path, b).unwrap();
    path
}

fn spool_config(dir: &Path, max_bytes: u64) -> logship_spool::SpoolConfig {
    logship_spool::SpoolConfig {
        dir: dir.to_path_buf(),
        max_bytes,
        segment_max_bytes: 16 << 10,
        fsync_interval_ms: 0,
        ..logship_spool::SpoolConfig::default()
    }
}

fn batcher(spool: &logship_spool::Spool) -> Batcher {
    let limits = crate::config::BatchLimits {
        max_records: 1,
        max_bytes: 1 << 20,
        max_wait: std::time::Duration::from_secs(60),
        zstd_level: 1,
    };
    Batcher::new(
        spool.clone(),
        limits,
        crate::evtx::IMPORT_INPUT.into(),
        "h".into(),
        "UTC".into(),
    )
    .unwrap()
}

/// What the spool holds from `seq` on: record ids, `gap` for gap records.
fn items(spool: &logship_spool::Spool, mut seq: u64) -> Vec<String> {
    let mut out = Vec::new();
    let mut scratch = Vec::new();
    while let Some(b) = spool.read_from(seq).unwrap() {
        let list =
            logship_proto::payload::decode_payload(&b.payload, 1 << 24, &mut scratch).unwrap();
        for r in list.records {
            out.push(match r.kind {
                1 => "gap".to_string(),
                _ => r.attributes["record_id"].clone(),
            });
        }
        seq = b.first_seq + u64::from(b.count);
    }
    out
}

/// Stopped at several points (a full spool, closed under the import), then resumed from the
/// position the spool recovered: every record, late record and gap is spooled exactly once
/// and in the order of a run that was never stopped.
#[test]
fn a_run_stopped_anywhere_resumes_with_each_record_and_gap_once() {
    let tmp = tempfile::tempdir().unwrap();
    let file = shuffled(tmp.path());
    let id = identify(&file).unwrap();
    let stop = AtomicBool::new(false);
    let whole = {
        let dir = tmp.path().join("whole");
        let (spool, _) = logship_spool::Spool::open(spool_config(&dir, 64 << 20)).unwrap();
        let mut b = batcher(&spool);
        let r = import_file(&mut b, &file, &id, &Progress::default(), &stop).unwrap();
        b.flush().unwrap();
        assert_eq!((r.late, r.unreadable), (99, 1), "{r:?}");
        items(&spool, 1)
    };
    assert_eq!(whole.iter().filter(|i| *i == "gap").count(), 1);
    let mut cuts = Vec::new();
    for max_bytes in [24u64 << 10, 128 << 10, 256 << 10, 360 << 10, 480 << 10] {
        let dir = tmp.path().join(format!("cut-{max_bytes}"));
        let (spool, _) = logship_spool::Spool::open(spool_config(&dir, max_bytes)).unwrap();
        let reader = {
            let (mut b, file, id) = (batcher(&spool), file.clone(), id.clone());
            std::thread::spawn(move || {
                let stop = AtomicBool::new(false);
                import_file(&mut b, &file, &id, &Progress::default(), &stop).map(|_| ())
            })
        };
        while spool.stats().blocked_appends == 0 {
            assert!(
                !reader.is_finished(),
                "the whole file fit in {max_bytes} bytes"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        spool.close();
        assert!(matches!(reader.join().unwrap(), Err(FileError::Closed)));
        let first = items(&spool, 1);
        drop(spool);

        let (spool, rec) = logship_spool::Spool::open(spool_config(&dir, 64 << 20)).unwrap();
        let key = format!("{}|{id}", crate::evtx::IMPORT_INPUT);
        let pos = rec
            .positions
            .iter()
            .find(|p| p.key == key)
            .expect("a position");
        let done = Progress::from_position(pos.offset, &pos.path);
        let mut b = batcher(&spool);
        import_file(&mut b, &file, &id, &done, &stop).unwrap();
        b.flush().unwrap();
        let second = items(&spool, rec.next_seq);
        cuts.push(first.len());
        assert_eq!([first, second].concat(), whole, "cut at {max_bytes} bytes");
    }
    // The cuts fall before, among and after the late records and the gap.
    eprintln!("cuts after {cuts:?} of {} spooled items", whole.len());
    let late_from = whole.iter().position(|i| i == "115").unwrap();
    let gap_at = whole.iter().position(|i| i == "gap").unwrap();
    assert!(cuts.iter().any(|&c| c < late_from), "cuts {cuts:?}");
    assert!(
        cuts.iter().any(|&c| c > late_from && c < gap_at),
        "cuts {cuts:?}"
    );
    assert!(cuts.iter().any(|&c| c > gap_at), "cuts {cuts:?}");
}

/// Hostile files (the real log with random bytes overwritten): every one is read to its
/// end or refused with an error; no panic escapes, nothing hangs, and each event spooled is
/// whole XML or a gap.
#[test]
fn damaged_files_never_stop_the_import() {
    use rand::{Rng, SeedableRng};
    let tmp = tempfile::tempdir().unwrap();
    let orig = std::fs::read(format!("{FIXTURES}evtxrs-Security_short_selected.evtx")).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(8);
    let (mut read, mut refused, mut gaps) = (0, 0, 0);
    let dir = tmp.path().join("spool");
    let (spool, _) = logship_spool::Spool::open(spool_config(&dir, 256 << 20)).unwrap();
    let mut b = batcher(&spool);
    let stop = AtomicBool::new(false);
    for i in 0..300 {
        let mut bytes = orig.clone();
        for _ in 0..rng.random_range(1..40) {
            let at = rng.random_range(0..bytes.len());
            bytes[at] = rng.random();
        }
        let path = tmp.path().join(format!("hostile-{i}.evtx"));
        std::fs::write(&path, &bytes).unwrap();
        let id = identify(&path).unwrap();
        match import_file(&mut b, &path, &id, &Progress::default(), &stop) {
            Ok(r) => {
                read += 1;
                gaps += r.unreadable;
            }
            Err(FileError::NotEvtx { .. }) => refused += 1,
            Err(e) => panic!("{e}"),
        }
    }
    b.flush().unwrap();
    eprintln!("hostile files: {read} read ({gaps} unreadable parts), {refused} refused");
    assert!(read > 0 && gaps > 0, "the mutations must hit records");
}

#[test]
fn progress_round_trips_through_a_position() {
    let p = Progress {
        last_record_id: 41,
        late: 2,
        unreadable: 1,
        file: "C:\\logs\\Security \"copy\".evtx".into(),
    };
    assert_eq!(Progress::from_position(41, &p.token()), p);
    assert_eq!(
        Progress::from_position(7, "not json"),
        Progress {
            last_record_id: 7,
            ..Progress::default()
        }
    );
}
