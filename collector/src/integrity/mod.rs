//! The witness: the collector's Ed25519 key ([`key`]), the timer that has the store writer sign
//! a checkpoint every `[integrity] checkpoint_every_secs` ([`timer`]), and evidence export
//! ([`export`]). The checkpoint format, the verification and the archive format live in
//! `logship-store`; this module is wiring.
//!
//! Invariants:
//! - The private key is made once, at `init` (or at the first `serve` of a data directory made
//!   before this feature), with mode 0600 from its creation, and never overwritten.
//! - Checkpoints are appended by the store writer thread only (the single writer), each
//!   committed with the same fsync as the blocks around it; one more is signed after the last
//!   block at shutdown. A checkpoint is skipped when nothing was stored since the previous one.

pub mod export;
pub mod key;
pub mod timer;

/// The witness the store writer signs checkpoints with.
#[derive(Debug)]
pub struct Witness {
    /// The signing key.
    pub key: logship_store::WitnessKey,
    /// Host name written into checkpoint records.
    pub host: String,
}
