//! The logship wire contract (`logship.v1`): code generated from `proto/logship/v1/*.proto`
//! at build time by protox + tonic-prost-build (no system `protoc`), and the payload codec
//! shared by the agent, the collector and the store.
//!
//! Versioning: the package is `logship.v1`; within v1 only additive changes are allowed
//! (new fields with new numbers, new RPCs). A breaking change is a new package `logship.v2`.

pub mod name;
pub mod payload;
pub mod scan;

/// Generated types and gRPC stubs of package `logship.v1`.
#[allow(unreachable_pub, clippy::all, rust_2018_idioms, missing_docs)]
pub mod v1 {
    tonic::include_proto!("logship.v1");
}
