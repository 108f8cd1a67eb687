//! What `check-config` of both programs checks on the machine itself, beyond the config file:
//! a report of errors (the config cannot run here) and warnings, and whether a directory the
//! program must write to is writable or can be created. The checks only look: the one file a
//! check creates (a write probe) is removed again at once.

use std::path::Path;

/// Problems (the config cannot run here) and warnings (it runs, but look).
#[derive(Debug, Default)]
pub struct HostReport {
    /// Each makes `check-config` fail.
    pub errors: Vec<String>,
    /// Printed, but `check-config` succeeds.
    pub warnings: Vec<String>,
}

/// Ok when `dir` exists and a file can be created in it, or when it does not exist yet and its
/// nearest existing ancestor is a writable directory; the program creates the rest.
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
