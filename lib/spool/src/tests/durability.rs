//! The fsync policy: `durable_next_seq` moves only after fsync; interval and byte triggers.

use std::thread;
use std::time::Duration;

use super::*;

const HOUR_MS: u64 = 3_600_000;

#[test]
fn nothing_is_durable_or_readable_before_fsync() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = config(dir.path());
    cfg.fsync_interval_ms = HOUR_MS; // the background thread will not fire during the test
    let (spool, _) = open(&cfg);
    spool.append(batch(4, b"pending", vec![])).expect("append");
    assert_eq!(spool.durable_next_seq(), 1);
    assert!(
        spool.read_from(1).expect("read").is_none(),
        "not durable, not shippable"
    );
    assert_eq!(
        spool.wait_durable_past(1, Duration::from_millis(20)),
        1,
        "times out"
    );
    spool.sync().expect("sync");
    assert_eq!(spool.durable_next_seq(), 5);
    assert_eq!(
        spool.read_from(1).expect("read").expect("batch").payload,
        b"pending"
    );
    assert_eq!(spool.stats().durable_next_seq, 5);
}

#[test]
fn the_interval_makes_appends_durable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = config(dir.path());
    cfg.fsync_interval_ms = 10;
    let (spool, _) = open(&cfg);
    let seq = spool.append(batch(3, b"soon", vec![])).expect("append");
    assert_eq!(spool.wait_durable_past(seq, Duration::from_secs(30)), 4);
    assert!(spool.read_from(seq).expect("read").is_some());
}

#[test]
fn sync_soon_fsyncs_before_the_interval_and_only_what_was_appended() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = config(dir.path());
    cfg.fsync_interval_ms = HOUR_MS;
    let (spool, _) = open(&cfg);
    spool.sync_soon(); // nothing unsynced: no request is left behind
    let seq = spool
        .append(batch(2, b"burst end", vec![]))
        .expect("append");
    assert_eq!(
        spool.wait_durable_past(seq, Duration::from_millis(50)),
        seq,
        "the interval alone would wait an hour"
    );
    spool.sync_soon();
    assert_eq!(spool.wait_durable_past(seq, Duration::from_secs(30)), 3);
    assert!(spool.read_from(seq).expect("read").is_some());
    // The request was used up: the next append waits for the interval again.
    let next = spool.append(batch(1, b"trickle", vec![])).expect("append");
    assert_eq!(
        spool.wait_durable_past(next, Duration::from_millis(50)),
        next
    );
}

#[test]
fn the_byte_trigger_fsyncs_before_the_interval() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = config(dir.path());
    cfg.fsync_interval_ms = HOUR_MS;
    cfg.fsync_bytes = 500;
    let (spool, _) = open(&cfg);
    let small = spool.append(batch(1, b"small", vec![])).expect("append");
    let big = spool
        .append(batch(1, &payload(1, 600), vec![]))
        .expect("append");
    assert_eq!(spool.wait_durable_past(big, Duration::from_secs(30)), 3);
    assert!(spool.read_from(small).expect("read").is_some());
}

#[test]
fn one_fsync_covers_many_appends() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = config(dir.path());
    cfg.fsync_interval_ms = HOUR_MS;
    cfg.segment_max_bytes = 1; // every append rolls: the fsync must cover closed segments too
    let (spool, _) = open(&cfg);
    for i in 0..10 {
        spool
            .append(batch(1, &payload(i, 10), vec![]))
            .expect("append");
    }
    assert_eq!(spool.durable_next_seq(), 1);
    spool.sync().expect("sync");
    assert_eq!(spool.durable_next_seq(), 11);
    assert_eq!(read_all(&spool, 1).len(), 10);
}

#[test]
fn wait_durable_past_wakes_on_another_threads_sync() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = config(dir.path());
    cfg.fsync_interval_ms = HOUR_MS;
    let (spool, _) = open(&cfg);
    let waiter = {
        let spool = spool.clone();
        thread::spawn(move || spool.wait_durable_past(1, Duration::from_secs(60)))
    };
    spool.append(batch(2, b"x", vec![])).expect("append");
    spool.sync().expect("sync");
    assert_eq!(waiter.join().expect("thread"), 3);
}

#[test]
fn close_syncs_and_wakes_waiters() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = config(dir.path());
    cfg.fsync_interval_ms = HOUR_MS;
    let (spool, _) = open(&cfg);
    let waiter = {
        let spool = spool.clone();
        thread::spawn(move || spool.wait_durable_past(100, Duration::from_secs(60)))
    };
    spool.append(batch(2, b"x", vec![])).expect("append");
    spool.close();
    assert_eq!(
        waiter.join().expect("thread"),
        3,
        "woken by close, not the 60 s timeout"
    );
    assert_eq!(spool.durable_next_seq(), 3);
}
