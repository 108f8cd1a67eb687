//! The binary fields column of one block: typed values per record, strings dictionary-encoded.
//!
//! ```text
//! column   := n_keys varint | str*n_keys            key dictionary (field names)
//!             n_strs varint | str*n_strs            value dictionary (distinct strings)
//!             row*                                  exactly `count` rows, record order
//! str      := len varint | utf-8 bytes
//! row      := n_fields varint | field*n_fields      n_fields = 0: the record has no fields
//! field    := key varint (index into keys) | tag u8 | value
//! value    := tag 0 string     : varint (index into strs)
//!           | tag 7 string     : str (inline)
//!           | tag 1 unsigned   : varint
//!           | tag 2 signed     : zigzag varint
//!           | tag 3 float      : f64 little-endian (8 bytes)
//!           | tag 4 bool       : u8 (0 | 1)
//!           | tag 5 string list: n varint | varint*n (indexes into strs)
//!           | tag 6 json       : varint (index into strs: the JSON text of any other value)
//! varint   := LEB128, at most 10 bytes, value fits u64
//! ```
//!
//! The builder writes scalar strings inline (tag 7) and list elements and JSON texts through the
//! dictionary: most scalar values of a block (times, addresses, ports as text) are distinct, and
//! looking each up in a per-block dictionary cost more than the zstd pass that follows, which
//! removes the repetition anyway. Readers accept both string forms.
//!
//! Invariants: [`Column::decode`] checks every byte of the column once (lengths, indexes,
//! UTF-8, tags, row count, no trailing bytes) and fails on anything else, so the accessors
//! never fail or panic afterwards, and a damaged or hostile column is refused whole, never read
//! as wrong fields. Keys are in first-use order per block; a key appears at most once per row.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Largest dictionary (keys or strings) a column may declare.
const MAX_DICT: u64 = 1 << 24;

const TAG_STR: u8 = 0;
const TAG_U64: u8 = 1;
const TAG_I64: u8 = 2;
const TAG_F64: u8 = 3;
const TAG_BOOL: u8 = 4;
const TAG_STRS: u8 = 5;
const TAG_JSON: u8 = 6;
const TAG_INLINE: u8 = 7;

/// Why a column was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("fields column: {0}")]
pub struct ColumnError(pub(crate) &'static str);

/// One field value of a decoded column, borrowed from it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ValueRef<'a> {
    /// A string.
    Str(&'a str),
    /// An unsigned integer.
    U64(u64),
    /// A negative (or any signed) integer.
    I64(i64),
    /// A float.
    F64(f64),
    /// A boolean.
    Bool(bool),
    /// A list of strings.
    Strs(StrList<'a>),
    /// Any other value, as JSON text.
    Json(&'a str),
}

/// A list of strings in a column (indexes into its dictionary, checked at decode).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StrList<'a> {
    column: &'a Column,
    /// The list's bytes: `n` varint indexes.
    at: usize,
    n: usize,
}

/// A decoded, checked column.
#[derive(Debug, Default, PartialEq)]
pub struct Column {
    bytes: Vec<u8>,
    /// (start, end) of each key in `bytes`.
    keys: Vec<(u32, u32)>,
    /// (start, end) of each dictionary string in `bytes`.
    strs: Vec<(u32, u32)>,
    /// Start of each row in `bytes`.
    rows: Vec<u32>,
}

/// Builds a column row by row, reusing its buffers from block to block.
#[derive(Debug, Default)]
pub struct ColumnBuilder {
    keys: Dict,
    strs: Dict,
    rows: Vec<u8>,
    row_fields: u64,
    row_body: Vec<u8>,
    count: u32,
    /// Per row shape ([`ColumnBuilder::shape`], e.g. the parser that made the row): the key id
    /// seen at each field position of the rows of that shape before, and the string id of the
    /// last one-string list at that position. Rows of one format name the same fields in the
    /// same order, so one comparison usually replaces a dictionary lookup (a wrong hint only
    /// costs the lookup).
    hints: Vec<Vec<Hint>>,
    /// Index into `hints` of the current row.
    shape: usize,
}

/// What the rows of one shape had at one field position.
#[derive(Debug, Clone, Copy)]
struct Hint {
    key: u32,
    /// String id of a one-string list there (`u32::MAX`: none yet).
    list: u32,
}

/// Distinct row shapes with hints of their own; more fold onto these.
const MAX_SHAPES: usize = 64;

/// A string dictionary without one allocation per entry: entries live in one buffer, the map
/// goes from a hash to the first entry with that hash (another string with the same hash gets
/// an entry of its own: still correct, only not deduplicated).
#[derive(Debug, Default)]
struct Dict {
    buf: Vec<u8>,
    ends: Vec<u32>,
    by_hash: HashMap<u64, u32, BuildHasherDefault<Prehashed>>,
}

/// Hasher of keys that are already hashes: passes the `u64` through (SipHash on it cost a
/// tenth of the normalizer's time).
#[derive(Debug, Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }

    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

// === varints ===

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(b: &[u8], at: &mut usize) -> Result<u64, ColumnError> {
    let mut v = 0u64;
    for i in 0..10 {
        let byte = *b.get(*at).ok_or(ColumnError("truncated varint"))?;
        *at += 1;
        if i == 9 && byte > 1 {
            return Err(ColumnError("varint overflow"));
        }
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte < 0x80 {
            return Ok(v);
        }
    }
    Err(ColumnError("varint too long"))
}

/// A varint already checked by [`Column::decode`].
fn checked_varint(b: &[u8], at: &mut usize) -> u64 {
    get_varint(b, at).unwrap_or(0)
}

fn hash(s: &[u8]) -> u64 {
    // Multiply-rotate over 8-byte words and a final mix (the map's keys are these hashes, used
    // as they are): fast for short strings, no new dependency.
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut h = (s.len() as u64).wrapping_mul(K);
    let mut chunks = s.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_le_bytes(c.try_into().unwrap_or([0; 8]));
        h = (h ^ w).wrapping_mul(K).rotate_left(31);
    }
    let mut tail = [0u8; 8];
    tail[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
    h ^= u64::from_le_bytes(tail);
    // murmur3's fmix64: every input bit reaches the low bits the table indexes by.
    h = (h ^ (h >> 33)).wrapping_mul(0xff51_afd7_ed55_8ccd);
    h = (h ^ (h >> 33)).wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

// === impl Dict ===

impl Dict {
    fn clear(&mut self) {
        self.buf.clear();
        self.ends.clear();
        self.by_hash.clear();
    }

    fn get(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.buf[start..self.ends[i] as usize]
    }

    fn id(&mut self, s: &str) -> u64 {
        let h = hash(s.as_bytes());
        if let Some(&i) = self.by_hash.get(&h)
            && self.get(i as usize) == s.as_bytes()
        {
            return u64::from(i);
        }
        let i = self.ends.len() as u32;
        self.buf.extend_from_slice(s.as_bytes());
        self.ends.push(self.buf.len() as u32);
        self.by_hash.entry(h).or_insert(i);
        u64::from(i)
    }

    fn write(&self, out: &mut Vec<u8>) {
        put_varint(out, self.ends.len() as u64);
        for i in 0..self.ends.len() {
            let s = self.get(i);
            put_varint(out, s.len() as u64);
            out.extend_from_slice(s);
        }
    }
}

// === impl ColumnBuilder ===

impl ColumnBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts a new column (keeps the buffers).
    pub fn clear(&mut self) {
        self.keys.clear();
        self.strs.clear();
        self.rows.clear();
        self.row_body.clear();
        self.row_fields = 0;
        self.count = 0;
        self.hints.iter_mut().for_each(Vec::clear);
        self.shape = 0;
    }

    /// Says which kind of row comes next (e.g. the index of the parser that made it), so that
    /// the key hints of rows of that kind are used; rows of unknown kind use shape 0. Only a
    /// speed hint: the column is the same whatever shape is given.
    pub fn shape(&mut self, shape: usize) {
        self.shape = shape % MAX_SHAPES;
        if self.hints.len() <= self.shape {
            self.hints.resize_with(self.shape + 1, Vec::new);
        }
    }

    /// Rows finished so far.
    pub fn rows(&self) -> u32 {
        self.count
    }

    /// Writes the key of the next field; returns its hint slot (position in the shape).
    fn key(&mut self, key: &str, tag: u8) -> usize {
        if self.hints.is_empty() {
            self.hints.push(Vec::new());
        }
        let pos = self.row_fields as usize;
        let hints = &mut self.hints[self.shape];
        let k = match hints.get(pos) {
            Some(h) if self.keys.get(h.key as usize) == key.as_bytes() => h.key,
            _ => {
                let id = self.keys.id(key) as u32;
                let h = Hint {
                    key: id,
                    list: u32::MAX,
                };
                if pos < hints.len() {
                    hints[pos] = h;
                } else {
                    hints.push(h);
                }
                id
            }
        };
        put_varint(&mut self.row_body, u64::from(k));
        self.row_body.push(tag);
        self.row_fields += 1;
        pos
    }

    /// Adds a string field to the current row.
    pub fn str(&mut self, key: &str, v: &str) {
        self.key(key, TAG_INLINE);
        put_varint(&mut self.row_body, v.len() as u64);
        self.row_body.extend_from_slice(v.as_bytes());
    }

    /// Adds an unsigned integer field to the current row.
    pub fn u64(&mut self, key: &str, v: u64) {
        self.key(key, TAG_U64);
        put_varint(&mut self.row_body, v);
    }

    /// Adds a signed integer field to the current row.
    pub fn i64(&mut self, key: &str, v: i64) {
        self.key(key, TAG_I64);
        put_varint(&mut self.row_body, ((v << 1) ^ (v >> 63)) as u64);
    }

    /// Adds a float field to the current row.
    pub fn f64(&mut self, key: &str, v: f64) {
        self.key(key, TAG_F64);
        self.row_body.extend_from_slice(&v.to_le_bytes());
    }

    /// Adds a boolean field to the current row.
    pub fn bool(&mut self, key: &str, v: bool) {
        self.key(key, TAG_BOOL);
        self.row_body.push(u8::from(v));
    }

    /// Adds a list of strings to the current row.
    pub fn strs<'s>(&mut self, key: &str, v: impl ExactSizeIterator<Item = &'s str>) {
        let pos = self.key(key, TAG_STRS);
        let n = v.len();
        put_varint(&mut self.row_body, n as u64);
        for s in v {
            let id = if n == 1 {
                // One-string lists (`event.category`) repeat per shape and position.
                let hint = &mut self.hints[self.shape][pos];
                if hint.list != u32::MAX && self.strs.get(hint.list as usize) == s.as_bytes() {
                    u64::from(hint.list)
                } else {
                    let id = self.strs.id(s);
                    hint.list = id as u32;
                    id
                }
            } else {
                self.strs.id(s)
            };
            put_varint(&mut self.row_body, id);
        }
    }

    /// Adds any other value as its JSON text.
    pub fn json(&mut self, key: &str, text: &str) {
        self.key(key, TAG_JSON);
        let id = self.strs.id(text);
        put_varint(&mut self.row_body, id);
    }

    /// Ends the current row (a row with no field is a record without fields).
    pub fn end_row(&mut self) {
        put_varint(&mut self.rows, self.row_fields);
        self.rows.extend_from_slice(&self.row_body);
        self.row_body.clear();
        self.row_fields = 0;
        self.count += 1;
    }

    /// Writes the finished column (rows ended so far) to `out` (cleared first).
    pub fn finish(&self, out: &mut Vec<u8>) {
        out.clear();
        self.keys.write(out);
        self.strs.write(out);
        out.extend_from_slice(&self.rows);
    }
}

// === impl Column ===

fn read_dict(b: &[u8], at: &mut usize, out: &mut Vec<(u32, u32)>) -> Result<(), ColumnError> {
    let n = get_varint(b, at)?;
    if n > MAX_DICT {
        return Err(ColumnError("dictionary too large"));
    }
    out.clear();
    for _ in 0..n {
        let len = get_varint(b, at)? as usize;
        let end = at
            .checked_add(len)
            .filter(|e| *e <= b.len())
            .ok_or(ColumnError("string past the end"))?;
        std::str::from_utf8(&b[*at..end]).map_err(|_| ColumnError("string is not UTF-8"))?;
        out.push((*at as u32, end as u32));
        *at = end;
    }
    Ok(())
}

impl Column {
    /// Checks and indexes a column of `count` records (the bytes after decompression).
    pub fn decode(bytes: Vec<u8>, count: u32) -> Result<Column, ColumnError> {
        if bytes.len() > u32::MAX as usize {
            return Err(ColumnError("column too large"));
        }
        let mut c = Column {
            bytes,
            ..Column::default()
        };
        let b = &c.bytes;
        let mut at = 0usize;
        read_dict(b, &mut at, &mut c.keys)?;
        read_dict(b, &mut at, &mut c.strs)?;
        let (n_keys, n_strs) = (c.keys.len() as u64, c.strs.len() as u64);
        let str_id = |b: &[u8], at: &mut usize| -> Result<(), ColumnError> {
            (get_varint(b, at)? < n_strs)
                .then_some(())
                .ok_or(ColumnError("string index out of range"))
        };
        c.rows.reserve(count as usize);
        for _ in 0..count {
            c.rows.push(at as u32);
            let n = get_varint(b, &mut at)?;
            if n > n_keys {
                return Err(ColumnError("row has more fields than keys"));
            }
            for _ in 0..n {
                if get_varint(b, &mut at)? >= n_keys {
                    return Err(ColumnError("key index out of range"));
                }
                let tag = *b.get(at).ok_or(ColumnError("truncated field"))?;
                at += 1;
                match tag {
                    TAG_STR | TAG_JSON => str_id(b, &mut at)?,
                    TAG_INLINE => {
                        let len = get_varint(b, &mut at)? as usize;
                        let end = at
                            .checked_add(len)
                            .filter(|e| *e <= b.len())
                            .ok_or(ColumnError("string past the end"))?;
                        std::str::from_utf8(&b[at..end])
                            .map_err(|_| ColumnError("string is not UTF-8"))?;
                        at = end;
                    }
                    TAG_U64 | TAG_I64 => {
                        get_varint(b, &mut at)?;
                    }
                    TAG_F64 => {
                        at += 8;
                        if at > b.len() {
                            return Err(ColumnError("truncated float"));
                        }
                    }
                    TAG_BOOL => {
                        if *b.get(at).ok_or(ColumnError("truncated bool"))? > 1 {
                            return Err(ColumnError("bad bool"));
                        }
                        at += 1;
                    }
                    TAG_STRS => {
                        let n = get_varint(b, &mut at)?;
                        if n > (b.len() - at) as u64 {
                            return Err(ColumnError("list past the end"));
                        }
                        for _ in 0..n {
                            str_id(b, &mut at)?;
                        }
                    }
                    _ => return Err(ColumnError("unknown value tag")),
                }
            }
        }
        if at != b.len() {
            return Err(ColumnError("bytes after the last row"));
        }
        Ok(c)
    }

    /// Records in the column.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// True when the column has no record.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    fn text(&self, (start, end): (u32, u32)) -> &str {
        // Checked UTF-8 at decode.
        std::str::from_utf8(&self.bytes[start as usize..end as usize]).unwrap_or("")
    }

    fn string(&self, id: u64) -> &str {
        self.strs.get(id as usize).map_or("", |r| self.text(*r))
    }

    /// The id of field `name` in this column, if any record has it.
    pub fn key_id(&self, name: &str) -> Option<u32> {
        self.keys
            .iter()
            .position(|r| self.text(*r) == name)
            .map(|i| i as u32)
    }

    /// The value of field `key` (see [`Column::key_id`]) of record `row`.
    pub fn get(&self, row: usize, key: u32) -> Option<ValueRef<'_>> {
        self.fields(row)
            .find(|(k, _)| *k == key)
            .map(|(_, value)| value)
    }

    /// The fields of record `row` as (key id, value), in the order they were written.
    pub fn fields(&self, row: usize) -> impl Iterator<Item = (u32, ValueRef<'_>)> + '_ {
        let mut at = self.rows.get(row).map_or(self.bytes.len(), |r| *r as usize);
        let n = if at < self.bytes.len() {
            checked_varint(&self.bytes, &mut at)
        } else {
            0
        };
        (0..n).map(move |_| {
            let b = &self.bytes;
            let key = checked_varint(b, &mut at) as u32;
            let tag = b[at];
            at += 1;
            let value = match tag {
                TAG_STR => ValueRef::Str(self.string(checked_varint(b, &mut at))),
                TAG_JSON => ValueRef::Json(self.string(checked_varint(b, &mut at))),
                TAG_INLINE => {
                    let len = checked_varint(b, &mut at) as usize;
                    at += len;
                    ValueRef::Str(std::str::from_utf8(&b[at - len..at]).unwrap_or(""))
                }
                TAG_U64 => ValueRef::U64(checked_varint(b, &mut at)),
                TAG_I64 => {
                    let z = checked_varint(b, &mut at);
                    ValueRef::I64(((z >> 1) as i64) ^ -((z & 1) as i64))
                }
                TAG_F64 => {
                    let v = f64::from_le_bytes(b[at..at + 8].try_into().unwrap_or([0; 8]));
                    at += 8;
                    ValueRef::F64(v)
                }
                TAG_BOOL => {
                    at += 1;
                    ValueRef::Bool(b[at - 1] == 1)
                }
                _ => {
                    let n = checked_varint(b, &mut at) as usize;
                    let list = StrList {
                        column: self,
                        at,
                        n,
                    };
                    for _ in 0..n {
                        checked_varint(b, &mut at);
                    }
                    ValueRef::Strs(list)
                }
            };
            (key, value)
        })
    }

    /// The name of key `key`.
    pub fn key_name(&self, key: u32) -> &str {
        self.keys.get(key as usize).map_or("", |r| self.text(*r))
    }

    /// True when record `row` has no fields.
    pub fn row_is_empty(&self, row: usize) -> bool {
        self.fields(row).next().is_none()
    }
}

// === impl StrList ===

impl<'a> StrList<'a> {
    /// The strings, in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &'a str> + 'a {
        let column = self.column;
        let mut at = self.at;
        (0..self.n).map(move |_| column.string(checked_varint(&column.bytes, &mut at)))
    }

    /// Number of strings.
    pub fn len(&self) -> usize {
        self.n
    }

    /// True when the list is empty.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let mut b = ColumnBuilder::new();
        b.str("user.name", "alice");
        b.u64("source.port", 22);
        b.strs("event.category", ["authentication"].into_iter());
        b.end_row();
        b.end_row();
        b.str("user.name", "alice");
        b.i64("x.neg", -5);
        b.f64("x.f", 1.5);
        b.bool("x.b", true);
        b.json("x.obj", r#"{"a":1}"#);
        b.str("host.name", "h");
        b.end_row();
        let mut out = Vec::new();
        b.finish(&mut out);
        out
    }

    #[test]
    fn dictionary_strings_read_like_inline_ones() {
        let mut b = ColumnBuilder::new();
        b.key("user.name", TAG_STR);
        let id = b.strs.id("alice");
        put_varint(&mut b.row_body, id);
        b.end_row();
        b.str("user.name", "alice");
        b.end_row();
        let mut out = Vec::new();
        b.finish(&mut out);
        let c = Column::decode(out, 2).unwrap();
        let k = c.key_id("user.name").unwrap();
        assert_eq!(c.get(0, k), c.get(1, k));
        assert_eq!(c.get(0, k), Some(ValueRef::Str("alice")));
    }

    #[test]
    fn roundtrip_of_every_type() {
        let c = Column::decode(sample(), 3).unwrap();
        assert_eq!(c.len(), 3);
        let user = c.key_id("user.name").unwrap();
        assert_eq!(c.get(0, user), Some(ValueRef::Str("alice")));
        assert_eq!(c.get(2, user), Some(ValueRef::Str("alice")));
        assert!(c.row_is_empty(1));
        assert_eq!(c.get(1, user), None);
        let port = c.key_id("source.port").unwrap();
        assert_eq!(c.get(0, port), Some(ValueRef::U64(22)));
        let Some(ValueRef::Strs(cat)) = c.get(0, c.key_id("event.category").unwrap()) else {
            panic!("list")
        };
        assert_eq!(cat.iter().collect::<Vec<_>>(), ["authentication"]);
        let got: Vec<_> = c
            .fields(2)
            .map(|(k, v)| (c.key_name(k).to_string(), v))
            .collect();
        assert_eq!(got[1], ("x.neg".into(), ValueRef::I64(-5)));
        assert_eq!(got[2], ("x.f".into(), ValueRef::F64(1.5)));
        assert_eq!(got[3], ("x.b".into(), ValueRef::Bool(true)));
        assert_eq!(got[4], ("x.obj".into(), ValueRef::Json(r#"{"a":1}"#)));
        assert_eq!(c.key_id("nope"), None);
    }

    #[test]
    fn wrong_count_truncation_and_garbage_are_refused() {
        let bytes = sample();
        assert!(Column::decode(bytes.clone(), 2).is_err(), "bytes left over");
        assert!(Column::decode(bytes.clone(), 4).is_err(), "a row missing");
        for cut in 0..bytes.len() {
            assert!(
                Column::decode(bytes[..cut].to_vec(), 3).is_err(),
                "cut {cut}"
            );
        }
        // Every single-byte change either is refused or decodes to a checked column whose
        // accessors do not panic.
        for i in 0..bytes.len() {
            for x in [0x01u8, 0x80, 0xff] {
                let mut b = bytes.clone();
                b[i] ^= x;
                if let Ok(c) = Column::decode(b, 3) {
                    for row in 0..c.len() {
                        for (_, v) in c.fields(row) {
                            if let ValueRef::Strs(l) = v {
                                let _n = l.iter().count();
                            }
                        }
                    }
                }
            }
        }
    }
}
