//! Fuzz entry point (used by the `fuzz/` crate): arbitrary bytes as a spool segment.

use crate::{Spool, SpoolConfig, io};

/// Takes `data` as the only segment of a fresh spool (first seq 1), opens the spool (recovery,
/// quarantine) and reads every batch it offers. Must never panic, loop or allocate past the
/// frame lengths it has checked.
pub fn fuzz_segment(data: &[u8]) {
    let dir = std::env::temp_dir().join(format!("logship-fuzz-spool-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    if std::fs::create_dir_all(&dir).is_err()
        || std::fs::write(io::segment_path(&dir, 1), data).is_err()
    {
        return;
    }
    let config = SpoolConfig {
        dir: dir.clone(),
        ..SpoolConfig::default()
    };
    if let Ok((spool, recovered)) = Spool::open(config) {
        let mut seq = recovered.acked_through + 1;
        while let Ok(Some(batch)) = spool.read_from(seq) {
            seq = batch.first_seq + u64::from(batch.count).max(1);
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}
