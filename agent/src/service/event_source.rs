//! Registers the service's Application event log source, so Event Viewer shows the agent's
//! entries as plain text: the source's `EventMessageFile` is .NET Framework 4's
//! `EventLogMessages.dll` (part of Windows 10 and later), whose message for every event id is
//! just the entry's text (`%1`), as .NET's own `EventLog.CreateEventSource` registers it.
//!
//! Invariants: registering and removing are best effort for the caller (an error is returned
//! as text and reported as a warning; logging to the Application log works without it, with
//! Event Viewer's "description cannot be found" note). Removing a source that is not there is
//! not an error.
#![allow(unsafe_code)]

use windows::Win32::Foundation::{ERROR_FILE_NOT_FOUND, ERROR_SUCCESS};
use windows::Win32::System::Registry::{
    HKEY, HKEY_LOCAL_MACHINE, KEY_SET_VALUE, REG_DWORD, REG_EXPAND_SZ, REG_OPTION_NON_VOLATILE,
    RegCloseKey, RegCreateKeyExW, RegDeleteTreeW, RegSetValueExW,
};
use windows::core::{HSTRING, PCWSTR};

/// The source's registry key under `HKEY_LOCAL_MACHINE`.
pub const KEY: &str = r"SYSTEM\CurrentControlSet\Services\EventLog\Application\logship-agent";
/// Message file whose every message is `%1`.
pub const MESSAGE_FILE: &str =
    r"%SystemRoot%\Microsoft.NET\Framework64\v4.0.30319\EventLogMessages.dll";

/// Creates (or updates) the source's key.
pub fn register() -> Result<(), String> {
    let mut key = HKEY::default();
    // SAFETY: a NUL-terminated subkey; `key` receives the handle, closed below.
    let created = unsafe {
        RegCreateKeyExW(
            HKEY_LOCAL_MACHINE,
            &HSTRING::from(KEY),
            None,
            PCWSTR::null(),
            REG_OPTION_NON_VOLATILE,
            KEY_SET_VALUE,
            None,
            &mut key,
            None,
        )
    };
    if created != ERROR_SUCCESS {
        return Err(format!("creating HKLM\\{KEY}: error {}", created.0));
    }
    let file: Vec<u8> = MESSAGE_FILE
        .encode_utf16()
        .chain([0])
        .flat_map(u16::to_le_bytes)
        .collect();
    let types = 7u32.to_le_bytes(); // error, warning, information
    // SAFETY: an open key; each value is a byte slice of the declared type (NUL-terminated
    // UTF-16 for REG_EXPAND_SZ, 4 bytes for REG_DWORD).
    let results = unsafe {
        [
            RegSetValueExW(
                key,
                &HSTRING::from("EventMessageFile"),
                None,
                REG_EXPAND_SZ,
                Some(&file),
            ),
            RegSetValueExW(
                key,
                &HSTRING::from("TypesSupported"),
                None,
                REG_DWORD,
                Some(&types),
            ),
        ]
    };
    // SAFETY: closing the key opened above, once.
    let closed = unsafe { RegCloseKey(key) };
    if closed != ERROR_SUCCESS {
        tracing::debug!(error = closed.0, "RegCloseKey failed.");
    }
    match results.iter().find(|r| **r != ERROR_SUCCESS) {
        Some(e) => Err(format!("writing HKLM\\{KEY}: error {}", e.0)),
        None => Ok(()),
    }
}

/// Removes the source's key.
pub fn unregister() -> Result<(), String> {
    // SAFETY: a NUL-terminated subkey of an open predefined key.
    let r = unsafe { RegDeleteTreeW(HKEY_LOCAL_MACHINE, &HSTRING::from(KEY)) };
    if r == ERROR_SUCCESS || r == ERROR_FILE_NOT_FOUND {
        Ok(())
    } else {
        Err(format!("removing HKLM\\{KEY}: error {}", r.0))
    }
}
