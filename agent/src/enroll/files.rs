//! Writing the agent's certificate and key so that a crash at any point leaves a pair that
//! works: each file is written beside its place (`NAME.new`, fsync'd; the key with mode 0600 from
//! its creation), then the key is renamed into place, then the certificate.
//! [`finish_interrupted_renewal`] repairs the one state where the two do not match (key renamed,
//! certificate not yet): it completes the second rename. Any other leftover `.new` file is from a
//! write that never reached its first rename and is removed (the old pair is intact).
//! On Windows the key's ACL is narrowed to SYSTEM and Administrators before the key is written.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// `path` with `.new` appended.
fn beside(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".new");
    PathBuf::from(s)
}

/// Writes `path.new` (mode 0600 when `private`) and fsyncs it.
fn write_new(path: &Path, contents: &[u8], private: bool) -> Result<PathBuf> {
    let tmp = beside(path);
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if private { 0o600 } else { 0o644 });
    }
    let mut f = options
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    #[cfg(windows)]
    if private {
        restrict_to_administrators(&tmp)?;
    }
    f.write_all(contents)
        .with_context(|| format!("writing {}", tmp.display()))?;
    f.sync_all()
        .with_context(|| format!("syncing {}", tmp.display()))?;
    Ok(tmp)
}

/// Windows: the key file's ACL keeps only SYSTEM (the service) and Administrators, without
/// inherited entries (ProgramData lets every user read), set by the system's `icacls` before
/// the key is written into it. Fails closed: no key is written when the ACL cannot be set.
#[cfg(windows)]
fn restrict_to_administrators(path: &Path) -> Result<()> {
    let out = std::process::Command::new("icacls")
        .arg(path)
        .args([
            "/inheritance:r",
            "/grant:r",
            "*S-1-5-18:F",
            "*S-1-5-32-544:F",
        ])
        .output()
        .context("running icacls to protect the key")?;
    if !out.status.success() {
        anyhow::bail!(
            "icacls could not restrict {} to SYSTEM and Administrators: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

fn rename(from: &Path, to: &Path) -> Result<()> {
    fs::rename(from, to).with_context(|| format!("renaming {} to {}", from.display(), to.display()))
}

fn sync_dir(path: &Path) {
    #[cfg(not(unix))]
    let _ = path;
    #[cfg(unix)]
    if let Some(dir) = path.parent()
        && let Ok(d) = fs::File::open(if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        })
    {
        // Best effort: the renames are durable on the next sync at the latest.
        if let Err(error) = d.sync_all() {
            tracing::debug!(%error, "Syncing the certificate directory failed.");
        }
    }
}

/// Replaces one file atomically (`private`: mode 0600).
pub fn replace(path: &Path, contents: &[u8], private: bool) -> Result<()> {
    let tmp = write_new(path, contents, private)?;
    rename(&tmp, path)?;
    sync_dir(path);
    Ok(())
}

/// Replaces the certificate and key (see the module doc for the order).
pub fn install_pair(cert: &Path, key: &Path, cert_pem: &str, key_pem: &str) -> Result<()> {
    let key_tmp = write_new(key, key_pem.as_bytes(), true)?;
    let cert_tmp = write_new(cert, cert_pem.as_bytes(), false)?;
    rename(&key_tmp, key)?;
    rename(&cert_tmp, cert)?;
    sync_dir(cert);
    Ok(())
}

/// Repairs what a crash in [`install_pair`] left behind.
pub fn finish_interrupted_renewal(cert: &Path, key: &Path) -> Result<()> {
    let (cert_tmp, key_tmp) = (beside(cert), beside(key));
    let cert_new = cert_tmp.try_exists().unwrap_or(false);
    let key_new = key_tmp.try_exists().unwrap_or(false);
    match (key_new, cert_new) {
        (false, true) => {
            tracing::warn!(cert = %cert.display(),
                "A certificate renewal was interrupted after its key was installed; completing it.");
            rename(&cert_tmp, cert)?;
            sync_dir(cert);
        }
        (true, _) => {
            tracing::warn!(key = %key.display(),
                "A certificate renewal was interrupted before it was installed; the current certificate stays.");
            fs::remove_file(&key_tmp).with_context(|| format!("removing {}", key_tmp.display()))?;
            if cert_new {
                fs::remove_file(&cert_tmp)
                    .with_context(|| format!("removing {}", cert_tmp.display()))?;
            }
        }
        (false, false) => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_crash_point_of_a_renewal_leaves_a_matching_pair() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("agent.pem"), dir.path().join("agent.key"));
        install_pair(&cert, &key, "old cert", "old key").unwrap();
        // Crash after the key was renamed: the certificate follows.
        fs::write(&key, "new key").unwrap();
        fs::write(beside(&cert), "new cert").unwrap();
        finish_interrupted_renewal(&cert, &key).unwrap();
        assert_eq!(fs::read_to_string(&cert).unwrap(), "new cert");
        // Crash before any rename: the old pair stays.
        fs::write(beside(&key), "newer key").unwrap();
        fs::write(beside(&cert), "newer ce").unwrap();
        finish_interrupted_renewal(&cert, &key).unwrap();
        assert_eq!(fs::read_to_string(&key).unwrap(), "new key");
        assert_eq!(fs::read_to_string(&cert).unwrap(), "new cert");
        assert!(!beside(&key).try_exists().unwrap() && !beside(&cert).try_exists().unwrap());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&key).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
