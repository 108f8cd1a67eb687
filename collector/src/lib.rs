//! logship collector: accepts agents over mutual TLS (`logship.v1.Ingest`), de-duplicates their
//! batches and keeps every record durably in the hash-chained store; searches it from the CLI.
//!
//! Data flow: [`tls`] (authenticate) → [`ingest`] (check, decompress with a cap) → [`writer`]
//! (dedup, append, group commit) → ack. Consumers follow the store through durable cursors:
//! [`normalize`] (fields sidecars) and [`forward`] (to the SOC). [`search`] and [`report`] read the store and the status
//! file from another process and print for people ([`output`]) or programs.

pub mod certfile;
pub mod cli;
pub mod config;
pub mod drain;
pub mod enroll;
pub mod fleet;
pub mod forward;
pub mod heap;
pub mod ingest;
pub mod integrity;
pub mod normalize;
pub mod output;
pub mod pki;
pub mod refusal;
pub mod report;
pub mod retention;
pub mod search;
pub mod serve;
pub mod status;
pub mod timearg;
pub mod tls;
pub mod writer;
