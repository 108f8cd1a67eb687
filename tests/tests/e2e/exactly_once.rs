//! exactly_once
