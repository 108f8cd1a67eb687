//! End-to-end tests of the issue 2 acceptance list, one module per area. They run the real
//! binaries from the target dir (build them first: `cargo build --workspace --bins`).

mod certs;
mod config;
mod corruption;
mod delivery;
mod disk_full;
mod exactly_once;
mod fields;
mod for_people;
mod hardening;
mod hostile;
mod outage;
mod quickstart;
mod read_commands;
mod security;
mod stop;
mod store_damage;
mod support;
mod windows;
mod writer;
