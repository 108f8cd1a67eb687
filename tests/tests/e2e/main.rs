//! End-to-end tests of the issue 2 acceptance list, one module per area. They run the real
//! binaries from the target dir (build them first: `cargo build --workspace --bins`).

mod certs;
mod config;
mod corruption;
mod delivery;
mod disk_full;
mod encodings;
mod enroll;
mod evtx;
mod exactly_once;
mod field_index;
mod fields;
mod fields_lag;
mod fleet;
mod for_people;
mod forward;
mod forward_http;
mod hardening;
mod hostile;
mod integrity;
mod journald;
mod multiline;
mod outage;
mod quickstart;
mod read_commands;
mod retention;
mod security;
mod stop;
mod store_damage;
mod support;
mod syslog;
mod windows;
mod writer;
