//! `[[evtx]]`: a folder the agent watches for exported `.evtx` files, as written in agent.toml,
//! and its validated form.
//!
//! Invariants: a valid input has a non-empty name and folder (relative to the config file) and
//! a scan interval of 1 s to 1 h.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// `[[evtx]]`: import every `.evtx` file put in a folder, exactly once.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEvtx {
    /// Input name, attached to every record.
    pub name: String,
    /// The folder (relative to the config file); `.evtx` files directly in it are imported.
    pub folder: PathBuf,
    /// How often the folder is listed; a file is imported once its size and modification time
    /// stayed the same for one interval (a copy in progress is not read).
    #[serde(default = "default_scan_interval_secs")]
    pub scan_interval_secs: u64,
}

/// A validated `[[evtx]]` input.
#[derive(Debug, Clone)]
pub struct EvtxInput {
    /// Input name.
    pub name: String,
    /// The watched folder.
    pub folder: PathBuf,
    /// Time between two listings.
    pub scan_interval: Duration,
}

const fn default_scan_interval_secs() -> u64 {
    10
}

// === impl RawEvtx ===

impl RawEvtx {
    /// Checks this input; `base` resolves a relative folder.
    pub(super) fn build(self, base: &Path, p: &mut Vec<String>) -> Option<EvtxInput> {
        let before = p.len();
        if self.name.is_empty() {
            p.push("evtx.name must not be empty".into());
        }
        if self.folder.as_os_str().is_empty() {
            p.push(format!("evtx {:?}: folder must not be empty", self.name));
        }
        if !(1..=3600).contains(&self.scan_interval_secs) {
            p.push(format!(
                "evtx {:?}: scan_interval_secs must be between 1 and 3600",
                self.name
            ));
        }
        if p.len() > before {
            return None;
        }
        Some(EvtxInput {
            name: self.name,
            folder: base.join(self.folder),
            scan_interval: Duration::from_secs(self.scan_interval_secs),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_is_relative_to_the_config_and_bad_values_are_reported() {
        let mut p = Vec::new();
        let raw: RawEvtx = toml::from_str("name = \"exports\"\nfolder = \"drop\"").unwrap();
        let e = raw.build(Path::new("/etc/x"), &mut p).expect("valid");
        assert_eq!(e.folder, PathBuf::from("/etc/x/drop"));
        assert_eq!(e.scan_interval, Duration::from_secs(10));
        let raw: RawEvtx =
            toml::from_str("name = \"\"\nfolder = \"\"\nscan_interval_secs = 0").unwrap();
        assert!(raw.build(Path::new("/"), &mut p).is_none());
        assert_eq!(p.len(), 3, "{p:?}");
        assert!(toml::from_str::<RawEvtx>("name = \"e\"\nfolder = \"d\"\nglob = \"*\"").is_err());
    }
}
