//! Cursors: commit order, persisted resume, the commit watch, retention and damage.

use std::time::Duration;

use super::{Spec, block, config, open};
use crate::{
    CommitWatch, Cursor, CursorItem, CursorPos, Store, StoreConfig, backlog, position_since,
    save_cursor,
};

fn seqs(cursor: &mut Cursor) -> (Vec<u64>, Vec<String>) {
    let mut seqs = Vec::new();
    let mut skipped = Vec::new();
    while let Some(item) = cursor.read_next().unwrap() {
        match item {
            CursorItem::Block(b) => seqs.push(b.first_seq),
            CursorItem::Skipped(s) => skipped.push(s.reason),
        }
    }
    (seqs, skipped)
}

fn append(store: &mut Store, first_seq: u64) {
    store
        .append(block(&Spec {
            first_seq,
            count: 1,
            ..Spec::default()
        }))
        .unwrap();
}

#[test]
fn reads_in_commit_order_and_resumes_exactly_after_commit() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    for s in 1..=5 {
        append(&mut store, s);
    }
    store.sync().unwrap();
    let mut c = Cursor::open(dir.path(), "normalizer", None).unwrap();
    assert_eq!(
        c.read_next()
            .unwrap()
            .map(|i| matches!(i, CursorItem::Block(_))),
        Some(true)
    );
    assert_eq!(
        c.read_next()
            .unwrap()
            .map(|i| matches!(i, CursorItem::Block(_))),
        Some(true)
    );
    c.commit().unwrap();
    // Read one more without committing: a crash here sees it again.
    c.read_next().unwrap().unwrap();
    drop(c);
    let mut c = Cursor::open(dir.path(), "normalizer", None).unwrap();
    assert_eq!(seqs(&mut c), (vec![3, 4, 5], vec![]));
    c.commit().unwrap();
    // Another consumer has its own place.
    let mut other = Cursor::open(dir.path(), "forward.soc", None).unwrap();
    assert_eq!(seqs(&mut other).0, vec![1, 2, 3, 4, 5]);
    // New blocks appear to a caught-up cursor.
    append(&mut store, 6);
    store.sync().unwrap();
    assert_eq!(seqs(&mut c).0, vec![6]);
    assert_eq!(backlog(dir.path(), c.position()).unwrap().records, 0);
    assert_eq!(backlog(dir.path(), other.position()).unwrap().records, 1);
}

#[test]
fn a_watched_cursor_reads_only_committed_blocks_and_wakes_on_commit() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    let watch = CommitWatch::new();
    let mut c = Cursor::open(dir.path(), "n", Some(watch.clone())).unwrap();
    append(&mut store, 1);
    // Written but not fsync'd: invisible.
    assert!(c.read_next().unwrap().is_none());
    store.sync().unwrap();
    watch.publish(store.committed());
    assert_eq!(seqs(&mut c).0, vec![1]);
    let waker = {
        let watch = watch.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            append(&mut store, 2);
            store.sync().unwrap();
            watch.publish(store.committed());
            store
        })
    };
    let started = std::time::Instant::now();
    c.wait(Duration::from_secs(30));
    assert!(started.elapsed() < Duration::from_secs(30), "never woken");
    let _store = waker.join().unwrap();
    assert_eq!(seqs(&mut c).0, vec![2]);
}

#[test]
fn follows_rolled_segments_and_reports_removed_ones() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = StoreConfig {
        segment_max_bytes: 1, // every block in its own segment
        ..config(dir.path())
    };
    let (mut store, _) = Store::open(cfg).unwrap();
    for s in 1..=4 {
        append(&mut store, s);
    }
    store.sync().unwrap();
    let mut c = Cursor::open(dir.path(), "fwd", None).unwrap();
    let CursorItem::Block(first) = c.read_next().unwrap().unwrap() else {
        panic!("expected a block")
    };
    assert_eq!(first.first_seq, 1);
    c.commit().unwrap();
    // Retention removes segments 1 and 2 (seqs 2 and 3) before the consumer read them.
    let segs = crate::segment::list_segments(dir.path()).unwrap();
    for s in &segs[1..3] {
        std::fs::remove_file(&s.path).unwrap();
    }
    let mut c = Cursor::open(dir.path(), "fwd", None).unwrap();
    let (got, skipped) = seqs(&mut c);
    assert_eq!(got, vec![4]);
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    assert!(skipped[0].contains("removed"), "{skipped:?}");
    // A consumer that never read starts at the oldest remaining segment, quietly.
    std::fs::remove_file(&segs[0].path).unwrap();
    let mut fresh = Cursor::open(dir.path(), "fresh", None).unwrap();
    assert_eq!(seqs(&mut fresh), (vec![4], vec![]));
}

#[test]
fn a_damaged_block_is_stepped_over_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    for s in 1..=3 {
        append(&mut store, s);
    }
    store.sync().unwrap();
    let mut c = Cursor::open(dir.path(), "n", None).unwrap();
    let mut places = Vec::new();
    while let Some(CursorItem::Block(b)) = c.read_next().unwrap() {
        places.push((b.at, b.next));
    }
    drop(store);
    let seg = crate::segment::list_segments(dir.path()).unwrap()[0]
        .path
        .clone();
    let mut bytes = std::fs::read(&seg).unwrap();
    let (at, next) = places[1];
    bytes[((at.offset + next.offset) / 2) as usize] ^= 0xff;
    std::fs::write(&seg, bytes).unwrap();
    let mut c = Cursor::open(dir.path(), "other", None).unwrap();
    let (got, skipped) = seqs(&mut c);
    assert_eq!(got, vec![1, 3]);
    assert_eq!(skipped.len(), 1);
}

#[test]
fn replay_moves_back_by_time_and_a_stale_position_is_recovered() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    for (s, t) in [(1, 100), (2, 200), (3, 300)] {
        store
            .append(block(&Spec {
                first_seq: s,
                count: 1,
                t0: t,
                ..Spec::default()
            }))
            .unwrap();
    }
    store.sync().unwrap();
    let mut c = Cursor::open(dir.path(), "soc", None).unwrap();
    seqs(&mut c);
    c.commit().unwrap();
    drop(c);
    let pos = position_since(dir.path(), 150).unwrap();
    save_cursor(dir.path(), "soc", pos).unwrap();
    let mut c = Cursor::open(dir.path(), "soc", None).unwrap();
    assert_eq!(seqs(&mut c).0, vec![2, 3]);
    // The cursor file is one checksummed line.
    let end = c.position();
    drop(c);
    save_cursor(
        dir.path(),
        "mid",
        CursorPos {
            offset: end.offset - 7,
            ..end
        },
    )
    .unwrap();
    let text = std::fs::read_to_string(crate::cursor_path(dir.path(), "mid")).unwrap();
    assert!(text.starts_with("logship-cursor 1 "));
    // A damaged cursor file is set aside (kept) and its consumer starts from the oldest block.
    std::fs::write(
        crate::cursor_path(dir.path(), "bad"),
        "logship-cursor 1 segment=0\n",
    )
    .unwrap();
    assert!(crate::load_cursor(dir.path(), "bad").is_err());
    let mut bad = Cursor::open(dir.path(), "bad", None).unwrap();
    assert_eq!(seqs(&mut bad).0, vec![1, 2, 3]);
    let aside = std::fs::read_dir(dir.path().join(crate::CURSORS_DIR))
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            name.to_string_lossy().starts_with("bad.cur.damaged-")
        })
        .count();
    assert_eq!(aside, 1);
    assert!(Cursor::open(dir.path(), "../x", None).is_err());
}

#[test]
fn a_watched_cursor_follows_the_writer_across_segment_rolls() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = StoreConfig {
        segment_max_bytes: 1,
        ..config(dir.path())
    };
    let (mut store, _) = Store::open(cfg).unwrap();
    let watch = CommitWatch::new();
    let mut c = Cursor::open(dir.path(), "n", Some(watch.clone())).unwrap();
    for s in 1..=3 {
        append(&mut store, s);
        // Rolled to a new segment but not yet committed there: not visible.
        assert_eq!(seqs(&mut c).0, Vec::<u64>::new());
        store.sync().unwrap();
        watch.publish(store.committed());
        c.wait(Duration::from_secs(5));
        assert_eq!(seqs(&mut c).0, vec![s]);
    }
}
