//! What `check-config` checks on this machine beyond the file itself, so that a service starts
//! as written:
//! - the spool directory (the only place the agent writes) is writable, or can be created: error;
//! - the agent certificate is valid now (error) and not about to expire (warning);
//! - every include glob matches at least one file now (warning: files may appear later).

use std::path::Path;

use crate::cert::{Expiry, Validity};

use super::Config;

/// Problems (the config cannot run here) and warnings (it runs, but look).
#[derive(Debug, Default)]
pub struct HostReport {
    /// Each makes `check-config` fail.
    pub errors: Vec<String>,
    /// Printed, but `check-config` succeeds.
    pub warnings: Vec<String>,
}

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

/// Ok when `dir` exists and a file can be created in it, or when it does not exist yet and its
/// nearest existing ancestor is a writable directory (the agent creates the rest).
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_dir_under_a_writable_one_is_fine() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(writable_dir(&tmp.path().join("a/b/spool")).is_ok());
        assert!(writable_dir(tmp.path()).is_ok());
    }

    #[test]
    fn a_file_in_the_way_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("file");
        std::fs::write(&file, b"x").unwrap();
        let error = writable_dir(&file.join("spool")).unwrap_err();
        assert!(error.contains("is not a directory"), "{error}");
    }
}
