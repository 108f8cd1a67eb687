//! What `check-config` checks on this machine beyond the file itself, so that a service starts
//! as written:
//! - the data directory (store, fields, status.json) is writable, or can be created: error;
//! - the server and CA certificates are valid now (error) and not about to expire (warning).

use std::path::Path;

use crate::certfile::{CertFacts, Expiry};

use super::Config;

/// Problems (the config cannot run here) and warnings (it runs, but look).
#[derive(Debug, Default)]
pub struct HostReport {
    /// Each makes `check-config` fail.
    pub errors: Vec<String>,
    /// Printed, but `check-config` succeeds.
    pub warnings: Vec<String>,
}

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

/// Ok when `dir` exists and a file can be created in it, or when it does not exist yet and its
/// nearest existing ancestor is a writable directory.
pub fn writable_dir(dir: &Path) -> Result<(), String> {
    let existing = dir
        .ancestors()
        .find(|p| p.try_exists().unwrap_or(false))
        .unwrap_or(Path::new("."));
    if !existing.is_dir() {
        return Err(format!("{} is not a directory", existing.display()));
    }
    let probe = existing.join(format!(".logship-write-check-{}", std::process::id()));
    let created = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe);
    match created {
        Ok(_) => {
            std::fs::remove_file(&probe).ok();
            Ok(())
        }
        Err(e) if existing == dir => Err(format!("{} is not writable: {e}", dir.display())),
        Err(e) => Err(format!(
            "{} does not exist and cannot be created in {}: {e}",
            dir.display(),
            existing.display()
        )),
    }
}
