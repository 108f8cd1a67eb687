//! Glob patterns in the path style of the platform: how a pattern is compiled, how a path is
//! prepared for matching, and which directory to walk for a pattern.
//!
//! Invariants:
//! - Unix style: `/` is the only separator, `\` escapes the next character, matching is
//!   case-sensitive and works on the path's bytes (no conversion of any kind).
//! - Windows style: `\` and `/` are both separators. Patterns and paths are both normalised to
//!   `/` before matching (`C:\logs\*.log` is matched as `C:/logs/*.log`), matching ignores case
//!   (as NTFS does), and `\` never escapes. The path that is opened is always the original one.
//! - `*` and `?` never match a separator; `**` matches any number of directories.
//! - The walk root is a prefix of the pattern as written (the user's separators, a drive letter,
//!   a UNC `\\server\share`), so the paths the walk yields start with the pattern's literal part.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use globset::{Glob, GlobBuilder};

/// How paths are written on a platform.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PathStyle {
    Unix,
    Windows,
}

// === impl PathStyle ===

impl PathStyle {
    /// The style of the platform this was built for.
    pub(crate) const NATIVE: PathStyle = if cfg!(windows) {
        PathStyle::Windows
    } else {
        PathStyle::Unix
    };

    fn is_separator(self, c: char) -> bool {
        match self {
            PathStyle::Unix => c == '/',
            PathStyle::Windows => c == '/' || c == '\\',
        }
    }

    /// The text globs are matched against: Windows separators become `/`.
    fn normalise(self, text: &str) -> Cow<'_, str> {
        match self {
            PathStyle::Windows if text.contains('\\') => Cow::Owned(text.replace('\\', "/")),
            _ => Cow::Borrowed(text),
        }
    }

    /// Compiles `pattern` for this style.
    pub(crate) fn compile(self, pattern: &str) -> Result<Glob, globset::Error> {
        GlobBuilder::new(&self.normalise(pattern))
            .literal_separator(true)
            .backslash_escape(self == PathStyle::Unix)
            .case_insensitive(self == PathStyle::Windows)
            .build()
    }

    /// The path as globs compiled by [`PathStyle::compile`] expect it.
    pub(crate) fn match_form(self, path: &Path) -> Cow<'_, Path> {
        match self {
            PathStyle::Unix => Cow::Borrowed(path),
            PathStyle::Windows => {
                let text = path.to_string_lossy();
                Cow::Owned(PathBuf::from(self.normalise(&text).into_owned()))
            }
        }
    }

    /// The directory to walk for `pattern` (its components before the first glob metacharacter,
    /// as written) and how deep to walk (`None`: unbounded, the pattern has `**`).
    pub(crate) fn literal_root(self, pattern: &str) -> (PathBuf, Option<usize>) {
        let mut root_end = 0;
        let mut depth = 0;
        let mut unbounded = false;
        let mut in_glob = false;
        let mut start = 0;
        let ends = pattern
            .char_indices()
            .filter(|&(_, c)| self.is_separator(c))
            .map(|(i, _)| i)
            .chain(std::iter::once(pattern.len()));
        for end in ends {
            let component = &pattern[start..end];
            start = end + 1;
            if component.is_empty() {
                continue;
            }
            in_glob |= component.contains(['*', '?', '[', '{']);
            if in_glob {
                depth += 1;
                unbounded |= component.contains("**");
            } else {
                root_end = end;
            }
        }
        let mut root = &pattern[..root_end];
        let first_is_separator = pattern.chars().next().is_some_and(|c| self.is_separator(c));
        if root.is_empty() && first_is_separator {
            root = &pattern[..1];
        }
        let bare_drive = self == PathStyle::Windows && root.len() == 2 && root.ends_with(':');
        if bare_drive && pattern[2..].starts_with(|c| self.is_separator(c)) {
            root = &pattern[..3]; // `C:\`, not `C:` (the current directory of drive C)
        }
        let root = if root.is_empty() { "." } else { root };
        (PathBuf::from(root), (!unbounded).then_some(depth))
    }
}

#[cfg(test)]
mod tests {
    use globset::GlobSet;

    use super::*;

    fn set(style: PathStyle, pattern: &str) -> GlobSet {
        let mut b = globset::GlobSetBuilder::new();
        b.add(style.compile(pattern).expect("valid glob"));
        b.build().expect("glob set")
    }

    fn matches(style: PathStyle, pattern: &str, path: &str) -> bool {
        set(style, pattern).is_match(style.match_form(Path::new(path)))
    }

    fn root(style: PathStyle, pattern: &str) -> (String, Option<usize>) {
        let (root, depth) = style.literal_root(pattern);
        (root.to_string_lossy().into_owned(), depth)
    }

    #[test]
    fn windows_drive_letters_and_backslashes() {
        let w = PathStyle::Windows;
        assert!(matches(w, r"C:\logs\*.log", r"C:\logs\app.log"));
        assert!(matches(w, r"C:\logs\*.log", r"C:/logs\app.log"));
        assert!(matches(w, r"C:/logs/*.log", r"C:\logs\app.log"));
        assert!(matches(w, r"C:\Logs\*.log", r"c:\logs\APP.LOG"));
        assert!(!matches(w, r"C:\logs\*.log", r"C:\logs\old\app.log"));
        assert!(!matches(w, r"C:\logs\*.log", r"D:\logs\app.log"));
        assert!(matches(w, r"C:\logs\**\*.log", r"C:\logs\a\b\app.log"));
        assert!(matches(w, r"\\srv\share\*.log", r"\\srv\share\app.log"));
        assert_eq!(root(w, r"C:\logs\*.log"), (r"C:\logs".into(), Some(1)));
        assert_eq!(root(w, r"C:/logs/*.log"), ("C:/logs".into(), Some(1)));
        assert_eq!(root(w, r"C:\*.log"), (r"C:\".into(), Some(1)));
        assert_eq!(root(w, r"C:\logs\**\*.log"), (r"C:\logs".into(), None));
        assert_eq!(root(w, r"C:\app\*\logs\*.log"), (r"C:\app".into(), Some(3)));
        assert_eq!(
            root(w, r"C:\logs\app.log"),
            (r"C:\logs\app.log".into(), Some(0))
        );
        assert_eq!(
            root(w, r"\\srv\share\*.log"),
            (r"\\srv\share".into(), Some(1))
        );
        assert_eq!(root(w, r"logs\*.log"), ("logs".into(), Some(1)));
    }

    #[test]
    fn unix_backslash_escapes_and_case_matters() {
        let u = PathStyle::Unix;
        assert!(matches(u, "/var/log/*.log", "/var/log/app.log"));
        assert!(!matches(u, "/var/log/*.log", "/var/log/APP.LOG"));
        assert!(!matches(u, "/var/log/*.log", "/var/log/old/app.log"));
        assert!(matches(u, r"/var/log/a\*.log", "/var/log/a*.log"));
        assert!(!matches(u, r"/var/log/a\*.log", "/var/log/ab.log"));
        // A backslash is part of a Unix file name, never a separator (globset itself turns `\`
        // in paths into `/` when built for Windows, where the Unix style is never used).
        if cfg!(unix) {
            assert!(matches(u, "/var/log/*.log", r"/var/log/x\y.log"));
        }
        assert_eq!(root(u, r"/logs\dir/*.log"), (r"/logs\dir".into(), Some(1)));
    }

    #[test]
    fn unix_literal_roots_and_depths() {
        let u = PathStyle::Unix;
        assert_eq!(root(u, "/var/log/*.log"), ("/var/log".into(), Some(1)));
        assert_eq!(root(u, "/var/log/**/*.log"), ("/var/log".into(), None));
        assert_eq!(root(u, "/var/*/app/*.log"), ("/var".into(), Some(3)));
        assert_eq!(
            root(u, "/var/log/syslog"),
            ("/var/log/syslog".into(), Some(0))
        );
        assert_eq!(root(u, "/var//log/*.log"), ("/var//log".into(), Some(1)));
        assert_eq!(root(u, "/*.log"), ("/".into(), Some(1)));
        assert_eq!(root(u, "*.log"), (".".into(), Some(1)));
        assert_eq!(root(u, "logs/*.log"), ("logs".into(), Some(1)));
    }
}
