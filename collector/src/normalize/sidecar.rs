//! Fields sidecar files: the precomputed fields columns of one agent stream.
//!
//! ```text
//! data_dir/fields/<agent>/<stream_id>.fld
//! file   := magic "LSFLD001" record*
//! record := first_seq u64 | count u32 | len u32 | crc32c(first_seq | count | len | body) u32 | body
//! body   := zstd JSON lines, `count` objects, record order        (integers little-endian)
//! ```
//!
//! Invariants: one writer (the worker thread); records are appended in seq order; readers stop at
//! the first record that is incomplete or fails its CRC (everything after it is recomputed at
//! search time); the writer cuts such a tail when it reopens the file. Sidecars are derived data;
//! the worker fsyncs them ([`Writer::sync`]) before its store cursor commits past their blocks,
//! and never appends a block the sidecar already covers ([`Writer::covered`]).

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"LSFLD001";
const HEAD: usize = 20;
/// Open append handles kept at once; more are closed and reopened as needed.
const MAX_OPEN: usize = 256;

/// Index entry of one column in a sidecar.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Entry {
    pub(crate) first_seq: u64,
    pub(crate) count: u32,
    pub(crate) offset: u64,
    pub(crate) len: u32,
}

/// Path of the sidecar of (agent, stream).
pub(crate) fn path(dir: &Path, agent: &str, stream_id: &str) -> PathBuf {
    dir.join(agent).join(format!("{stream_id}.fld"))
}

/// Reads the index of a sidecar: every complete, checksummed record, and where valid data ends.
pub(crate) fn scan(file: &mut File) -> std::io::Result<(Vec<Entry>, u64)> {
    let mut data = Vec::new();
    file.seek(SeekFrom::Start(0))?;
    file.read_to_end(&mut data)?;
    let mut entries = Vec::new();
    if data.len() < MAGIC.len() || &data[..MAGIC.len()] != MAGIC {
        return Ok((entries, 0));
    }
    let mut at = MAGIC.len();
    while let Some(e) = parse_record(&data, at) {
        entries.push(e);
        at = e.offset as usize + e.len as usize;
    }
    // Catch-up appends deferred blocks after newer ones: readers search by seq.
    entries.sort_by_key(|e| e.first_seq);
    Ok((entries, at as u64))
}

fn parse_record(data: &[u8], at: usize) -> Option<Entry> {
    let head = data.get(at..at + HEAD)?;
    let first_seq = u64::from_le_bytes(head[0..8].try_into().ok()?);
    let count = u32::from_le_bytes(head[8..12].try_into().ok()?);
    let len = u32::from_le_bytes(head[12..16].try_into().ok()?);
    let crc = u32::from_le_bytes(head[16..20].try_into().ok()?);
    let body = data.get(at + HEAD..at + HEAD + len as usize)?;
    let sum = crc32c::crc32c_append(crc32c::crc32c(&head[..16]), body);
    (sum == crc).then_some(Entry {
        first_seq,
        count,
        offset: (at + HEAD) as u64,
        len,
    })
}

/// Appends columns to sidecars, keeping a bounded set of open handles.
pub(crate) struct Writer {
    dir: PathBuf,
    /// Open handle and highest seq its sidecar covers, per (agent, stream).
    open: HashMap<(String, String), (File, u64)>,
    frame: Vec<u8>,
}

impl Writer {
    pub(crate) fn new(dir: PathBuf) -> Self {
        Writer {
            dir,
            open: HashMap::new(),
            frame: Vec::new(),
        }
    }

    /// Highest seq the sidecar of (agent, stream) already holds a column for (0: none); a
    /// block at or below it was normalized before a restart and is not parsed again.
    pub(crate) fn covered(&mut self, agent: &str, stream_id: &str) -> std::io::Result<u64> {
        Ok(self.handle(agent, stream_id)?.1)
    }

    /// fsyncs every open sidecar (before the normalizer's cursor commits past their blocks).
    pub(crate) fn sync(&mut self) -> std::io::Result<()> {
        for (file, _) in self.open.values() {
            file.sync_data()?;
        }
        Ok(())
    }

    fn handle(&mut self, agent: &str, stream_id: &str) -> std::io::Result<&mut (File, u64)> {
        let key = (agent.to_string(), stream_id.to_string());
        if !self.open.contains_key(&key) {
            if self.open.len() >= MAX_OPEN {
                self.sync()?;
                self.open.clear();
            }
            let opened = self.open_for_append(agent, stream_id)?;
            self.open.insert(key.clone(), opened);
        }
        Ok(self.open.get_mut(&key).expect("inserted above"))
    }

    /// Appends the column of records `first_seq .. first_seq + count`.
    pub(crate) fn append(
        &mut self,
        agent: &str,
        stream_id: &str,
        first_seq: u64,
        count: u32,
        column: &[u8],
    ) -> std::io::Result<()> {
        let len = u32::try_from(column.len()).map_err(std::io::Error::other)?;
        self.frame.clear();
        self.frame.extend_from_slice(&first_seq.to_le_bytes());
        self.frame.extend_from_slice(&count.to_le_bytes());
        self.frame.extend_from_slice(&len.to_le_bytes());
        let crc = crc32c::crc32c_append(crc32c::crc32c(&self.frame), column);
        self.frame.extend_from_slice(&crc.to_le_bytes());
        self.frame.extend_from_slice(column);
        let frame = std::mem::take(&mut self.frame);
        let handle = self.handle(agent, stream_id);
        let written = handle.and_then(|(file, covered)| {
            file.write_all(&frame)?;
            *covered = (*covered).max(first_seq + u64::from(count).saturating_sub(1));
            Ok(())
        });
        self.frame = frame;
        written
    }

    fn open_for_append(&self, agent: &str, stream_id: &str) -> std::io::Result<(File, u64)> {
        let path = path(&self.dir, agent, stream_id);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)?;
        let (entries, end) = scan(&mut file)?;
        let covered = entries
            .iter()
            .map(|e| e.first_seq + u64::from(e.count).saturating_sub(1))
            .max()
            .unwrap_or(0);
        if end == 0 {
            file.set_len(0)?;
            file.seek(SeekFrom::Start(0))?;
            file.write_all(MAGIC)?;
        } else {
            file.set_len(end)?;
            file.seek(SeekFrom::Start(end))?;
        }
        Ok((file, covered))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_are_indexed_and_a_torn_tail_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = Writer::new(dir.path().to_path_buf());
        w.append("a", "s", 1, 2, b"col-1").unwrap();
        w.append("a", "s", 3, 1, b"col-2").unwrap();
        drop(w);
        let p = path(dir.path(), "a", "s");
        let (entries, end) = scan(&mut File::open(&p).unwrap()).unwrap();
        assert_eq!(
            entries
                .iter()
                .map(|e| (e.first_seq, e.count))
                .collect::<Vec<_>>(),
            [(1, 2), (3, 1)]
        );
        assert_eq!(end, std::fs::metadata(&p).unwrap().len());
        // A torn record at the end is ignored by readers and cut by the next writer.
        let mut f = OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(&[7u8; 11]).unwrap();
        let (entries, _) = scan(&mut File::open(&p).unwrap()).unwrap();
        assert_eq!(entries.len(), 2);
        let mut w = Writer::new(dir.path().to_path_buf());
        w.append("a", "s", 4, 1, b"col-3").unwrap();
        drop(w);
        let (entries, end) = scan(&mut File::open(&p).unwrap()).unwrap();
        assert_eq!(entries.len(), 3);
        assert_eq!(end, std::fs::metadata(&p).unwrap().len());
    }

    #[test]
    fn a_flipped_byte_stops_the_index_there() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = Writer::new(dir.path().to_path_buf());
        for i in 0..3 {
            w.append("a", "s", 1 + i, 1, b"column").unwrap();
        }
        drop(w);
        let p = path(dir.path(), "a", "s");
        let mut bytes = std::fs::read(&p).unwrap();
        let second = MAGIC.len() + HEAD + 6 + HEAD + 2;
        bytes[second] ^= 0xff;
        std::fs::write(&p, bytes).unwrap();
        let (entries, _) = scan(&mut File::open(&p).unwrap()).unwrap();
        assert_eq!(entries.len(), 1);
    }
}
