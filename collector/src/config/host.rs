//! What `check-config` checks on this machine beyond the file itself, so that a service starts
//! as written:
//! - the data directory (store, fields, status.json) is writable, or can be created: error;
//! - the server and CA certificates are valid now (error) and not about to expire (warning).

use crate::certfile::{CertFacts, Expiry};

pub use logship_hostcheck::{HostReport, writable_dir};

use super::Config;

/// Checks `cfg` against this machine at `now`.
pub fn check_host(cfg: &Config, now: time::OffsetDateTime) -> HostReport {
    let mut report = HostReport::default();
    if let Err(e) = writable_dir(&cfg.data_dir) {
        report.errors.push(format!("data_dir: {e}"));
    }
    for (what, path) in [("tls.cert", &cfg.cert), ("tls.ca_cert", &cfg.ca_cert)] {
        match CertFacts::from_pem_file(path) {
            Err(e) => report.errors.push(format!("{what}: {e:#}")),
            Ok(facts) => match facts.expiry(now) {
                Expiry::Fine => {}
                Expiry::Soon(text) => report.warnings.push(format!("{what}: {text}")),
                Expiry::Invalid(text) => report.errors.push(format!("{what}: {text}")),
            },
        }
    }
    report
}
