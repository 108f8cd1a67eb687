//! `logship-collector fields`: the ECS fields the parsers produce, with an example each.

use std::io::Write;

use anyhow::Result;
use serde_json::json;

use crate::output::{Format, table};

/// Prints the field catalog.
pub fn run(format: Format, out: &mut dyn Write) -> Result<()> {
    let fields = logship_normalize::known_fields();
    match format {
        Format::Json => {
            for f in fields {
                let example: serde_json::Value =
                    serde_json::from_str(f.example).unwrap_or_else(|_| json!(f.example));
                serde_json::to_writer(&mut *out, &json!({"name": f.name, "example": example}))?;
                out.write_all(b"\n")?;
            }
        }
        Format::Table => {
            let mut t = table::Table::new(&["FIELD", "EXAMPLE"]);
            for f in fields {
                t.row(vec![f.name.to_owned(), f.example.to_owned()]);
            }
            t.write(out, table::terminal_width())?;
        }
    }
    out.flush()?;
    Ok(())
}
