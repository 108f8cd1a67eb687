//! Fields for search results: the block's inline column when it has one, else the precomputed
//! sidecar column, else the fields computed now with the same parsers (never "no fields" just
//! because precomputation lagged).
//!
//! Records normalized on the fly share one normalizer per agent stream, fed in store order;
//! stateful joins (postfix from/to) only see the records the search reads.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;

use logship_normalize::{Context, Normalizer, Origin};
use logship_store::RecordView;
use serde_json::{Map, Value};

use super::sidecar::{self, Entry};

/// Sets `agent.name` (ECS) to the verified agent identity.
fn with_agent<'m>(fields: &'m mut Map<String, Value>, agent: &str) -> &'m Map<String, Value> {
    if fields.get("agent.name").and_then(Value::as_str) != Some(agent) {
        fields.insert("agent.name".into(), Value::String(agent.to_string()));
    }
    fields
}

/// Cap on a column once decompressed.
const COLUMN_CAP: usize = 1 << 30;

type StreamKey = (String, String);

/// The parsed column of one block: its stream, first seq and one object per record.
struct Column {
    key: StreamKey,
    first_seq: u64,
    rows: Vec<Map<String, Value>>,
}

/// Finds or computes the fields of search results, one record at a time in store order.
pub struct FieldsLookup {
    dir: PathBuf,
    indexes: HashMap<StreamKey, Option<(File, Vec<Entry>)>>,
    /// The parsed column of the block last looked up: (key, first_seq, rows).
    column: Option<Column>,
    normalizers: HashMap<StreamKey, Normalizer>,
    computed: Map<String, Value>,
    scratch: Vec<u8>,
}

impl FieldsLookup {
    /// A lookup over the sidecars of `data_dir`.
    pub fn new(data_dir: &std::path::Path) -> Self {
        FieldsLookup {
            dir: super::fields_dir(data_dir),
            indexes: HashMap::new(),
            column: None,
            normalizers: HashMap::new(),
            computed: Map::new(),
            scratch: Vec::new(),
        }
    }

    /// The fields of `r`, or `None` for gap records and records that yield none. Every
    /// returned map holds `agent.name`: the certificate identity that stored the record, beside
    /// the `host.name` the record or its agent claims.
    pub fn fields<'a>(&'a mut self, r: &'a RecordView<'_>) -> Option<&'a Map<String, Value>> {
        if r.kind == 1 {
            return None;
        }
        if let Some(inline) = r.fields {
            self.computed = inline.clone();
            return Some(with_agent(&mut self.computed, r.agent));
        }
        let key = (r.agent.to_string(), r.stream_id.to_string());
        if self.load_column(&key, r.seq) {
            let c = self.column.as_mut().expect("loaded above");
            return c
                .rows
                .get_mut((r.seq - c.first_seq) as usize)
                .filter(|m| !m.is_empty())
                .map(|m| with_agent(m, r.agent));
        }
        let normalizer = self.normalizers.entry(key).or_default();
        let ctx = Context {
            host: r.host,
            input: r.input,
            path: r.path,
            agent_tz: if r.agent_tz.is_empty() {
                "UTC"
            } else {
                r.agent_tz
            },
            observed_unix_nanos: r.observed_ns,
        };
        let origin = Origin::from_journal(r.attributes, r.event_ns);
        self.computed = normalizer
            .normalize_from(r.raw, &ctx, origin.as_ref())
            .fields;
        Some(with_agent(&mut self.computed, r.agent))
    }

    /// Makes the column holding `seq` current; false when no sidecar column covers it.
    fn load_column(&mut self, key: &StreamKey, seq: u64) -> bool {
        if let Some(c) = &self.column
            && &c.key == key
            && seq >= c.first_seq
            && seq < c.first_seq + c.rows.len() as u64
        {
            return true;
        }
        let dir = &self.dir;
        let index = self.indexes.entry(key.clone()).or_insert_with(|| {
            let mut file = File::open(sidecar::path(dir, &key.0, &key.1)).ok()?;
            let (entries, _) = sidecar::scan(&mut file).ok()?;
            Some((file, entries))
        });
        let Some((file, entries)) = index else {
            return false;
        };
        let at = entries.partition_point(|e| e.first_seq + u64::from(e.count) <= seq);
        let Some(entry) = entries.get(at).filter(|e| e.first_seq <= seq).copied() else {
            return false;
        };
        match read_rows(file, entry, &mut self.scratch) {
            Some(rows) if rows.len() == entry.count as usize => {
                self.column = Some(Column {
                    key: key.clone(),
                    first_seq: entry.first_seq,
                    rows,
                });
                true
            }
            _ => false,
        }
    }
}

fn read_rows(file: &mut File, e: Entry, scratch: &mut Vec<u8>) -> Option<Vec<Map<String, Value>>> {
    let mut body = vec![0u8; e.len as usize];
    file.seek(SeekFrom::Start(e.offset)).ok()?;
    file.read_exact(&mut body).ok()?;
    logship_proto::payload::decompress_capped(&body, COLUMN_CAP, scratch).ok()?;
    scratch
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalize::sidecar::Writer;

    const SSHD: &[u8] =
        b"Feb 12 14:10:21 sd-126005 sshd[16378]: Invalid user pascal from 35.188.49.176 port 53502";

    fn view<'a>(seq: u64, raw: &'a [u8], kind: i32) -> RecordView<'a> {
        static NO_ATTRIBUTES: std::sync::LazyLock<std::collections::HashMap<String, String>> =
            std::sync::LazyLock::new(Default::default);
        RecordView {
            event_id: "e",
            agent: "a",
            host: "h",
            stream_id: "s",
            seq,
            input: "auth",
            path: "/var/log/auth.log",
            observed_ns: 1_771_000_000_000_000_000,
            event_ns: 0,
            raw,
            truncated_from: 0,
            attributes: &NO_ATTRIBUTES,
            original: &[],
            kind,
            agent_tz: "UTC",
            fields: None,
        }
    }

    fn column(rows: &[&str]) -> Vec<u8> {
        let text: String = rows.iter().map(|r| format!("{r}\n")).collect();
        zstd::bulk::compress(text.as_bytes(), 1).unwrap()
    }

    #[test]
    fn sidecar_columns_win_and_missing_ones_are_computed() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = Writer::new(crate::normalize::fields_dir(dir.path()));
        w.append(
            "a",
            "s",
            1,
            2,
            &column(&[r#"{"user.name":"from-sidecar"}"#, "{}"]),
        )
        .unwrap();
        drop(w);
        let mut lookup = FieldsLookup::new(dir.path());
        let r1 = view(1, SSHD, 0);
        assert_eq!(lookup.fields(&r1).unwrap()["user.name"], "from-sidecar");
        // The certificate identity stands beside the claimed host name.
        assert_eq!(lookup.fields(&r1).unwrap()["agent.name"], "a");
        let r2 = view(2, SSHD, 0);
        assert!(
            lookup.fields(&r2).is_none(),
            "an empty object means no fields"
        );
        let r3 = view(3, SSHD, 0);
        let computed = lookup.fields(&r3).unwrap();
        assert_eq!(computed["user.name"], "pascal");
        assert_eq!(computed["event.outcome"], "failure");
        let gap = view(4, b"lost", 1);
        assert!(lookup.fields(&gap).is_none());
    }
}
