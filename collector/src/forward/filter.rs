//! Which records a forwarder sends: agents, inputs, datasets and `--where` conditions, all of
//! which must match (an empty list matches everything).
//!
//! Invariant: the collector's own signed checkpoints (agent [`COLLECTOR_IDENTITY`]) pass every
//! filter. They are the witness the SOC keeps off the box; a forwarder narrowed to some agents
//! or datasets must still carry them, or `verify --checkpoint` would have nothing to check.

use logship_normalize::FieldFilter;
use logship_store::COLLECTOR_IDENTITY;
use serde_json::{Map, Value};

use crate::config::forward::ForwardConfig;

/// A forwarder's record filter.
#[derive(Debug, Clone)]
pub struct Filter {
    agents: Vec<String>,
    inputs: Vec<String>,
    datasets: Vec<String>,
    conditions: Vec<FieldFilter>,
}

impl Filter {
    pub fn new(c: &ForwardConfig) -> Filter {
        Filter {
            agents: c.agents.clone(),
            inputs: c.inputs.clone(),
            datasets: c.datasets.clone(),
            conditions: c.conditions.clone(),
        }
    }

    /// A filter on datasets only.
    #[cfg(test)]
    pub(crate) fn of_datasets(datasets: &[&str]) -> Filter {
        Filter {
            agents: Vec::new(),
            inputs: Vec::new(),
            datasets: datasets.iter().map(|d| (*d).to_owned()).collect(),
            conditions: Vec::new(),
        }
    }

    /// Whether every record passes (no agents, inputs, datasets or conditions).
    pub(crate) fn takes_all(&self) -> bool {
        self.agents.is_empty()
            && self.inputs.is_empty()
            && self.datasets.is_empty()
            && self.conditions.is_empty()
    }

    /// Whether deciding needs a record's normalized fields (datasets or `where` conditions).
    pub(crate) fn needs_fields(&self) -> bool {
        !self.datasets.is_empty() || !self.conditions.is_empty()
    }

    /// Whether a whole block of `agent` can be skipped without decoding it.
    pub(crate) fn skips_agent(&self, agent: &str) -> bool {
        agent != COLLECTOR_IDENTITY
            && !self.agents.is_empty()
            && !self.agents.iter().any(|a| a == agent)
    }

    /// Whether the record of `agent` passes.
    pub(crate) fn matches(&self, agent: &str, input: &str, fields: &Map<String, Value>) -> bool {
        if agent == COLLECTOR_IDENTITY {
            return true;
        }
        (self.inputs.is_empty() || self.inputs.iter().any(|i| i == input))
            && (self.datasets.is_empty()
                || fields
                    .get("event.dataset")
                    .and_then(Value::as_str)
                    .is_some_and(|d| self.datasets.iter().any(|x| x == d)))
            && self.conditions.iter().all(|c| c.matches(fields))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn narrow() -> Filter {
        Filter {
            agents: vec!["gw-01".into()],
            inputs: vec!["auth".into()],
            datasets: vec!["sshd".into()],
            conditions: vec![],
        }
    }

    #[test]
    fn a_narrow_filter_still_carries_the_collectors_checkpoints() {
        let f = narrow();
        assert!(!f.skips_agent(COLLECTOR_IDENTITY));
        assert!(f.matches(COLLECTOR_IDENTITY, "integrity", &Map::new()));
        // The same record from an agent is filtered out.
        assert!(f.skips_agent("pc-0042"));
        assert!(!f.matches("gw-01", "integrity", &Map::new()));
        let mut sshd = Map::new();
        sshd.insert("event.dataset".into(), Value::String("sshd".into()));
        assert!(f.matches("gw-01", "auth", &sshd));
    }
}
