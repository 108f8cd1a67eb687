//! File tailing.
