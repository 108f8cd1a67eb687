//! Line framing, identity keys, discovery and start positions.

use std::time::Duration;

use logship_tail::{Bom, Checkpoint, Framing, StartAt, TailConfig};

use crate::harness::{Running, append, config, numbered};

#[test]
fn reads_existing_and_appended_lines_with_offsets() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("app.log");
    append(&path, b"a\nbb\r\n");
    let run = Running::start(config(dir.path(), "*.log"), Vec::new(), true);
    run.wait_until("two lines", |r| r.lines().len() == 2);
    append(&path, b"ccc\n");
    run.wait_until("three lines", |r| r.lines().len() == 3);
    let (tailer, record) = run.stop();
    let got: Vec<_> = record
        .lines()
        .iter()
        .map(|l| (l.raw.clone(), l.offset_after))
        .collect();
    assert_eq!(
        got,
        vec![
            (b"a".to_vec(), 2),
            (b"bb".to_vec(), 6),
            (b"ccc".to_vec(), 10)
        ]
    );
    let positions = tailer.positions();
    assert_eq!(positions.len(), 1);
    assert_eq!(positions[0].offset, 10);
    assert_eq!(positions[0].key, record.lines()[0].key);
}

#[test]
fn short_file_key_is_stable_as_it_grows_and_empty_file_is_keyed_once_it_has_bytes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let short = dir.path().join("short.log");
    let empty = dir.path().join("empty.log");
    append(&short, b"x\n");
    append(&empty, b"");
    let run = Running::start(config(dir.path(), "*.log"), Vec::new(), true);
    run.wait_until("first line", |r| r.lines().len() == 1);
    append(&short, &vec![b'y'; 4000]);
    append(&short, b"\n");
    append(&empty, b"hello\n");
    run.wait_until("three lines", |r| r.lines().len() == 3);
    let (_, record) = run.stop();
    let lines = record.lines();
    let short_keys: Vec<_> = lines
        .iter()
        .filter(|l| l.path == short)
        .map(|l| &l.key)
        .collect();
    assert_eq!(short_keys.len(), 2);
    assert_eq!(
        short_keys[0], short_keys[1],
        "key must not change as the file grows"
    );
    assert!(short_keys[0].ends_with(&format!(":2:{:08x}", crc32c::crc32c(b"x\n"))));
    let empty_line = lines
        .iter()
        .find(|l| l.path == empty)
        .expect("line from empty file");
    assert!(
        empty_line
            .key
            .ends_with(&format!(":6:{:08x}", crc32c::crc32c(b"hello\n")))
    );
    assert_ne!(short_keys[0], &empty_line.key);
}

#[test]
fn long_lines_are_cut_and_report_original_length() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("app.log");
    let mut content = vec![b'z'; 100_000];
    content.extend_from_slice(b"\r\nafter\n");
    append(&path, &content);
    let cfg = TailConfig {
        max_line_bytes: 16,
        read_buf_bytes: 4096,
        ..config(dir.path(), "*.log")
    };
    let run = Running::start(cfg, Vec::new(), true);
    run.wait_until("two lines", |r| r.lines().len() == 2);
    let (_, record) = run.stop();
    let lines = record.lines();
    assert_eq!(
        (lines[0].raw.clone(), lines[0].truncated_from),
        (vec![b'z'; 16], 100_000)
    );
    assert_eq!(lines[0].offset_after, 100_002);
    assert_eq!(
        (lines[1].raw.as_slice(), lines[1].truncated_from),
        (&b"after"[..], 0)
    );
}

#[test]
fn non_utf8_bytes_pass_through_untouched() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("app.log");
    append(&path, b"caf\xe9 \xff\xfe\x00end\n");
    let run = Running::start(config(dir.path(), "*.log"), Vec::new(), true);
    run.wait_until("one line", |r| r.lines().len() == 1);
    let (_, record) = run.stop();
    assert_eq!(record.lines()[0].raw, b"caf\xe9 \xff\xfe\x00end");
}

#[test]
fn last_line_without_newline_is_flushed_after_idle_and_later_bytes_start_a_new_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("app.log");
    append(&path, b"a\nb");
    let run = Running::start(config(dir.path(), "*.log"), Vec::new(), true);
    run.wait_until("idle flush", |r| r.lines().len() == 2);
    append(&path, b"c\n");
    run.wait_until("third line", |r| r.lines().len() == 3);
    let (_, record) = run.stop();
    let got: Vec<_> = record
        .lines()
        .iter()
        .map(|l| (l.raw.clone(), l.offset_after))
        .collect();
    assert_eq!(
        got,
        vec![(b"a".to_vec(), 2), (b"b".to_vec(), 3), (b"c".to_vec(), 5)]
    );
}

#[test]
fn start_at_end_applies_only_to_files_of_the_first_scan_of_a_first_run() {
    let dir = tempfile::tempdir().expect("temp dir");
    let old = dir.path().join("old.log");
    append(&old, &numbered(0..3));
    let cfg = TailConfig {
        start_at: StartAt::End,
        ..config(dir.path(), "*.log")
    };
    let run = Running::start(cfg.clone(), Vec::new(), true);
    append(&dir.path().join("new.log"), &numbered(10..12));
    run.wait_until("new file lines", |r| r.lines().len() == 2);
    append(&old, &numbered(3..4));
    run.wait_until("appended line", |r| r.lines().len() == 3);
    let (_, record) = run.stop();
    let mut texts = record.texts();
    texts.sort();
    assert_eq!(texts, vec!["line 0000003", "line 0000010", "line 0000011"]);

    // Not a first run: a file without checkpoint is read from the beginning.
    let run = Running::start(cfg, Vec::new(), false);
    run.wait_until("all lines of both files", |r| r.lines().len() == 6);
    let (_, record) = run.stop();
    assert_eq!(record.lines().len(), 6);
}

#[test]
fn positions_handle_is_readable_while_running_and_tailer_is_send() {
    fn assert_send<T: Send>() {}
    assert_send::<logship_tail::Tailer>();
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("app.log");
    append(&path, b"a\nb\n");
    let tailer =
        logship_tail::Tailer::new(config(dir.path(), "*.log"), Vec::new(), true).expect("tailer");
    let handle = tailer.positions_handle();
    assert_eq!(
        handle.get(),
        Vec::new(),
        "nothing keyed before the first read"
    );
    let run = Running::start_tailer(tailer);
    crate::harness::wait_for("position in handle", || {
        handle.get().first().is_some_and(|p| p.offset == 4)
    });
    let (tailer, _) = run.stop();
    assert_eq!(tailer.positions(), handle.get());
}

fn utf16le(text: &str) -> Vec<u8> {
    text.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

#[test]
fn utf16_byte_order_mark_wins_over_byte_framing_and_survives_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("app.log");
    let mut content = vec![0xFF, 0xFE];
    content.extend(utf16le("ログイン失敗\r\nuser=\u{0A0A}\n"));
    let cfg = config(dir.path(), "*.log");
    assert_eq!(cfg.framing, Framing::Bytes);
    // The first byte alone could be the start of a mark: nothing is read until more comes.
    append(&path, &content[..1]);
    let run = Running::start(cfg.clone(), Vec::new(), true);
    std::thread::sleep(Duration::from_millis(40));
    // Then odd-sized pieces, so reads end inside code units and terminators.
    for piece in content[1..].chunks(3) {
        append(&path, piece);
        std::thread::sleep(Duration::from_millis(3));
    }
    run.wait_until("two lines", |r| r.lines().len() == 2);
    let (tailer, record) = run.stop();
    let got: Vec<_> = record
        .lines()
        .iter()
        .map(|l| (l.raw.clone(), l.offset_after))
        .collect();
    assert_eq!(
        got,
        vec![
            (utf16le("ログイン失敗"), 18),
            (utf16le("user=\u{0A0A}"), 32)
        ]
    );
    assert_eq!(record.boms, vec![(0, Bom::Utf16Le)]);
    let checkpoints: Vec<Checkpoint> = tailer.positions();
    assert_eq!(checkpoints[0].offset, 32);
    // After a restart the file is still UTF-16 (the mark is read again, not re-skipped).
    append(&path, &utf16le("再開\n"));
    let run = Running::start(cfg, checkpoints, false);
    run.wait_until("the appended line", |r| !r.lines().is_empty());
    let (_, record) = run.stop();
    let lines = record.lines();
    assert_eq!(
        (lines[0].raw.clone(), lines[0].offset_after),
        (utf16le("再開"), 38)
    );
    assert_eq!(record.boms, vec![(0, Bom::Utf16Le)]);
}

#[test]
fn utf8_byte_order_mark_is_skipped_and_utf16_framing_applies_without_a_mark() {
    let dir = tempfile::tempdir().expect("temp dir");
    append(&dir.path().join("a.log"), b"\xEF\xBB\xBFfirst\nsecond\n");
    let run = Running::start(config(dir.path(), "a.log"), Vec::new(), true);
    run.wait_until("two lines", |r| r.lines().len() == 2);
    let (_, record) = run.stop();
    assert_eq!(record.texts(), vec!["first", "second"]);
    assert_eq!(record.lines()[0].offset_after, 9);
    assert_eq!(record.boms, vec![(0, Bom::Utf8)]);

    let mut content = utf16le("一\n二\r\n");
    content.extend(b"\x0A");
    append(&dir.path().join("b.log"), &content);
    let cfg = TailConfig {
        framing: Framing::Utf16Le,
        ..config(dir.path(), "b.log")
    };
    let run = Running::start(cfg, Vec::new(), true);
    // The trailing half unit is flushed as a last line once the file is idle.
    run.wait_until("three lines", |r| r.lines().len() == 3);
    let (_, record) = run.stop();
    let got: Vec<_> = record
        .lines()
        .iter()
        .map(|l| (l.raw.clone(), l.offset_after))
        .collect();
    assert_eq!(
        got,
        vec![
            (utf16le("一"), 4),
            (utf16le("二"), 10),
            (b"\x0A".to_vec(), 11)
        ]
    );
    assert!(record.boms.is_empty());
}
