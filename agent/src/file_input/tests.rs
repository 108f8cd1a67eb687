//! The text stage over a real batcher and spool: records and positions read back from disk.

use std::path::Path;
use std::time::Duration;

use encoding_rs::{SHIFT_JIS, UTF_8};
use logship_proto::payload::decode_payload;
use logship_proto::v1::Record;
use logship_spool::{Position, Spool, SpoolConfig};
use regex::Regex;

use super::*;
use crate::config::BatchLimits;

struct Rig {
    dir: tempfile::TempDir,
    spool: Spool,
    sink: FileInputSink,
}

fn rig(text: TextConfig) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let config = SpoolConfig {
        dir: dir.path().to_path_buf(),
        fsync_interval_ms: 0,
        ..SpoolConfig::default()
    };
    let spool = Spool::open(config).unwrap().0;
    let limits = BatchLimits {
        max_records: 1000,
        max_bytes: 4 << 20,
        max_wait: Duration::from_secs(60),
        zstd_level: 1,
    };
    let batcher =
        Batcher::new(spool.clone(), limits, "in".into(), "h".into(), "UTC".into()).unwrap();
    Rig {
        dir,
        spool,
        sink: FileInputSink::new(batcher, text),
    }
}

impl Rig {
    /// Every record spooled so far.
    fn records(&self) -> Vec<Record> {
        let (mut out, mut seq, mut scratch) = (Vec::new(), 1, Vec::new());
        while let Some(b) = self.spool.read_from(seq).unwrap() {
            let list = decode_payload(&b.payload, 1 << 26, &mut scratch).unwrap();
            seq = b.first_seq + u64::from(b.count);
            out.extend(list.records);
        }
        out
    }

    /// Flushes, closes the spool and returns the positions a restart would resume from.
    fn positions(mut self) -> Vec<Position> {
        self.sink.flush().unwrap();
        self.spool.close();
        drop((self.sink, self.spool));
        let config = SpoolConfig {
            dir: self.dir.path().to_path_buf(),
            ..SpoolConfig::default()
        };
        Spool::open(config).unwrap().1.positions
    }

    fn stats(&self) -> (u64, u64) {
        let s = &self.sink.stats;
        (
            s.decode_errors.load(Ordering::Relaxed),
            s.multiline_truncated.load(Ordering::Relaxed),
        )
    }
}

fn texts(records: &[Record]) -> Vec<String> {
    records
        .iter()
        .map(|r| String::from_utf8(r.raw.to_vec()).unwrap())
        .collect()
}

fn java(max_bytes: usize, timeout: Duration) -> TextConfig {
    TextConfig {
        encoding: UTF_8,
        multiline: Some(Multiline {
            boundary: Boundary::Start(Regex::new(r"^\d{4}-\d{2}-\d{2} ").unwrap()),
            max_bytes,
            timeout,
        }),
    }
}

#[test]
fn lines_are_decoded_with_originals_kept_and_invalid_sequences_counted() {
    let mut r = rig(TextConfig {
        encoding: SHIFT_JIS,
        multiline: None,
    });
    let a = r.sink.open_source("k", Path::new("/a.log")).unwrap();
    let sjis = b"\x83\x8D\x83\x4F\x83\x43\x83\x93\x8E\xB8\x94\x73 user=x";
    r.sink.line(a, sjis, 0, 20).unwrap();
    r.sink.line(a, b"ascii only", 0, 31).unwrap();
    r.sink.line(a, b"bad \x81\x0D", 0, 38).unwrap();
    // A UTF-16LE byte-order mark on another file wins over shift_jis.
    let b = r.sink.open_source("k2", Path::new("/b.log")).unwrap();
    r.sink.byte_order_mark(b, Bom::Utf16Le).unwrap();
    r.sink.line(b, b"\xED\x30\xB0\x30", 0, 8).unwrap();
    r.sink.flush().unwrap();
    let records = r.records();
    assert_eq!(
        texts(&records),
        vec![
            "ログイン失敗 user=x",
            "ascii only",
            "bad \u{FFFD}\r",
            "ログ"
        ]
    );
    assert_eq!(&records[0].original[..], sjis);
    assert!(
        records[1].original.is_empty(),
        "identical text keeps no copy"
    );
    assert_eq!(&records[2].original[..], b"bad \x81\x0D");
    assert_eq!(&records[3].original[..], b"\xED\x30\xB0\x30");
    assert_eq!(r.stats(), (1, 0));
    let offsets: Vec<u64> = r.positions().iter().map(|p| p.offset).collect();
    assert_eq!(offsets, vec![38, 8]);
}

#[test]
fn a_record_is_emitted_when_the_next_starts_and_positions_never_cover_a_buffered_one() {
    let mut r = rig(java(1 << 20, Duration::from_secs(60)));
    let a = r.sink.open_source("k", Path::new("/app.log")).unwrap();
    let lines = [
        ("2026-11-29 10:00:00 ERROR boom", 31),
        ("java.lang.IllegalStateException: x", 67),
        ("\tat a.B.c(B.java:1)", 87),
        ("2026-11-29 10:00:01 INFO next", 117),
        ("\tat d.E.f(E.java:2)", 137),
    ];
    for (text, end) in lines {
        r.sink.line(a, text.as_bytes(), 0, end).unwrap();
    }
    r.sink.flush().unwrap();
    let records = r.records();
    assert_eq!(
        texts(&records),
        vec![
            "2026-11-29 10:00:00 ERROR boom\njava.lang.IllegalStateException: x\n\tat a.B.c(B.java:1)"
        ]
    );
    assert!(records[0].original.is_empty());
    // The second record is still open: a restart resumes at its first line.
    let positions = r.positions();
    assert_eq!(positions[0].offset, 87);
}

#[test]
fn timeout_gap_and_close_emit_the_buffered_record_first() {
    let mut r = rig(java(1 << 20, Duration::from_millis(1)));
    let a = r.sink.open_source("k", Path::new("/app.log")).unwrap();
    r.sink.line(a, b"2026-11-29 first", 0, 17).unwrap();
    r.sink.line(a, b" more", 0, 23).unwrap();
    std::thread::sleep(Duration::from_millis(5));
    r.sink.tick().unwrap();
    r.sink.line(a, b"2026-11-29 second", 0, 41).unwrap();
    r.sink.gap(a, "lost", 50).unwrap();
    r.sink.line(a, b"2026-11-29 third", 0, 67).unwrap();
    r.sink.close_source(a).unwrap();
    r.sink.flush().unwrap();
    let records = r.records();
    let got: Vec<(String, i32)> = records
        .iter()
        .map(|x| (String::from_utf8(x.raw.to_vec()).unwrap(), x.kind))
        .collect();
    assert_eq!(
        got,
        vec![
            ("2026-11-29 first\n more".into(), 0),
            ("2026-11-29 second".into(), 0),
            ("lost".into(), 1),
            ("2026-11-29 third".into(), 0),
        ]
    );
    assert!(r.positions().is_empty(), "closed source is forgotten");
}

#[test]
fn an_oversized_record_keeps_its_first_lines_and_says_how_long_it_was() {
    let mut r = rig(java(64, Duration::from_secs(60)));
    let a = r.sink.open_source("k", Path::new("/app.log")).unwrap();
    let head = "2026-11-29 10:00:00 ERROR big";
    r.sink.line(a, head.as_bytes(), 0, 30).unwrap();
    let mut end = 30;
    for _ in 0..10 {
        end += 21;
        r.sink.line(a, b"\tat x.Y.z(Y.java:10)", 0, end).unwrap();
    }
    r.sink.line(a, b"2026-11-29 next", 0, end + 16).unwrap();
    r.sink.flush().unwrap();
    let records = r.records();
    assert_eq!(
        texts(&records),
        vec![format!("{head}\n\tat x.Y.z(Y.java:10)")]
    );
    assert_eq!(records[0].truncated_from, 29 + 10 * 21);
    assert_eq!(r.stats(), (0, 1));
    assert_eq!(r.positions()[0].offset, end);
}

#[test]
fn utf16_records_join_their_originals_with_the_utf16_newline() {
    let mut text = java(1 << 20, Duration::from_secs(60));
    text.encoding = encoding_rs::UTF_16LE;
    let mut r = rig(text);
    let a = r.sink.open_source("k", Path::new("/app.log")).unwrap();
    let le = |s: &str| -> Vec<u8> { s.encode_utf16().flat_map(u16::to_le_bytes).collect() };
    r.sink.line(a, &le("2026-11-29 失敗"), 0, 28).unwrap();
    r.sink.line(a, &le(" at"), 0, 36).unwrap();
    r.sink.line(a, &le("2026-11-29 ok"), 0, 64).unwrap();
    r.sink.flush().unwrap();
    let records = r.records();
    assert_eq!(texts(&records), vec!["2026-11-29 失敗\n at"]);
    assert_eq!(records[0].original.to_vec(), le("2026-11-29 失敗\n at"));
}

#[test]
fn buffered_records_of_many_files_stay_under_the_input_cap() {
    let max = 1 << 20;
    let mut r = rig(java(max, Duration::from_secs(60)));
    let line = format!("2026-11-29 {}", "x".repeat(max - 20));
    for i in 0..12 {
        let s = r
            .sink
            .open_source(&format!("k{i}"), Path::new(&format!("/f{i}.log")))
            .unwrap();
        r.sink
            .line(s, line.as_bytes(), 0, line.len() as u64 + 1)
            .unwrap();
        assert!(r.sink.held <= held_cap(max), "held {}", r.sink.held);
    }
    r.sink.flush().unwrap();
    // A record holds its text and its bytes (2 MiB here): 8 fit under the 16 MiB cap, and
    // each file past that pushed the largest buffered record out early.
    assert_eq!(r.records().len(), 4);
}

#[test]
fn continue_patterns_join_dotnet_traces_and_postgresql_statements() {
    // .NET: continuation lines are indented ("   at ...", "   --- End of ..."); PostgreSQL
    // (log_line_prefix '%m [%p] '): a multi-line statement continues with a tab.
    let mut r = rig(TextConfig {
        encoding: UTF_8,
        multiline: Some(Multiline {
            boundary: Boundary::Continue(Regex::new(r"^\s").unwrap()),
            max_bytes: 1 << 20,
            timeout: Duration::from_secs(60),
        }),
    });
    let a = r.sink.open_source("k", Path::new("/app.log")).unwrap();
    let lines = [
        "System.InvalidOperationException: Login failed for user 'sa'.",
        "   at Erp.Auth.Login(String user) in C:\\src\\Auth.cs:line 42",
        "   --- End of inner exception stack trace ---",
        "   at Erp.Program.Main(String[] args) in C:\\src\\Program.cs:line 7",
        "2026-11-29 10:00:00.123 JST [4242] LOG:  statement: SELECT id",
        "\tFROM users",
        "\tWHERE name = 'yamada';",
        "2026-11-29 10:00:01.001 JST [4242] LOG:  disconnection",
    ];
    let mut end = 0;
    for line in lines {
        end += line.len() as u64 + 1;
        r.sink.line(a, line.as_bytes(), 0, end).unwrap();
    }
    r.sink.close_source(a).unwrap();
    r.sink.flush().unwrap();
    assert_eq!(
        texts(&r.records()),
        vec![
            lines[..4].join("\n"),
            lines[4..7].join("\n"),
            lines[7].to_owned()
        ]
    );
}
