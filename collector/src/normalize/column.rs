//! The fields of a block's records, in the store's binary column ([`ColumnBuilder`]) for the
//! sidecar, or as one map per record for the forwarders; and back from a column row to a map
//! for printing.
//!
//! Invariants: a map written with `push_map` (tests) and read back with [`row_map`] is equal to it
//! (strings, unsigned, signed and float numbers, booleans and lists of strings are typed in the
//! column; any other value is kept as its JSON text and parsed back); fields written with
//! [`push_fields`] read back as [`Fields::to_map`] of them, i.e. the normalizer's JSON. The
//! block's records go through one reused [`Fields`] buffer, straight into the column (no map
//! per record); a row's fields are in the order the parser first set them.

use logship_normalize::{Context, FieldRef, Fields, Normalizer, Origin};
use logship_proto::v1::{Record, RecordList};
use logship_store::fields::{Column, ColumnBuilder, ValueRef};
use serde_json::{Map, Value};

/// Normalizes every record of `list` into a new column in `out` (gap records get an empty row);
/// `each` sees every normalized record's fields (the field index is built from them).
pub(crate) fn fields_column(
    list: &RecordList,
    normalizer: &mut Normalizer,
    out: &mut ColumnBuilder,
    each: &mut dyn FnMut(&Fields),
) {
    out.clear();
    let mut fields = Fields::new();
    for r in &list.records {
        if r.kind != 1 {
            let dataset = normalize_record(list, r, normalizer, &mut fields);
            out.shape(shape_of(dataset));
            each(&fields);
            push_fields(out, &fields);
        }
        out.end_row();
    }
}

/// The column's row shape for a dataset (a cheap hash of its name: rows of one parser name
/// their fields in the same order, so they share key hints; a collision only costs hints).
fn shape_of(dataset: &str) -> usize {
    let b = dataset.as_bytes();
    let (first, last) = (b.first().copied(), b.last().copied());
    b.len() * 31 + usize::from(first.unwrap_or(0)) * 7 + usize::from(last.unwrap_or(0))
}

/// Adds `fields` to the current row of `out`.
pub(crate) fn push_fields(out: &mut ColumnBuilder, fields: &Fields) {
    for (k, v) in fields.iter() {
        match v {
            FieldRef::Str(s) => out.str(k, s),
            FieldRef::U64(n) => out.u64(k, n),
            FieldRef::List(s) => out.strs(k, std::iter::once(s)),
        }
    }
}

/// Adds the fields of `map` to the current row of `out` (the tests' way to write every value
/// type the column has: the normalizer writes with [`push_fields`]).
#[cfg(test)]
pub(crate) fn push_map(out: &mut ColumnBuilder, map: &Map<String, Value>) {
    for (k, v) in map {
        match v {
            Value::String(s) => out.str(k, s),
            Value::Bool(b) => out.bool(k, *b),
            Value::Number(n) => {
                if let Some(u) = n.as_u64() {
                    out.u64(k, u);
                } else if let Some(i) = n.as_i64() {
                    out.i64(k, i);
                } else if let Some(f) = n.as_f64() {
                    out.f64(k, f);
                }
            }
            Value::Array(a) if a.iter().all(Value::is_string) => {
                out.strs(k, a.iter().map(|s| s.as_str().unwrap_or_default()));
            }
            other => out.json(k, &other.to_string()),
        }
    }
}

/// The fields of row `row` of `column` as a map (empty for a record without fields).
pub(crate) fn row_map(column: &Column, row: usize) -> Map<String, Value> {
    column
        .fields(row)
        .map(|(k, v)| (column.key_name(k).to_string(), to_json(v)))
        .collect()
}

/// One column value as JSON.
pub(crate) fn to_json(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Str(s) => Value::String(s.to_string()),
        ValueRef::U64(u) => Value::from(u),
        ValueRef::I64(i) => Value::from(i),
        ValueRef::F64(f) => Value::from(f),
        ValueRef::Bool(b) => Value::Bool(b),
        ValueRef::Strs(l) => Value::Array(l.iter().map(|s| Value::String(s.into())).collect()),
        ValueRef::Json(text) => serde_json::from_str(text).unwrap_or(Value::Null),
    }
}

/// The fields of one record of `list` (empty for gap records), as the parsers give them.
pub(crate) fn record_fields(
    list: &RecordList,
    r: &Record,
    normalizer: &mut Normalizer,
) -> Map<String, Value> {
    if r.kind == 1 {
        return Map::new();
    }
    let mut fields = Fields::new();
    normalize_record(list, r, normalizer, &mut fields);
    fields.to_map()
}

/// Normalizes one (non-gap) record of `list` into `out`; its dataset.
fn normalize_record(
    list: &RecordList,
    r: &Record,
    normalizer: &mut Normalizer,
    out: &mut Fields,
) -> &'static str {
    let source = list.sources.get(r.source as usize);
    let ctx = Context {
        host: &list.host,
        input: source.map_or("", |s| s.input.as_str()),
        path: source.map_or("", |s| s.path.as_str()),
        agent_tz: if list.agent_tz.is_empty() {
            "UTC"
        } else {
            &list.agent_tz
        },
        observed_unix_nanos: r.observed_unix_nanos,
    };
    let origin = Origin::from_journal(&r.attributes, r.event_unix_nanos);
    normalizer.normalize_into(&r.raw, &ctx, origin.as_ref(), out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every fixture line of the parser tests, through the flat fields and the column, reads
    /// back as the JSON map the normalizer gives for it.
    #[test]
    fn fixture_lines_read_back_from_the_column_as_the_normalizers_json() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../lib/normalize/tests/data");
        let ctx = Context {
            host: "agent-host",
            input: "test",
            path: "test",
            agent_tz: "UTC",
            observed_unix_nanos: 1_735_689_600_000_000_000,
        };
        let (mut flat, mut json) = (Normalizer::new(), Normalizer::new());
        let mut fields = Fields::new();
        let (mut b, mut want) = (ColumnBuilder::new(), Vec::new());
        for entry in std::fs::read_dir(&dir).expect("fixtures") {
            let path = entry.expect("entry").path();
            if !path
                .extension()
                .is_some_and(|e| e == "log" || e == "xml" || e == "json")
            {
                continue;
            }
            for line in std::fs::read(&path)
                .expect("fixture")
                .split(|c| *c == b'\n')
            {
                let dataset = flat.normalize_into(line, &ctx, None, &mut fields);
                let event = json.normalize(line, &ctx);
                assert_eq!(dataset, event.dataset);
                assert_eq!(fields.to_map(), event.fields);
                b.shape(shape_of(dataset));
                push_fields(&mut b, &fields);
                b.end_row();
                want.push(event.fields);
            }
        }
        assert!(want.len() > 1_000, "{} lines", want.len());
        let mut bytes = Vec::new();
        b.finish(&mut bytes);
        let c = Column::decode(bytes, want.len() as u32).unwrap();
        for (i, m) in want.iter().enumerate() {
            assert_eq!(&row_map(&c, i), m, "row {i}");
        }
    }

    #[test]
    fn a_map_survives_the_column() {
        let maps: Vec<Map<String, Value>> = [
            serde_json::json!({"user.name": "alice", "source.port": 22, "x.neg": -3, "x.f": 0.5,
                "x.b": true, "event.category": ["authentication", "session"],
                "x.obj": {"a": [1, null]}, "x.mixed": ["a", 1], "x.empty": []}),
            serde_json::json!({}),
            serde_json::json!({"user.name": "alice", "host.name": "h"}),
        ]
        .into_iter()
        .map(|v| v.as_object().cloned().unwrap())
        .collect();
        let mut b = ColumnBuilder::new();
        for m in &maps {
            push_map(&mut b, m);
            b.end_row();
        }
        let mut bytes = Vec::new();
        b.finish(&mut bytes);
        let c = Column::decode(bytes, 3).unwrap();
        for (i, m) in maps.iter().enumerate() {
            assert_eq!(&row_map(&c, i), m);
        }
    }
}
