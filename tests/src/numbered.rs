//! Numbered lines and the exactly-once check: every line carries `line=NNNNNNNNN`, and the check
//! streams the store's search output, counting each number.

use anyhow::{Result, bail};
use rand::Rng;

use crate::Store;

/// Characters of the random filler (not very compressible, like real logs' ids and addresses).
const FILLER: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

/// Line number `i` followed by `filler` random characters (no newline).
pub fn numbered_line(i: u64, filler: usize) -> String {
    let mut rng = rand::rng();
    let tail: String = (0..filler)
        .map(|_| FILLER[rng.random_range(0..FILLER.len())] as char)
        .collect();
    format!("app[{}]: request done line={i:09} id={tail}", i % 977)
}

/// The number in a line made by [`numbered_line`].
pub fn line_number(raw: &str) -> Option<u64> {
    let at = raw.find("line=")? + 5;
    raw.get(at..at + 9)?.parse().ok()
}

/// Checks that records of `input` hold line numbers `0..n`, each exactly once.
pub fn check_exactly_once(store: &Store, input: &str, n: u64) -> Result<()> {
    let mut seen = vec![0u8; usize::try_from(n)?];
    let mut foreign = Vec::new();
    store.search_each(&["--input", input], |rec| {
        let raw = rec["raw"].as_str().unwrap_or_default();
        match line_number(raw).filter(|&i| i < n) {
            Some(i) => {
                let slot = &mut seen[usize::try_from(i)?];
                *slot = slot.saturating_add(1);
            }
            None if foreign.len() < 10 => foreign.push(rec.to_string()),
            None => {}
        }
        Ok(())
    })?;
    let missing: Vec<usize> = positions(&seen, |c| c == 0);
    let duplicated: Vec<usize> = positions(&seen, |c| c > 1);
    if !missing.is_empty() || !duplicated.is_empty() || !foreign.is_empty() {
        bail!(
            "exactly-once violated: {} missing (first {:?}), {} duplicated (first {:?}), \
             unexpected records {:?}",
            missing.len(),
            &missing[..missing.len().min(10)],
            duplicated.len(),
            &duplicated[..duplicated.len().min(10)],
            foreign
        );
    }
    Ok(())
}

fn positions(seen: &[u8], pred: impl Fn(u8) -> bool) -> Vec<usize> {
    seen.iter()
        .enumerate()
        .filter(|&(_, &c)| pred(c))
        .map(|(i, _)| i)
        .collect()
}
