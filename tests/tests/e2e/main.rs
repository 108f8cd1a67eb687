//! End-to-end tests of the issue 2 acceptance list, one module per area. They run the real
//! binaries from the target dir (build them first: `cargo build --workspace --bins`).

mod config;
mod corruption;
mod delivery;
mod exactly_once;
mod fields;
mod hardening;
mod outage;
mod security;
mod support;
mod writer;
