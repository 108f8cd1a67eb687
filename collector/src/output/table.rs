//! A small aligned-columns table for terminals (hand-rolled: a few dozen lines, where a table
//! crate would bring wide-character and styling machinery we do not need).
//!
//! Invariants: no line is wider than the width given (the last column is cut with `…`); cells
//! never contain control characters (tabs and newlines become spaces), so a hostile log line
//! cannot move the cursor or forge rows. Width counts `char`s, so East Asian wide characters may
//! overrun by their extra cells.

use std::io::Write;

/// Width used when the terminal does not say (or is implausibly narrow).
const FALLBACK_WIDTH: usize = 120;

/// Rows of text cells under a header.
#[derive(Debug)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

/// The terminal width of stdout, else `$COLUMNS`, else 120.
pub fn terminal_width() -> usize {
    let tty = terminal_size::terminal_size_of(std::io::stdout()).map(|(w, _)| usize::from(w.0));
    let env = || std::env::var("COLUMNS").ok()?.parse().ok();
    tty.filter(|w| *w >= 20)
        .or_else(env)
        .filter(|w| *w >= 20)
        .unwrap_or(FALLBACK_WIDTH)
}

/// `text` with control characters replaced by spaces.
pub fn clean(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// `text` cut to `width` chars, with `…` as the last one when cut.
pub fn cut(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_owned();
    }
    let mut s: String = text.chars().take(width.saturating_sub(1)).collect();
    if width > 0 {
        s.push('…');
    }
    s
}

// === impl Table ===

impl Table {
    /// An empty table with these column names.
    pub fn new(header: &[&str]) -> Table {
        Table {
            header: header.iter().map(|h| (*h).to_owned()).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row (missing cells are empty, extra ones ignored).
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells.iter().map(|c| clean(c)).collect());
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// True when there is no row.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Writes header and rows, each line at most `width` chars.
    pub fn write(&self, out: &mut dyn Write, width: usize) -> std::io::Result<()> {
        let widths = self.widths();
        write_line(out, &self.header, &widths, width)?;
        for row in &self.rows {
            write_line(out, row, &widths, width)?;
        }
        Ok(())
    }

    /// Column widths: the widest cell, at most 40 chars, for all but the last column.
    fn widths(&self) -> Vec<usize> {
        (0..self.header.len())
            .map(|i| {
                std::iter::once(&self.header)
                    .chain(&self.rows)
                    .map(|r| r.get(i).map_or(0, |c| c.chars().count()))
                    .max()
                    .unwrap_or(0)
                    .min(40)
            })
            .collect()
    }
}

/// Writes one line of `cells`: each but the last padded or cut to its entry in `widths`, the
/// last one taking what is left, the whole cut to `width` chars. Cells are cleaned here too, so
/// streaming callers cannot forget it.
pub fn write_line(
    out: &mut dyn Write,
    cells: &[String],
    widths: &[usize],
    width: usize,
) -> std::io::Result<()> {
    let mut text = String::new();
    for (i, w) in widths.iter().enumerate() {
        let cell = clean(cells.get(i).map_or("", String::as_str));
        if i + 1 == widths.len() {
            text.push_str(&cell);
        } else {
            text.push_str(&format!("{:<w$}  ", cut(&cell, *w)));
        }
    }
    writeln!(out, "{}", cut(text.trim_end(), width))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligns_cuts_and_cleans() {
        let mut t = Table::new(&["a", "raw"]);
        t.row(vec![
            "xy".into(),
            "line\twith\ncontrols and a long tail".into(),
        ]);
        let mut out = Vec::new();
        t.write(&mut out, 20).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "a   raw");
        assert_eq!(lines[1], "xy  line with contr…");
        assert!(lines.iter().all(|l| l.chars().count() <= 20));
        assert_eq!(cut("abc", 3), "abc");
        assert_eq!(cut("abcd", 3), "ab…");
    }
}
