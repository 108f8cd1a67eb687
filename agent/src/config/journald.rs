//! `[[journald]]`: one journald input as written in agent.toml, and its validated form.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Priority names journalctl accepts, most severe first (index = syslog level).
const PRIORITIES: [&str; 8] = [
    "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
];

/// `[[journald]]`: follow the systemd journal (or a journal directory).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawJournald {
    /// Input name, attached to every record.
    pub name: String,
    /// Read this journal directory (as `journalctl --directory`) instead of the system journal.
    #[serde(default)]
    pub directory: Option<PathBuf>,
    /// Only entries of these systemd units (as `journalctl --unit`; any of them).
    #[serde(default)]
    pub units: Vec<String>,
    /// Only entries with these syslog identifiers (as `journalctl --identifier`; any of them).
    #[serde(default)]
    pub identifiers: Vec<String>,
    /// Only entries of this priority or more severe: a name (`info`) or a number (`6`).
    #[serde(default)]
    pub priority: Option<String>,
    /// With no stored cursor: "beginning" (the whole journal) or "end" (new entries only).
    #[serde(default)]
    pub start_at: JournalStart,
    /// Longer messages are cut; the record keeps the original length.
    #[serde(default = "default_max_message_bytes")]
    pub max_message_bytes: usize,
}

/// Where an input with no stored cursor starts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JournalStart {
    /// The oldest entry the journal still holds.
    #[default]
    Beginning,
    /// After the newest entry at the input's first start.
    End,
}

/// A validated journald input.
#[derive(Debug, Clone)]
pub struct JournaldInput {
    /// Input name.
    pub name: String,
    /// Journal directory, or `None` for the system journal.
    pub directory: Option<PathBuf>,
    /// Unit filter.
    pub units: Vec<String>,
    /// Identifier filter.
    pub identifiers: Vec<String>,
    /// Priority filter, as journalctl spells it.
    pub priority: Option<String>,
    /// Where to start without a cursor.
    pub start_at: JournalStart,
    /// Cap on one message.
    pub max_message_bytes: usize,
}

const fn default_max_message_bytes() -> usize {
    64 * 1024
}

// === impl RawJournald ===

impl RawJournald {
    /// Checks this input; `base` resolves a relative directory, `max_batch` bounds messages.
    pub(super) fn build(
        self,
        base: &Path,
        max_batch: usize,
        p: &mut Vec<String>,
    ) -> Option<JournaldInput> {
        let before = p.len();
        let who = format!("journald {:?}", self.name);
        if self.name.is_empty() {
            p.push("journald.name must not be empty".into());
        }
        if let Some(prio) = &self.priority
            && !valid_priority(prio)
        {
            p.push(format!(
                "{who}: priority {prio:?} is not one of {} or 0-7",
                PRIORITIES.join(", ")
            ));
        }
        for (what, list) in [("units", &self.units), ("identifiers", &self.identifiers)] {
            if list.iter().any(|v| v.is_empty() || v.contains('\n')) {
                p.push(format!("{who}: {what} must not hold empty names"));
            }
        }
        if !(16..=max_batch).contains(&self.max_message_bytes) {
            p.push(format!(
                "{who}: max_message_bytes must be between 16 and batch.max_bytes ({max_batch}): \
                 a message must fit in one batch"
            ));
        }
        if p.len() > before {
            return None;
        }
        Some(JournaldInput {
            name: self.name,
            directory: self.directory.map(|d| base.join(d)),
            units: self.units,
            identifiers: self.identifiers,
            priority: self.priority,
            start_at: self.start_at,
            max_message_bytes: self.max_message_bytes,
        })
    }
}

fn valid_priority(p: &str) -> bool {
    PRIORITIES.contains(&p) || matches!(p.as_bytes(), [b'0'..=b'7'])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(toml_text: &str) -> RawJournald {
        toml::from_str(toml_text).expect("parses")
    }

    #[test]
    fn defaults_and_relative_directory() {
        let mut p = Vec::new();
        let j = raw("name = \"journal\"\ndirectory = \"j\"")
            .build(Path::new("/etc/x"), 1 << 20, &mut p)
            .expect("valid");
        assert!(p.is_empty());
        assert_eq!(j.directory.as_deref(), Some(Path::new("/etc/x/j")));
        assert_eq!(j.start_at, JournalStart::Beginning);
        assert_eq!(j.max_message_bytes, 64 * 1024);
    }

    #[test]
    fn bad_values_are_all_reported() {
        let mut p = Vec::new();
        let j = raw("name = \"\"\npriority = \"loud\"\nunits = [\"\"]\nmax_message_bytes = 2")
            .build(Path::new("/"), 1 << 20, &mut p);
        assert!(j.is_none());
        assert_eq!(p.len(), 4, "{p:?}");
    }

    #[test]
    fn priorities_by_name_or_number() {
        for ok in ["info", "err", "0", "7"] {
            assert!(valid_priority(ok), "{ok}");
        }
        for bad in ["8", "information", "", "66"] {
            assert!(!valid_priority(bad), "{bad}");
        }
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(toml::from_str::<RawJournald>("name = \"j\"\nunit = \"x\"").is_err());
    }
}
