//! Golden output: every line of every fixture under `tests/data` (and every line of the
//! accuracy table, forced to its dataset) normalized, its JSON hashed and compared with
//! `tests/data/golden.fnv`, which holds the hashes of the JSON as the normalizer printed it
//! before its field map became a flat buffer (issue 13). A change of any field, value or type
//! of any of those ~2,950 events fails the test and names the line and the
//! JSON it gives now.
//!
//! To accept an intended change of output: `LOGSHIP_BLESS=1 cargo test -p logship-normalize
//! --test golden`, and say in the commit why the output changed.
//!
//! Lines of one file go through one [`Normalizer`] in order (as a stream does), so the joins
//! across lines (postfix, auditd, OpenSMTPD, strongSwan, sshd) are covered too.

mod common;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use common::CTX;
use logship_normalize::{Event, Normalizer};

/// FNV-1a 64: stable across Rust versions (std's hasher is not promised to be).
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The event's JSON with its field names sorted: the order of a `serde_json::Map` depends on
/// whether some crate of the build turns on serde_json's `preserve_order` (the workspace does,
/// through `evtx`), and the golden hashes must not.
fn json(e: &Event) -> String {
    let fields: std::collections::BTreeMap<&String, &serde_json::Value> = e.fields.iter().collect();
    serde_json::json!({"dataset": e.dataset, "fields": fields}).to_string()
}

fn fixtures(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("tests/data readable")
        .map(|e| e.expect("entry").path())
        .collect();
    entries.sort();
    for p in entries {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if p.is_dir() {
            fixtures(&p, out);
        } else if !(name.ends_with(".md")
            || name.ends_with(".py")
            || name.ends_with(".jsonl")
            || name.ends_with(".fnv"))
        {
            out.push(p);
        }
    }
}

/// `(label, JSON)` of every golden event.
fn events() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let mut files = Vec::new();
    fixtures(&root, &mut files);
    let mut all = Vec::new();
    for path in files {
        let rel = path
            .strip_prefix(&root)
            .expect("under data")
            .display()
            .to_string();
        let bytes = std::fs::read(&path).expect("fixture readable");
        let mut n = Normalizer::new();
        for (i, line) in bytes.split(|b| *b == b'\n').enumerate() {
            if line.is_empty() {
                continue;
            }
            all.push((format!("{rel}:{}", i + 1), json(&n.normalize(line, &CTX))));
        }
    }
    let table = std::fs::read_to_string(root.join("accuracy.jsonl")).expect("accuracy table");
    let mut n = Normalizer::new();
    for (i, row) in table.lines().enumerate() {
        let row: serde_json::Value = serde_json::from_str(row).expect("table row is JSON");
        let (Some(dataset), Some(line)) = (row["dataset"].as_str(), row["line"].as_str()) else {
            panic!("accuracy.jsonl:{} has no dataset/line", i + 1);
        };
        // Rows a parser must not claim are marked `unparsed`: those run auto-detected.
        let forced = match dataset {
            "unparsed" => n.normalize(line.as_bytes(), &CTX),
            d => n
                .normalize_as(d, line.as_bytes(), &CTX)
                .expect("known dataset"),
        };
        all.push((format!("accuracy.jsonl:{}:{dataset}", i + 1), json(&forced)));
    }
    all
}

#[test]
fn every_fixture_line_gives_the_same_json_as_before() {
    let golden_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/golden.fnv");
    let events = events();
    assert!(events.len() > 2_900, "fixtures found: {}", events.len());
    let mut now = String::new();
    for (label, json) in &events {
        writeln!(now, "{label} {:016x}", fnv(json.as_bytes())).expect("string");
    }
    if std::env::var_os("LOGSHIP_BLESS").is_some() {
        std::fs::write(&golden_path, &now).expect("write golden");
        return;
    }
    let golden = std::fs::read_to_string(&golden_path).expect("tests/data/golden.fnv present");
    let mut wrong = Vec::new();
    let mut golden_lines = golden.lines();
    for ((label, json), line) in events.iter().zip(now.lines()) {
        let want = golden_lines.next();
        if want != Some(line) {
            wrong.push(format!("{label}: golden {want:?}, now {line:?}: {json}"));
        }
    }
    assert_eq!(
        golden.lines().count(),
        events.len(),
        "number of golden events changed (fixtures added? bless)"
    );
    assert!(
        wrong.is_empty(),
        "{} of {} events differ; first ones:\n{}",
        wrong.len(),
        events.len(),
        wrong[..wrong.len().min(5)].join("\n")
    );
}
