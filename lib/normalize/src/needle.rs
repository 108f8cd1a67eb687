//! Fixed substrings the dispatch path looks for in every line that reaches it, each with a
//! searcher built once per process.
//!
//! `str::contains` / `str::find` with a `&str` pattern build a new two-way searcher on every
//! call, and `memchr::memmem::find` builds a new SIMD finder on every call; on the dispatch path
//! (format tests that most lines fail) that construction cost more than the scan. A [`Needle`]
//! is a `memmem::Finder` built on first use and shared by all threads.
//!
//! Invariant: `Needle::find(h)` returns the byte offset of the first occurrence of the needle
//! in `h`, exactly as `str::find(needle)` does (memmem is an exact substring search), so
//! swapping one for the other never changes a parser's output.

use std::sync::LazyLock;

use memchr::memmem::Finder;

/// A substring with its searcher built once (see the module doc).
pub(crate) struct Needle(LazyLock<Finder<'static>>);

impl Needle {
    /// Use in a `static`: `static X: Needle = Needle::new(|| Finder::new(" SRC="));`.
    pub(crate) const fn new(build: fn() -> Finder<'static>) -> Self {
        Needle(LazyLock::new(build))
    }

    /// Byte offset of the first occurrence in `hay`.
    #[inline]
    pub(crate) fn find(&self, hay: &str) -> Option<usize> {
        self.0.find(hay.as_bytes())
    }

    /// Whether `hay` contains the needle.
    #[inline]
    pub(crate) fn is_in(&self, hay: &str) -> bool {
        self.find(hay).is_some()
    }
}

/// `static NAME: Needle = needle!("text");`
macro_rules! needle {
    ($s:literal) => {
        $crate::needle::Needle::new(|| memchr::memmem::Finder::new($s))
    };
}
pub(crate) use needle;

#[cfg(test)]
mod tests {
    use super::*;

    static SRC: Needle = needle!(" SRC=");

    #[test]
    fn finds_what_str_find_finds() {
        for hay in [
            "",
            " SRC=",
            "IN=eth0 OUT= SRC=1.2.3.4 DST=5.6.7.8",
            "no source here SRC= without space? yes: x SRC=",
            "SRC=at start only",
            "ünïcödé SRC=1 SRC=2",
        ] {
            assert_eq!(SRC.find(hay), hay.find(" SRC="), "{hay:?}");
            assert_eq!(SRC.is_in(hay), hay.contains(" SRC="), "{hay:?}");
        }
    }
}
