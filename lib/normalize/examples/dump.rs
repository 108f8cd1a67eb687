//! Prints `dataset<TAB>fields-json<TAB>line` for every line of the files given (parser check aid).

use std::io::{BufRead, BufReader};

fn main() -> std::io::Result<()> {
    let ctx = logship_normalize::Context {
        host: "agent-host",
        input: "dump",
        path: "dump",
        agent_tz: "UTC",
        observed_unix_nanos: 1_735_689_600_000_000_000,
    };
    for path in std::env::args().skip(1) {
        let mut n = logship_normalize::Normalizer::new();
        for line in BufReader::new(std::fs::File::open(&path)?).split(b'\n') {
            let line = line?;
            let ev = n.normalize(&line, &ctx);
            let fields = serde_json::Value::Object(ev.fields);
            println!(
                "{}\t{}\t{}",
                ev.dataset,
                fields,
                String::from_utf8_lossy(&line)
            );
        }
    }
    Ok(())
}
