//! Normalization of security logs into ECS fields.
