//! What `check-config` checks on this machine beyond the file itself, so that a service starts
//! as written:
//! - the spool directory (the only place the agent writes) is writable, or can be created: error;
//! - the agent certificate is valid now (error) and not about to expire (warning);
//! - every include glob matches at least one file now (warning: files may appear later).

use crate::cert::{Expiry, Validity};

pub use logship_hostcheck::{HostReport, writable_dir};

use super::Config;

/// Checks `cfg` against this machine at time `now` (Unix seconds).
pub fn check_host(cfg: &Config, now: i64) -> HostReport {
    let mut report = HostReport::default();
    if let Err(e) = writable_dir(&cfg.spool.dir) {
        report.errors.push(format!("spool.dir: {e}"));
    }
    match Validity::from_pem_file(&cfg.cert) {
        Err(e) => report.errors.push(format!("collector.cert: {e:#}")),
        Ok(v) => match v.expiry(now) {
            Expiry::Fine => {}
            Expiry::Soon(text) => report.warnings.push(format!("collector.cert: {text}")),
            Expiry::Invalid(text) => report.errors.push(format!("collector.cert: {text}")),
        },
    }
    for input in &cfg.files {
        let tail = &input.tail;
        for pattern in &tail.include {
            let found = logship_tail::matching_files(std::slice::from_ref(pattern), &tail.exclude);
            if found.is_ok_and(|f| f.is_empty()) {
                report.warnings.push(format!(
                    "file {:?}: {pattern:?} matches no file now (it is read once one appears)",
                    tail.input
                ));
            }
        }
    }
    for input in &cfg.journald {
        report
            .warnings
            .extend(crate::journald::reader::check(input));
    }
    report
}
