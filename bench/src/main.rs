//! `logship-bench`: generates a mixed log file and moves it with `zstd -1` (the single-core
//! limit), rsyslog (the peer) and logship in one run (and, with `logship-nonorm`, logship with
//! the collector's normalizer off); prints a table, checks the targets of issues 2 and 13 and
//! writes the numbers as JSON (its path is the last line of output).
//!
//! Exit code: 0 when every system ran (even if a target fails: this is a measurement), 1 when
//! something could not run, 2 on bad arguments.

mod fields;
mod forward;
#[path = "gen.rs"]
mod loggen;
mod logship;
mod measure;
mod relay;
mod report;
mod rsyslog;
mod search;
mod stats;
mod syslog;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};

use crate::report::{FileInfo, Report, Run, SystemResult};

#[derive(Debug, Parser)]
#[command(
    version,
    about = "Benchmark logship against rsyslog and zstd -1 on a generated log file"
)]
struct Cli {
    /// Size of the generated log file in MiB.
    #[arg(long, default_value_t = 1024)]
    size_mib: u64,
    /// Directory for the file, the programs' state and the JSON result (default: a new
    /// directory under /var/tmp, kept after the run).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Directory holding the release `logship-agent` and `logship-collector` (default: the
    /// directory of this executable).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Seed of the generator.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Systems to run, comma separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "zstd,rsyslog,logship,logship-nonorm"
    )]
    systems: Vec<System>,
    /// Keep the big files (the generated log, rsyslog's output, logship's store and fields) after the run;
    /// by default only configs, program logs and the JSON result stay.
    #[arg(long)]
    keep: bool,
    /// Give up on a pipeline that makes no progress for this long.
    #[arg(long, default_value_t = 60)]
    stall_secs: u64,
    /// `[normalize] workers` of the `logship` row's collector (default: the collector's own
    /// default, one per core).
    #[arg(long)]
    normalize_workers: Option<u32>,
    /// What to measure: `file` (a log file shipped; the default), `syslog` (syslog messages
    /// received over the network and stored; see `--messages`, `--transports`) or `search`
    /// (a field search over the stored file, with and without the field index; see search.rs).
    #[arg(long, value_enum, default_value = "file")]
    mode: Mode,
    /// Syslog mode: messages sent to each receiver.
    #[arg(long, default_value_t = 500_000)]
    messages: u64,
    /// Syslog mode: transports, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "udp,tcp")]
    transports: Vec<syslog::Transport>,
    /// Forward mode: rounds of the four cases (none, dead, live, live+dead), interleaved
    /// (default 2). Syslog mode: rounds of each transport's rsyslog/logship pair, the order
    /// alternating from round to round, summarized by the median ratio (default 1).
    #[arg(long)]
    rounds: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    File,
    Syslog,
    /// Ingest with no forwarder, a dead one, one to rsyslog over TLS, and that one beside a dead one.
    Forward,
    Search,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum System {
    Zstd,
    Rsyslog,
    Logship,
    /// logship with the collector's `[normalize] enabled = false` (fields at search time).
    LogshipNonorm,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    match try_main(&cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn try_main(cli: &Cli) -> anyhow::Result<ExitCode> {
    let out = out_dir(cli.out.clone())?;
    if cli.mode == Mode::Syslog {
        return syslog_main(cli, &out);
    }
    if cli.mode == Mode::Forward {
        return forward_main(cli, &out);
    }
    if cli.mode == Mode::Search {
        let bins = logship::bin_dir(cli.bin_dir.clone())?;
        let stall = Duration::from_secs(cli.stall_secs);
        let r = search::run(&out, &bins, cli.size_mib, cli.seed, cli.keep, stall)?;
        print!("{}", search::render(&r));
        println!("{}", search::write_json(&out, &r)?.display());
        return Ok(ExitCode::SUCCESS);
    }
    let file = generate(&out, cli.size_mib, cli.seed)?;
    let stall = Duration::from_secs(cli.stall_secs);
    let (mut systems, mut errors) = (Vec::new(), Vec::new());
    for system in &cli.systems {
        tracing::info!(system = ?system, "Running.");
        let result = match system {
            System::Zstd => zstd_limit(&file),
            System::Rsyslog => rsyslog::run(&file, &out, stall)
                .map(|r| SystemResult::from_run("rsyslog", &file, &r)),
            System::Logship => logship::bin_dir(cli.bin_dir.clone()).and_then(|bins| {
                logship::run(&file, &out, &bins, stall, true, cli.normalize_workers)
            }),
            System::LogshipNonorm => logship::bin_dir(cli.bin_dir.clone())
                .and_then(|bins| logship::run(&file, &out, &bins, stall, false, None)),
        };
        match result {
            Ok(r) => systems.push(r),
            Err(error) => {
                tracing::error!(system = ?system, error = format!("{error:#}"), "System could not run.");
                errors.push(format!("{system:?}: {error:#}"));
            }
        }
    }
    if !cli.keep {
        remove_big_files(&out);
    }
    let report = Report::new(file, systems, errors);
    print!("{}", report.render());
    let json = report.write_json(&out)?;
    println!("{}", json.display());
    Ok(if report.errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `--mode syslog`: rsyslog and logship receiving the same messages over each transport.
fn syslog_main(cli: &Cli, out: &Path) -> anyhow::Result<ExitCode> {
    let bins = logship::bin_dir(cli.bin_dir.clone())?;
    let stall = Duration::from_secs(cli.stall_secs);
    let rounds = cli.rounds.unwrap_or(1).max(1);
    let (results, errors) = syslog::run(out, &bins, cli.messages, &cli.transports, rounds, stall)?;
    print!("{}", syslog::render(&results));
    print!("{}", syslog::render_summary(&syslog::summarize(&results)));
    for error in &errors {
        println!("error: {error}");
    }
    println!("{}", syslog::write_json(out, &results)?.display());
    Ok(if errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `--mode forward`: see [`forward`].
fn forward_main(cli: &Cli, out: &Path) -> anyhow::Result<ExitCode> {
    let bins = logship::bin_dir(cli.bin_dir.clone())?;
    let file = generate(out, cli.size_mib, cli.seed)?;
    let stall = Duration::from_secs(cli.stall_secs);
    let rounds = cli.rounds.unwrap_or(2);
    let (results, errors) = forward::run(&file, out, &bins, rounds, stall, cli.keep)?;
    if !cli.keep {
        remove_big_files(out);
    }
    print!("{}", forward::render(&file, &results));
    for error in &errors {
        println!("error: {error}");
    }
    println!(
        "{}",
        forward::write_json(out, &file, &results, &errors)?.display()
    );
    Ok(if errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `--out`, or a new kept directory under /var/tmp.
fn out_dir(explicit: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(dir) = explicit {
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        return Ok(dir);
    }
    let dir = tempfile::Builder::new()
        .prefix("logship-bench-")
        .tempdir_in("/var/tmp")?;
    Ok(dir.keep())
}

fn remove_big_files(out: &Path) {
    let files = [out.join("mixed.log"), out.join("rsyslog/received.log")];
    for path in files {
        if let Err(error) = std::fs::remove_file(&path)
            && error.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(%error, path = %path.display(), "Could not remove a benchmark file.");
        }
    }
    // The store and the normalizer's fields sidecars, of both logship runs.
    for store in [
        out.join("logship/collector/store"),
        out.join("logship/collector/fields"),
        out.join("nonorm/logship/collector/store"),
    ] {
        if let Err(error) = std::fs::remove_dir_all(&store)
            && error.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(%error, path = %store.display(), "Could not remove the benchmark store.");
        }
    }
}

fn generate(out: &Path, size_mib: u64, seed: u64) -> anyhow::Result<FileInfo> {
    let path = out.join("mixed.log");
    let start = Instant::now();
    let summary = loggen::generate(&path, size_mib << 20, seed)
        .with_context(|| format!("cannot write {}", path.display()))?;
    tracing::info!(path = %path.display(), bytes = summary.bytes, lines = summary.lines, secs = start.elapsed().as_secs_f64(), "Generated the log file.");
    Ok(FileInfo {
        path,
        bytes: summary.bytes,
        lines: summary.lines,
    })
}

/// `zstd -1 -T1 -c file > /dev/null`: wall, CPU (this process's counters of waited-for
/// children, exact even though zstd is gone) and peak RSS (sampled while it runs).
fn zstd_limit(file: &FileInfo) -> anyhow::Result<SystemResult> {
    let cpu_before = measure::children_cpu_s()?;
    let start = Instant::now();
    let mut child = Command::new("zstd")
        .args(["-1", "-T1", "-q", "-c"])
        .arg(&file.path)
        .stdout(Stdio::null())
        .spawn()
        .context("cannot run zstd; install it with `apt-get install zstd` (Debian)")?;
    let mut sampler = measure::Sampler::new(child.id());
    let status = loop {
        sampler.update();
        if let Some(status) = child.try_wait()? {
            break status;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let wall = start.elapsed();
    if !status.success() {
        bail!("zstd failed: {status}");
    }
    let cpu_s = measure::children_cpu_s()? - cpu_before;
    let sender = measure::ProcSample {
        cpu_s,
        ..sampler.update()
    };
    Ok(SystemResult::from_run(
        "zstd -1",
        file,
        &Run {
            wall,
            sender,
            receiver: None,
        },
    ))
}
