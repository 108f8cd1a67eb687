//! `--where` predicates over normalized fields: `field=value`, `field!=value`; on IP fields
//! (`*.ip`) a value containing '/' is a CIDR match. Array fields match when any element does.
//! Numbers compare numerically when the value parses as a number, else as text.

use std::net::IpAddr;

use ipnet::IpNet;
use serde_json::{Map, Value};

/// A parsed `--where` predicate.
#[derive(Debug, Clone)]
pub struct FieldFilter {
    field: String,
    negate: bool,
    value: Expected,
}

#[derive(Debug, Clone)]
enum Expected {
    Text(String),
    Net(IpNet),
}

/// Why a `--where` expression was rejected.
#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    /// No `=` or `!=` in the expression.
    #[error("expected FIELD=VALUE or FIELD!=VALUE, got {0:?}")]
    Syntax(String),
    /// The field name is empty.
    #[error("empty field name in {0:?}")]
    EmptyField(String),
    /// A '/' value on an IP field that is not a CIDR network.
    #[error("invalid CIDR {0:?}")]
    Cidr(String),
}

// === impl FieldFilter ===

impl FieldFilter {
    /// Parses `field=value` or `field!=value`.
    pub fn parse(s: &str) -> Result<FieldFilter, FilterError> {
        let (field, negate, value) = match (s.find("!="), s.find('=')) {
            (Some(i), Some(j)) if i < j => (&s[..i], true, &s[i + 2..]),
            (_, Some(j)) => (&s[..j], false, &s[j + 1..]),
            _ => return Err(FilterError::Syntax(s.to_owned())),
        };
        let field = field.trim();
        if field.is_empty() {
            return Err(FilterError::EmptyField(s.to_owned()));
        }
        let is_ip = field == "ip" || field.ends_with(".ip");
        let value = if is_ip && value.contains('/') {
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
            negate,
            value,
        })
    }

    /// True when the fields satisfy the predicate (a missing field never equals; `!=` then holds).
    pub fn matches(&self, fields: &Map<String, Value>) -> bool {
        let hit = match fields.get(&self.field) {
            Some(Value::Array(a)) => a.iter().any(|v| self.equal(v)),
            Some(v) => self.equal(v),
            None => false,
        };
        hit != self.negate
    }

    fn equal(&self, v: &Value) -> bool {
        match (&self.value, v) {
            (Expected::Net(net), Value::String(s)) => {
                s.parse::<IpAddr>().is_ok_and(|ip| net.contains(&ip))
            }
            (Expected::Net(_), _) => false,
            (Expected::Text(t), Value::String(s)) => s == t,
            (Expected::Text(t), Value::Number(n)) => match (t.parse::<f64>(), n.as_f64()) {
                (Ok(a), Some(b)) => a == b,
                _ => false,
            },
            (Expected::Text(t), Value::Bool(b)) => t.parse::<bool>().is_ok_and(|x| x == *b),
            _ => false,
        }
    }
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
        assert!(!FieldFilter::parse("missing=x").unwrap().matches(&f));
        assert!(FieldFilter::parse("url.original=a=b").is_ok());
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
}
