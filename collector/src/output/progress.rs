//! Progress of a long scan (search, verify) on a terminal, and a clean Ctrl-C.
//!
//! Invariants:
//! - Progress is drawn on stderr, and only when stderr is a terminal (indicatif hides it
//!   otherwise), so it never mixes with piped output; while it is shown, records reach the
//!   terminal through [`Spinner::suspend`], so a row never lands inside the redrawn line.
//! - Once [`Interrupt::install`] ran, SIGINT no longer kills the process: it raises a flag the
//!   scan checks after every block and record, so the command stops at a record boundary,
//!   flushes what it found, prints a summary and exits with [`EXIT_INTERRUPTED`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Exit status after Ctrl-C (128 + SIGINT), as shells report it.
pub const EXIT_INTERRUPTED: u8 = 130;

/// Whether Ctrl-C was pressed.
#[derive(Debug, Clone)]
pub struct Interrupt(Arc<AtomicBool>);

/// A walk shorter than this shows no spinner at all (no flicker for quick commands).
const SHOW_AFTER: Duration = Duration::from_millis(500);

/// A spinner line on stderr showing a [`logship_store::Progress`], drawn once the walk has run
/// for [`SHOW_AFTER`].
#[derive(Debug)]
pub struct Spinner {
    bar: std::sync::OnceLock<ProgressBar>,
    started: std::time::Instant,
    verb: &'static str,
}

// === impl Interrupt ===

impl Interrupt {
    /// Catches SIGINT from now on.
    pub fn install() -> std::io::Result<Interrupt> {
        let flag = Arc::new(AtomicBool::new(false));
        signal_hook::flag::register(signal_hook::consts::SIGINT, flag.clone())?;
        Ok(Interrupt(flag))
    }

    /// True once Ctrl-C was pressed.
    pub fn raised(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

// === impl Spinner ===

impl Spinner {
    /// A spinner for a walk that `verb`s records ("scanned", "verified").
    pub fn new(verb: &'static str) -> Spinner {
        Spinner {
            bar: std::sync::OnceLock::new(),
            started: std::time::Instant::now(),
            verb,
        }
    }

    /// Shows how far the walk has got.
    pub fn update(&self, p: &logship_store::Progress) {
        if self.bar.get().is_none() && self.started.elapsed() < SHOW_AFTER {
            return;
        }
        let bar = self.bar.get_or_init(|| {
            let target = ProgressDrawTarget::stderr_with_hz(4);
            let bar = ProgressBar::with_draw_target(None, target);
            bar.set_style(
                ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.enable_steady_tick(Duration::from_millis(250));
            bar
        });
        if !bar.is_hidden() {
            bar.set_message(describe(p, self.verb));
        }
    }

    /// Runs `f` (which prints to stdout and flushes) with the spinner line lifted off the
    /// terminal, so output never lands inside the line being redrawn.
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        match self.bar.get() {
            Some(bar) if !bar.is_hidden() => bar.suspend(f),
            _ => f(),
        }
    }

    /// Whether the spinner is on the terminal now.
    pub fn visible(&self) -> bool {
        self.bar.get().is_some_and(|b| !b.is_hidden())
    }

    /// Removes the spinner line.
    pub fn finish(&self) {
        if let Some(bar) = self.bar.get() {
            bar.finish_and_clear();
        }
    }
}

/// "12,345 records scanned in 10 blocks (segment 2/3), 2026-11-25T09:00:00Z → 09:42:10Z".
pub fn describe(p: &logship_store::Progress, verb: &str) -> String {
    let range = match (p.oldest_ns, p.newest_ns) {
        (Some(a), Some(b)) => format!(", {} → {}", short_time(a), short_time(b)),
        _ => String::new(),
    };
    format!(
        "{} records {verb} in {} blocks (segment {}/{}){range}",
        p.records,
        p.blocks,
        (p.segments_done + 1).min(p.segments_total),
        p.segments_total,
    )
}

/// RFC 3339 UTC time to the second.
pub fn short_time(ns: i64) -> String {
    jiff::Timestamp::from_nanosecond(i128::from(ns))
        .ok()
        .and_then(|t| t.round(jiff::Unit::Second).ok())
        .map_or_else(|| ns.to_string(), |t| t.to_string())
}
