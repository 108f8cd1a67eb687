//! Evidence archives: an export verifies on its own, and each kind of tampering applied to the
//! archive (even with the manifest's sums recomputed, as a forger would) is caught.

use super::*;
use crate::tamper;
use crate::{
    ArchiveError, ArchiveReport, BLOCKS_FILE, ExportReport, ExportRequest, Manifest, WitnessKey,
    export, read_manifest, verify_archive,
};

/// Agent blocks b0..b9 (block numbers 1-3, 5-9, 11-12) with checkpoints as blocks 4
/// (covering 3) and 10 (covering 9).
fn store(dir: &Path) -> WitnessKey {
    let k = WitnessKey::from_pkcs8(&WitnessKey::generate_pkcs8().unwrap()).unwrap();
    let mut store = open(dir);
    for b in 0..10u64 {
        store
            .append(block(&Spec {
                first_seq: 1 + 4 * b,
                ..Spec::default()
            }))
            .unwrap();
        if b == 2 || b == 7 {
            store
                .append_checkpoint(&k, "collector-host", "periodic")
                .unwrap();
        }
    }
    store.sync().unwrap();
    k
}

/// Exports the agent blocks whose first seq is in `seqs`.
fn export_seqs(dir: &Path, out: &Path, k: &WitnessKey, seqs: &[u64]) -> ExportReport {
    let mut select =
        |b: &crate::BlockSummary<'_>| b.agent == "agent-1" && seqs.contains(&b.first_seq);
    export(
        dir,
        ExportRequest {
            out,
            select: &mut select,
            key: k,
            selection: serde_json::json!({"test": true}),
            readme: "test archive",
        },
    )
    .unwrap()
}

fn problems(out: &Path) -> Vec<String> {
    verify_archive(out, &[], None).problems
}

fn fresh() -> (tempfile::TempDir, std::path::PathBuf, WitnessKey) {
    let dir = tempfile::tempdir().unwrap();
    let k = store(dir.path());
    let out = dir.path().join("archive");
    export_seqs(dir.path(), &out, &k, &[13, 17]);
    (dir, out, k)
}

fn reseal(out: &Path) {
    let mut m: Manifest = read_manifest(out).unwrap();
    tamper::reseal_archive(out, &mut m);
}

fn spans(out: &Path) -> Vec<(u64, u64)> {
    tamper::block_spans(&out.join(BLOCKS_FILE), 0)
}

#[test]
fn an_export_runs_to_the_covering_checkpoint_and_verifies_on_its_own() {
    let (_dir, out, _) = fresh();
    let m = read_manifest(&out).unwrap();
    // b3, b4 are blocks 5 and 6; the next checkpoint covers block 9.
    assert_eq!((m.first_block, m.last_block), (5, 9));
    assert_eq!(m.matching_blocks, vec![5, 6]);
    assert_eq!(m.records, 20);
    let r: ArchiveReport = verify_archive(&out, &[], None);
    assert!(r.problems.is_empty(), "{:?}", r.problems);
    assert_eq!(r.blocks, 5);
    assert_eq!(r.checkpoints.len(), 1);
    assert_eq!(r.checkpoints[0].blocks, Some(9));
}

#[test]
fn an_export_past_the_last_checkpoint_is_signed_at_export() {
    let dir = tempfile::tempdir().unwrap();
    let k = store(dir.path());
    let out = dir.path().join("archive");
    let rep = export_seqs(dir.path(), &out, &k, &[37]);
    assert!(rep.signed_at_export);
    assert_eq!(
        (rep.manifest.first_block, rep.manifest.last_block),
        (12, 12)
    );
    assert!(problems(&out).is_empty(), "{:?}", problems(&out));
}

#[test]
fn an_empty_selection_or_a_used_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let k = store(dir.path());
    let mut none = |_: &crate::BlockSummary<'_>| false;
    let r = export(
        dir.path(),
        ExportRequest {
            out: &dir.path().join("a"),
            select: &mut none,
            key: &k,
            selection: serde_json::Value::Null,
            readme: "",
        },
    );
    assert!(matches!(r, Err(ArchiveError::NothingSelected)));
    let out = dir.path().join("b");
    export_seqs(dir.path(), &out, &k, &[1]);
    let mut all = |_: &crate::BlockSummary<'_>| true;
    let again = export(
        dir.path(),
        ExportRequest {
            out: &out,
            select: &mut all,
            key: &k,
            selection: serde_json::Value::Null,
            readme: "",
        },
    );
    assert!(matches!(again, Err(ArchiveError::OutNotEmpty(_))));
}

#[test]
fn a_flipped_byte_in_the_archive_is_detected_even_with_fresh_sums() {
    let (_dir, out, _) = fresh();
    let (off, len) = spans(&out)[2];
    flip(&out.join(BLOCKS_FILE), off + len - 40);
    assert!(problems(&out).iter().any(|p| p.contains("SHA-256")));
    reseal(&out);
    let p = problems(&out);
    assert!(p.iter().any(|p| p.contains("block 7")), "{p:?}");
}

#[test]
fn a_deleted_block_in_the_archive_is_detected() {
    let (_dir, out, _) = fresh();
    let path = out.join(BLOCKS_FILE);
    let (off, len) = spans(&out)[1];
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.drain(off as usize..(off + len) as usize);
    std::fs::write(&path, bytes).unwrap();
    reseal(&out);
    let p = problems(&out);
    assert!(p.iter().any(|p| p.contains("chain broken")), "{p:?}");
}

#[test]
fn two_swapped_blocks_in_the_archive_are_detected() {
    let (_dir, out, _) = fresh();
    let path = out.join(BLOCKS_FILE);
    let s = spans(&out);
    let bytes = std::fs::read(&path).unwrap();
    let piece = |(o, l): (u64, u64)| bytes[o as usize..(o + l) as usize].to_vec();
    let mut swapped = piece(s[0]);
    swapped.extend(piece(s[2]));
    swapped.extend(piece(s[1]));
    for &sp in &s[3..] {
        swapped.extend(piece(sp));
    }
    std::fs::write(&path, swapped).unwrap();
    reseal(&out);
    let p = problems(&out);
    assert!(p.iter().any(|p| p.contains("chain broken")), "{p:?}");
}

#[test]
fn whole_blocks_cut_from_the_end_of_the_archive_are_detected() {
    let (_dir, out, _) = fresh();
    let path = out.join(BLOCKS_FILE);
    let s = spans(&out);
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(s[2].0 + s[2].1).unwrap();
    let mut m = read_manifest(&out).unwrap();
    m.last_block = m.first_block + 2;
    tamper::reseal_archive(&out, &mut m);
    let p = problems(&out);
    assert!(p.iter().any(|p| p.contains("cut from the end")), "{p:?}");
}

#[test]
fn an_archive_rewritten_with_a_recomputed_chain_is_detected() {
    let (_dir, out, _) = fresh();
    let n = tamper::rewrite_archive_with_recomputed_chain(&out, "seq=14 ", "seq=14 edited ");
    assert_eq!(n, 1);
    let p = problems(&out);
    assert_eq!(p.len(), 2, "{p:?}");
    assert!(p.iter().any(|p| p.contains("recomputed chain")), "{p:?}");
}

#[test]
fn a_hostile_manifest_or_blocks_file_is_reported_never_a_panic() {
    let (_dir, out, _) = fresh();
    let good = read_manifest(&out).unwrap();
    for (first, last) in [(0, 0), (0, 5), (9, 5), (u64::MAX, u64::MAX), (1, u64::MAX)] {
        let mut m = good.clone();
        m.first_block = first;
        m.last_block = last;
        tamper::reseal_archive(&out, &mut m);
        assert!(!problems(&out).is_empty(), "{first}..={last} accepted");
    }
    let mut m = good.clone();
    tamper::reseal_archive(&out, &mut m);
    assert!(problems(&out).is_empty());
    // A blocks file cut in the middle of a block, and one of garbage.
    let path = out.join(BLOCKS_FILE);
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    tamper::reseal_archive(&out, &mut m);
    assert!(problems(&out).iter().any(|p| p.contains("partial block")));
    std::fs::write(&path, vec![0x5a; 4096]).unwrap();
    tamper::reseal_archive(&out, &mut m);
    assert!(!problems(&out).is_empty());
    std::fs::write(out.join(crate::MANIFEST), b"{not json").unwrap();
    assert!(problems(&out)[0].contains("not an archive manifest"));
}

#[test]
fn every_flipped_byte_of_the_blocks_is_caught_even_with_fresh_sums() {
    let (_dir, out, _) = fresh();
    let path = out.join(BLOCKS_FILE);
    let original = std::fs::read(&path).unwrap();
    let mut m = read_manifest(&out).unwrap();
    for i in 0..original.len() {
        let mut bad = original.clone();
        bad[i] ^= 0x01;
        std::fs::write(&path, &bad).unwrap();
        tamper::reseal_archive(&out, &mut m);
        assert!(
            !problems(&out).is_empty(),
            "flip at {i} of {} passed",
            bad.len()
        );
    }
    std::fs::write(&path, &original).unwrap();
    tamper::reseal_archive(&out, &mut m);
    assert!(problems(&out).is_empty());
}
