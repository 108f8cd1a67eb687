//! The agent's spool: a crash-safe, byte-capped disk queue of compressed batches.
