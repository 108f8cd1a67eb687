//! A tracing layer that writes the service's warnings and errors, and its own start and stop,
//! to the Windows Application event log (`RegisterEventSourceW` / `ReportEventW`, source
//! "logship-agent").
//!
//! Invariants:
//! - Never fails the caller: a source that cannot be registered, or a report that fails, is
//!   dropped (the log file has every line).
//! - One event per tracing event: the message and its fields as `key=value`, at most
//!   [`MAX_TEXT`] characters (the API's limit per string is 31,839).
#![allow(unsafe_code)]

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use windows::Win32::System::EventLog::{
    EVENTLOG_ERROR_TYPE, EVENTLOG_INFORMATION_TYPE, EVENTLOG_WARNING_TYPE, REPORT_EVENT_TYPE,
    RegisterEventSourceW, ReportEventW,
};
use windows::core::{HSTRING, PCWSTR};

/// Longest text of one event, in characters.
pub const MAX_TEXT: usize = 30_000;

/// The layer; holds the registered event source.
pub struct EventLogLayer {
    /// The source handle (`HANDLE` as an address: it is process-wide and never closed).
    source: Option<usize>,
}

impl EventLogLayer {
    /// Registers the source "logship-agent"; without it, the layer does nothing.
    pub fn new() -> EventLogLayer {
        let name = HSTRING::from(super::SERVICE_NAME);
        // SAFETY: local machine, a NUL-terminated source name; the handle lives as long as the
        // process (the layer is installed once, globally).
        let source = unsafe { RegisterEventSourceW(PCWSTR::null(), &name) }
            .ok()
            .map(|h| h.0 as usize);
        EventLogLayer { source }
    }

    fn report(&self, kind: REPORT_EVENT_TYPE, id: u32, text: &str) {
        let Some(source) = self.source else {
            return;
        };
        let text: String = text.chars().take(MAX_TEXT).collect();
        let wide = HSTRING::from(text);
        let strings = [PCWSTR(wide.as_ptr())];
        let handle = windows::Win32::Foundation::HANDLE(source as *mut core::ffi::c_void);
        // SAFETY: the registered source handle and one NUL-terminated string that outlives the
        // call.
        let result = unsafe { ReportEventW(handle, kind, 0, id, None, 0, Some(&strings), None) };
        // Dropped on failure: see the module docs.
        result.ok();
    }
}

impl Default for EventLogLayer {
    fn default() -> Self {
        EventLogLayer::new()
    }
}

impl<S: Subscriber> Layer<S> for EventLogLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let meta = event.metadata();
        let (kind, id) = match *meta.level() {
            Level::ERROR => (EVENTLOG_ERROR_TYPE, 1),
            Level::WARN => (EVENTLOG_WARNING_TYPE, 2),
            Level::INFO
                if meta
                    .target()
                    .starts_with(module_path!().trim_end_matches("::eventlog_layer")) =>
            {
                (EVENTLOG_INFORMATION_TYPE, 3)
            }
            _ => return,
        };
        let mut text = Text::default();
        event.record(&mut text);
        self.report(kind, id, &text.0);
    }
}

/// The message, then ` key=value` per field.
#[derive(Default)]
struct Text(String);

impl Visit for Text {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0.insert_str(0, &format!("{value:?}"));
        } else {
            self.0.push_str(&format!(" {}={value:?}", field.name()));
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.insert_str(0, value);
        } else {
            self.0.push_str(&format!(" {}={value}", field.name()));
        }
    }
}
