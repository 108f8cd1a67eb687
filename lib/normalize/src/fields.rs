//! The ECS fields of one record in a flat, reusable buffer, and the small builder the parsers
//! use to fill it.
//!
//! Layout: every text value lives in one `String` arena; `items` holds, in the order the
//! fields were first set, each field's key (the parsers' `&'static str` names, never copied)
//! and its typed value (a text range, an unsigned number, or a one-string list range). A record costs no allocation once the
//! buffers have grown: [`Fields::new`] takes cleared buffers from a small per-thread pool and
//! dropping a `Fields` gives them back, so the parsers' `Fields::new()` … return-by-value
//! style reuses the same few buffers record after record.
//!
//! Invariants:
//! - A key appears at most once: setting a key again replaces its value and keeps its place
//!   (as a JSON object's `insert` does), so [`Fields::to_map`] gives exactly the map the
//!   parsers built when this was a `serde_json::Map`.
//! - Every range in `items` lies inside `text` on `char` boundaries (ranges only ever come
//!   from appending whole `&str`s).
//! - The pool is bounded ([`POOL_CAP`] buffers per thread, none larger than [`POOL_MAX_BYTES`]):
//!   a buffer beyond either bound is freed instead of kept.

use std::cell::RefCell;

use serde_json::{Map, Value};

/// Buffers kept per thread for reuse.
const POOL_CAP: usize = 16;
/// A text arena larger than this is freed rather than pooled (one huge record must not pin
/// its memory for the thread's life).
const POOL_MAX_BYTES: usize = 64 << 10;

thread_local! {
    static POOL: RefCell<Vec<(String, Vec<Item>)>> = const { RefCell::new(Vec::new()) };
}

/// ECS fields of one record (dotted names → typed values), in the order first set.
#[derive(Debug, Default)]
pub struct Fields {
    text: String,
    items: Vec<Item>,
}

/// One field value, borrowed from a [`Fields`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldRef<'a> {
    /// A JSON string.
    Str(&'a str),
    /// A JSON unsigned number.
    U64(u64),
    /// A JSON array of exactly one string (`event.category`, `event.type`).
    List(&'a str),
}

#[derive(Debug, Clone, Copy)]
struct Item {
    key: &'static str,
    val: Val,
}

#[derive(Debug, Clone, Copy)]
enum Val {
    Str(u32, u32),
    U64(u64),
    List(u32, u32),
}

// === impl Fields ===

impl Fields {
    /// Empty fields, on buffers reused from earlier records of this thread when there are any.
    pub fn new() -> Self {
        POOL.with(|p| p.borrow_mut().pop())
            .map(|(text, items)| Fields { text, items })
            .unwrap_or_default()
    }

    /// Removes every field (keeps the buffers).
    pub fn clear(&mut self) {
        self.text.clear();
        self.items.clear();
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True when there is no field.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The fields in the order first set.
    pub fn iter(&self) -> impl Iterator<Item = (&str, FieldRef<'_>)> {
        self.items.iter().map(|it| (it.key, self.value(it.val)))
    }

    /// The value of field `k`.
    pub fn get(&self, k: &str) -> Option<FieldRef<'_>> {
        self.find(k).map(|i| self.value(self.items[i].val))
    }

    /// The text of field `k` when it is a string.
    pub fn get_str(&self, k: &str) -> Option<&str> {
        match self.get(k)? {
            FieldRef::Str(s) => Some(s),
            _ => None,
        }
    }

    /// True when field `k` is set.
    pub fn has(&self, k: &str) -> bool {
        self.find(k).is_some()
    }

    /// The fields as a JSON object (keys sorted, as `serde_json::Map` keeps them).
    pub fn to_map(&self) -> Map<String, Value> {
        self.iter()
            .map(|(k, v)| {
                let v = match v {
                    FieldRef::Str(s) => Value::String(s.to_owned()),
                    FieldRef::U64(n) => Value::from(n),
                    FieldRef::List(s) => Value::Array(vec![Value::String(s.to_owned())]),
                };
                (k.to_owned(), v)
            })
            .collect()
    }

    /// Sets a string field; empty strings and "-" (the usual "none" marker) are skipped.
    pub(crate) fn s(&mut self, k: &'static str, v: &str) -> &mut Self {
        if !v.is_empty() && v != "-" {
            let r = self.push(v);
            self.set(k, Val::Str(r.0, r.1));
        }
        self
    }

    /// Sets a time field, written straight into the arena as RFC 3339 in UTC (jiff's
    /// `Timestamp` display: `2024-03-05T00:20:00.131Z`, a fraction only when there is one).
    pub(crate) fn ts(&mut self, k: &'static str, ts: jiff::Timestamp) -> &mut Self {
        use std::fmt::Write as _;
        let start = self.text.len();
        // Writing to a String cannot fail; were it to, the field would hold a cut time.
        write!(self.text, "{ts}").unwrap_or_default();
        self.set(k, Val::Str(start as u32, self.text.len() as u32));
        self
    }

    /// Sets a number field from text; non-numbers are skipped.
    pub(crate) fn n(&mut self, k: &'static str, v: &str) -> &mut Self {
        if let Ok(n) = v.parse::<u64>() {
            self.set(k, Val::U64(n));
        }
        self
    }

    /// Sets a number field.
    pub(crate) fn u64(&mut self, k: &'static str, v: u64) -> &mut Self {
        self.set(k, Val::U64(v));
        self
    }

    /// Sets an IP field only when `v` parses as an IP address (strips "::ffff:" is not done).
    pub(crate) fn ip(&mut self, k: &'static str, v: &str) -> &mut Self {
        let v = v.trim_start_matches('[').trim_end_matches(']');
        if v.parse::<std::net::IpAddr>().is_ok() {
            let r = self.push(v);
            self.set(k, Val::Str(r.0, r.1));
        }
        self
    }

    /// Sets `event.category` / `event.type` (arrays) and `event.outcome` (when non-empty).
    pub(crate) fn event(&mut self, cat: &str, typ: &str, outcome: &str) -> &mut Self {
        let r = self.push(cat);
        self.set("event.category", Val::List(r.0, r.1));
        let r = self.push(typ);
        self.set("event.type", Val::List(r.0, r.1));
        if !outcome.is_empty() {
            let r = self.push(outcome);
            self.set("event.outcome", Val::Str(r.0, r.1));
        }
        self
    }

    /// Appends `s` to the arena; its range.
    fn push(&mut self, s: &str) -> (u32, u32) {
        let start = self.text.len();
        self.text.push_str(s);
        (start as u32, self.text.len() as u32)
    }

    fn set(&mut self, key: &'static str, val: Val) {
        if let Some(i) = self.find(key) {
            self.items[i].val = val;
        } else {
            self.items.push(Item { key, val });
        }
    }

    fn find(&self, k: &str) -> Option<usize> {
        // The same literal is usually the same pointer: one comparison, no `memcmp`; names of
        // one length mostly differ in their first or last byte (`host.name`, `user.name`,
        // `source.ip`), which is checked before the whole names are.
        let kb = k.as_bytes();
        self.items.iter().position(|it| {
            let ib = it.key.as_bytes();
            ib.len() == kb.len()
                && (std::ptr::eq(ib.as_ptr(), kb.as_ptr())
                    || (ib.first() == kb.first() && ib.last() == kb.last() && ib == kb))
        })
    }

    fn range(&self, (a, b): (u32, u32)) -> &str {
        &self.text[a as usize..b as usize]
    }

    fn value(&self, v: Val) -> FieldRef<'_> {
        match v {
            Val::Str(a, b) => FieldRef::Str(self.range((a, b))),
            Val::U64(n) => FieldRef::U64(n),
            Val::List(a, b) => FieldRef::List(self.range((a, b))),
        }
    }
}

impl Drop for Fields {
    fn drop(&mut self) {
        if self.items.capacity() == 0 || self.text.capacity() > POOL_MAX_BYTES {
            return;
        }
        let (mut text, mut items) = (
            std::mem::take(&mut self.text),
            std::mem::take(&mut self.items),
        );
        text.clear();
        items.clear();
        // Err: the thread's locals are gone; the buffers are simply freed.
        POOL.try_with(|p| match p.try_borrow_mut() {
            Ok(mut pool) if pool.len() < POOL_CAP => pool.push((text, items)),
            _ => {}
        })
        .unwrap_or_default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setting_a_key_again_replaces_its_value_in_place() {
        let mut f = Fields::new();
        f.s("b", "1").n("a", "7").s("b", "2").s("c", "-").s("d", "");
        f.event("x", "y", "");
        f.event("authentication", "start", "failure");
        assert_eq!(f.len(), 5);
        let keys: Vec<_> = f.iter().map(|(k, _)| k).collect();
        assert_eq!(
            keys,
            ["b", "a", "event.category", "event.type", "event.outcome"]
        );
        assert_eq!(f.get("b"), Some(FieldRef::Str("2")));
        assert_eq!(f.get("a"), Some(FieldRef::U64(7)));
        assert_eq!(
            f.get("event.category"),
            Some(FieldRef::List("authentication"))
        );
        assert_eq!(f.get_str("event.outcome"), Some("failure"));
        assert!(!f.has("c") && !f.has("d"));
        assert_eq!(
            Value::Object(f.to_map()),
            serde_json::json!({"a": 7, "b": "2", "event.category": ["authentication"],
                "event.type": ["start"], "event.outcome": "failure"})
        );
    }

    #[test]
    fn buffers_come_back_cleared_and_bounded() {
        let mut f = Fields::new();
        f.s("user.name", "alice")
            .ip("source.ip", "[192.0.2.1]")
            .ip("x", "nope");
        assert_eq!(f.get_str("source.ip"), Some("192.0.2.1"));
        assert!(!f.has("x"));
        drop(f);
        let g = Fields::new();
        assert!(g.is_empty() && g.iter().next().is_none());
        // A huge arena is not kept.
        let mut big = Fields::new();
        big.s("k", &"x".repeat(POOL_MAX_BYTES + 1));
        drop(big);
        let pooled = POOL.with(|p| p.borrow().iter().map(|(t, _)| t.capacity()).max());
        assert!(pooled.unwrap_or(0) <= POOL_MAX_BYTES);
        let many: Vec<Fields> = (0..POOL_CAP * 2)
            .map(|_| {
                let mut f = Fields::default();
                f.s("k", "v");
                f
            })
            .collect();
        drop(many);
        assert!(POOL.with(|p| p.borrow().len()) <= POOL_CAP);
    }
}
