//! Output of the read commands, for people and for programs.
//!
//! Invariants:
//! - Every command prints through [`Out`]: a closed stdout (`| head`) ends the process with
//!   status 0 and no message, as `grep` and `ls` do. No `println!` in command output paths
//!   (`print!` panics on `EPIPE`).
//! - The format is a table when stdout is a terminal, JSON when it is not, unless the command
//!   line says which ([`Format::choose`]). Progress goes to stderr, only when stderr is a
//!   terminal ([`progress`]).

pub mod progress;
pub mod table;

use std::io::{IsTerminal, Write};

/// How a command prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns cut to the terminal width, for people.
    Table,
    /// JSON (lines for record streams), for programs.
    Json,
}

// === impl Format ===

impl Format {
    /// The explicit choice if any (`--json` means [`Format::Json`]), else a table on a
    /// terminal and JSON when stdout is piped or redirected.
    pub fn choose(explicit: Option<Format>, json: bool) -> Format {
        match (explicit, json) {
            (_, true) => Format::Json,
            (Some(f), false) => f,
            (None, false) if std::io::stdout().is_terminal() => Format::Table,
            (None, false) => Format::Json,
        }
    }
}

/// Buffered stdout that treats a closed pipe as the normal end of the command.
pub struct Out {
    inner: std::io::BufWriter<std::io::Stdout>,
}

/// Stdout for one command's output.
pub fn stdout() -> Out {
    Out {
        inner: std::io::BufWriter::with_capacity(1 << 16, std::io::stdout()),
    }
}

/// Ends the process with status 0 when `e` is a closed pipe; returns `e` otherwise.
pub fn exit_if_closed(e: std::io::Error) -> std::io::Error {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    e
}

/// True when an error chain holds a closed-pipe I/O error (for the binary's error edge).
pub fn is_closed_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

// === impl Out ===

impl Write for Out {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.inner.write(buf).map_err(exit_if_closed)
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.inner.write_all(buf).map_err(exit_if_closed)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush().map_err(exit_if_closed)
    }
}

impl Drop for Out {
    fn drop(&mut self) {
        // A write error here has nowhere to go; a closed pipe still ends with status 0.
        if let Err(e) = self.inner.flush() {
            let _closed = exit_if_closed(e);
        }
    }
}
