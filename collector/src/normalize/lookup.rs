//! Fields for search results: the block's inline column when it has one, else the precomputed
//! sidecar column, else the fields computed now with the same parsers (never "no fields" just
//! because precomputation lagged).
//!
//! Records normalized on the fly share one normalizer per agent stream, fed in store order;
//! stateful joins (postfix from/to) only see the records the search reads.

use std::collections::HashMap;

use logship_normalize::{Context, FieldFilter, Normalizer, Origin, Scalar};
use logship_store::RecordView;
use logship_store::fields::ValueRef;
use serde_json::{Map, Value};

use super::column::row_map;

/// Field holding the certificate identity of the agent that stored the record.
const AGENT_NAME: &str = "agent.name";

/// Sets `agent.name` (ECS) to the verified agent identity.
fn with_agent<'m>(fields: &'m mut Map<String, Value>, agent: &str) -> &'m Map<String, Value> {
    if fields.get(AGENT_NAME).and_then(Value::as_str) != Some(agent) {
        fields.insert(AGENT_NAME.into(), Value::String(agent.to_string()));
    }
    fields
}

type StreamKey = (String, String);

/// Finds or computes the fields of search results, one record at a time in store order.
#[derive(Default)]
pub struct FieldsLookup {
    normalizers: HashMap<StreamKey, Normalizer>,
    /// The fields of the record last asked for (built from its row, or computed).
    current: Map<String, Value>,
}

impl FieldsLookup {
    /// A lookup with no normalizer state yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The fields of `r`, or `None` for gap records and records that yield none. Every
    /// returned map holds `agent.name`: the certificate identity that stored the record, beside
    /// the `host.name` the record or its agent claims.
    pub fn fields<'a>(&'a mut self, r: &'a RecordView<'_>) -> Option<&'a Map<String, Value>> {
        if r.kind == 1 {
            return None;
        }
        if let Some(inline) = r.fields {
            self.current = inline.clone();
            return Some(with_agent(&mut self.current, r.agent));
        }
        if let Some(row) = r.sidecar {
            if row.column.row_is_empty(row.row) {
                return None;
            }
            self.current = row_map(row.column, row.row);
            return Some(with_agent(&mut self.current, r.agent));
        }
        self.compute(r);
        Some(with_agent(&mut self.current, r.agent))
    }

    /// True when `r` satisfies every filter. On a record with a sidecar row the filters are
    /// evaluated on the column itself (no map is built); otherwise on [`FieldsLookup::fields`].
    pub fn matches(&mut self, r: &RecordView<'_>, filters: &[FieldFilter]) -> bool {
        if filters.is_empty() {
            return true;
        }
        if let Some(row) = r.sidecar.filter(|_| r.kind != 1 && r.fields.is_none()) {
            let (c, i) = (row.column, row.row);
            let empty = c.row_is_empty(i);
            return filters.iter().all(|f| {
                if empty {
                    return f.matches_values(None::<std::iter::Empty<Scalar<'_>>>);
                }
                if f.field() == AGENT_NAME {
                    return f.matches_values(Some(std::iter::once(Scalar::Str(r.agent))));
                }
                match c.key_id(f.field()).and_then(|k| c.get(i, k)) {
                    None => f.matches_values(None::<std::iter::Empty<Scalar<'_>>>),
                    Some(ValueRef::Strs(list)) => {
                        f.matches_values(Some(list.iter().map(Scalar::Str)))
                    }
                    Some(ValueRef::Json(text)) => {
                        let v: Value = serde_json::from_str(text).unwrap_or(Value::Null);
                        let mut one = Map::new();
                        one.insert(f.field().to_string(), v);
                        f.matches(&one)
                    }
                    Some(v) => f.matches_values(Some(std::iter::once(scalar(v)))),
                }
            });
        }
        let empty = Map::new();
        let fields = self.fields(r).unwrap_or(&empty);
        filters.iter().all(|f| f.matches(fields))
    }

    /// Computes the fields of `r` into `self.current`, with the normalizer of its stream.
    fn compute(&mut self, r: &RecordView<'_>) {
        let key = (r.agent.to_string(), r.stream_id.to_string());
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
        self.current = normalizer
            .normalize_from(r.raw, &ctx, origin.as_ref())
            .fields;
    }
}

/// A scalar column value as a filter sees it.
fn scalar(v: ValueRef<'_>) -> Scalar<'_> {
    match v {
        ValueRef::Str(s) => Scalar::Str(s),
        ValueRef::U64(u) => Scalar::U64(u),
        ValueRef::I64(i) => Scalar::I64(i),
        ValueRef::F64(f) => Scalar::F64(f),
        ValueRef::Bool(b) => Scalar::Bool(b),
        ValueRef::Strs(_) | ValueRef::Json(_) => Scalar::Other,
    }
}

#[cfg(test)]
mod tests {
    use logship_store::FieldsRow;
    use logship_store::fields::{Column, ColumnBuilder};

    use super::*;

    const SSHD: &[u8] =
        b"Feb 12 14:10:21 sd-126005 sshd[16378]: Invalid user pascal from 35.188.49.176 port 53502";

    fn view<'a>(
        seq: u64,
        raw: &'a [u8],
        kind: i32,
        sidecar: Option<FieldsRow<'a>>,
    ) -> RecordView<'a> {
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
            sidecar,
        }
    }

    fn column() -> Column {
        let mut b = ColumnBuilder::new();
        b.str("user.name", "from-sidecar");
        b.strs("event.category", ["authentication"].into_iter());
        b.u64("source.port", 22);
        b.end_row();
        b.end_row();
        let mut bytes = Vec::new();
        b.finish(&mut bytes);
        Column::decode(bytes, 2).unwrap()
    }

    fn filters(f: &[&str]) -> Vec<FieldFilter> {
        f.iter().map(|f| FieldFilter::parse(f).unwrap()).collect()
    }

    #[test]
    fn sidecar_rows_win_and_missing_ones_are_computed() {
        let c = column();
        let mut lookup = FieldsLookup::new();
        let r1 = view(1, SSHD, 0, Some(FieldsRow { column: &c, row: 0 }));
        assert_eq!(lookup.fields(&r1).unwrap()["user.name"], "from-sidecar");
        // The certificate identity stands beside the claimed host name.
        assert_eq!(lookup.fields(&r1).unwrap()["agent.name"], "a");
        let r2 = view(2, SSHD, 0, Some(FieldsRow { column: &c, row: 1 }));
        assert!(lookup.fields(&r2).is_none(), "an empty row means no fields");
        let r3 = view(3, SSHD, 0, None);
        let computed = lookup.fields(&r3).unwrap();
        assert_eq!(computed["user.name"], "pascal");
        assert_eq!(computed["event.outcome"], "failure");
        let gap = view(4, b"lost", 1, None);
        assert!(lookup.fields(&gap).is_none());
    }

    #[test]
    fn filters_on_a_row_agree_with_filters_on_its_map() {
        let c = column();
        let mut lookup = FieldsLookup::new();
        let cases = [
            "user.name=from-sidecar",
            "user.name!=from-sidecar",
            "user.name=x",
            "user.name!=x",
            "event.category=authentication",
            "event.category!=authentication",
            "event.category=network",
            "source.port=22",
            "source.port>=22",
            "source.port<22",
            "source.port>21",
            "source.ip=10.0.0.0/8",
            "source.ip!=10.0.0.0/8",
        ];
        for row in 0..2 {
            let r = view(1, SSHD, 0, Some(FieldsRow { column: &c, row }));
            for case in cases {
                let f = filters(&[case]);
                let on_row = lookup.matches(&r, &f);
                let empty = Map::new();
                let map = lookup.fields(&r).cloned().unwrap_or(empty);
                assert_eq!(on_row, f[0].matches(&map), "row {row}: {case}");
            }
        }
    }
}
