//! Logging setup shared by `logship-agent` and `logship-collector`: tracing to stderr, the
//! filter from `--log-level` / `LOGSHIP_LOG`.
//!
//! Invariants:
//! - Colour (ANSI escapes) only when stderr is a terminal and `NO_COLOR` is unset or empty
//!   (no-color.org): logs written to a file or the journal are plain text.
//! - Logging never stops the program: a write to a closed stderr (a reader that went away) is
//!   dropped silently. tracing-subscriber would otherwise report the failure with `eprintln!`,
//!   which panics on a closed stderr, and a panic in the signal task would leave the process
//!   unable to stop.

use std::io::{IsTerminal, Write};

/// Installs the global subscriber. An invalid filter falls back to "info".
pub fn init(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| LossyStderr)
        .with_ansi(colour_wanted())
        .init();
}

/// Colour only on a terminal, and never when `NO_COLOR` is set to a non-empty value.
fn colour_wanted() -> bool {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    std::io::stderr().is_terminal() && !no_color
}

/// stderr, where a failed write counts as written (see the module docs).
struct LossyStderr;

impl Write for LossyStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        std::io::stderr().write_all(buf).ok();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush().ok();
        Ok(())
    }
}
