//! Results: per-system numbers, the targets of issue 2, the printed table and the JSON file.
//!
//! ```text
//! { "file": {path, bytes, lines}, "systems": [SystemResult…], "targets": [Target…], "errors": [..] }
//! ```
//!
//! Units: MB = 10^6 bytes (throughput), MiB/GiB = 2^20/2^30 bytes (memory, CPU per GiB).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::measure::ProcSample;

const MB: f64 = 1e6;
const MIB: f64 = (1u64 << 20) as f64;
const GIB: f64 = (1u64 << 30) as f64;

/// The generated input.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct FileInfo {
    pub(crate) path: PathBuf,
    pub(crate) bytes: u64,
    pub(crate) lines: u64,
}

/// What one system's run measured.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Run {
    pub(crate) wall: Duration,
    pub(crate) sender: ProcSample,
    pub(crate) receiver: Option<ProcSample>,
}

/// One row of the table.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct SystemResult {
    pub(crate) name: String,
    pub(crate) wall_s: f64,
    pub(crate) mb_per_s: f64,
    pub(crate) lines_per_s: f64,
    pub(crate) sender_cpu_s: f64,
    pub(crate) sender_cpu_s_per_gib: f64,
    pub(crate) sender_peak_rss_mib: f64,
    pub(crate) receiver_cpu_s: Option<f64>,
    pub(crate) receiver_peak_rss_mib: Option<f64>,
    pub(crate) wire_bytes: Option<u64>,
    pub(crate) wire_ratio: Option<f64>,
    pub(crate) idle_rss_mib: Option<f64>,
    pub(crate) in_order: Option<bool>,
    /// Receiver CPU per GiB of the file when the last record was stored.
    pub(crate) receiver_cpu_s_per_gib: Option<f64>,
    /// Seconds from the start until the fields of the last record were ready (logship with
    /// normalization on).
    pub(crate) fields_ready_s: Option<f64>,
    /// Collector CPU per GiB of the file when the fields of the last record were ready.
    pub(crate) receiver_cpu_s_per_gib_fields: Option<f64>,
}

/// One acceptance target; `pass` is `None` when it could not be measured.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Target {
    pub(crate) name: &'static str,
    pub(crate) value: Option<f64>,
    pub(crate) limit: String,
    pub(crate) pass: Option<bool>,
}

/// Everything the run produced.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Report {
    pub(crate) file: FileInfo,
    pub(crate) systems: Vec<SystemResult>,
    pub(crate) targets: Vec<Target>,
    pub(crate) errors: Vec<String>,
}

// === impl SystemResult ===

impl SystemResult {
    pub(crate) fn from_run(name: &str, file: &FileInfo, run: &Run) -> Self {
        let secs = run.wall.as_secs_f64().max(1e-9);
        let gib = file.bytes as f64 / GIB;
        Self {
            name: name.to_owned(),
            wall_s: secs,
            mb_per_s: file.bytes as f64 / MB / secs,
            lines_per_s: file.lines as f64 / secs,
            sender_cpu_s: run.sender.cpu_s,
            sender_cpu_s_per_gib: run.sender.cpu_s / gib,
            sender_peak_rss_mib: run.sender.peak_rss_kib as f64 / 1024.0,
            receiver_cpu_s: run.receiver.map(|r| r.cpu_s),
            receiver_peak_rss_mib: run.receiver.map(|r| r.peak_rss_kib as f64 / 1024.0),
            receiver_cpu_s_per_gib: run.receiver.map(|r| r.cpu_s / gib),
            ..Self::default()
        }
    }

    /// The fields of the last record were ready `ready` after the start, with the collector
    /// sampled as `collector` then.
    pub(crate) fn set_fields_ready(
        &mut self,
        ready: Duration,
        collector: ProcSample,
        file: &FileInfo,
    ) {
        self.fields_ready_s = Some(ready.as_secs_f64());
        self.receiver_cpu_s_per_gib_fields = Some(collector.cpu_s / (file.bytes as f64 / GIB));
    }

    pub(crate) fn set_wire_bytes(&mut self, wire_bytes: u64, file: &FileInfo) {
        self.wire_bytes = Some(wire_bytes);
        self.wire_ratio = Some(wire_bytes as f64 / file.bytes as f64);
    }
}

pub(crate) fn mib(bytes: u64) -> f64 {
    bytes as f64 / MIB
}

// === impl Report ===

impl Report {
    pub(crate) fn new(file: FileInfo, systems: Vec<SystemResult>, errors: Vec<String>) -> Self {
        let targets = targets(&systems);
        Self {
            file,
            systems,
            targets,
            errors,
        }
    }

    /// The table, the targets and the errors, as printed on stdout.
    pub(crate) fn render(&self) -> String {
        let mut out = format!(
            "file: {} ({} bytes, {} lines, {:.1} bytes/line)\n\n",
            self.file.path.display(),
            self.file.bytes,
            self.file.lines,
            self.file.bytes as f64 / self.file.lines.max(1) as f64
        );
        out += &format!(
            "{:<14} {:>8} {:>11} {:>9} {:>10} {:>10} {:>9} {:>13} {:>7} {:>8}\n",
            "system",
            "MB/s",
            "lines/s",
            "wall s",
            "snd CPU",
            "snd RSS",
            "rcv RSS",
            "wire bytes",
            "wire",
            "idle RSS"
        );
        out += &format!(
            "{:<14} {:>8} {:>11} {:>9} {:>10} {:>10} {:>9} {:>13} {:>7} {:>8}\n",
            "", "", "", "", "s/GiB", "MiB", "MiB", "", "ratio", "MiB"
        );
        for s in &self.systems {
            out += &format!(
                "{:<14} {:>8.1} {:>11.0} {:>9.2} {:>10.2} {:>10.1} {:>9} {:>13} {:>7} {:>8}\n",
                s.name,
                s.mb_per_s,
                s.lines_per_s,
                s.wall_s,
                s.sender_cpu_s_per_gib,
                s.sender_peak_rss_mib,
                opt(s.receiver_peak_rss_mib, 1),
                opt_u(s.wire_bytes),
                opt(s.wire_ratio, 3),
                opt(s.idle_rss_mib, 1),
            );
        }
        out += &self.render_fields();
        out += "\ntargets:\n";
        for t in &self.targets {
            let verdict = match t.pass {
                Some(true) => "PASS",
                Some(false) => "FAIL",
                None => "N/A ",
            };
            out += &format!(
                "  {verdict}  {:<34} {:>10}  (target {})\n",
                t.name,
                opt(t.value, 2),
                t.limit
            );
        }
        for e in &self.errors {
            out += &format!("error: {e}\n");
        }
        out
    }

    /// The receivers' side: when the records were stored, when their fields were ready, and
    /// the receiver's CPU per GiB at each point (issue 13).
    fn render_fields(&self) -> String {
        let rows: Vec<_> = self
            .systems
            .iter()
            .filter(|s| s.receiver_cpu_s_per_gib.is_some())
            .collect();
        if rows.is_empty() {
            return String::new();
        }
        let mut out = format!(
            "\n{:<14} {:>9} {:>15} {:>14} {:>14}\n{:<14} {:>9} {:>15} {:>14} {:>14}\n",
            "receiver",
            "stored s",
            "fields ready s",
            "rcv CPU s/GiB",
            "rcv CPU s/GiB",
            "",
            "",
            "",
            "at stored",
            "fields ready"
        );
        for s in rows {
            out += &format!(
                "{:<14} {:>9.2} {:>15} {:>14} {:>14}\n",
                s.name,
                s.wall_s,
                opt(s.fields_ready_s, 2),
                opt(s.receiver_cpu_s_per_gib, 2),
                opt(s.receiver_cpu_s_per_gib_fields, 2),
            );
        }
        out
    }

    /// Writes `<dir>/bench-<unix seconds>.json` and returns its path.
    pub(crate) fn write_json(&self, dir: &Path) -> anyhow::Result<PathBuf> {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let path = dir.join(format!("bench-{secs}.json"));
        std::fs::write(&path, serde_json::to_vec_pretty(self)?)?;
        Ok(path)
    }
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{v:.digits$}"))
}

fn opt_u(v: Option<u64>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

/// The targets of issues 2 and 13, evaluated on whatever systems ran.
fn targets(systems: &[SystemResult]) -> Vec<Target> {
    let find = |name: &str| systems.iter().find(|s| s.name == name);
    let (logship, rsyslog) = (find("logship"), find("rsyslog"));
    let ingest_on_vs_off = logship
        .zip(find("logship-nonorm"))
        .map(|(on, off)| 100.0 * on.mb_per_s / off.mb_per_s.max(1e-9));
    let speedup = logship
        .zip(rsyslog)
        .map(|(l, r)| l.mb_per_s / r.mb_per_s.max(1e-9));
    let at_most = |name, value: Option<f64>, limit: f64, strict: bool| Target {
        name,
        value,
        limit: format!("{} {limit}", if strict { "<" } else { "<=" }),
        pass: value.map(|v| if strict { v < limit } else { v <= limit }),
    };
    vec![
        Target {
            name: "throughput vs rsyslog (x)",
            value: speedup,
            limit: ">= 3".to_owned(),
            pass: speedup.map(|x| x >= 3.0),
        },
        at_most(
            "agent CPU s/GiB",
            logship.map(|l| l.sender_cpu_s_per_gib),
            3.0,
            false,
        ),
        at_most(
            "agent peak RSS MiB",
            logship.map(|l| l.sender_peak_rss_mib),
            32.0,
            true,
        ),
        at_most(
            "agent idle RSS MiB",
            logship.and_then(|l| l.idle_rss_mib),
            16.0,
            true,
        ),
        at_most(
            "wire bytes / file bytes",
            logship.and_then(|l| l.wire_ratio),
            0.2,
            false,
        ),
        Target {
            name: "lines of one file stored in order",
            value: logship
                .and_then(|l| l.in_order)
                .map(|b| f64::from(u8::from(b))),
            limit: "1 (yes)".to_owned(),
            pass: logship.and_then(|l| l.in_order),
        },
        Target {
            name: "ingest, normalizer on vs off (%)",
            value: ingest_on_vs_off,
            limit: ">= 90".to_owned(),
            pass: ingest_on_vs_off.map(|p| p >= 90.0),
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file() -> FileInfo {
        FileInfo {
            path: "/x".into(),
            bytes: 1 << 30,
            lines: 7_000_000,
        }
    }

    fn system(name: &str, wall_s: u64, cpu_s: f64, rss_kib: u64) -> SystemResult {
        let sample = ProcSample {
            cpu_s,
            peak_rss_kib: rss_kib,
            rss_kib,
        };
        let run = Run {
            wall: Duration::from_secs(wall_s),
            sender: sample,
            receiver: Some(sample),
        };
        SystemResult::from_run(name, &file(), &run)
    }

    #[test]
    fn from_run_derives_rates_per_gib_and_mib() {
        let s = system("rsyslog", 10, 20.0, 2048);
        assert!((s.mb_per_s - 107.374_182_4).abs() < 1e-6);
        assert!((s.lines_per_s - 700_000.0).abs() < 1e-6);
        assert!((s.sender_cpu_s_per_gib - 20.0).abs() < 1e-9);
        assert!((s.sender_peak_rss_mib - 2.0).abs() < 1e-9);
    }

    #[test]
    fn targets_pass_and_fail_on_their_limits() {
        let mut fast = system("logship", 3, 3.0, 32 * 1024);
        fast.idle_rss_mib = Some(15.9);
        fast.set_wire_bytes((1 << 30) / 5, &file());
        fast.in_order = Some(true);
        let report = Report::new(file(), vec![system("rsyslog", 10, 9.0, 1), fast], vec![]);
        let verdicts: Vec<_> = report.targets.iter().map(|t| t.pass).collect();
        // 3.3x passes, 3 s/GiB passes, 32 MiB fails (strictly under), idle passes,
        // 1/5 exactly passes, in order passes.
        assert_eq!(
            verdicts,
            [
                Some(true),
                Some(true),
                Some(false),
                Some(true),
                Some(true),
                Some(true),
                None
            ]
        );
        assert!(report.render().contains("FAIL  agent peak RSS MiB"));
    }

    #[test]
    fn ingest_with_the_normalizer_on_is_held_to_90_percent_of_off() {
        let mut on = system("logship", 10, 3.0, 1);
        on.set_fields_ready(
            Duration::from_secs(40),
            ProcSample {
                cpu_s: 50.0,
                ..ProcSample::default()
            },
            &file(),
        );
        for (off_wall, pass) in [(9, true), (8, false)] {
            let off = system("logship-nonorm", off_wall, 3.0, 1);
            let report = Report::new(file(), vec![on.clone(), off], vec![]);
            let t = report.targets.last().expect("targets");
            assert_eq!(t.name, "ingest, normalizer on vs off (%)");
            assert_eq!(t.pass, Some(pass), "{t:?}");
            let text = report.render();
            assert!(text.contains("fields ready"), "{text}");
            assert!(text.contains("50.00"), "{text}");
        }
    }

    #[test]
    fn targets_without_logship_are_not_measured() {
        let report = Report::new(
            file(),
            vec![system("rsyslog", 9, 9.0, 1)],
            vec!["boom".into()],
        );
        assert!(report.targets.iter().all(|t| t.pass.is_none()));
        let dir = tempfile::tempdir().expect("tempdir");
        let path = report.write_json(dir.path()).expect("write");
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(path).expect("read")).expect("json");
        assert_eq!(json["systems"][0]["name"], "rsyslog");
        assert_eq!(json["errors"][0], "boom");
    }
}
