//! A small tmpfs mounted for one test (the tests run as root), to make a real disk-full.
//!
//! Invariant: the mount is lazily unmounted (`umount -l`) when the [`Tmpfs`] is dropped, so a
//! failing test leaves no mount behind even while a process still has files open on it.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// A mounted tmpfs.
pub struct Tmpfs {
    path: PathBuf,
}

// === impl Tmpfs ===

impl Tmpfs {
    /// Mounts a tmpfs of `size_bytes` on `path` (created if needed). Fails, never skips, when
    /// the `mount` program is missing or the test lacks the privilege.
    pub fn mount(path: &Path, size_bytes: u64) -> Result<Tmpfs> {
        std::fs::create_dir_all(path)?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_bytes},mode=0700")])
            .arg("tmpfs")
            .arg(path)
            .output()
            .context("running `mount` (util-linux) to create a small tmpfs")?;
        if !out.status.success() {
            bail!(
                "mounting a tmpfs on {} failed (the disk-full tests need root): {}",
                path.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(Tmpfs {
            path: path.to_path_buf(),
        })
    }

    /// Changes the size of the mounted tmpfs (space "returns" when it grows).
    pub fn resize(&self, size_bytes: u64) -> Result<()> {
        let out = Command::new("mount")
            .args(["-o", &format!("remount,size={size_bytes}")])
            .arg(&self.path)
            .output()
            .context("running `mount -o remount`")?;
        if !out.status.success() {
            bail!(
                "resizing the tmpfs on {} failed: {}",
                self.path.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }

    /// The mount point.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let status = Command::new("umount").arg("-l").arg(&self.path).status();
        if !matches!(status, Ok(s) if s.success()) {
            eprintln!("could not unmount the tmpfs at {}", self.path.display());
        }
    }
}

/// Writes zeros to `path` until the file system is full (ENOSPC); returns the bytes written.
pub fn fill_until_full(path: &Path) -> Result<u64> {
    let mut file = OpenOptions::new().create(true).append(true).open(path)?;
    let chunk = vec![0u8; 4096];
    let mut written = 0u64;
    loop {
        match file.write(&chunk) {
            Ok(0) => break,
            Ok(n) => written += n as u64,
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
            Err(e) => return Err(e.into()),
        }
    }
    // Also the last partial page: single bytes until none fits.
    while let Ok(1) = file.write(&chunk[..1]) {
        written += 1;
    }
    Ok(written)
}
