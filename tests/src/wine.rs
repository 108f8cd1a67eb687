//! The Windows agent under Wine: a private Wine prefix per test, the cross-built
//! `logship-agent.exe` copied next to a `bcryptprimitives.dll` built here with mingw-w64, and
//! Windows paths for files in the sandbox.
//!
//! Why the DLL: Rust's std on Windows gets random bytes from `ProcessPrng` in
//! `bcryptprimitives.dll`, which Wine 8 (Debian 12) does not have, so the exe does not even
//! load. The DLL built here implements `ProcessPrng` with `RtlGenRandom` (`SystemFunction036` in
//! advapi32, which Wine has); it sits next to the exe, where Windows looks first.
//!
//! Invariants: nothing here skips. A missing `wine64`, `x86_64-w64-mingw32-gcc` or cross-built
//! exe is an error that fails the test. The prefix's wineserver is killed when [`Wine`] is
//! dropped, so no Wine process outlives the test.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail, ensure};

use crate::{Sandbox, bin_dir};

/// Source of the `ProcessPrng` shim (see the module docs).
const PROCESS_PRNG_C: &str = r#"#include <windows.h>
BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);
__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len) {
    while (len > 0) {
        ULONG chunk = len > 0x40000000 ? 0x40000000 : (ULONG)len;
        if (!SystemFunction036(data, chunk)) return FALSE;
        data += chunk;
        len -= chunk;
    }
    return TRUE;
}
"#;

/// The cross-compilation target of the Windows agent.
pub const WINDOWS_TARGET: &str = "x86_64-pc-windows-gnu";

/// A Wine prefix with the Windows agent installed in `<sandbox>/win/`.
pub struct Wine {
    wine64: PathBuf,
    wineserver: PathBuf,
    prefix: PathBuf,
    exe: PathBuf,
}

// === impl Wine ===

impl Wine {
    /// Creates the prefix (`wineboot`), builds the DLL and copies the agent exe beside it.
    pub fn install(sandbox: &Sandbox) -> Result<Wine> {
        let wine64 = find_program("wine64", "/usr/lib/wine/wine64")
            .context("wine64 is not installed (Debian package wine64)")?;
        let wineserver = find_program("wineserver", "/usr/lib/wine/wineserver")
            .context("wineserver is not installed (Debian package wine64)")?;
        let built = windows_agent_exe();
        ensure!(
            built.try_exists()?,
            "{} not found; run `cargo build --target {WINDOWS_TARGET} -p logship-agent` first",
            built.display()
        );
        let dir = sandbox.path().join("win");
        std::fs::create_dir_all(&dir)?;
        let wine = Wine {
            wine64,
            wineserver,
            prefix: sandbox.path().join("wineprefix"),
            exe: dir.join("logship-agent.exe"),
        };
        std::fs::copy(&built, &wine.exe).context("copying logship-agent.exe")?;
        build_prng_dll(&dir)?;
        let boot = wine
            .command("wineboot")
            .arg("--init")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .context("running wineboot")?;
        ensure!(boot.success(), "wineboot --init failed with {boot}");
        Ok(wine)
    }

    /// `wine64 PROGRAM` in this prefix (PROGRAM: a Windows path or a program in the prefix).
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(&self.wine64);
        cmd.arg(program)
            .env("WINEPREFIX", &self.prefix)
            .env("WINEDEBUG", "-all")
            .env("WINEDLLOVERRIDES", "mscoree,mshtml=");
        cmd
    }

    /// `logship-agent.exe ARGS` under Wine.
    pub fn agent(&self) -> Command {
        self.command(&windows_path(&self.exe))
    }

    /// Runs `cmd.exe /c LINE` in the prefix (a Windows process, so Windows sharing rules
    /// apply to what it does) and fails unless it succeeds.
    pub fn cmd(&self, line: &str) -> Result<()> {
        let out = self
            .command("cmd")
            .args(["/c", line])
            .output()
            .context("running cmd under wine")?;
        if !out.status.success() {
            bail!(
                "cmd /c {line} failed with {}: {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }
}

impl Drop for Wine {
    fn drop(&mut self) {
        // Best effort while dropping: ends every process of this prefix.
        Command::new(&self.wineserver)
            .arg("-k")
            .env("WINEPREFIX", &self.prefix)
            .status()
            .ok();
    }
}

/// The path Windows programs under Wine use for `path` (drive Z: is the Unix root).
pub fn windows_path(path: &Path) -> String {
    format!("Z:{}", path.display().to_string().replace('/', "\\"))
}

/// `target/x86_64-pc-windows-gnu/debug/logship-agent.exe`, next to the native binaries' dir.
pub fn windows_agent_exe() -> PathBuf {
    let native = bin_dir();
    let profile = native.file_name().map(PathBuf::from).unwrap_or_default();
    let target = native.parent().map(Path::to_path_buf).unwrap_or_default();
    target
        .join(WINDOWS_TARGET)
        .join(profile)
        .join("logship-agent.exe")
}

fn build_prng_dll(dir: &Path) -> Result<()> {
    let source = dir.join("process_prng.c");
    std::fs::write(&source, PROCESS_PRNG_C)?;
    let out = Command::new("x86_64-w64-mingw32-gcc")
        .args(["-shared", "-O2", "-o"])
        .arg(dir.join("bcryptprimitives.dll"))
        .arg(&source)
        .arg("-ladvapi32")
        .output()
        .context("x86_64-w64-mingw32-gcc is not installed (Debian package mingw-w64)")?;
    ensure!(
        out.status.success(),
        "building bcryptprimitives.dll failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// `name` on PATH, else `fallback` if it exists.
fn find_program(name: &str, fallback: &str) -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    });
    on_path.or_else(|| Some(PathBuf::from(fallback)).filter(|p| p.is_file()))
}
