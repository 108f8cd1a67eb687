//! A search running while the writer appends sees a consistent prefix of the store.

use super::*;

const BLOCKS: u64 = 120;
const PER_BLOCK: u32 = 5;

#[test]
fn search_while_writing_sees_a_consistent_prefix() {
    let dir = tempfile::tempdir().unwrap();
    // Small segments so the reader also races segment rolls.
    let cfg = StoreConfig {
        segment_max_bytes: 4096,
        ..config(dir.path())
    };
    let (mut store, _) = Store::open(cfg).unwrap();
    let writer = std::thread::spawn(move || {
        for b in 0..BLOCKS {
            let first_seq = 1 + u64::from(PER_BLOCK) * b;
            store
                .append(block(&Spec {
                    first_seq,
                    count: PER_BLOCK,
                    ..Spec::default()
                }))
                .unwrap();
            if b % 3 == 0 {
                store.sync().unwrap();
            }
        }
        store.sync().unwrap();
        store.stats()
    });
    let total = BLOCKS * u64::from(PER_BLOCK);
    let mut last_seen = 0;
    loop {
        let done = writer.is_finished();
        let (hits, stats) = collect(dir.path(), &Query::default());
        assert!(stats.corrupt.is_empty(), "{:?}", stats.corrupt);
        let n = hits.len() as u64;
        assert_eq!(
            seqs(&hits),
            (1..=n).collect::<Vec<_>>(),
            "a prefix, in order"
        );
        assert_eq!(n % u64::from(PER_BLOCK), 0, "whole blocks only");
        assert!(n >= last_seen, "never goes backwards");
        last_seen = n;
        if done {
            assert_eq!(n, total, "after the writer finished, everything is visible");
            break;
        }
    }
    let stats = writer.join().unwrap();
    assert_eq!(stats.records, total);
    assert!(stats.segments > 1);
    assert!(crate::verify(dir.path()).unwrap().is_ok());
}
