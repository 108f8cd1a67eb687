//! Which records a forwarder sends: agents, inputs, datasets and `--where` conditions, all of
//! which must match (an empty list matches everything).

use logship_normalize::FieldFilter;
use serde_json::{Map, Value};

use crate::config::forward::ForwardConfig;

/// A forwarder's record filter.
#[derive(Debug, Clone)]
pub(crate) struct Filter {
    agents: Vec<String>,
    inputs: Vec<String>,
    datasets: Vec<String>,
    conditions: Vec<FieldFilter>,
}

impl Filter {
    pub(crate) fn new(c: &ForwardConfig) -> Filter {
        Filter {
            agents: c.agents.clone(),
            inputs: c.inputs.clone(),
            datasets: c.datasets.clone(),
            conditions: c.conditions.clone(),
        }
    }

    /// Whether a whole block of `agent` can be skipped without decoding it.
    pub(crate) fn skips_agent(&self, agent: &str) -> bool {
        !self.agents.is_empty() && !self.agents.iter().any(|a| a == agent)
    }

    /// Whether the record passes.
    pub(crate) fn matches(&self, input: &str, fields: &Map<String, Value>) -> bool {
        (self.inputs.is_empty() || self.inputs.iter().any(|i| i == input))
            && (self.datasets.is_empty()
                || fields
                    .get("event.dataset")
                    .and_then(Value::as_str)
                    .is_some_and(|d| self.datasets.iter().any(|x| x == d)))
            && self.conditions.iter().all(|c| c.matches(fields))
    }
}
