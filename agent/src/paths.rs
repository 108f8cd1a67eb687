//! Where the agent looks for its config file when the command line does not name one. The spool
//! follows the config file: `spool.dir` is relative to the config file's folder (default `spool`).
//!
//! - Unix: `/etc/logship/agent.toml` (where the Debian package and the systemd unit keep it).
//! - Windows: `%ProgramData%\logship\agent.toml`, so the spool defaults to
//!   `%ProgramData%\logship\spool`: a machine-wide folder that services can write and that
//!   survives user log-offs. `%ProgramData%` comes from the environment (`C:\ProgramData` when
//!   unset or empty).

use std::ffi::OsString;
use std::path::PathBuf;

/// The config file used when `--config` is not given.
pub fn default_config() -> PathBuf {
    if cfg!(windows) {
        windows_default_config(std::env::var_os("ProgramData"))
    } else {
        PathBuf::from("/etc/logship/agent.toml")
    }
}

/// `<ProgramData>\logship\agent.toml` (a function of the variable, so it is tested everywhere).
fn windows_default_config(program_data: Option<OsString>) -> PathBuf {
    let base = program_data
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| OsString::from(r"C:\ProgramData"));
    let mut path = base
        .to_string_lossy()
        .trim_end_matches(['\\', '/'])
        .to_owned();
    path.push_str(r"\logship\agent.toml");
    PathBuf::from(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_default_is_under_program_data() {
        let at = |v: Option<&str>| windows_default_config(v.map(OsString::from));
        let expected = PathBuf::from(r"D:\ProgramData\logship\agent.toml");
        assert_eq!(at(Some(r"D:\ProgramData")), expected);
        assert_eq!(at(Some(r"D:\ProgramData\")), expected);
        let fallback = PathBuf::from(r"C:\ProgramData\logship\agent.toml");
        assert_eq!(at(None), fallback);
        assert_eq!(at(Some("")), fallback);
    }

    #[test]
    fn unix_default_is_etc_logship() {
        if cfg!(unix) {
            assert_eq!(default_config(), PathBuf::from("/etc/logship/agent.toml"));
        }
    }
}
