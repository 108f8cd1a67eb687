//! The read path: locate a durable batch in the in-memory index and read it by offset with a
//! positional read outside the lock; damage found here quarantines the segment.

use std::fs::File;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use tracing::error;

use crate::io::{quarantine, read_exact_at};
use crate::record::{FRAME_PREFIX, parse_prefix};
use crate::spool::Core;
use crate::{LostRange, SpoolError, StoredBatch};

/// What to read, copied out of the index so the lock is not held during IO.
struct ReadPlan {
    file: Arc<File>,
    path: PathBuf,
    segment_first_seq: u64,
    offset: u64,
    frame_len: u64,
    meta_len: u32,
    first_seq: u64,
    count: u32,
    uncompressed_len: u64,
}

enum ReadError {
    Io(SpoolError),
    Damaged(String),
}

impl Core {
    pub(crate) fn read_from(&self, seq: u64) -> Result<Option<StoredBatch>, SpoolError> {
        loop {
            let Some(plan) = self.plan_read(seq) else {
                return Ok(None);
            };
            match read_record(&plan) {
                Ok(batch) => return Ok(Some(batch)),
                Err(ReadError::Io(e)) => return Err(e),
                Err(ReadError::Damaged(reason)) => self.quarantine_live(&plan, reason),
            }
        }
    }

    fn plan_read(&self, seq: u64) -> Option<ReadPlan> {
        let st = self.lock();
        let seq = seq.max(st.acked_through.saturating_add(1));
        let (si, ri) = st.locate(seq)?;
        let seg = &st.segments[si];
        let rec = &seg.records[ri];
        if rec.end_seq() > st.durable_next_seq {
            return None;
        }
        Some(ReadPlan {
            file: Arc::clone(&seg.file),
            path: seg.path.clone(),
            segment_first_seq: seg.first_seq,
            offset: rec.offset,
            frame_len: rec.frame_len,
            meta_len: rec.meta_len,
            first_seq: rec.first_seq,
            count: rec.count,
            uncompressed_len: rec.uncompressed_len,
        })
    }

    /// Moves a segment found damaged while running to quarantine and drops it from the index.
    fn quarantine_live(&self, plan: &ReadPlan, reason: String) {
        let mut st = self.lock();
        let Some(idx) = st
            .segments
            .iter()
            .position(|s| s.first_seq == plan.segment_first_seq)
        else {
            return; // another reader already did it
        };
        let seg = st.segments.remove(idx).expect("index from position");
        st.bytes -= seg.len;
        let segment = quarantine(&self.config.dir, &seg.path);
        let last_seq = seg.end_seq().saturating_sub(1).max(seg.first_seq);
        error!(path = %seg.path.display(), quarantined = %segment.display(), first_seq = seg.first_seq,
            last_seq, %reason, "Spool segment damaged; quarantined.");
        st.lost.push(LostRange {
            first_seq: seg.first_seq,
            last_seq,
            segment,
            reason,
        });
        st.quarantined_segments += 1;
        drop(st);
        self.space_cv.notify_all();
    }
}

/// Reads one record: its head into a small buffer, its payload straight into the returned `Vec`.
fn read_record(plan: &ReadPlan) -> Result<StoredBatch, ReadError> {
    let head_len = FRAME_PREFIX + plan.meta_len as usize;
    let payload_len = usize::try_from(plan.frame_len).expect("frames fit in memory") - head_len;
    let mut head = vec![0u8; head_len];
    let mut payload = vec![0u8; payload_len];
    let read = |buf: &mut [u8], at: u64| {
        read_exact_at(&plan.file, buf, at).map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => {
                ReadError::Damaged("segment shorter than its index".into())
            }
            _ => ReadError::Io(SpoolError::Io {
                op: "read segment",
                path: plan.path.clone(),
                source: e,
            }),
        })
    };
    read(&mut head, plan.offset)?;
    read(&mut payload, plan.offset + head_len as u64)?;
    let (len, crc) = parse_prefix(head[..FRAME_PREFIX].try_into().expect("prefix length"));
    if u64::from(len) + FRAME_PREFIX as u64 != plan.frame_len {
        return Err(ReadError::Damaged("record length changed on disk".into()));
    }
    if crc32c::crc32c_append(crc32c::crc32c(&head[FRAME_PREFIX..]), &payload) != crc {
        return Err(ReadError::Damaged("record crc mismatch on read".into()));
    }
    let seq = u64::from_le_bytes(
        head[FRAME_PREFIX..FRAME_PREFIX + 8]
            .try_into()
            .expect("8 bytes"),
    );
    if seq != plan.first_seq {
        return Err(ReadError::Damaged("record seq changed on disk".into()));
    }
    Ok(StoredBatch {
        first_seq: plan.first_seq,
        count: plan.count,
        uncompressed_len: plan.uncompressed_len,
        payload,
    })
}
