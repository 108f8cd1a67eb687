//! Small builder over the ECS field map so parsers stay short.

use serde_json::{Map, Value};

/// ECS fields under construction.
#[derive(Debug, Default)]
pub(crate) struct Fields(pub(crate) Map<String, Value>);

// === impl Fields ===

impl Fields {
    pub(crate) fn new() -> Self {
        Self(Map::new())
    }

    /// Sets a string field; empty strings and "-" (the usual "none" marker) are skipped.
    pub(crate) fn s(&mut self, k: &str, v: &str) -> &mut Self {
        if !v.is_empty() && v != "-" {
            self.0.insert(k.to_owned(), Value::String(v.to_owned()));
        }
        self
    }

    /// Sets a number field from text; non-numbers are skipped.
    pub(crate) fn n(&mut self, k: &str, v: &str) -> &mut Self {
        if let Ok(n) = v.parse::<u64>() {
            self.0.insert(k.to_owned(), Value::from(n));
        }
        self
    }

    /// Sets an IP field only when `v` parses as an IP address (strips "::ffff:" is not done).
    pub(crate) fn ip(&mut self, k: &str, v: &str) -> &mut Self {
        let v = v.trim_start_matches('[').trim_end_matches(']');
        if v.parse::<std::net::IpAddr>().is_ok() {
            self.0.insert(k.to_owned(), Value::String(v.to_owned()));
        }
        self
    }

    /// Sets `event.category` / `event.type` (arrays) and `event.outcome` (when non-empty).
    pub(crate) fn event(&mut self, cat: &str, typ: &str, outcome: &str) -> &mut Self {
        self.0
            .insert("event.category".into(), Value::Array(vec![cat.into()]));
        self.0
            .insert("event.type".into(), Value::Array(vec![typ.into()]));
        if !outcome.is_empty() {
            self.0.insert("event.outcome".into(), outcome.into());
        }
        self
    }

    pub(crate) fn has(&self, k: &str) -> bool {
        self.0.contains_key(k)
    }
}
