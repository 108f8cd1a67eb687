//! Model test: random appends, acks, reads, syncs and reopens (crash = drop without close, or a
//! clean close) compared with an in-memory model of what the spool must hold.

use std::collections::BTreeMap;
use std::path::Path;

use proptest::prelude::*;

use super::*;
use crate::Position;

#[derive(Clone, Debug)]
enum Op {
    Append {
        count: u32,
        len: usize,
        pos: Option<(u8, bool)>,
    },
    /// Ack `acked_through + n` (may run past the end).
    Ack(u64),
    /// Read from `seq % (next_seq + 2)`.
    Read(u64),
    Sync,
    Crash,
    CloseReopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (0u32..4, 0usize..300, proptest::option::of((0u8..3, any::<bool>())))
            .prop_map(|(count, len, pos)| Op::Append { count, len, pos }),
        2 => (0u64..8).prop_map(Op::Ack),
        3 => any::<u64>().prop_map(Op::Read),
        1 => Just(Op::Sync),
        1 => Just(Op::Crash),
        1 => Just(Op::CloseReopen),
    ]
}

struct ModelBatch {
    first_seq: u64,
    count: u32,
    payload: Vec<u8>,
}

impl ModelBatch {
    fn end(&self) -> u64 {
        self.first_seq + u64::from(self.count)
    }
}

#[derive(Default)]
struct Model {
    batches: Vec<ModelBatch>,
    next_seq: u64,
    durable: u64,
    acked: u64,
    positions: BTreeMap<String, Position>,
}

impl Model {
    fn expected_read(&self, seq: u64) -> Option<&ModelBatch> {
        let seq = seq.max(self.acked + 1);
        let b = self.batches.iter().find(|b| b.count > 0 && b.end() > seq)?;
        (b.end() <= self.durable).then_some(b)
    }

    fn positions(&self) -> Vec<Position> {
        self.positions.values().cloned().collect()
    }
}

struct Harness {
    cfg: SpoolConfig,
    spool: Option<Spool>,
    stream_id: String,
    model: Model,
}

impl Harness {
    fn new(dir: &Path) -> Harness {
        let cfg = SpoolConfig {
            dir: dir.to_path_buf(),
            max_bytes: 1 << 24,
            segment_max_bytes: 700,
            fsync_interval_ms: 3_600_000, // durability comes only from Sync, close and reopen
            fsync_bytes: 0,
        };
        let (spool, rec) = open(&cfg);
        let model = Model {
            next_seq: 1,
            durable: 1,
            ..Model::default()
        };
        Harness {
            cfg,
            spool: Some(spool),
            stream_id: rec.stream_id,
            model,
        }
    }

    fn spool(&self) -> &Spool {
        self.spool.as_ref().expect("open")
    }

    fn apply(&mut self, op: Op, step: usize) -> Result<(), TestCaseError> {
        match op {
            Op::Append { count, len, pos: p } => self.append(count, len, p, step)?,
            Op::Ack(n) => {
                let through = self.model.acked + n;
                self.spool().ack(through).expect("ack");
                self.model.acked = self.model.acked.max(through.min(self.model.next_seq - 1));
            }
            Op::Read(seq) => {
                let seq = seq % (self.model.next_seq + 2);
                let got = self.spool().read_from(seq).expect("read");
                let want = self.model.expected_read(seq);
                prop_assert_eq!(got.as_ref().map(|b| b.first_seq), want.map(|b| b.first_seq));
                if let (Some(got), Some(want)) = (got, want) {
                    prop_assert_eq!(got.count, want.count);
                    prop_assert_eq!(&got.payload, &want.payload);
                }
            }
            Op::Sync => {
                self.spool().sync().expect("sync");
                self.model.durable = self.model.next_seq;
            }
            Op::Crash => self.reopen(false)?,
            Op::CloseReopen => self.reopen(true)?,
        }
        self.check_invariants()
    }

    fn append(
        &mut self,
        count: u32,
        len: usize,
        p: Option<(u8, bool)>,
        step: usize,
    ) -> Result<(), TestCaseError> {
        let positions: Vec<Position> = p
            .map(|(k, forget)| {
                pos(
                    &format!("k{k}"),
                    if forget {
                        Position::FORGET
                    } else {
                        step as u64
                    },
                )
            })
            .into_iter()
            .collect();
        let data = payload(step as u64, len);
        let seq = self
            .spool()
            .append(batch(count, &data, positions.clone()))
            .expect("append");
        prop_assert_eq!(seq, self.model.next_seq);
        for p in positions {
            if p.offset == Position::FORGET {
                self.model.positions.remove(&p.key);
            } else {
                self.model.positions.insert(p.key.clone(), p);
            }
        }
        self.model.batches.push(ModelBatch {
            first_seq: seq,
            count,
            payload: data,
        });
        self.model.next_seq += u64::from(count);
        Ok(())
    }

    fn reopen(&mut self, close: bool) -> Result<(), TestCaseError> {
        let spool = self.spool.take().expect("open");
        if close {
            spool.close();
        }
        drop(spool);
        let (spool, rec) = open(&self.cfg);
        prop_assert!(rec.lost.is_empty(), "{:?}", rec.lost);
        prop_assert!(!rec.first_run);
        prop_assert_eq!(&rec.stream_id, &self.stream_id);
        prop_assert_eq!(rec.next_seq, self.model.next_seq);
        prop_assert!(rec.acked_through <= self.model.acked);
        prop_assert_eq!(rec.positions, self.model.positions());
        // The ledger is only written when segments are deleted: re-ack what the model acked.
        spool.ack(self.model.acked).expect("ack");
        self.model.durable = self.model.next_seq;
        self.spool = Some(spool);
        Ok(())
    }

    fn check_invariants(&self) -> Result<(), TestCaseError> {
        let stats = self.spool().stats();
        prop_assert_eq!(stats.next_seq, self.model.next_seq);
        prop_assert_eq!(stats.acked_through, self.model.acked);
        prop_assert_eq!(stats.durable_next_seq, self.model.durable);
        prop_assert_eq!(stats.bytes, segment_bytes_on_disk(&self.cfg.dir));
        let unacked: u64 = self
            .model
            .batches
            .iter()
            .filter(|b| b.end() > self.model.acked + 1)
            .map(|b| u64::from(b.count))
            .sum();
        prop_assert!(
            stats.records >= unacked,
            "unacked records are still on disk"
        );
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn spool_matches_model(ops in proptest::collection::vec(op(), 1..60)) {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut h = Harness::new(dir.path());
        for (step, op) in ops.into_iter().enumerate() {
            h.apply(op, step + 1)?;
        }
    }
}
