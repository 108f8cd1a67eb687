//! `--where` predicates over normalized fields: `field=value`, `field!=value`, and ranges
//! `field>value`, `>=`, `<`, `<=`; on IP fields (`*.ip`) a value containing '/' is a CIDR match.
//! Array fields match when any element does. Numbers compare numerically when the value parses
//! as a number, else as text (so RFC 3339 times order correctly).
//!
//! Invariant: a filter names a field of the catalog ([`crate::known_fields`]); an unknown name is
//! an error listing the known ones, never a filter that silently matches nothing.

use std::net::IpAddr;

use ipnet::IpNet;
use serde_json::{Map, Value};

/// A parsed `--where` predicate.
#[derive(Debug, Clone)]
pub struct FieldFilter {
    field: String,
    op: Op,
    value: Expected,
}

/// The comparison of a filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

/// Operators by text; two-character ones first so `>=` is not read as `>`.
const OPS: &[(&str, Op)] = &[
    ("!=", Op::Ne),
    (">=", Op::Ge),
    ("<=", Op::Le),
    ("=", Op::Eq),
    (">", Op::Gt),
    ("<", Op::Lt),
];

#[derive(Debug, Clone)]
enum Expected {
    Text(String),
    Net(IpNet),
}

/// Why a `--where` expression was rejected.
#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    /// No operator in the expression.
    #[error("expected FIELD=VALUE, FIELD!=VALUE, FIELD>VALUE, >=, < or <=, got {0:?}")]
    Syntax(String),
    /// The field is not one the parsers emit.
    #[error("unknown field {0:?}; known fields: {known}", known = known_names())]
    UnknownField(String),
    /// A range on an IP network.
    #[error("{0:?}: a CIDR value works only with = and !=")]
    RangeOnNet(String),
    /// The field name is empty.
    #[error("empty field name in {0:?}")]
    EmptyField(String),
    /// A '/' value on an IP field that is not a CIDR network.
    #[error("invalid CIDR {0:?}")]
    Cidr(String),
}

// === impl FieldFilter ===

impl FieldFilter {
    /// Parses `field=value`, `field!=value` or a range (`field>=value`, ...); the field must be
    /// a known one.
    pub fn parse(s: &str) -> Result<FieldFilter, FilterError> {
        let (at, text, op) = OPS
            .iter()
            .filter_map(|(text, op)| s.find(text).map(|at| (at, *text, *op)))
            .min_by_key(|(at, text, _)| (*at, usize::MAX - text.len()))
            .ok_or_else(|| FilterError::Syntax(s.to_owned()))?;
        let (field, value) = (s[..at].trim(), &s[at + text.len()..]);
        if field.is_empty() {
            return Err(FilterError::EmptyField(s.to_owned()));
        }
        if !crate::is_known_field(field) {
            return Err(FilterError::UnknownField(field.to_owned()));
        }
        let is_ip = field == "ip" || field.ends_with(".ip");
        let value = if is_ip && value.contains('/') {
            if !matches!(op, Op::Eq | Op::Ne) {
                return Err(FilterError::RangeOnNet(s.to_owned()));
            }
            Expected::Net(
                value
                    .parse()
                    .map_err(|_| FilterError::Cidr(value.to_owned()))?,
            )
        } else {
            Expected::Text(value.to_owned())
        };
        Ok(FieldFilter {
            field: field.to_owned(),
            op,
            value,
        })
    }

    /// The field the filter tests.
    pub fn field(&self) -> &str {
        &self.field
    }

    /// The exact text a matching record's field must hold, when the filter is `field=text`:
    /// the one shape a value index can answer. `None` for `!=`, ranges and CIDR networks,
    /// where an index cannot rule anything out. (A `=` also matches numbers and bools equal
    /// by value; an index must treat those as "may match".)
    pub fn exact_text(&self) -> Option<(&str, &str)> {
        match (&self.op, &self.value) {
            (Op::Eq, Expected::Text(t)) => Some((&self.field, t)),
            _ => None,
        }
    }

    /// True when the fields satisfy the predicate. A missing field matches only `!=`.
    pub fn matches(&self, fields: &Map<String, Value>) -> bool {
        match fields.get(&self.field) {
            None => self.matches_values(None::<std::iter::Empty<Scalar<'_>>>),
            Some(Value::Array(a)) => self.matches_values(Some(a.iter().map(Scalar::of))),
            Some(v) => self.matches_values(Some(std::iter::once(Scalar::of(v)))),
        }
    }

    /// The predicate on a field given as its values (one, or each element of a list; `None`:
    /// the record has no such field), without building a map: for columnar readers. Same
    /// semantics as [`FieldFilter::matches`].
    pub fn matches_values<'v>(&self, values: Option<impl Iterator<Item = Scalar<'v>>>) -> bool {
        let Some(mut values) = values else {
            return self.op == Op::Ne;
        };
        match self.op {
            Op::Eq => values.any(|v| self.equal(v)),
            Op::Ne => !values.any(|v| self.equal(v)),
            Op::Gt => values.any(|v| self.order(v).is_some_and(|o| o.is_gt())),
            Op::Ge => values.any(|v| self.order(v).is_some_and(|o| o.is_ge())),
            Op::Lt => values.any(|v| self.order(v).is_some_and(|o| o.is_lt())),
            Op::Le => values.any(|v| self.order(v).is_some_and(|o| o.is_le())),
        }
    }

    /// How the record's value `v` orders against the filter's: numerically when both are
    /// numbers, else as text; `None` when they cannot be compared.
    fn order(&self, v: Scalar<'_>) -> Option<std::cmp::Ordering> {
        let Expected::Text(t) = &self.value else {
            return None;
        };
        match (v.number(), v, t.parse::<f64>()) {
            (Some(n), _, Ok(want)) => n.partial_cmp(&want),
            (_, Scalar::Str(s), Ok(want)) => match s.parse::<f64>() {
                Ok(have) => have.partial_cmp(&want),
                Err(_) => Some(s.cmp(t.as_str())),
            },
            (_, Scalar::Str(s), Err(_)) => Some(s.cmp(t.as_str())),
            _ => None,
        }
    }

    fn equal(&self, v: Scalar<'_>) -> bool {
        match (&self.value, v) {
            (Expected::Net(net), Scalar::Str(s)) => {
                s.parse::<IpAddr>().is_ok_and(|ip| net.contains(&ip))
            }
            (Expected::Net(_), _) => false,
            (Expected::Text(t), Scalar::Str(s)) => s == t,
            (Expected::Text(t), Scalar::Bool(b)) => t.parse::<bool>().is_ok_and(|x| x == b),
            (Expected::Text(t), v) => match (t.parse::<f64>(), v.number()) {
                (Ok(a), Some(b)) => a == b,
                _ => false,
            },
        }
    }
}

/// One value of a field as a filter sees it (an element, for list fields).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scalar<'a> {
    /// A string.
    Str(&'a str),
    /// An unsigned integer.
    U64(u64),
    /// A signed integer.
    I64(i64),
    /// A float.
    F64(f64),
    /// A boolean.
    Bool(bool),
    /// Anything else (null, an object, a nested list): matches only `!=`.
    Other,
}

impl<'a> Scalar<'a> {
    /// The scalar of a JSON value (`Other` for null, objects and lists).
    pub fn of(v: &'a Value) -> Scalar<'a> {
        match v {
            Value::String(s) => Scalar::Str(s),
            Value::Bool(b) => Scalar::Bool(*b),
            Value::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
                (Some(u), _, _) => Scalar::U64(u),
                (_, Some(i), _) => Scalar::I64(i),
                (_, _, Some(f)) => Scalar::F64(f),
                _ => Scalar::Other,
            },
            _ => Scalar::Other,
        }
    }

    /// The value as a number, when it is one (strings are not).
    fn number(self) -> Option<f64> {
        match self {
            Scalar::U64(u) => Some(u as f64),
            Scalar::I64(i) => Some(i as f64),
            Scalar::F64(f) => Some(f),
            _ => None,
        }
    }
}

/// Comma-separated names of the known fields, for error messages.
fn known_names() -> String {
    crate::known_fields()
        .iter()
        .map(|f| f.name)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn m(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn equality_negation_cidr_numbers_arrays() {
        let f = m(
            json!({"user.name": "alice", "source.ip": "10.1.2.3", "source.port": 22,
            "event.category": ["authentication"]}),
        );
        assert!(FieldFilter::parse("user.name=alice").unwrap().matches(&f));
        assert!(!FieldFilter::parse("user.name!=alice").unwrap().matches(&f));
        assert!(FieldFilter::parse("user.name!=bob").unwrap().matches(&f));
        assert!(
            FieldFilter::parse("source.ip=10.0.0.0/8")
                .unwrap()
                .matches(&f)
        );
        assert!(
            !FieldFilter::parse("source.ip=192.168.0.0/16")
                .unwrap()
                .matches(&f)
        );
        assert!(
            FieldFilter::parse("source.ip!=192.168.0.0/16")
                .unwrap()
                .matches(&f)
        );
        assert!(FieldFilter::parse("source.port=22").unwrap().matches(&f));
        assert!(
            FieldFilter::parse("event.category=authentication")
                .unwrap()
                .matches(&f)
        );
        assert!(!FieldFilter::parse("user.id=x").unwrap().matches(&f));
        assert!(FieldFilter::parse("user.id!=x").unwrap().matches(&f));
        assert!(FieldFilter::parse("url.original=a=b").is_ok());
        let exact = |s: &str| {
            FieldFilter::parse(s)
                .unwrap()
                .exact_text()
                .map(|(f, v)| (f.to_owned(), v.to_owned()))
        };
        assert_eq!(
            exact("user.name=Alice"),
            Some(("user.name".into(), "Alice".into()))
        );
        assert_eq!(exact("user.name!=alice"), None);
        assert_eq!(exact("source.ip=10.0.0.0/8"), None);
        assert_eq!(
            exact("source.ip=10.0.0.1"),
            Some(("source.ip".into(), "10.0.0.1".into()))
        );
        assert_eq!(exact("source.port>=22"), None);
        assert!(matches!(
            FieldFilter::parse("nope"),
            Err(FilterError::Syntax(_))
        ));
        assert!(matches!(
            FieldFilter::parse("source.ip=1.2.3/99"),
            Err(FilterError::Cidr(_))
        ));
        assert!(matches!(
            FieldFilter::parse("=x"),
            Err(FilterError::EmptyField(_))
        ));
    }

    #[test]
    fn ranges_compare_numbers_and_text() {
        let f = m(json!({"http.response.status_code": 404, "source.port": 22,
            "@timestamp": "2026-11-25T09:00:00Z"}));
        let t = |s: &str| FieldFilter::parse(s).unwrap().matches(&f);
        assert!(t("http.response.status_code>=400"));
        assert!(t("http.response.status_code>=404"));
        assert!(!t("http.response.status_code>404"));
        assert!(t("http.response.status_code<500"));
        assert!(t("http.response.status_code<=404"));
        assert!(!t("http.response.status_code<404"));
        assert!(t("source.port<1024"));
        assert!(t("@timestamp>=2026-11-25T08:00:00Z"));
        assert!(!t("@timestamp<2026-11-25T08:00:00Z"));
        assert!(!t("destination.port>0"), "a missing field is in no range");
        assert!(matches!(
            FieldFilter::parse("source.ip>=10.0.0.0/8"),
            Err(FilterError::RangeOnNet(_))
        ));
    }

    #[test]
    fn unknown_field_lists_the_known_ones() {
        let e = FieldFilter::parse("user.nam=alice").unwrap_err();
        assert!(matches!(e, FilterError::UnknownField(ref n) if n == "user.nam"));
        let text = e.to_string();
        assert!(
            text.contains("user.name") && text.contains("source.ip"),
            "{text}"
        );
    }
}
