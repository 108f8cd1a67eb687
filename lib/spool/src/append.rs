//! The append path: wait for space, assign seqs, roll segments, write one pre-framed buffer.

use std::fs::OpenOptions;
use std::io::Write;
use std::sync::{Arc, MutexGuard, PoisonError};
use std::time::Instant;

use tracing::{debug, error};

use crate::io::segment_path;
use crate::record::{Frame, HEADER_LEN, header_bytes};
use crate::spool::Core;
use crate::state::{RecordMeta, Segment, State};
use crate::{NewBatch, SpoolError};

impl Core {
    pub(crate) fn append(&self, batch: &NewBatch) -> Result<u64, SpoolError> {
        let mut frame = Frame::encode(batch)?;
        let limit = self.config.max_bytes;
        if frame.len() + HEADER_LEN > limit {
            return Err(SpoolError::BatchTooLarge {
                frame_bytes: frame.len(),
                limit,
            });
        }
        let mut st = self.wait_for_space(frame.len())?;
        let first_seq = st.next_seq;
        frame.seal(first_seq);
        self.write_frame(&mut st, frame)?;
        drop(st);
        if self.config.fsync_interval_ms == 0 {
            self.sync()?;
        } else {
            // The fsync thread checks the interval and byte triggers itself.
            self.sync_cv.notify_one();
        }
        Ok(first_seq)
    }

    /// Waits until a frame of `frame_len` bytes fits under `max_bytes`.
    fn wait_for_space(&self, frame_len: u64) -> Result<MutexGuard<'_, State>, SpoolError> {
        let mut st = self.lock();
        let mut blocked = false;
        loop {
            if st.closed {
                if blocked {
                    st.waiting_appends -= 1;
                }
                return Err(SpoolError::Closed);
            }
            let header = if self.needs_roll(&st, frame_len) {
                HEADER_LEN
            } else {
                0
            };
            if st.bytes + frame_len + header <= self.config.max_bytes {
                if blocked {
                    st.waiting_appends -= 1;
                }
                return Ok(st);
            }
            if !blocked {
                blocked = true;
                st.blocked_appends += 1;
                st.waiting_appends += 1;
                debug!(
                    bytes = st.bytes,
                    frame_len, "Spool full; append waiting for acks."
                );
            }
            st = self
                .space_cv
                .wait(st)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// A new segment is needed: none is writable, or the writable one holds seqs and would grow
    /// past `segment_max_bytes`. (A segment holding no seq is never rolled: the new one would
    /// need the same name.)
    fn needs_roll(&self, st: &State, frame_len: u64) -> bool {
        st.writer().is_none_or(|w| {
            w.end_seq() > w.first_seq && w.len + frame_len > self.config.segment_max_bytes
        })
    }

    fn write_frame(&self, st: &mut State, frame: Frame) -> Result<(), SpoolError> {
        if self.needs_roll(st, frame.len()) {
            self.roll(st)?;
        }
        let seg = st
            .segments
            .back_mut()
            .expect("roll leaves a writable segment");
        let offset = seg.len;
        if let Err(source) = (&*seg.file).write_all(&frame.buf) {
            // Cut the partial record so later appends do not land after garbage.
            let path = seg.path.clone();
            if let Err(error) = seg.file.set_len(offset) {
                error!(path = %path.display(), %error, "Cannot cut a failed spool append; closing the segment.");
                seg.writable = false;
                // Its earlier records still need the next fsync round.
                let file = Arc::clone(&seg.file);
                st.pending_sync.push(file);
            }
            return Err(SpoolError::Io {
                op: "append",
                path,
                source,
            });
        }
        let len = frame.len();
        seg.len += len;
        seg.records.push(RecordMeta {
            offset,
            frame_len: len,
            meta_len: frame.meta_len,
            first_seq: st.next_seq,
            count: frame.count,
            uncompressed_len: frame.uncompressed_len,
            positions: frame.positions,
        });
        st.bytes += len;
        st.next_seq += u64::from(frame.count);
        st.unsynced_bytes += len;
        st.dirty_since.get_or_insert_with(Instant::now);
        Ok(())
    }

    /// Starts a segment named `next_seq`; the previous one is left for the next fsync round.
    fn roll(&self, st: &mut State) -> Result<(), SpoolError> {
        let path = segment_path(&self.config.dir, st.next_seq);
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create_new(true)
            .open(&path)
            .map_err(SpoolError::io("create segment", &path))?;
        if let Err(source) = file.write_all(&header_bytes()) {
            drop(file);
            if let Err(error) = std::fs::remove_file(&path) {
                error!(path = %path.display(), %error, "Cannot remove a half-created spool segment.");
            }
            return Err(SpoolError::Io {
                op: "write segment header",
                path,
                source,
            });
        }
        if let Some(old) = st.segments.back_mut() {
            old.writable = false;
            st.pending_sync.push(Arc::clone(&old.file));
        }
        st.segments.push_back(Segment {
            first_seq: st.next_seq,
            path,
            len: HEADER_LEN,
            records: Vec::new(),
            file: Arc::new(file),
            writable: true,
        });
        st.bytes += HEADER_LEN;
        st.unsynced_bytes += HEADER_LEN;
        st.dir_dirty = true;
        st.dirty_since.get_or_insert_with(Instant::now);
        Ok(())
    }
}
