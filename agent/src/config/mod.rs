//! Agent configuration: the raw TOML file (`agent.toml`) and its validated form.
//!
//! Two phases (STYLE.md habit 4): [`RawConfig`] mirrors the file with `deny_unknown_fields`;
//! [`RawConfig::validate`] resolves paths relative to the file and returns every problem at once.

mod eventlog;
mod evtx_input;
mod host;
mod journald;
mod raw;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use eventlog::{EventlogInput, EventlogStart, RawEventlog};
pub use evtx_input::{EvtxInput, RawEvtx};
pub use host::{HostReport, check_host, writable_dir};
pub use journald::{JournalStart, JournaldInput, RawJournald};
pub use raw::{
    MAX_BATCH_BYTES, RawBatch, RawCollector, RawConfig, RawFile, RawMultiline, RawShipper, RawSpool,
};

/// A validated file input.
#[derive(Debug, Clone)]
pub struct FileInput {
    /// Tailer settings.
    pub tail: logship_tail::TailConfig,
    /// Encoding and multiline joining.
    pub text: crate::file_input::TextConfig,
}

/// The validated configuration the agent runs with.
#[derive(Debug, Clone)]
pub struct Config {
    /// Collector endpoints, HOST:PORT, in failover order.
    pub endpoints: Vec<String>,
    /// CA certificate that the collector's certificate must chain to.
    pub ca_cert: PathBuf,
    /// This agent's certificate.
    pub cert: PathBuf,
    /// This agent's private key.
    pub key: PathBuf,
    /// Spool settings.
    pub spool: logship_spool::SpoolConfig,
    /// Batch bounds.
    pub batch: BatchLimits,
    /// Shipper settings.
    pub shipper: ShipperConfig,
    /// File inputs.
    pub files: Vec<FileInput>,
    /// journald inputs.
    pub journald: Vec<JournaldInput>,
    /// Syslog receivers.
    pub syslog: Vec<crate::syslog::SyslogInput>,
    /// Windows Event Log inputs (Windows only).
    pub eventlog: Vec<EventlogInput>,
    /// Folders of exported `.evtx` files.
    pub evtx: Vec<EvtxInput>,
}

/// Bounds of one batch: whichever is reached first closes it.
#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    /// Records.
    pub max_records: u32,
    /// Uncompressed bytes.
    pub max_bytes: usize,
    /// Age of the oldest record.
    pub max_wait: Duration,
    /// zstd level.
    pub zstd_level: i32,
}

/// Shipper settings.
#[derive(Debug, Clone, Copy)]
pub struct ShipperConfig {
    /// Batches sent and not yet acked.
    pub max_in_flight: usize,
    /// First retry delay.
    pub backoff_initial: Duration,
    /// Largest retry delay.
    pub backoff_max: Duration,
    /// Heartbeat period.
    pub heartbeat_interval: Duration,
}

// === impl RawConfig ===

impl RawConfig {
    /// Parses TOML text.
    pub fn parse(text: &str) -> Result<Self, Vec<String>> {
        toml::from_str(text).map_err(|e| vec![e.to_string()])
    }

    /// Checks every rule; `base` is the directory of the config file.
    pub fn validate(self, base: &Path, extra_tails: &[String]) -> Result<Config, Vec<String>> {
        self.check(base, extra_tails, true)
    }

    /// [`RawConfig::validate`]; `require_inputs` = false accepts a config without inputs (for
    /// `import-evtx`, which does not start them).
    fn check(
        self,
        base: &Path,
        extra_tails: &[String],
        require_inputs: bool,
    ) -> Result<Config, Vec<String>> {
        let mut p = Vec::new();
        if self.version != 1 {
            p.push(format!(
                "version {} is not supported (only 1)",
                self.version
            ));
        }
        if self.collector.endpoints.is_empty() {
            p.push("collector.endpoints must list at least one HOST:PORT".into());
        }
        for e in &self.collector.endpoints {
            if !valid_endpoint(e) {
                p.push(format!("collector.endpoints: {e:?} is not HOST:PORT"));
            }
        }
        let file = |rel: &Path, what: &str, p: &mut Vec<String>| {
            let path = base.join(rel);
            if !path.try_exists().unwrap_or(false) {
                p.push(format!(
                    "collector.{what}: {} does not exist",
                    path.display()
                ));
            }
            path
        };
        let ca_cert = file(&self.collector.ca_cert, "ca_cert", &mut p);
        let cert = file(&self.collector.cert, "cert", &mut p);
        let key = file(&self.collector.key, "key", &mut p);
        let spool = self.spool.build(base, &mut p);
        let batch = self.batch.build(&mut p);
        if spool.max_bytes < 2 * batch.max_bytes as u64 {
            p.push("spool.max_bytes must be at least twice batch.max_bytes".into());
        }
        let shipper = self.shipper.build(&mut p);
        let mut files = Vec::new();
        let mut names = std::collections::HashSet::new();
        for f in self.file {
            if !names.insert(f.name.clone()) {
                p.push(format!("file input name {:?} is used twice", f.name));
            }
            if f.max_line_bytes > batch.max_bytes {
                p.push(format!(
                    "file {:?}: max_line_bytes ({}) must not exceed batch.max_bytes ({}): \
                     a line must fit in one batch",
                    f.name, f.max_line_bytes, batch.max_bytes
                ));
            }
            if let Some(m) = f
                .multiline
                .as_ref()
                .filter(|m| m.max_bytes > batch.max_bytes)
            {
                p.push(format!(
                    "file {:?}: multiline.max_bytes ({}) must not exceed batch.max_bytes ({}): \
                     a record must fit in one batch",
                    f.name, m.max_bytes, batch.max_bytes
                ));
            }
            files.extend(f.build(&mut p));
        }
        for (i, glob) in extra_tails.iter().enumerate() {
            let raw = RawFile::from_tail(format!("tail{}", i + 1), glob.clone());
            files.extend(raw.build(&mut p));
        }
        let mut journald = Vec::new();
        for j in self.journald {
            if !names.insert(j.name.clone()) {
                p.push(format!("input name {:?} is used twice", j.name));
            }
            journald.extend(j.build(base, batch.max_bytes, &mut p));
        }
        let mut syslog = Vec::new();
        for s in self.syslog {
            if !names.insert(s.name.clone()) {
                p.push(format!("input name {:?} is used twice", s.name));
            }
            syslog.extend(s.build(base, batch.max_bytes, &mut p));
        }
        let mut eventlog = Vec::new();
        for e in self.eventlog {
            if !names.insert(e.name.clone()) {
                p.push(format!("input name {:?} is used twice", e.name));
            }
            if !cfg!(windows) {
                p.push(format!(
                    "eventlog {:?}: [[eventlog]] reads the Windows Event Log; this agent is not \
                     running on Windows (exported .evtx files: logship-agent import-evtx)",
                    e.name
                ));
            }
            eventlog.extend(e.build(batch.max_bytes, &mut p));
        }
        let mut evtx = Vec::new();
        for e in self.evtx {
            if !names.insert(e.name.clone()) {
                p.push(format!("input name {:?} is used twice", e.name));
            }
            evtx.extend(e.build(base, &mut p));
        }
        if require_inputs
            && files.is_empty()
            && journald.is_empty()
            && syslog.is_empty()
            && eventlog.is_empty()
            && evtx.is_empty()
        {
            p.push(
                "no inputs: add a [[file]], [[journald]], [[syslog]], [[eventlog]] or [[evtx]] \
                 table or --tail GLOB"
                    .into(),
            );
        }
        if !p.is_empty() {
            return Err(p);
        }
        let endpoints = self.collector.endpoints;
        Ok(Config {
            endpoints,
            ca_cert,
            cert,
            key,
            spool,
            batch,
            shipper,
            files,
            journald,
            syslog,
            eventlog,
            evtx,
        })
    }
}

/// Reads, parses and validates a config file, reporting every problem.
pub fn load(path: &Path, extra_tails: &[String]) -> Result<Config, Vec<String>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| vec![format!("reading {}: {e}", path.display())])?;
    let base = path.parent().unwrap_or(Path::new("."));
    RawConfig::parse(&text)?.validate(base, extra_tails)
}

/// [`load`] for `import-evtx`: the config's inputs are checked but not required.
pub fn load_for_import(path: &Path) -> Result<Config, Vec<String>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| vec![format!("reading {}: {e}", path.display())])?;
    let base = path.parent().unwrap_or(Path::new("."));
    RawConfig::parse(&text)?.check(base, &[], false)
}

fn valid_endpoint(e: &str) -> bool {
    match e.rsplit_once(':') {
        Some((host, port)) => !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0),
        None => false,
    }
}

#[cfg(test)]
mod tests;
