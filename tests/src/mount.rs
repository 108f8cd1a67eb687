//! A small tmpfs mounted by a test, so a disk really fills up (ENOSPC from the kernel, not a
//! simulation). Tests run as root, as CI does; a failed mount fails the test, never skips it.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// A mounted tmpfs, unmounted (lazily) when dropped.
#[derive(Debug)]
pub struct Tmpfs {
    path: PathBuf,
}

// === impl Tmpfs ===

impl Tmpfs {
    /// Creates `path` and mounts a tmpfs of `size_bytes` on it.
    pub fn mount(path: &Path, size_bytes: u64) -> Result<Tmpfs> {
        std::fs::create_dir_all(path)?;
        run(Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_bytes}"), "tmpfs"])
            .arg(path))
        .context("mounting a tmpfs for a disk-full test (the tests run as root)")?;
        Ok(Tmpfs {
            path: path.to_path_buf(),
        })
    }

    /// Changes the size of the mounted tmpfs (space "returns" when it grows).
    pub fn resize(&self, size_bytes: u64) -> Result<()> {
        run(Command::new("mount")
            .args(["-o", &format!("remount,size={size_bytes}")])
            .arg(&self.path))
    }

    /// Mount point.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        Command::new("umount")
            .arg("-l")
            .arg(&self.path)
            .status()
            .ok();
    }
}

fn run(cmd: &mut Command) -> Result<()> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}
