//! Signed checkpoints: `verify` with a witness catches what the chain alone cannot (whole
//! blocks cut from the end, a rewrite with a recomputed chain) and every other tampering, and
//! passes an untouched store.

use super::*;
use crate::tamper;
use crate::{
    COLLECTOR_IDENTITY, PublicKey, StoreError, VerifyReport, Witness, WitnessKey, find_checkpoints,
    verify, verify_with_witness,
};

fn key() -> WitnessKey {
    WitnessKey::from_pkcs8(&WitnessKey::generate_pkcs8().unwrap()).unwrap()
}

/// Six agent blocks with a checkpoint after the third and after the sixth; returns the
/// checkpoint texts as the SOC would hold them (one file) and the key.
fn checkpointed_store(dir: &Path) -> (String, PublicKey) {
    let k = key();
    let mut store = open(dir);
    let mut soc = String::new();
    for b in 0..6u64 {
        store
            .append(block(&Spec {
                first_seq: 1 + 4 * b,
                ..Spec::default()
            }))
            .unwrap();
        if b == 2 || b == 5 {
            let (_, cp, text) = store
                .append_checkpoint(&k, "collector-host", "periodic")
                .unwrap();
            assert_eq!(cp.blocks, if b == 2 { 3 } else { 7 });
            soc.push_str(&format!("<14>1 - collector - - - {text}\n"));
        }
    }
    store.sync().unwrap();
    (soc, k.public_key())
}

fn witnessed(dir: &Path, soc: &str, pk: PublicKey) -> VerifyReport {
    let w = Witness {
        key: pk,
        checkpoints: find_checkpoints(soc),
    };
    verify_with_witness(dir, Some(&w), &mut |_| true).unwrap()
}

fn failures(r: &VerifyReport) -> Vec<String> {
    r.checkpoints
        .iter()
        .filter_map(|c| c.failure.clone())
        .collect()
}

fn segment(dir: &Path) -> std::path::PathBuf {
    let segs = tamper::segment_files(dir);
    assert_eq!(segs.len(), 1);
    segs[0].clone()
}

#[test]
fn an_untouched_store_passes_every_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let (soc, pk) = checkpointed_store(dir.path());
    let r = witnessed(dir.path(), &soc, pk);
    assert!(r.is_ok(), "{:?}", r.problems);
    assert_eq!(r.checkpoints.len(), 2);
    assert_eq!(r.blocks, 8);
    assert!(failures(&r).is_empty());
}

#[test]
fn checkpoints_are_records_of_the_reserved_identity_that_agents_cannot_use() {
    let dir = tempfile::tempdir().unwrap();
    checkpointed_store(dir.path());
    let (hits, _) = {
        let mut hits = Vec::new();
        let stats = search(
            dir.path(),
            &Query {
                agent: Some(COLLECTOR_IDENTITY.into()),
                ..Query::default()
            },
            &mut |r| {
                hits.push(String::from_utf8(r.raw.to_vec()).unwrap());
                true
            },
        )
        .unwrap();
        (hits, stats)
    };
    assert_eq!(hits.len(), 2);
    assert!(hits.iter().all(|h| h.starts_with(crate::CHECKPOINT_PREFIX)));
    // A search that does not name the identity leaves them out.
    let (all, _) = collect(dir.path(), &Query::default());
    assert_eq!(all.len(), 24);
    assert!(all.iter().all(|h| h.0 == "agent-1"));
    let mut store = open(dir.path());
    let forged = block(&Spec {
        agent: COLLECTOR_IDENTITY,
        stream: "checkpoint",
        first_seq: 100,
        ..Spec::default()
    });
    assert!(matches!(
        store.append(forged),
        Err(StoreError::InvalidBlock(_))
    ));
}

#[test]
fn a_flipped_byte_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let (soc, pk) = checkpointed_store(dir.path());
    let seg = segment(dir.path());
    let spans = tamper::block_spans(&seg, 16);
    let (off, len) = spans[1];
    crate::tests::flip(&seg, off + len / 2);
    let r = witnessed(dir.path(), &soc, pk);
    assert!(!r.is_ok());
    assert!(!verify(dir.path()).unwrap().is_ok());
}

#[test]
fn a_deleted_block_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let (soc, pk) = checkpointed_store(dir.path());
    let seg = segment(dir.path());
    let (off, len) = tamper::block_spans(&seg, 16)[1];
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes.drain(off as usize..(off + len) as usize);
    std::fs::write(&seg, bytes).unwrap();
    let r = witnessed(dir.path(), &soc, pk);
    assert!(!r.is_ok());
    assert_eq!(failures(&r).len(), 2, "{:?}", r.checkpoints);
}

#[test]
fn two_swapped_blocks_are_detected() {
    let dir = tempfile::tempdir().unwrap();
    let (soc, pk) = checkpointed_store(dir.path());
    let seg = segment(dir.path());
    let spans = tamper::block_spans(&seg, 16);
    let bytes = std::fs::read(&seg).unwrap();
    let piece = |(o, l): (u64, u64)| bytes[o as usize..(o + l) as usize].to_vec();
    let mut out = bytes[..spans[1].0 as usize].to_vec();
    out.extend(piece(spans[2]));
    out.extend(piece(spans[1]));
    out.extend_from_slice(&bytes[(spans[2].0 + spans[2].1) as usize..]);
    std::fs::write(&seg, out).unwrap();
    let r = witnessed(dir.path(), &soc, pk);
    assert!(
        r.problems.iter().any(|p| p.reason.contains("chain broken")),
        "{:?}",
        r.problems
    );
}

#[test]
fn whole_blocks_cut_from_the_end_pass_the_chain_but_not_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let (soc, pk) = checkpointed_store(dir.path());
    let seg = segment(dir.path());
    let spans = tamper::block_spans(&seg, 16);
    // Keep the first 5 blocks: 3 agent blocks, the first checkpoint, one more agent block.
    let keep = spans[4].0 + spans[4].1;
    let file = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
    file.set_len(keep).unwrap();
    assert!(
        verify(dir.path()).unwrap().is_ok(),
        "the data alone cannot see it"
    );
    let r = witnessed(dir.path(), &soc, pk);
    let f = failures(&r);
    assert_eq!(f.len(), 1, "{f:?}");
    assert!(f[0].contains("cut from the end"), "{f:?}");
    assert!(!r.is_ok());
}

#[test]
fn a_rewrite_with_a_recomputed_chain_passes_the_chain_but_not_the_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let (soc, pk) = checkpointed_store(dir.path());
    let n = tamper::rewrite_store_with_recomputed_chain(dir.path(), "seq=2 ", "seq=2 edited ");
    assert_eq!(n, 1);
    assert!(
        verify(dir.path()).unwrap().is_ok(),
        "the data alone cannot see it"
    );
    let r = witnessed(dir.path(), &soc, pk);
    let f = failures(&r);
    assert_eq!(f.len(), 2, "{f:?}");
    assert!(f.iter().all(|f| f.contains("recomputed chain")), "{f:?}");
}

#[test]
fn a_checkpoint_of_another_key_or_store_or_altered_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (soc, _) = checkpointed_store(dir.path());
    let r = witnessed(dir.path(), &soc, key().public_key());
    assert_eq!(failures(&r).len(), 2);
    assert!(failures(&r)[0].contains("signature"));
    let other = tempfile::tempdir().unwrap();
    let (soc_other, pk_other) = checkpointed_store(other.path());
    let r = witnessed(dir.path(), &soc_other, pk_other);
    assert!(
        failures(&r).iter().all(|f| f.contains("is of store")),
        "{:?}",
        failures(&r)
    );
}
