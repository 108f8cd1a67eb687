//! The fields of a block's records, in the store's binary column ([`ColumnBuilder`]) for the
//! sidecar, or as one map per record for the forwarders; and back from a column row to a map
//! for printing.
//!
//! Invariant: a map written with [`push_map`] and read back with [`row_map`] is equal to it
//! (strings, unsigned, signed and float numbers, booleans and lists of strings are typed in the
//! column; any other value is kept as its JSON text and parsed back).

use logship_normalize::{Context, Normalizer, Origin};
use logship_proto::v1::{Record, RecordList};
use logship_store::fields::{Column, ColumnBuilder, ValueRef};
use serde_json::{Map, Value};

/// Normalizes every record of `list` into a new column in `out` (gap records get an empty row);
/// `each` sees every normalized record's fields (the field index is built from them).
pub(crate) fn fields_column(
    list: &RecordList,
    normalizer: &mut Normalizer,
    out: &mut ColumnBuilder,
    each: &mut dyn FnMut(&Map<String, Value>),
) {
    out.clear();
    for r in &list.records {
        if r.kind != 1 {
            let fields = record_fields(list, r, normalizer);
            each(&fields);
            push_map(out, &fields);
        }
        out.end_row();
    }
}

/// Adds the fields of `map` to the current row of `out`.
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
    normalizer
        .normalize_from(&r.raw, &ctx, origin.as_ref())
        .fields
}

#[cfg(test)]
mod tests {
    use super::*;

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
