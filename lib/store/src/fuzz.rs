//! Fuzz entry point (used by the `fuzz/` crate): arbitrary bytes as a store segment.

use crate::segment::segment_path;
use crate::{Query, Store, StoreConfig, search, verify};

/// Takes `data` as the only segment of a store and runs every reader over it: `verify`,
/// `search`, and `Store::open` (recovery, quarantine of a damaged tail). None may panic, loop,
/// or allocate past a length it has not checksummed.
pub fn fuzz_segment(data: &[u8]) {
    let dir = std::env::temp_dir().join(format!("logship-fuzz-store-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    let seg = segment_path(&dir, 0, 0);
    let parent = seg.parent().expect("segment paths have a date directory");
    if std::fs::create_dir_all(parent).is_err() || std::fs::write(&seg, data).is_err() {
        return;
    }
    verify(&dir).ok();
    search(&dir, &Query::default(), &mut |_| true).ok();
    let config = StoreConfig {
        dir: dir.clone(),
        ..StoreConfig::default()
    };
    drop(Store::open(config));
    verify(&dir).ok();
    std::fs::remove_dir_all(&dir).ok();
}
