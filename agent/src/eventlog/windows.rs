//! The real [`EventSource`] on Windows: `wevtapi.dll` through the `windows` crate. A pull
//! subscription (`EvtSubscribe` with a signal event, no callback) read with `EvtNext`; each event
//! rendered with `EvtRender(EvtRenderEventXml)`, its message with `EvtFormatMessage` (the
//! provider's metadata opened once per provider), and one bookmark updated with
//! `EvtUpdateBookmark` and rendered (`EvtRenderBookmark`) after every event.
//!
//! Invariants:
//! - Every handle is closed exactly once ([`Handle`] closes on drop), events included.
//! - A subscription starts at the oldest record, or after a bookmark without
//!   `EvtSubscribeStrict`: when the bookmarked event is gone (cleared, overwritten) Windows
//!   starts at the oldest event it has, and the input reports the jump as a gap.
//! - The signal event only wakes the reader early: `next_batch` calls `EvtNext` after every
//!   wait, so a signal that is reset just as an event arrives delays that event by one wait at
//!   most, never loses it.
//! - `unsafe` is confined to this module: each call passes handles this module owns and buffers
//!   sized as the API asked for.
#![allow(unsafe_code)]

use std::collections::HashMap;
use std::time::Duration;

use windows::Win32::Foundation::{
    CloseHandle, ERROR_ACCESS_DENIED, ERROR_EVT_CHANNEL_NOT_FOUND, ERROR_EVT_INVALID_QUERY,
    ERROR_INSUFFICIENT_BUFFER, ERROR_NO_MORE_ITEMS, ERROR_TIMEOUT, HANDLE,
};
use windows::Win32::System::EventLog::{
    EVT_HANDLE, EvtClose, EvtCreateBookmark, EvtFormatMessage, EvtFormatMessageEvent, EvtNext,
    EvtOpenPublisherMetadata, EvtQuery, EvtQueryChannelPath, EvtQueryReverseDirection, EvtRender,
    EvtRenderBookmark, EvtRenderEventXml, EvtSubscribe, EvtSubscribeStartAfterBookmark,
    EvtSubscribeStartAtOldestRecord, EvtUpdateBookmark,
};
use windows::Win32::System::Threading::{CreateEventW, ResetEvent, WaitForSingleObject};
use windows::core::{HSTRING, PCWSTR};

use super::source::{EventSource, RawEvent, SourceError, Start};
use crate::config::EventlogInput;

/// Providers whose metadata is kept open; beyond this the cache starts again.
const MAX_PUBLISHERS: usize = 256;

/// An event log handle, closed on drop.
struct Handle(EVT_HANDLE);

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: the handle came from a wevtapi call and is closed only here.
        if let Err(error) = unsafe { EvtClose(self.0) } {
            tracing::debug!(%error, "EvtClose failed.");
        }
    }
}

/// The subscription's signal event (a kernel event handle), closed on drop.
struct Signal(HANDLE);

// SAFETY: an event handle may be used and closed from any thread.
unsafe impl Send for Signal {}

impl Drop for Signal {
    fn drop(&mut self) {
        // SAFETY: created by CreateEventW in `WindowsSource::new`, closed only here.
        if let Err(error) = unsafe { CloseHandle(self.0) } {
            tracing::debug!(%error, "CloseHandle failed.");
        }
    }
}

/// A subscription to one channel of this machine's Event Log.
pub struct WindowsSource {
    channel: String,
    query: String,
    signal: Signal,
    subscription: Option<Handle>,
    bookmark: Option<Handle>,
    /// Provider name → its metadata (`None`: it has none here, no message then).
    publishers: HashMap<String, Option<Handle>>,
}

// === impl WindowsSource ===

impl WindowsSource {
    /// A source for `config`'s channel and query (not subscribed yet).
    pub fn new(config: &EventlogInput) -> std::io::Result<WindowsSource> {
        // SAFETY: no attributes, no name; the handle is owned by `Signal`.
        let signal = unsafe { CreateEventW(None, true, true, PCWSTR::null()) }
            .map_err(std::io::Error::other)?;
        Ok(WindowsSource {
            channel: config.channel.clone(),
            query: config.query.clone().unwrap_or_else(|| "*".into()),
            signal: Signal(signal),
            subscription: None,
            bookmark: None,
            publishers: HashMap::new(),
        })
    }

    fn error(&self, what: &str, e: &windows::core::Error) -> SourceError {
        let code = e.code();
        let hint = if code == ERROR_EVT_CHANNEL_NOT_FOUND.to_hresult() {
            ": no such channel on this machine (is its software installed?)"
        } else if code == ERROR_ACCESS_DENIED.to_hresult() {
            ": access denied (run the agent as LocalSystem, or add its account to the \
             \"Event Log Readers\" group)"
        } else if code == ERROR_EVT_INVALID_QUERY.to_hresult() {
            ": the query is not valid XPath for the event log"
        } else {
            ""
        };
        SourceError(format!(
            "{what} channel {:?}: {} ({}){hint}",
            self.channel,
            e.message(),
            code.0 & 0xFFFF
        ))
    }

    /// The rendered message of `event` from its provider's message file, if any.
    fn message(&mut self, event: &Handle, provider: Option<&str>) -> Option<String> {
        let provider = provider?;
        if self.publishers.len() >= MAX_PUBLISHERS && !self.publishers.contains_key(provider) {
            self.publishers.clear();
        }
        let meta = self
            .publishers
            .entry(provider.to_owned())
            .or_insert_with(|| {
                let name = HSTRING::from(provider);
                // SAFETY: local session, a valid provider name, no log file, default locale.
                unsafe { EvtOpenPublisherMetadata(None, &name, PCWSTR::null(), 0, 0) }
                    .ok()
                    .map(Handle)
            })
            .as_ref()?;
        let mut used = 0u32;
        // SAFETY: sizing call without a buffer; `used` receives the size in characters.
        let first = unsafe {
            EvtFormatMessage(
                Some(meta.0),
                Some(event.0),
                0,
                None,
                EvtFormatMessageEvent.0,
                None,
                &mut used,
            )
        };
        match first {
            Err(e) if e.code() == ERROR_INSUFFICIENT_BUFFER.to_hresult() => {}
            _ => return None,
        }
        let mut buf = vec![0u16; used as usize];
        // SAFETY: `buf` holds the `used` characters the sizing call asked for.
        unsafe {
            EvtFormatMessage(
                Some(meta.0),
                Some(event.0),
                0,
                None,
                EvtFormatMessageEvent.0,
                Some(&mut buf),
                &mut used,
            )
        }
        .ok()?;
        Some(utf16(&buf))
    }

    /// Updates the bookmark to `event` and renders it.
    fn advance_bookmark(&self, event: &Handle) -> Result<String, SourceError> {
        let bookmark = self
            .bookmark
            .as_ref()
            .expect("a subscription has a bookmark");
        // SAFETY: both handles are open and owned by this source.
        unsafe { EvtUpdateBookmark(bookmark.0, event.0) }
            .map_err(|e| self.error("updating the bookmark of", &e))?;
        render(bookmark, EvtRenderBookmark.0)
            .map_err(|e| self.error("rendering the bookmark of", &e))
    }
}

impl EventSource for WindowsSource {
    fn subscribe(&mut self, start: &Start) -> Result<(), SourceError> {
        self.subscription = None;
        let (bookmark, flags) = match start {
            Start::Beginning => (
                // SAFETY: a null XML creates an empty bookmark.
                unsafe { EvtCreateBookmark(PCWSTR::null()) },
                EvtSubscribeStartAtOldestRecord.0,
            ),
            Start::AfterBookmark(xml) => (
                // SAFETY: a NUL-terminated bookmark XML.
                unsafe { EvtCreateBookmark(&HSTRING::from(xml.as_str())) },
                EvtSubscribeStartAfterBookmark.0,
            ),
        };
        let bookmark =
            Handle(bookmark.map_err(|e| self.error("reading the stored bookmark of", &e))?);
        let channel = HSTRING::from(self.channel.as_str());
        let query = HSTRING::from(self.query.as_str());
        // SAFETY: the signal event and bookmark are open; no callback (pull model).
        let subscription = unsafe {
            EvtSubscribe(
                None,
                Some(self.signal.0),
                &channel,
                &query,
                Some(bookmark.0),
                None,
                None,
                flags,
            )
        }
        .map_err(|e| self.error("subscribing to", &e))?;
        self.subscription = Some(Handle(subscription));
        self.bookmark = Some(bookmark);
        Ok(())
    }

    fn next_batch(&mut self, max: usize, wait: Duration) -> Result<Vec<RawEvent>, SourceError> {
        let Some(subscription) = self.subscription.as_ref().map(|s| s.0) else {
            return Err(SourceError("not subscribed".into()));
        };
        let ms = u32::try_from(wait.as_millis()).unwrap_or(u32::MAX);
        // SAFETY: the signal event is open for the life of `self`.
        unsafe { WaitForSingleObject(self.signal.0, ms) };
        let mut raw = vec![0isize; max.max(1)];
        let mut returned = 0u32;
        // SAFETY: `raw` has room for `max` handles; each returned one is closed via `Handle`.
        match unsafe { EvtNext(subscription, &mut raw, 0, 0, &mut returned) } {
            Ok(()) => {}
            Err(e)
                if e.code() == ERROR_NO_MORE_ITEMS.to_hresult()
                    || e.code() == ERROR_TIMEOUT.to_hresult() =>
            {
                // SAFETY: as above.
                if let Err(error) = unsafe { ResetEvent(self.signal.0) } {
                    tracing::debug!(%error, "ResetEvent failed.");
                }
                return Ok(Vec::new());
            }
            Err(e) => {
                self.subscription = None;
                return Err(self.error("reading", &e));
            }
        }
        let handles: Vec<Handle> = raw[..returned as usize]
            .iter()
            .map(|&h| Handle(EVT_HANDLE(h)))
            .collect();
        let mut out = Vec::with_capacity(handles.len());
        for event in &handles {
            let (xml, message, unreadable) = match render(event, EvtRenderEventXml.0) {
                Ok(xml) => {
                    let provider = provider_name(&xml).map(str::to_owned);
                    let message = self.message(event, provider.as_deref());
                    (xml, message, None)
                }
                Err(e) => (
                    String::new(),
                    None,
                    Some(self.error("rendering an event of", &e).0),
                ),
            };
            let bookmark = self.advance_bookmark(event)?;
            out.push(RawEvent {
                xml,
                bookmark,
                message,
                unreadable,
            });
        }
        Ok(out)
    }

    fn newest(&mut self) -> Result<Option<(String, u64)>, SourceError> {
        let channel = HSTRING::from(self.channel.as_str());
        let query = HSTRING::from(self.query.as_str());
        // SAFETY: valid strings; the result set is closed via `Handle`.
        let results = unsafe {
            EvtQuery(
                None,
                &channel,
                &query,
                EvtQueryChannelPath.0 | EvtQueryReverseDirection.0,
            )
        }
        .map_err(|e| self.error("querying", &e))?;
        let results = Handle(results);
        let mut raw = [0isize; 1];
        let mut returned = 0u32;
        // SAFETY: room for one handle.
        match unsafe { EvtNext(results.0, &mut raw, 0, 0, &mut returned) } {
            Ok(()) if returned == 1 => {}
            Ok(()) => return Ok(None),
            Err(e) if e.code() == ERROR_NO_MORE_ITEMS.to_hresult() => return Ok(None),
            Err(e) => return Err(self.error("reading the newest event of", &e)),
        }
        let event = Handle(EVT_HANDLE(raw[0]));
        // SAFETY: an empty bookmark, updated to the open event.
        let bookmark = Handle(
            unsafe { EvtCreateBookmark(PCWSTR::null()) }
                .map_err(|e| self.error("bookmarking", &e))?,
        );
        // SAFETY: both handles are open.
        unsafe { EvtUpdateBookmark(bookmark.0, event.0) }
            .map_err(|e| self.error("bookmarking", &e))?;
        let xml = render(&event, EvtRenderEventXml.0)
            .map_err(|e| self.error("rendering the newest event of", &e))?;
        let id = crate::evtx::EventRecord::from_xml(&xml, crate::evtx::Known::default())
            .attribute(crate::evtx::record::ATTR_RECORD_ID)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let rendered = render(&bookmark, EvtRenderBookmark.0)
            .map_err(|e| self.error("rendering the bookmark of", &e))?;
        Ok(Some((rendered, id)))
    }
}

/// `EvtRender` of `handle` as XML text (an event or a bookmark).
fn render(handle: &Handle, flags: u32) -> windows::core::Result<String> {
    let mut used = 0u32;
    let mut count = 0u32;
    // SAFETY: sizing call without a buffer; `used` receives the size in bytes.
    match unsafe { EvtRender(None, handle.0, flags, 0, None, &mut used, &mut count) } {
        Ok(()) => return Ok(String::new()),
        Err(e) if e.code() == ERROR_INSUFFICIENT_BUFFER.to_hresult() => {}
        Err(e) => return Err(e),
    }
    let mut buf = vec![0u16; (used as usize).div_ceil(2)];
    // SAFETY: `buf` holds the `used` bytes the sizing call asked for.
    unsafe {
        EvtRender(
            None,
            handle.0,
            flags,
            (buf.len() * 2) as u32,
            Some(buf.as_mut_ptr().cast()),
            &mut used,
            &mut count,
        )
    }?;
    Ok(utf16(&buf))
}

/// UTF-16 text up to its first NUL.
fn utf16(buf: &[u16]) -> String {
    let end = buf.iter().position(|&c| c == 0).unwrap_or(buf.len());
    String::from_utf16_lossy(&buf[..end])
}

/// The provider name of an event's XML (`<Provider Name='...'`), as Windows renders it.
fn provider_name(xml: &str) -> Option<&str> {
    let at = xml.find("<Provider Name=")? + "<Provider Name=".len();
    let quote = xml[at..].chars().next()?;
    let rest = &xml[at + 1..];
    rest.find(quote).map(|end| &rest[..end])
}
