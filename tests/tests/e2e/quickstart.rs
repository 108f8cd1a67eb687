//! The README's quick start (`deploy/quickstart.sh`, issue 7) against the debug binaries: it
//! succeeds twice in a row, and with its port taken it fails within 10 s showing the bind error
//! and the log's path on screen.

use std::io::Read as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use logship_e2e::{Proc, bin_dir, free_port, run_test};

/// Deadline for a whole quick start on a busy machine (it waits for /var/log to be shipped).
const RUN_DEADLINE: Duration = Duration::from_secs(120);
/// The promise for a taken port.
const FAIL_DEADLINE: Duration = Duration::from_secs(10);

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/quickstart.sh")
}

/// Runs the script with its work dir and port; returns (exit success, stdout + stderr).
fn quickstart(work: &Path, port: u16, deadline: Duration) -> Result<(bool, String)> {
    let out_path = work.with_extension("out");
    let out = std::fs::File::create(&out_path)?;
    let child = Command::new("bash")
        .arg(script())
        .env("LOGSHIP_BIN_DIR", bin_dir())
        .env("LOGSHIP_QUICKSTART_DIR", work)
        .env("LOGSHIP_QUICKSTART_PORT", port.to_string())
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .process_group(0)
        .spawn()
        .context("running bash deploy/quickstart.sh")?;
    let mut proc = Proc::adopt("quickstart", child);
    let start = Instant::now();
    let status = loop {
        if let Some(status) = proc.exited()? {
            break status;
        }
        if start.elapsed() > deadline {
            // The whole process group: the script and the collector and agent it started.
            Command::new("kill")
                .args(["-TERM", &format!("-{}", proc.pid())])
                .status()?;
            let mut text = String::new();
            std::fs::File::open(&out_path)?.read_to_string(&mut text)?;
            bail!("quickstart still running after {deadline:?}:\n{text}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    Ok((status.success(), std::fs::read_to_string(&out_path)?))
}

#[test]
fn quickstart_succeeds_twice_in_a_row() {
    run_test(|sb| {
        let port = free_port();
        for run in ["first", "second"] {
            let (ok, text) = quickstart(&sb.path().join(run), port, RUN_DEADLINE)?;
            ensure!(ok, "{run} run failed:\n{text}");
            for needle in [
                "==> stored records:",
                "==> authentication events",
                "OK: every block checksum, hash and chain link is intact",
            ] {
                ensure!(
                    text.contains(needle),
                    "{run} run printed no {needle:?}:\n{text}"
                );
            }
        }
        Ok(())
    });
}

#[test]
fn quickstart_with_its_port_taken_fails_fast_and_shows_why() {
    run_test(|sb| {
        let taken = std::net::TcpListener::bind("127.0.0.1:0")?;
        let port = taken.local_addr()?.port();
        let work = sb.path().join("busy");
        let (ok, text) = quickstart(&work, port, FAIL_DEADLINE)?;
        ensure!(!ok, "quickstart succeeded on a taken port:\n{text}");
        ensure!(
            text.contains("Address already in use"),
            "no bind error shown:\n{text}"
        );
        let log = work.join("collector.log").display().to_string();
        ensure!(
            text.contains(&log),
            "the log path {log} is not shown:\n{text}"
        );
        drop(taken);
        Ok(())
    });
}
