//! The collector's evidence store.
