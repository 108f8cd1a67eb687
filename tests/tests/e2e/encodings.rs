//! Encodings (issue 9, item 3): Shift_JIS and UTF-16 files with Japanese text, encoded by
//! glibc's `iconv` (an encoder independent of the agent's `encoding_rs`), arrive as UTF-8 text
//! that `search --contains ログイン` finds, with the bytes as read in `original_b64`; a UTF-16
//! file with a byte-order mark is read as UTF-16 whatever the config says; invalid sequences
//! are replaced, kept as original bytes and counted in status.json (`decode_errors`).

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use base64::Engine as _;
use logship_e2e::{FileInput, run_test, wait_until};
use serde_json::Value;

use crate::support::{pair, pair_inputs};

const ARRIVAL: Duration = Duration::from_secs(60);

/// Lines as people wrote them (UTF-8 here); the files hold them in other encodings. The last
/// line of the UTF-16 files ends in "\r\n", as Windows programs write it.
const TEXT: &[&str] = &[
    "2026-11-29 09:00:01 ログイン失敗 user=山田 src=192.0.2.7",
    "2026-11-29 09:00:02 ログイン成功 user=佐藤",
    "2026-11-29 09:00:03 plain ascii line",
    "2026-11-29 09:00:04 ﾊﾝｶｸ 半角カナ ①② ログイン失敗 user=鈴木",
];

/// `text` encoded by `iconv -f UTF-8 -t <to>`.
fn iconv(text: &str, to: &str) -> Result<Vec<u8>> {
    let mut child = Command::new("iconv")
        .args(["-f", "UTF-8", "-t", to])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("iconv (glibc, package libc-bin) must be installed for this test")?;
    child
        .stdin
        .take()
        .context("iconv stdin")?
        .write_all(text.as_bytes())?;
    let out = child.wait_with_output()?;
    ensure!(out.status.success(), "iconv -t {to} failed: {}", out.status);
    Ok(out.stdout)
}

/// The records of `input`, in order.
fn records(store: &logship_e2e::Store, input: &str) -> Result<Vec<Value>> {
    store.search(&["--input", input])
}

fn original(r: &Value) -> Result<Vec<u8>> {
    let b64 = r["original_b64"]
        .as_str()
        .with_context(|| format!("original_b64 missing: {r}"))?;
    Ok(base64::engine::general_purpose::STANDARD.decode(b64)?)
}

/// Each record's text is the line, and the bytes read are recoverable: `original_b64`, or the
/// text itself when it has none (the bytes were their own UTF-8 text).
fn check_lines(records: &[Value], encoded: &[Vec<u8>]) -> Result<()> {
    let texts: Vec<&str> = records.iter().filter_map(|r| r["raw"].as_str()).collect();
    ensure!(texts == TEXT, "texts {texts:?}");
    for (r, want) in records.iter().zip(encoded) {
        let got = match r.get("original_b64") {
            Some(_) => original(r)?,
            None => r["raw"].as_str().unwrap_or_default().as_bytes().to_vec(),
        };
        ensure!(
            got == *want,
            "original bytes of {:?}: {got:02x?}, wrote {want:02x?}",
            r["raw"]
        );
    }
    Ok(())
}

/// Splits encoded text at the encoded "\n" (2-byte aligned units for UTF-16), dropping the
/// terminator and a "\r" before it, as the agent frames lines.
fn split_encoded(bytes: &[u8], newline: &[u8], cr: &[u8]) -> Vec<Vec<u8>> {
    let unit = newline.len();
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i + unit <= bytes.len() {
        if &bytes[i..i + unit] == newline {
            let mut line = &bytes[start..i];
            if line.ends_with(cr) {
                line = &line[..line.len() - unit];
            }
            out.push(line.to_vec());
            start = i + unit;
        }
        i += unit;
    }
    out
}

#[test]
fn shift_jis_file_arrives_as_utf8_with_its_original_bytes_and_counts_invalid_bytes() {
    run_test(|sb| {
        let log = sb.path().join("erp.log");
        // CP932 is the Shift_JIS Windows writes (with ① and the other NEC/IBM extensions);
        // encoding_rs's "shift_jis" decodes it, as the WHATWG standard says.
        let mut bytes = iconv(&format!("{}\n", TEXT.join("\n")), "CP932")?;
        // 「ロ」 is 83 8D in Shift_JIS: iconv really wrote Shift_JIS, not UTF-8.
        ensure!(
            bytes.starts_with(b"2026-11-29 09:00:01 \x83\x8D"),
            "{bytes:02x?}"
        );
        let encoded = split_encoded(&bytes, b"\n", b"\r");
        // Then a line with a lead byte followed by no trail byte: one invalid sequence.
        bytes.extend_from_slice(b"broken \x81\n");
        std::fs::write(&log, &bytes)?;
        let mut input = FileInput::new("erp", &log);
        input.extra.push("encoding = \"shift_jis\"".into());
        let (collector, _agent) = pair(sb, input)?;
        wait_until(ARRIVAL, "5 records", || Ok(collector.count()? == 5))?;
        let all = records(&collector.store(), "erp")?;
        check_lines(&all[..4], &encoded)?;
        ensure!(
            all[2].get("original_b64").is_none(),
            "an ASCII line is its own text: {}",
            all[2]
        );
        ensure!(all[4]["raw"] == "broken \u{FFFD}", "{}", all[4]);
        ensure!(original(&all[4])? == b"broken \x81", "{}", all[4]);
        let found = collector.store().search(&["--contains", "ログイン"])?;
        let found: Vec<&str> = found.iter().filter_map(|r| r["raw"].as_str()).collect();
        ensure!(
            found == [TEXT[0], TEXT[1], TEXT[3]],
            "--contains ログイン found {found:?}"
        );
        wait_until(ARRIVAL, "decode_errors = 1 in status.json", || {
            let status = collector.status()?.unwrap_or_default();
            Ok(status["agents"]["agent1"]["drops"]["decode_errors"] == 1)
        })?;
        // The replaced bytes were kept, so `agents` does not count them as dropped.
        let out = Command::new(logship_e2e::bin("logship-collector"))
            .args(["agents", "--format", "json", "--data-dir"])
            .arg(collector.data_dir())
            .output()?;
        ensure!(out.status.success(), "agents failed: {}", out.status);
        let agents = String::from_utf8(out.stdout)?;
        let row: Value = serde_json::from_str(agents.lines().next().context("an agent row")?)?;
        ensure!(
            row["drops"] == 0,
            "agents counts decode errors as drops: {row}"
        );
        Ok(())
    });
}

#[test]
fn utf16le_files_arrive_as_utf8_with_or_without_a_byte_order_mark() {
    run_test(|sb| {
        let dir = sb.path().join("win");
        std::fs::create_dir(&dir)?;
        let text = format!("{}\r\n", TEXT.join("\n"));
        // Configured: no mark, the input says utf-16le.
        let plain = iconv(&text, "UTF-16LE")?;
        // glibc's "UTF-16" writes the mark FF FE and little-endian units: the input below says
        // utf-8 (the default) and the mark must win.
        let marked = iconv(&text, "UTF-16")?;
        ensure!(marked.starts_with(&[0xFF, 0xFE]), "{:02x?}", &marked[..4]);
        ensure!(marked[2..] == plain[..], "iconv UTF-16 is LE with a mark");
        let encoded = split_encoded(&plain, b"\n\0", b"\r\0");
        ensure!(encoded.len() == TEXT.len(), "{} lines", encoded.len());
        // Written in odd-sized pieces while the agent reads, so reads end inside code units.
        let (a, b) = (dir.join("configured.log"), dir.join("marked.log"));
        let mut configured = FileInput::new("utf16", &a);
        configured.extra.push("encoding = \"utf-16le\"".into());
        let mut marked_input = FileInput::new("bom", &b);
        // No pause between pieces may pass for a finished last line.
        for input in [&mut configured, &mut marked_input] {
            input.idle_flush_ms = 30_000;
        }
        let (collector, _agent) = pair_inputs(sb, vec![configured, marked_input])?;
        let (mut fa, mut fb) = (std::fs::File::create(&a)?, std::fs::File::create(&b)?);
        let mut at = 0;
        while at < marked.len() {
            let end = at + 7;
            fa.write_all(plain.get(at..end.min(plain.len())).unwrap_or_default())?;
            fb.write_all(&marked[at..end.min(marked.len())])?;
            at = end;
            std::thread::sleep(Duration::from_millis(5));
        }
        wait_until(ARRIVAL, "8 records", || Ok(collector.count()? == 8))?;
        for input in ["utf16", "bom"] {
            let all = records(&collector.store(), input)?;
            check_lines(&all, &encoded).with_context(|| format!("input {input}"))?;
        }
        let found = collector.store().count(&["--contains", "ログイン失敗"])?;
        ensure!(found == 4, "--contains ログイン失敗 found {found}");
        wait_until(ARRIVAL, "decode_errors = 0 in status.json", || {
            let status = collector.status()?.unwrap_or_default();
            Ok(status["agents"]["agent1"]["drops"]["decode_errors"] == 0)
        })?;
        Ok(())
    });
}
