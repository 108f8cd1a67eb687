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
        wine.wait_for_settle()?;
        // One wineserver for the whole test (killed on drop): one "boot", so the Service
        // Control Manager starts once and automatic-start services start only when told.
        let server = Command::new(&wine.wineserver)
            .arg("-p")
            .env("WINEPREFIX", &wine.prefix)
            .status()
            .context("starting a persistent wineserver")?;
        ensure!(server.success(), "wineserver -p failed with {server}");
        // The first Windows process of the session starts services.exe and the other system
        // processes, which live as long as the server and inherit its standard handles: give
        // them none, or they would hold a later command's captured output open.
        let first = wine
            .command("cmd")
            .args(["/c", "exit", "0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .context("starting the Wine session")?;
        ensure!(first.success(), "cmd /c exit 0 failed with {first}");
        Ok(wine)
    }

    /// Waits until the wineserver that set up the prefix has exited. A new prefix's first
    /// boot goes on after `wineboot --init` returns; a command run meanwhile can start a second
    /// `services.exe`, and two Service Control Managers then answer in turn, each with its own
    /// list of services (seen with Wine 8: a service installed through one is missing from the
    /// other).
    fn wait_for_settle(&self) -> Result<()> {
        let mut wait = Command::new(&self.wineserver)
            .arg("-w")
            .env("WINEPREFIX", &self.prefix)
            .spawn()
            .context("running wineserver -w")?;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(180);
        loop {
            if let Some(status) = wait.try_wait()? {
                ensure!(status.success(), "wineserver -w failed with {status}");
                return Ok(());
            }
            if std::time::Instant::now() > deadline {
                wait.kill().ok();
                wait.wait().ok();
                bail!("the new Wine prefix did not settle (wineserver -w) within 180 s");
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
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

// === Windows service (the prefix's Service Control Manager) ===

impl Wine {
    /// `logship-agent.exe service ARGS`; fails unless it exits 0. Returns its stdout.
    pub fn agent_service(&self, args: &[&str]) -> Result<String> {
        let out = self
            .agent()
            .arg("service")
            .args(args)
            .output()
            .context("running logship-agent.exe service under wine")?;
        if !out.status.success() {
            bail!(
                "logship-agent service {} failed with {}: {}{}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `reg query KEY`: `Some(output)` when the registry key exists, `None` when `reg` fails.
    pub fn reg_query(&self, key: &str) -> Result<Option<String>> {
        let out = self
            .command("reg")
            .args(["query", key])
            .output()
            .context("running reg under wine")?;
        Ok(out
            .status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned()))
    }

    /// `sc query NAME`: `Some(output)` when the service exists, `None` when Wine's `sc` fails
    /// (it exits 1, silently, for a service that does not exist).
    pub fn sc_query(&self, name: &str) -> Result<Option<String>> {
        let out = self
            .command("sc")
            .args(["query", name])
            .output()
            .context("running sc under wine")?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            eprintln!(
                "sc query {name}: {} {text}{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(out.status.success().then_some(text))
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
