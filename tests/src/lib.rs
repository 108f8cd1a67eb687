//! Harness for the end-to-end tests: runs the real `logship-collector` and `logship-agent`
//! binaries from the workspace's target dir over real TLS on loopback, in a temp dir per test.
//!
//! Invariants:
//! - Every child process is killed (SIGKILL) when its handle is dropped, so a failing test never
//!   leaves processes behind.
//! - Every child's stdout and stderr go to `<sandbox>/logs/<name>.log` (appended across restarts);
//!   when a test fails, [`run_test`] prints the tail of every log and keeps the sandbox on disk.

mod agent;
mod collector;
mod fsutil;
mod numbered;
mod proc;
pub mod raw;
mod tmpfs;
mod wine;

use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

pub use agent::{Agent, AgentOpts, FileInput};
pub use collector::{Collector, CollectorOpts, Store};
pub use fsutil::{dir_bytes, files_with_ext, flip_bit_at, flip_bytes};
pub use numbered::{check_exactly_once, line_number, numbered_line};
pub use proc::Proc;
pub use tmpfs::{Tmpfs, fill_until_full};
pub use wine::{WINDOWS_TARGET, Wine, windows_agent_exe, windows_path};

/// Bytes of each log printed when a test fails.
const LOG_TAIL_BYTES: u64 = 6000;

/// A temp dir holding everything one test creates (data dirs, spools, logs).
pub struct Sandbox {
    dir: tempfile::TempDir,
}

// === impl Sandbox ===

impl Sandbox {
    /// Creates an empty sandbox with a `logs/` folder.
    pub fn new() -> Result<Self> {
        let dir = tempfile::Builder::new().prefix("logship-e2e-").tempdir()?;
        std::fs::create_dir(dir.path().join("logs"))?;
        Ok(Sandbox { dir })
    }

    /// Root of the sandbox.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Log file for the process called `name`.
    pub fn log_path(&self, name: &str) -> PathBuf {
        self.path().join("logs").join(format!("{name}.log"))
    }

    /// Prints the tail of every process log to stderr.
    pub fn dump_logs(&self) {
        let Ok(entries) = std::fs::read_dir(self.path().join("logs")) else {
            return;
        };
        for entry in entries.flatten() {
            let tail = fsutil::tail_text(&entry.path(), LOG_TAIL_BYTES).unwrap_or_default();
            eprintln!("===== {} (tail) =====\n{tail}", entry.path().display());
        }
    }

    fn keep(self) -> PathBuf {
        self.dir.keep()
    }
}

/// Runs one end-to-end test body in a fresh sandbox. On error or panic the logs are printed,
/// the sandbox is kept for inspection and the test panics.
pub fn run_test(body: impl FnOnce(&Sandbox) -> Result<()>) {
    let sandbox = Sandbox::new().expect("creating the sandbox temp dir");
    let outcome = catch_unwind(AssertUnwindSafe(|| body(&sandbox)));
    let failed = !matches!(outcome, Ok(Ok(())));
    if failed {
        sandbox.dump_logs();
        let kept = sandbox.keep();
        eprintln!("sandbox kept at {}", kept.display());
    }
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(error)) => panic!("test failed: {error:?}"),
        Err(panic) => resume_unwind(panic),
    }
}

/// Directory holding the binaries under test (the target dir next to the test executable).
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable has a path");
    // target/debug/deps/e2e-HASH -> target/debug
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test executable lives in target/<profile>/deps")
        .to_path_buf();
    for name in ["logship-agent", "logship-collector"] {
        let present = dir.join(name).try_exists().unwrap_or(false);
        assert!(
            present,
            "{} not found; run `cargo build --workspace --bins` before the e2e tests",
            dir.join(name).display()
        );
    }
    dir
}

/// Path of one binary under test.
pub fn bin(name: &str) -> PathBuf {
    bin_dir().join(name)
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0");
    listener
        .local_addr()
        .expect("a bound listener has an address")
        .port()
}

/// Polls `check` every 100 ms until it returns `Ok(true)`, an error, or `timeout` passes.
pub fn wait_until(
    timeout: Duration,
    what: &str,
    check: impl FnMut() -> Result<bool>,
) -> Result<()> {
    poll_until(timeout, Duration::from_millis(100), what, check)
}

/// How often a test that kills a process mid-work polls for the moment to kill ([`poll_until`]).
pub const KILL_POLL: Duration = Duration::from_millis(5);

/// [`wait_until`], checking every `every`: for a test that must act within moments of a state.
pub fn poll_until(
    timeout: Duration,
    every: Duration,
    what: &str,
    mut check: impl FnMut() -> Result<bool>,
) -> Result<()> {
    let start = Instant::now();
    loop {
        if check()? {
            return Ok(());
        }
        if start.elapsed() > timeout {
            bail!("timed out after {timeout:?} waiting for: {what}");
        }
        std::thread::sleep(every);
    }
}

/// Reads an optional numeric setting from the environment (read only), with a default.
pub fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
