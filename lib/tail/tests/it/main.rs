//! Integration tests of the tailer with real files in temp dirs.

mod discovery;
mod harness;
mod lines;
mod restart;
mod rotation;
mod stress;
