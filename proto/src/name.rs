//! The rule for agent names, part of the contract: a name is an agent certificate's CN, a store
//! key and may name a file or folder, so it keeps to a safe alphabet and can never be `.` or
//! `..`. The collector enforces it when it issues, signs and accepts certificates; the agent
//! checks it before enrolling, for a clear message.

/// A name outside the rule.
#[derive(Debug, thiserror::Error)]
#[error("agent name {0:?} must be 1-128 characters of A-Z a-z 0-9 - _ . and not start with .")]
pub struct BadAgentName(pub String);

/// Checks `name` against the agent-name rule.
pub fn check_agent_name(name: &str) -> Result<(), BadAgentName> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(BadAgentName(name.to_string()))
    }
}
