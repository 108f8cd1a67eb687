//! The fields column of one block: zstd-compressed JSON lines, one object per record in record
//! order (`{}` for gap records).

use anyhow::Result;
use logship_normalize::{Context, Normalizer, Origin};
use logship_proto::v1::{Record, RecordList};
use serde_json::{Map, Value};

/// zstd level of the fields column.
const FIELDS_ZSTD_LEVEL: i32 = 1;

/// Builds the compressed fields column of a decoded batch; `each` sees every record's fields.
pub(crate) fn fields_column(
    list: &RecordList,
    normalizer: &mut Normalizer,
    out: &mut Vec<u8>,
    each: &mut dyn FnMut(&Map<String, Value>),
) -> Result<Vec<u8>> {
    out.clear();
    for r in &list.records {
        let fields = record_fields(list, r, normalizer);
        each(&fields);
        serde_json::to_writer(&mut *out, &fields)?;
        out.push(b'\n');
    }
    Ok(zstd::bulk::compress(out, FIELDS_ZSTD_LEVEL)?)
}

/// The fields of one record of `list` (empty for gap records), as the column holds them.
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
